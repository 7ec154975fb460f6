#!/usr/bin/env bash
# Starts and stops a private containerd (Debian's package) with the edgeshim
# shims registered, entirely under one folder: nothing touches the host's own
# containerd. Usage: hack/containerd.sh start|stop|status|env
#
#   EDGESHIM_HOME   the private folder (default: <repo>/.edgeshim)
#   EDGESHIM_BIN    folder holding containerd-shim-*-v1 (default: target/debug)
#   EDGESHIM_POLICY the Rego policy folder copied in at start (default:
#                   test/policy, the suite's allow-unless-marked policy)
#   EDGESHIM_POLICY_CHECK  the policy's load-check entrypoint, if any (e.g.
#                   edgeshim/config_errors with EDGESHIM_POLICY=policies/library)
#   EDGESHIM_PEER_SHIMS    peer shims to measure beside edgeshim's, as
#                   NAME=PATH[,NAME=PATH...]: each becomes the CRI handler NAME
#                   and the runtime io.containerd.NAME.v1 (for ctr --runtime),
#                   e.g. runwasi=/path/to/runwasi's containerd-shim-wasmtime-v1
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
home=${EDGESHIM_HOME:-$repo/.edgeshim}
bin=${EDGESHIM_BIN:-$repo/target/debug}
sock=$home/containerd.sock
pidfile=$home/containerd.pid
# Pods' pause image: no registry is reachable, so it is built locally (the
# test suite imports it into the k8s.io namespace under this name).
sandbox_image=${EDGESHIM_SANDBOX_IMAGE:-edgeshim.local/pause:1}
log=$home/containerd.log
policy_src=${EDGESHIM_POLICY:-$repo/test/policy}

# The shims' policy gate: enforce mode on a copy of the policy folder, which
# tests (and you) may edit while everything runs: the gate reloads it.
write_policy_config() {
  mkdir -p "$home/policy"
  if [ ! -d "$home/policy/rego" ]; then cp -r "$policy_src" "$home/policy/rego"; fi
  cat > "$home/policy/policy.toml" <<TOML
mode = "enforce"
fail = "closed"
policy = "rego"
# Debug builds on 2 shared cores, 20 pods at once: a decision can take over
# 100 ms here. The suite tests what is decided, not how fast (the gate's
# own tests cover the budget; BENCHMARKS.md the speed).
budget_ms = 2000
${EDGESHIM_POLICY_CHECK:+check = \"$EDGESHIM_POLICY_CHECK\"}
cache_dir = "$home/cache/policy"
[decision_log]
path = "$home/decisions.log"
TOML
}

write_config() {
  mkdir -p "$home/root" "$home/state" "$home/cache" "$home/cni/conf" "$home/cni/bin"
  write_policy_config
  containerd config default \
    | sed -e "s#^root = .*#root = \"$home/root\"#" \
          -e "s#^state = .*#state = \"$home/state\"#" \
          -e "s#/run/containerd/containerd.sock#$sock#" \
          -e "s#restrict_oom_score_adj = false#restrict_oom_score_adj = true#" \
          -e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$home/cni/conf\"#" \
          -e "s#sandbox_image = .*#sandbox_image = \"$sandbox_image\"#" \
          -e "s#bin_dir = \"/opt/cni/bin\"#bin_dir = \"/usr/lib/cni\"#" \
    > "$home/config.toml"
  # Pod network: Debian's bridge + host-local plugins on a private bridge.
  cat > "$home/cni/conf/10-edgeshim.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "edgeshim",
  "plugins": [
    { "type": "bridge", "bridge": "edgeshim0", "isGateway": true, "ipMasq": false,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.88.77.0/24" }]],
                "routes": [{ "dst": "0.0.0.0/0" }] } }
  ]
}
JSON
  cat >> "$home/config.toml" <<TOML

# edgeshim: runtime handlers for CRI (runtimeClassName wasmtime / wasmedge).
# Pod annotations under edgeshim.io/ reach the shim (what a pod's author
# writes: the example policy library grants nothing from them).
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmtime]
  runtime_type = "io.containerd.wasmtime.v1"
  pod_annotations = ["edgeshim.io/*"]
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmedge]
  runtime_type = "io.containerd.wasmedge.v1"
  pod_annotations = ["edgeshim.io/*"]
TOML
  write_peer_shims
}

# Peer shims (EDGESHIM_PEER_SHIMS): containerd finds a runtime's shim by name
# on its PATH, so each is linked under its own name in a private folder (a
# peer's binary often has the same name as one of ours).
write_peer_shims() {
  rm -rf "$home/peer-bin"
  mkdir -p "$home/peer-bin"
  local entry name path
  for entry in $(echo "${EDGESHIM_PEER_SHIMS:-}" | tr , ' '); do
    name=${entry%%=*}
    path=${entry#*=}
    if ! [[ $name =~ ^[a-z0-9]+$ ]] || [ ! -x "$path" ] || [ "$name" = "$entry" ]; then
      echo "EDGESHIM_PEER_SHIMS: '$entry' is not NAME=PATH (NAME in a-z0-9, PATH an executable)" >&2
      exit 2
    fi
    ln -s "$(realpath "$path")" "$home/peer-bin/containerd-shim-$name-v1"
    cat >> "$home/config.toml" <<TOML
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$name]
  runtime_type = "io.containerd.$name.v1"
TOML
  done
}

running() {
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  # A containerd that was stopped but not yet reaped (its parent is gone and
  # PID 1 may reap late) is a zombie: not running.
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

start() {
  if running; then echo "containerd already running (pid $(cat "$pidfile"))"; return; fi
  write_config
  # As containerd's own systemd unit (LimitNOFILE=infinity): thousands of
  # shims mean thousands of sockets and pipes.
  ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  # The shims are found on containerd's PATH; their module cache is private
  # too, and so is the socket they send metrics events to.
  PATH="$bin:$home/peer-bin:$PATH" EDGESHIM_CACHE_DIR="$home/cache" \
    EDGESHIM_POLICY_CONFIG="$home/policy/policy.toml" \
    EDGESHIM_METRICS_SOCKET="$home/metrics/events.sock" \
    setsid containerd --config "$home/config.toml" >"$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 100); do
    if ctr --address "$sock" version >/dev/null 2>&1; then
      echo "containerd running: pid $(cat "$pidfile"), socket $sock, log $log"
      return
    fi
    sleep 0.1
  done
  echo "containerd did not come up; last log lines:" >&2
  tail -20 "$log" >&2
  exit 1
}

# Kills and removes every task and container this containerd knows, so that
# no container process, cgroup or mount outlives a stop.
remove_all() {
  local c="ctr --address $sock" ns id
  for ns in $($c namespaces ls -q 2>/dev/null); do
    for id in $($c -n "$ns" tasks ls -q 2>/dev/null); do
      $c -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
      $c -n "$ns" tasks rm -f "$id" >/dev/null 2>&1 || true
    done
    for id in $($c -n "$ns" containers ls -q 2>/dev/null); do
      $c -n "$ns" containers rm "$id" >/dev/null 2>&1 || true
    done
    # The per-namespace parent cgroups (empty by now), as runc leaves them.
    rmdir /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/unified/"$ns" 2>/dev/null || true
  done
}

stop() {
  if running; then remove_all; fi
  if running; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  # Shims outlive containerd by design (and ignore SIGTERM); stop the ones
  # of this containerd.
  pkill -9 -f "containerd-shim-.*-address $sock" 2>/dev/null || true
  # Unmount anything left under the private root (snapshots, rootfs).
  { grep -o " $home/[^ ]*" /proc/self/mountinfo || true; } | sort -r \
    | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  ip link delete edgeshim0 2>/dev/null || true
  rm -rf /var/lib/cni/networks/edgeshim
  return 0
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "running (pid $(cat "$pidfile"))" || { echo "not running"; exit 1; } ;;
  env)
    echo "export EDGESHIM_CONTAINERD_ADDRESS=$sock"
    echo "export EDGESHIM_POLICY_DIR=$home/policy/rego"
    echo "export EDGESHIM_POLICY_CONFIG=$home/policy/policy.toml"
    echo "export EDGESHIM_DECISION_LOG=$home/decisions.log"
    echo "export EDGESHIM_CONTAINERD_LOG=$log"
    echo "export EDGESHIM_CACHE_DIR=$home/cache"
    echo "export EDGESHIM_METRICS_SOCKET=$home/metrics/events.sock"
    ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
