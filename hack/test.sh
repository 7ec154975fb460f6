#!/usr/bin/env bash
# The whole test suite: unit tests and the integration suite against a real,
# private containerd that this script starts and stops. CI runs exactly this.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

hack/install-deps.sh
# A full run builds every test binary once: incremental state would only
# take disk (gigabytes of it) on CI's fresh clones.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo build --workspace --locked
# The node installer's image (a static installer and the shims), which
# test/tests/installer.rs runs against a scratch root.
PROFILE=debug hack/installer-image.sh target/edgeshim-installer-debug.tar
export EDGESHIM_HOME=${EDGESHIM_HOME:-$repo/.edgeshim}
# A fresh private containerd every run: no state from an earlier run.
hack/containerd.sh stop >/dev/null 2>&1 || true
rm -rf "$EDGESHIM_HOME"
hack/containerd.sh start
trap 'hack/containerd.sh stop' EXIT
eval "$(hack/containerd.sh env)"

cargo test --workspace --locked -- --test-threads="${EDGESHIM_TEST_THREADS:-4}"

# The same suite on the WasmEdge shim, where libwasmedge 0.14.1 is installed
# (see the README; it is in no registry this project installs from, so CI's
# fresh machines have none and prove the Wasmtime shim only).
if wasmedge_dir=$(hack/find-wasmedge.sh); then
  echo "WasmEdge found at $wasmedge_dir: running the suite on containerd-shim-wasmedge-v1"
  export WASMEDGE_DIR=$wasmedge_dir
  export LD_LIBRARY_PATH=$wasmedge_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # Built on its own so that its dependencies carry no Wasmtime.
  cargo build -p containerd-shim-wasmedge --features wasmedge --locked
  # Again, now with the WasmEdge shim and libwasmedge in it.
  PROFILE=debug hack/installer-image.sh target/edgeshim-installer-debug.tar
  cargo test -p edgeshim-engine --no-default-features --features wasmedge --locked
  cargo test -p edgeshim-policy --no-default-features --features wasmedge --locked
  # A fresh private containerd again: the tests read its decision log and
  # events by container id, which the first pass used too.
  hack/containerd.sh stop
  rm -rf "$EDGESHIM_HOME"
  hack/containerd.sh start
  eval "$(hack/containerd.sh env)"
  EDGESHIM_TEST_ENGINE=wasmedge cargo test -p edgeshim-integration --locked -- \
    --test-threads="${EDGESHIM_TEST_THREADS:-4}"
else
  echo "WasmEdge tests SKIPPED: no libwasmedge 0.14.1 found (set WASMEDGE_DIR; see README)"
fi
