# shoal: the two commands of the README, plus lint and bench.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint bench pytest postgres clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cli]'
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,cli,postgres]'
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/shoal demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check crdt store sync
	$(BIN)/mypy

# PostgreSQL for the relay-backend tests: installed and started by our own script.
postgres:
	bash scripts/test-postgres.sh start

pytest: $(STAMP)
	bash scripts/run-tests.sh -q

test: lint pytest

# Every benchmark in its quick mode (a few minutes); benchmarks/README.md has the full runs.
# store_bench exits 1 when a target is missed: that is a figure to read, not a failed build.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/crdt_bench.py --quick
	-$(BIN)/python benchmarks/store_bench.py --repeat 1
	$(BIN)/python benchmarks/e2e_bench.py --quick
	$(BIN)/python benchmarks/open_bench.py --quick
	$(BIN)/python benchmarks/bootstrap_bench.py --quick
	$(BIN)/python benchmarks/idle_bench.py --quick
	$(BIN)/python benchmarks/scale_sim.py --quick
	$(BIN)/python benchmarks/speed_bench.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
