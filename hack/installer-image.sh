#!/usr/bin/env bash
# Builds the node installer's OCI image archive with the project's own tool
# (edgeshim-oci; no registry or Docker engine needed): a static
# edgeshim-install (glibc, crt-static: the image carries no libc) and the
# shims, run against the host's / mounted at /host (deploy/installer.yaml,
# or `ctr run`; see the README).
#
#   hack/installer-image.sh [OUT.tar]   release build (default out: target/edgeshim-installer.tar)
#   PROFILE=debug hack/installer-image.sh OUT.tar   from the debug builds (the test suite)
#
# libwasmedge goes in when WASMEDGE_DIR (or hack/find-wasmedge.sh) finds it
# and the WasmEdge shim is built.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
profile=${PROFILE:-release}
out=${1:-target/edgeshim-installer.tar}
flag=$([ "$profile" = release ] && echo --release || true)
target=x86_64-unknown-linux-gnu
# A target of its own: crt-static applies to the installer only, and the
# other builds keep their (dynamic) artifacts.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build $flag --locked -p edgeshim-installer --target "$target"
cargo build $flag --locked -p containerd-shim-wasmtime -p edgeshim-tools
bin=target/$profile
args=(--name "edgeshim.local/installer:$(cargo pkgid -p edgeshim-installer | sed 's/.*[#@]//')"
      --file "target/$target/$profile/edgeshim-install:/edgeshim/edgeshim-install"
      --file "$bin/containerd-shim-wasmtime-v1:/edgeshim/bin/containerd-shim-wasmtime-v1"
      --entrypoint /edgeshim/edgeshim-install --dir /host)
if [ -x "$bin/containerd-shim-wasmedge-v1" ] && wasmedge_dir=${WASMEDGE_DIR:-$(hack/find-wasmedge.sh)}; then
  args+=(--file "$bin/containerd-shim-wasmedge-v1:/edgeshim/bin/containerd-shim-wasmedge-v1")
  for lib in "$wasmedge_dir"/lib*/libwasmedge.so*; do
    args+=(--file "$(readlink -f "$lib"):/edgeshim/bin/lib/$(basename "$lib")")
  done
fi
"$bin/edgeshim-oci" "${args[@]}" -o "$out"
echo "wrote $out"
