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
clang --target=wasm32-wasi -O2 -Wl,--strip-all -o "$work/probe.wasm" test/workloads/modules/probe.c
target/debug/edgeshim-oci --name docker.io/edgeshim/demo:latest \
  --file "$work/probe.wasm:/probe.wasm" --entrypoint /probe.wasm -o "$work/demo.tar" >/dev/null
ctr() { command ctr --address "$EDGESHIM_CONTAINERD_ADDRESS" "$@"; }
ctr image import "$work/demo.tar" >/dev/null
ctr container rm demo >/dev/null 2>&1 || true

echo "+ ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/demo:latest demo"
ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/demo:latest demo
echo "+ ... demo /probe.wasm args edge node"
ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/demo:latest demo /probe.wasm args edge node
echo "+ ... policy-deny-demo   (the policy gate denies ids starting with policy-deny-: test/policy)"
ctr run --rm --runtime io.containerd.wasmtime.v1 docker.io/edgeshim/demo:latest policy-deny-demo || true
echo "+ the decision log's last line ($EDGESHIM_DECISION_LOG)"
tail -n 1 "$EDGESHIM_DECISION_LOG"
echo
echo "containerd is still running for you to try: hack/containerd.sh env; stop it with hack/containerd.sh stop"
