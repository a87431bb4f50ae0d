# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON_ENV := .venv
BIN := $(PYTHON_ENV)/bin

.PHONY: setup setup-lmms setup-browser test-fast demo test lint lock

setup:
	bash scripts/setup_env.sh

# lmms-eval in an environment of its own (.venv-lmms), for the interop tests.
setup-lmms:
	bash scripts/setup_lmms_env.sh

# Debian's chromium and chromium-driver, for the browser tests of `p2r-eval view`.
setup-browser:
	bash scripts/setup_browser.sh

demo: setup
	$(BIN)/p2r-eval --model demo --tasks all --output runs/demo

test: setup setup-lmms setup-browser
	$(BIN)/python -m pytest -q

# The tests not marked slow: the quick check while changing code (under 2 minutes on 2 cores).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check p2r_eval training tests perf env

# Refresh requirements/*.lock after changing dependencies (scripts/lock.sh says how).
lock: setup
	bash scripts/lock.sh
