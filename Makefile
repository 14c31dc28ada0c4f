# shoal: the two commands of the README, plus lint and bench.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed-demo
WEB_STAMP := $(VENV)/.installed-web
# Which Python made .venv: when $(PY) is another one (an upgrade, another PY=...), .venv
# is made again, so that nothing runs on a venv whose interpreter changed under it.
MADE_BY := $(VENV)/.made-by
PY_ID = $(shell $(PY) -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])')

.PHONY: demo test lint bench pytest postgres docs faults web clean FORCE

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

$(WEB_STAMP): pyproject.toml $(MADE_BY)
	$(BIN)/pip install --quiet -e '.[web]'
	touch $@

$(STAMP): pyproject.toml $(MADE_BY)
	$(BIN)/pip install --quiet -e '.[test,cli,postgres]'
	touch $@ $(DEMO_STAMP) $(WEB_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/shoal demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check crdt store sync shoal
	$(BIN)/mypy

# The shopping list in a browser (examples/web): a relay and two devices on 127.0.0.1, each
# serving the page and its client API; prints the URLs to open. Ctrl-C stops.
web: $(WEB_STAMP)
	$(BIN)/python examples/web/run.py

# PostgreSQL for the relay-backend tests: installed and started by our own script.
postgres:
	bash scripts/test-postgres.sh start

pytest: $(STAMP)
	bash scripts/run-tests.sh -q

test: lint pytest docs

# The docs site (mkdocs.yml) into site/; --strict fails on a broken link or anchor, a missing
# page or a page left out of the nav.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet --site-dir site

# Every benchmark in its quick mode (a few minutes); benchmarks/README.md has the full runs.
# store_bench exits 1 when a target is missed: that is a figure to read, not a failed build.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/crdt_bench.py --quick
	-$(BIN)/python benchmarks/store_bench.py --repeat 1
	$(BIN)/python benchmarks/e2e_bench.py --quick
	$(BIN)/python benchmarks/open_bench.py --quick
	$(BIN)/python benchmarks/pg_relay_bench.py --quick
	$(BIN)/python benchmarks/bootstrap_bench.py --quick
	$(BIN)/python benchmarks/idle_bench.py --quick
	$(BIN)/python benchmarks/scale_sim.py --quick
	$(BIN)/python benchmarks/speed_bench.py --quick
	$(BIN)/python benchmarks/commit_bench.py --quick
	$(BIN)/python benchmarks/backlog_bench.py --quick

# The long fault workloads (shoal.faults) against real shoal serve processes; writes their
# figures, each with the command that reproduces it, to docs/reliability.md (a few minutes).
faults: $(STAMP)
	bash scripts/install-faketime.sh >/dev/null || echo "faults: no faketime; clock-skew will not run"
	$(BIN)/python -m shoal.faults run --scale long --report docs/reliability.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
