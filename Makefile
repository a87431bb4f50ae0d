# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON_ENV := .venv
BIN := $(PYTHON_ENV)/bin

.PHONY: setup demo test lint

setup:
	bash scripts/setup_env.sh

demo: setup
	$(BIN)/p2r-eval --model demo --tasks all --output runs/demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check p2r_eval training tests perf env
