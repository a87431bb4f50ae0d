#!/usr/bin/env bash
# Creates .venv-lmms: lmms-eval and p2r in an environment of their own, idempotently
# (docs/lmms-eval.md). It is scripts/setup_env.sh with another folder and the `lmms` extra,
# so torch stays pinned through the same constraints file and torchvision gets the same CPU
# workaround; the main .venv is left untouched (lmms-eval brings ~0.8 GB of packages).
# lmms-eval 0.7.3 pins av<16 but p2r's frame sampler needs PyAV >= 17 (stream index
# entries), so PyAV is upgraded afterwards: pip then warns about lmms-eval's pin, which
# concerns only lmms-eval's own video readers, not the p2r model.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${P2R_LMMS_VENV:-.venv-lmms}
P2R_VENV="$VENV" P2R_EXTRAS=lmms bash scripts/setup_env.sh
PY="$VENV/bin/python"
if ! "$PY" -c "import sys, av; sys.exit(int(av.__version__.split('.')[0]) < 17)"; then
  "$PY" -m pip install -q -c "$VENV/constraints.txt" "av>=17" 2>&1 \
    | grep -v -e "lmms-eval .* requires av<16" -e "dependency resolver does not currently" || true
  "$PY" -c "import sys, av; sys.exit(int(av.__version__.split('.')[0]) < 17)" \
    || { echo "PyAV >= 17 could not be installed in $VENV" >&2; exit 1; }
fi
"$PY" -c "import lmms_eval, p2r_eval.interop" \
  || { echo "$VENV: lmms-eval or p2r does not import" >&2; exit 1; }
