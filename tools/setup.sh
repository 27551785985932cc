#!/usr/bin/env bash
# Installs what building and testing shiftscope needs on Debian/Ubuntu, idempotently:
# system packages only when missing (after one `apt-get update`). Safe to run every time.
set -euo pipefail

# Build: a C toolchain for linking and for crates that build C, pkg-config for -sys crates.
# Python with pip fetches the ONNX Runtime library from its PyPI wheel; binutils checks it.
# The viewer (Bevy) links libudev; headless rendering in its tests needs Xvfb (with xauth)
# and Mesa's software Vulkan (lavapipe) behind the Vulkan loader.
packages=(gcc libc6-dev pkg-config python3 python3-pip binutils
  libudev-dev xvfb xauth mesa-vulkan-drivers libvulkan1)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install Rust 1.95 or newer (https://rustup.rs), then run this again." >&2
  exit 1
fi
# numpy, for the test that runs the README's Python snippet on a store.
if ! python3 -c "import numpy" 2>/dev/null; then
  echo "setup: installing numpy"
  if [ "$(command -v python3)" = /usr/bin/python3 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-numpy
  else
    python3 -m pip install --quiet numpy
  fi
fi

# The ONNX Runtime library (from PyPI, cached; a no-op when already there).
ort_lib="$("$(dirname "$0")/fetch-onnxruntime.sh")"
echo "setup: ok ($(cargo --version); ONNX Runtime at $ort_lib)"
