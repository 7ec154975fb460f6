#!/usr/bin/env bash
# The newcomer's one command: installs what is missing, builds the shim,
# starts a private containerd with it registered, and runs a Wasm module
# through containerd with `ctr`, showing its output.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

hack/install-deps.sh
cargo build --workspace --locked
hack/containerd.sh start
eval "$(hack/containerd.sh env)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ctr() { command ctr --address "$EDGESHIM_CONTAINERD_ADDRESS" "$@"; }
clang --target=wasm32-wasi -O2 -Wl,--strip-all -o "$work/probe.wasm" test/workloads/modules/probe.c
target/debug/edgeshim-oci --name docker.io/edgeshim/demo:latest \
  --file "$work/probe.wasm:/probe.wasm" --entrypoint /probe.wasm -o "$work/demo.tar" >/dev/null
ctr image import "$work/demo.tar" >/dev/null
for id in demo sensor mqtt-publisher mqtt-outside; do ctr container rm "$id" >/dev/null 2>&1 || true; done

echo "+ ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/demo:latest demo"
ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/demo:latest demo
echo "+ ... demo /probe.wasm args edge node"
ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/demo:latest demo /probe.wasm args edge node
echo "+ ... policy-deny-demo   (the policy gate denies ids starting with policy-deny-: test/policy)"
ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/demo:latest policy-deny-demo || true
echo "+ the decision log's last line ($EDGESHIM_DECISION_LOG)"
tail -n 1 "$EDGESHIM_DECISION_LOG"

echo
echo "== a network service under the policy: sensor aggregates to an MQTT broker on the node"
# Debian's mosquitto on loopback, started here like the private containerd
# (test/policy lets containers with ids mqtt-... connect to 127.0.0.1:47821
# and nowhere else).
cat > "$work/mosquitto.conf" <<CONF
listener 47821 127.0.0.1
allow_anonymous true
persistence false
user root
log_dest file $work/broker.log
log_type all
CONF
mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do mosquitto_pub -h 127.0.0.1 -p 47821 -t probe -m x 2>/dev/null && break; sleep 0.1; done
clang --target=wasm32-wasi -O2 -Wl,--strip-all -o "$work/sensor.wasm" test/workloads/modules/sensor.c
target/debug/edgeshim-oci --name docker.io/edgeshim/sensor:latest \
  --file "$work/sensor.wasm:/sensor.wasm" --entrypoint /sensor.wasm -o "$work/sensor.tar" >/dev/null
ctr image import "$work/sensor.tar" >/dev/null
echo "+ ctr run ... sensor /sensor.wasm simulate 15   (three 5-second window aggregates)"
ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/sensor:latest sensor /sensor.wasm simulate 15 \
  | tee "$work/aggregates.txt"
# The publisher: the same aggregation in C, publishing each window as MQTT
# 3.1.1 over wasi:sockets (a WASI 0.2 component; modules/mqtt.c).
target/debug/edgeshim-guest mqtt-publisher --engine wasmtime -o "$work/publisher.wasm"
target/debug/edgeshim-oci --name docker.io/edgeshim/publisher:latest \
  --file "$work/publisher.wasm:/publisher.wasm" --entrypoint /publisher.wasm -o "$work/publisher.tar" >/dev/null
ctr image import "$work/publisher.tar" >/dev/null
lines=$(wc -l < "$work/aggregates.txt")
mosquitto_sub -h 127.0.0.1 -p 47821 -t 'edge/#' -v -C "$lines" -W 30 > "$work/received.txt" &
sub=$!
for _ in $(seq 100); do grep -q 'Received SUBSCRIBE' "$work/broker.log" 2>/dev/null && break; sleep 0.1; done
echo "+ ctr run --net-host ... mqtt-publisher /publisher.wasm 127.0.0.1 47821 15 edge/line-3/sensor   (the node's broker: allowed)"
ctr run --rm --net-host --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/publisher:latest mqtt-publisher \
  /publisher.wasm 127.0.0.1 47821 15 edge/line-3/sensor
wait $sub || true
echo "+ mosquitto_sub received:"
cat "$work/received.txt"
echo "+ ctr run --net-host ... mqtt-outside /publisher.wasm 10.20.0.1 1883 15 edge/line-3/sensor   (off the node: refused)"
ctr run --rm --net-host --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/publisher:latest mqtt-outside \
  /publisher.wasm 10.20.0.1 1883 15 edge/line-3/sensor || true
echo "+ the decision log's refusal line"
grep '"action":"connect"' "$EDGESHIM_DECISION_LOG" | grep mqtt-outside | tail -n 1

echo
echo "containerd is still running for you to try: hack/containerd.sh env; stop it with hack/containerd.sh stop"
