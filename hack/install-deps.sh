#!/usr/bin/env bash
# Installs the Debian packages edgeshim builds and tests with. Idempotent:
# apt runs only when something is missing. Needs root.
set -euo pipefail

packages=(
  containerd runc                        # the real containerd the tests drive
  clang lld wasi-libc libclang-rt-14-dev-wasm32   # C -> wasm32-wasi test modules
  libseccomp-dev pkg-config             # youki's libcontainer
  protobuf-compiler                     # CRI protos (k8s-cri)
  gcc libc6-dev                         # the static native test program
  iproute2 containernetworking-plugins  # pod networks (bridge CNI)
  python3 python3-venv                  # the OPA oracle (real OPA via PyPI)
  busybox-static                        # runc's workload in the benchmarks
  mosquitto mosquitto-clients           # the MQTT broker the network tests publish to
  prometheus                            # the server the metrics test scrapes the exporter with
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No service is started by the packages (containerd's, mosquitto's): the
  # tests start their own, in private folders and on their own ports.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (1.95)" >&2; exit 1; }
# Real OPA, the reference the policy tests compare edgeshim's decisions to.
"$(dirname "$0")/install-oracle.sh" >/dev/null
# runwasi's test modules, run by test/tests/runwasi.rs.
"$(dirname "$0")/install-runwasi-modules.sh" >/dev/null
