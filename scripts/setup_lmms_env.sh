#!/usr/bin/env bash
# Creates .venv-lmms: lmms-eval and p2r in an environment of their own, idempotently
# (docs/lmms-eval.md). It is scripts/setup_env.sh with another folder, the `lmms` extra and
# its own lock (requirements/lmms.lock), so torch stays pinned through the same constraints
# file and torchvision gets the same CPU workaround; the main .venv is left untouched
# (lmms-eval brings ~0.8 GB of packages). The lock resolves lmms-eval 0.7.3's two conflicts
# (requirements/lmms-overrides.txt, requirements/lmms-constraints.txt): PyAV >= 17 for p2r's
# frame sampler, and filelock < 4 for lmms-eval's evaluator.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${P2R_LMMS_VENV:-.venv-lmms}
P2R_VENV="$VENV" P2R_EXTRAS=lmms P2R_LOCK=requirements/lmms.lock bash scripts/setup_env.sh
"$VENV/bin/python" -c "import lmms_eval.evaluator, p2r_eval.interop" \
  || { echo "$VENV: lmms-eval or p2r does not import" >&2; exit 1; }
