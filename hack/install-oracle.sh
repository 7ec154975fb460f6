#!/usr/bin/env bash
# Installs the policy oracle: real OPA (a Go shared library shipped in the
# opa-golib-python-bindings wheel) in a Python venv, used by
# test/oracle/opa_eval.py to check that regorus and OPA agree.
#
# Idempotent: does nothing when the venv already holds the pinned version.
# Prints the venv path on its last line. May apt-get python3-venv (needs root).
#
#   EDGESHIM_ORACLE_VENV  where the venv goes (default /opt/edgeshim/oracle-venv)
#   PYTHON                the interpreter to build the venv from (default python3)
set -euo pipefail

venv="${EDGESHIM_ORACLE_VENV:-/opt/edgeshim/oracle-venv}"
python="${PYTHON:-python3}"
pkg=opa-golib-python-bindings
version=0.4.4

installed() {
  [ -x "$venv/bin/python" ] || return 1
  "$venv/bin/python" - "$pkg" "$version" <<'EOF' 2>/dev/null
import sys
from importlib import metadata
try:
    ok = metadata.version(sys.argv[1]) == sys.argv[2]
except metadata.PackageNotFoundError:
    ok = False
if ok:
    from opa_bindings import OpaEngine  # the Go library loads on first use
    OpaEngine().close()
sys.exit(0 if ok else 1)
EOF
}

if ! installed; then
  command -v "$python" >/dev/null || { echo "install-oracle: $python not found" >&2; exit 1; }
  if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "install-oracle: the venv module is missing; installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv
  fi
  # A venv left half-made (no python, or a broken one) is made anew.
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  fi
  # The wheel declares a newer Requires-Python than it needs; the Go library
  # inside works on 3.11.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    --ignore-requires-python "$pkg==$version"
  installed || { echo "install-oracle: $pkg $version did not install into $venv" >&2; exit 1; }
fi

echo "$venv"
