# Frontier: `make demo` sets up and runs the default scenario; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench bench-1m accuracy clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/frontier simulate

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/side_by_side.py bench --sizes 1000,10000,100000 --repeat 3
	$(BIN)/python benchmarks/side_by_side.py bench --sizes 10000 --budget 8192 --repeat 3
	$(BIN)/python benchmarks/sim_speed.py
	$(BIN)/python benchmarks/predictor_speed.py

accuracy: setup  # BASELINE=old.json also prints each group before -> after
	$(BIN)/frontier accuracy -o accuracy.json $(if $(BASELINE),--baseline $(BASELINE))

bench-1m: setup
	$(BIN)/python benchmarks/side_by_side.py bench --sizes 1000000 --repeat 1

clean:
	rm -rf $(VENV) results .pytest_cache

-include Makefile.profile
