#!/usr/bin/env bash
# The whole test suite: unit tests and the integration suite against a real,
# private containerd that this script starts and stops. CI runs exactly this.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

hack/install-deps.sh
cargo build --workspace --locked
export EDGESHIM_HOME=${EDGESHIM_HOME:-$repo/.edgeshim}
# A fresh private containerd every run: no state from an earlier run.
hack/containerd.sh stop >/dev/null 2>&1 || true
rm -rf "$EDGESHIM_HOME"
hack/containerd.sh start
trap 'hack/containerd.sh stop' EXIT
eval "$(hack/containerd.sh env)"

cargo test --workspace --locked -- --test-threads="${EDGESHIM_TEST_THREADS:-4}"
