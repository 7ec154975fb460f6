#!/usr/bin/env bash
# Prints the prefix of an installed libwasmedge 0.14.1 (include/wasmedge/
# wasmedge.h and lib/libwasmedge.so beneath it), searching WASMEDGE_DIR,
# the official installer's ~/.wasmedge, /usr/local and /usr; exits 1 when
# there is none. Another version does not count: wasmedge-sdk 0.14.0 pairs
# with the 0.14.1 C API only.
set -uo pipefail
for prefix in "${WASMEDGE_DIR:-}" "$HOME/.wasmedge" /usr/local /usr; do
  [ -n "$prefix" ] || continue
  header=$prefix/include/wasmedge/wasmedge.h
  version=$prefix/include/wasmedge/version.h
  [ -f "$header" ] || continue
  ls "$prefix"/lib*/libwasmedge.so >/dev/null 2>&1 || continue
  if grep -q 'WASMEDGE_VERSION "0.14.1"' "$version" 2>/dev/null; then
    echo "$prefix"
    exit 0
  fi
  echo "find-wasmedge: $prefix has libwasmedge, but not version 0.14.1" >&2
done
exit 1
