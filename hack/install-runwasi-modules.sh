#!/usr/bin/env bash
# runwasi's test modules (crates.io: containerd-shim-wasm-test-modules
# 0.4.1), the fixtures test/tests/runwasi.rs runs on edgeshim's shims.
# The crate cannot be a Cargo dependency here: its build script compiles two
# Rust guests for wasm32, a target this machine's toolchain has not. So its
# published archive is fetched from crates.io, checked against the
# checksum crates.io's index gives for it, and its WAT and Wasm sources
# unpacked into target/runwasi-test-modules (never committed). Idempotent.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=0.4.1
sha256=24ad6cc54bdd0569f23ab73bd6c4eca8d53b9f4847f0e5c1860bb93d3c9bda3f
dest=${RUNWASI_MODULES_DIR:-$repo/target/runwasi-test-modules}
[ -e "$dest/.complete-$version" ] && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
crate=$tmp/modules.crate
cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/containerd-shim-wasm-test-modules-$version.crate 2>/dev/null | head -1 || true)
if [ -n "$cached" ]; then
  cp "$cached" "$crate"
else
  curl -sSfL --retry 3 -o "$crate" \
    "https://static.crates.io/crates/containerd-shim-wasm-test-modules/$version/download"
fi
echo "$sha256  $crate" | sha256sum -c --quiet - || {
  echo "containerd-shim-wasm-test-modules $version: checksum mismatch" >&2; exit 1; }
tar -xzf "$crate" -C "$tmp"
rm -rf "$dest" && mkdir -p "$dest"
cp "$tmp/containerd-shim-wasm-test-modules-$version"/src/modules/*.wat \
   "$tmp/containerd-shim-wasm-test-modules-$version"/src/modules/*.wasm "$dest/"
touch "$dest/.complete-$version"
echo "runwasi's test modules $version in $dest"
