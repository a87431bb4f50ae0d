#!/usr/bin/env bash
# Creates .venv with everything p2r needs, idempotently.
# torch is installed first and pinned through a constraints file, so no package can
# pull a different (CUDA) build. On machines without a CPU torchvision build, the CUDA
# wheel is installed without dependencies and a small import shim (env/torchvision_cpu_shim.py)
# registers the two operator schemas it needs, so that it imports on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${P2R_VENV:-.venv}
EXTRAS=${P2R_EXTRAS:-dev,train,deepspeed}
TORCH_VERSION=${P2R_TORCH_VERSION:-2.13.0}
TORCHVISION_VERSION=${P2R_TORCHVISION_VERSION:-0.28.0}
STAMP="$VENV/.p2r-setup-$(cat pyproject.toml scripts/setup_env.sh env/*.py | sha256sum | cut -c1-16)-$EXTRAS"

if [ -f "$STAMP" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q "torch==$TORCH_VERSION"
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
"$PY" -m pip install -q -c "$CONSTRAINTS" -e ".[$EXTRAS]"
if ! "$PY" -c "import torchvision" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps "torchvision==$TORCHVISION_VERSION"
  if ! "$PY" -c "import torchvision" 2>/dev/null; then
    SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    cp env/torchvision_cpu_shim.py "$SITE/p2r_torchvision_cpu_shim.py"
    echo "import p2r_torchvision_cpu_shim; p2r_torchvision_cpu_shim.install()" > "$SITE/p2r_torchvision_cpu_shim.pth"
    "$PY" -c "import torchvision.transforms.v2.functional" \
      || { echo "torchvision could not be made importable" >&2; exit 1; }
  fi
fi
rm -f "$VENV"/.p2r-setup-*
touch "$STAMP"
