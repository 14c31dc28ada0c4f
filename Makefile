# shoal: the two commands of the README, plus lint and bench.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed-demo
# Which Python made .venv: when $(PY) is another one (an upgrade, another PY=...), .venv
# is made again, so that nothing runs on a venv whose interpreter changed under it.
MADE_BY := $(VENV)/.made-by
PY_ID = $(shell $(PY) -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])')

.PHONY: demo test lint bench pytest postgres clean FORCE

$(MADE_BY): FORCE
	@if [ "$$(cat $@ 2>/dev/null)" != "$(PY_ID)" ]; then \
	  echo "making $(VENV) with $(PY_ID)"; \
	  rm -rf $(VENV) && $(PY) -m venv $(VENV) && \
	  $(BIN)/python -m pip install --quiet --upgrade pip && \
	  echo "$(PY_ID)" > $@; \
	fi

$(DEMO_STAMP): pyproject.toml $(MADE_BY)
	$(BIN)/pip install --quiet -e '.[cli]'
	touch $@

$(STAMP): pyproject.toml $(MADE_BY)
	$(BIN)/pip install --quiet -e '.[test,cli,postgres]'
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/shoal demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check crdt store sync shoal
	$(BIN)/mypy

# PostgreSQL for the relay-backend tests: installed and started by our own script.
postgres:
	bash scripts/test-postgres.sh start

pytest: $(STAMP)
	bash scripts/run-tests.sh -q

test: lint pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/crdt_bench.py
	$(BIN)/python benchmarks/store_bench.py
	$(BIN)/python benchmarks/e2e_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
