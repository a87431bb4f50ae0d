#!/usr/bin/env bash
# Creates .venv with everything p2r needs, idempotently, at the versions of the lock file.
#
# torch is installed first (requirements/torch.txt) and pinned through a constraints file,
# so no package can pull a different (CUDA) build. The rest comes from the lock
# (requirements/main.lock, or $P2R_LOCK), made by scripts/lock.sh for CPython 3.11 on
# Linux x86_64; on another platform the ranges in pyproject.toml are installed instead,
# with a warning. On machines without a CPU torchvision build, the CUDA wheel is installed
# without dependencies and a small import shim (env/torchvision_cpu_shim.py) registers the
# two operator schemas it needs, so that it imports on CPU. On a machine where torchvision
# imports as installed (a GPU machine), nothing of this is done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${P2R_VENV:-.venv}
EXTRAS=${P2R_EXTRAS:-dev,train,deepspeed}
LOCK=${P2R_LOCK:-requirements/main.lock}
TORCH_PIN=$(grep -v '^#' requirements/torch.txt)
TORCH_VERSION=${P2R_TORCH_VERSION:-${TORCH_PIN#torch==}}
TORCHVISION_VERSION=${P2R_TORCHVISION_VERSION:-0.28.0}
FINGERPRINT=$(cat pyproject.toml scripts/setup_env.sh env/*.py requirements/* | sha256sum | cut -c1-16)
STAMP="$VENV/.p2r-setup-$FINGERPRINT-$EXTRAS"

if [ -f "$STAMP" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q "torch==$TORCH_VERSION"
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

PLATFORM=$("$PY" -c "import platform, sys; print(f'{sys.platform}-{platform.machine()}-{sys.version_info[0]}.{sys.version_info[1]}')")
if [ "$PLATFORM" = "linux-x86_64-3.11" ]; then
  # The lock is complete (every dependency but torch and torchvision, which come first and
  # last), so it is installed as it is, without letting pip re-resolve it.
  "$PY" -m pip install -q --no-deps -r "$LOCK"
  "$PY" -m pip install -q --no-deps -e .
else
  echo "note: no lock for $PLATFORM (locks are for linux-x86_64-3.11): installing" \
       "the version ranges of pyproject.toml, unlocked" >&2
  "$PY" -m pip install -q -c "$CONSTRAINTS" -e ".[$EXTRAS]"
fi

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
