#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library from the pinned PyPI wheel (no CDN, no build)
# into shiftscope's cache, idempotently, and checks what it got.
#
#   tools/fetch-onnxruntime.sh            # CPU library (onnxruntime)
#   tools/fetch-onnxruntime.sh --gpu      # CUDA build (onnxruntime-gpu), for --device cuda
#
# Prints the library's path on its last line. shiftscope finds it there by itself.
set -euo pipefail

ORT_VERSION="1.31.1"
package="onnxruntime"
flavour="cpu"
if [ "${1:-}" = "--gpu" ]; then
  package="onnxruntime-gpu"
  flavour="gpu"
fi

cache="${SHIFTSCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shiftscope}/onnxruntime/${ORT_VERSION}-${flavour}"
lib="$cache/libonnxruntime.so.${ORT_VERSION}"

check() {
  # An ELF shared object of a plausible size that exports the ONNX Runtime entry point.
  [ -f "$lib" ] || return 1
  [ "$(head -c 4 "$lib" | od -An -c | tr -d ' ')" = "177ELF" ] || return 1
  [ "$(stat -c %s "$lib")" -gt 5000000 ] || return 1
  if command -v nm >/dev/null 2>&1; then
    nm -D --defined-only "$lib" 2>/dev/null | grep -Eq " OrtGetApiBase(@|$)" || return 1
  fi
}

if check; then
  echo "$lib"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || { echo "fetch-onnxruntime: python3 with pip is needed to fetch the wheel" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-onnxruntime: downloading ${package}==${ORT_VERSION} from PyPI" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --dest "$tmp" "${package}==${ORT_VERSION}" >&2
wheel="$(ls "$tmp"/*.whl | head -n 1)"
mkdir -p "$cache"
python3 - "$wheel" "$cache" "$ORT_VERSION" <<'PY'
import sys, zipfile, shutil, os
wheel, cache, version = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/") and ".so" in os.path.basename(n)]
    main = f"onnxruntime/capi/libonnxruntime.so.{version}"
    if main not in names:
        sys.exit(f"fetch-onnxruntime: {wheel} has no {main} (it has: {names})")
    # The library, and the provider libraries of a GPU wheel beside it.
    for name in names:
        base = os.path.basename(name)
        if base.startswith("libonnxruntime"):
            with z.open(name) as src, open(os.path.join(cache, base + ".part"), "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(os.path.join(cache, base + ".part"), os.path.join(cache, base))
PY
if ! check; then
  echo "fetch-onnxruntime: $lib is not a usable ONNX Runtime library" >&2
  exit 1
fi
echo "fetch-onnxruntime: ok" >&2
echo "$lib"
