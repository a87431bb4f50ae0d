# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON_ENV := .venv
BIN := $(PYTHON_ENV)/bin

.PHONY: setup setup-lmms setup-browser test-fast demo toy test lint typecheck lock

setup:
	bash scripts/setup_env.sh

# lmms-eval in an environment of its own (.venv-lmms), for the interop tests.
setup-lmms:
	bash scripts/setup_lmms_env.sh

# Debian's chromium and chromium-driver, for the browser tests of `p2r-eval view`.
setup-browser:
	bash scripts/setup_browser.sh

# The demo model was trained on the toy suite at 8 frames of 56x56 pixels: shown the same.
demo: setup
	$(BIN)/p2r-eval --model demo --tasks all,toy --frames 8 --max-pixels 3136 \
		--max-new-tokens 128 --output runs/demo

# The whole pipeline at toy scale on a CPU (README, "A model that learns on a laptop").
toy: setup
	$(BIN)/p2r-train recipe toy --output runs/toy

test: setup setup-lmms setup-browser
	$(BIN)/python -m pytest -q

# The tests not marked slow: the quick check while changing code (under 2 minutes on 2 cores).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup typecheck
	$(BIN)/ruff check p2r_eval training tests perf env scripts

# mypy on p2r_eval, training and the perf/ scripts ([tool.mypy] in pyproject.toml).
typecheck: setup
	$(BIN)/python scripts/typecheck.py

# Refresh requirements/*.lock after changing dependencies (scripts/lock.sh says how).
lock: setup
	bash scripts/lock.sh
