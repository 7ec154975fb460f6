#!/usr/bin/env bash
# Runs the benchmarks the way BENCHMARKS.md reports them: release build, a
# private containerd of its own (.edgeshim-bench) with the release shims,
# every scenario through CRI, then the report (tables + charts).
#
#   hack/bench.sh                 every scenario at its default size
#   hack/bench.sh cold policy     only these scenarios
#
# Sizes (environment): COLD_N (30), BURST_N (20), DENSITY_COUNT (100),
# DENSITY_STEP (25), POLICY_N (10000), AOT_N (5), SHIM_N (200), NETWORK_N (500), CYCLES_N (10000,
# on the wasmtime handler, or CYCLES_HANDLER), SOAK_N (10000, on each Wasm
# handler or SOAK_HANDLERS; `soak` runs only when named), HANDLERS (wasmtime,runc,
# plus wasmedge where libwasmedge 0.14.1 is installed, see hack/find-wasmedge.sh;
# any handler configured in containerd can join), CTR_N (20).
# EDGESHIM_PEER_SHIMS=NAME=PATH[,...] (see hack/containerd.sh) registers peer
# shims, e.g. runwasi=/path/to/runwasi's containerd-shim-wasmtime-v1, and adds
# them to the default handlers.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

hack/install-deps.sh
cargo build --release --workspace --locked
default_handlers=wasmtime,runc
shims=target/release/containerd-shim-wasmtime-v1
if wasmedge_dir=$(hack/find-wasmedge.sh); then
  export WASMEDGE_DIR=$wasmedge_dir
  # Built on its own so that its dependencies carry no Wasmtime.
  cargo build --release -p containerd-shim-wasmedge --features wasmedge --locked
  default_handlers=wasmtime,wasmedge,runc
  shims=$shims,target/release/containerd-shim-wasmedge-v1
fi
for peer in $(echo "${EDGESHIM_PEER_SHIMS:-}" | tr , ' '); do
  default_handlers=$default_handlers,${peer%%=*}
done
export EDGESHIM_HOME=${EDGESHIM_BENCH_HOME:-$repo/.edgeshim-bench}
export EDGESHIM_BIN=$repo/target/release
hack/containerd.sh stop >/dev/null 2>&1 || true
rm -rf "$EDGESHIM_HOME"
hack/containerd.sh start
trap 'hack/containerd.sh stop' EXIT
eval "$(hack/containerd.sh env)"

bench=target/release/edgeshim-bench
handlers=${HANDLERS:-$default_handlers}
# The Wasm handlers alone (the compiled-module cache means nothing to runc).
wasm_handlers=$(echo "$handlers" | tr , '\n' | grep -vx runc | paste -sd, -)
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(cold ctr sensor gate exporter burst density aot shim policy cycles network)
for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    cold) $bench cold -n "${COLD_N:-30}" --handler "$handlers" ;;
    ctr) $bench ctr -n "${CTR_N:-20}" --handler "$handlers" ;;
    sensor) $bench cold -n "${COLD_N:-30}" --handler "$handlers" --program sensor --name cold-sensor ;;
    gate) $bench cold -n "${COLD_N:-30}" --handler wasmtime --gate enforce,off ;;
    exporter) $bench cold -n "${COLD_N:-30}" --handler "$wasm_handlers" --exporter on,off ;;
    burst) $bench burst -n "${BURST_N:-20}" --handler "$handlers" ;;
    density) $bench density --count "${DENSITY_COUNT:-100}" --step "${DENSITY_STEP:-25}" --handler "$handlers" \
               --drop-caches ;;
    aot) $bench aot -n "${AOT_N:-5}" --handler "$wasm_handlers" ;;
    shim) $bench shim -n "${SHIM_N:-200}" --shim "$shims" ;;
    policy) $bench policy -n "${POLICY_N:-10000}" ;;
    cycles) $bench cycles -n "${CYCLES_N:-10000}" --handler "${CYCLES_HANDLER:-wasmtime}" ;;
    network) $bench network -n "${NETWORK_N:-500}" --handler "$handlers" ;;
    # Not in the default list (an hour or more): hack/bench.sh soak.
    soak) $bench soak -n "${SOAK_N:-10000}" --handler "${SOAK_HANDLERS:-$wasm_handlers}" \
            --library policies/library ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
done
$bench report
