#!/usr/bin/env bash
# Runs the whole pytest suite, with a real PostgreSQL server for the relay-backend tests.
#
# In CI (CI=true) or with SHOAL_PG=1, PostgreSQL is installed (Debian's package) and started by
# scripts/test-postgres.sh, and a failure to do so fails the run. On a developer machine without
# PostgreSQL binaries the postgres-marked tests skip with a message saying how to run them; in CI a
# skipped postgres test is turned into a failure by tests/conftest.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTEST=.venv/bin/pytest

want_pg=0
if [ "${CI:-}" = "true" ] || [ "${SHOAL_PG:-}" = "1" ]; then
  want_pg=1
elif ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  want_pg=1
fi

if [ -z "${SHOAL_TEST_PG_URL:-}" ] && [ "$want_pg" = "1" ]; then
  if ! out=$(bash scripts/test-postgres.sh start); then
    echo "run-tests: could not start PostgreSQL for the store tests (see above)" >&2
    exit 1
  fi
  SHOAL_TEST_PG_URL=$(printf '%s\n' "$out" | tail -n 1)
  export SHOAL_TEST_PG_URL
  echo "run-tests: PostgreSQL at $SHOAL_TEST_PG_URL"
elif [ -z "${SHOAL_TEST_PG_URL:-}" ]; then
  echo "run-tests: no PostgreSQL here; postgres tests will skip (SHOAL_PG=1 make test installs and starts one)"
fi

# libfaketime for the clock-skew fault test: installed in CI (or with SHOAL_FAKETIME=1); elsewhere
# that test skips, saying how to install it, when the command is missing.
if [ "${CI:-}" = "true" ] || [ "${SHOAL_FAKETIME:-}" = "1" ]; then
  bash scripts/install-faketime.sh >/dev/null || { echo "run-tests: could not install faketime (see above)" >&2; exit 1; }
fi

# Debian's Chromium for the browser tests (tests/web): installed in CI (or with SHOAL_CHROMIUM=1);
# elsewhere those tests skip, saying how to install it, when /usr/bin/chromium is missing.
if [ "${CI:-}" = "true" ] || [ "${SHOAL_CHROMIUM:-}" = "1" ]; then
  bash scripts/install-chromium.sh >/dev/null || { echo "run-tests: could not install chromium (see above)" >&2; exit 1; }
fi

# The suite runs in SHOAL_TEST_WORKERS worker processes (pytest-xdist; 2 by default, the CI
# machine's cores: most tests wait on sockets, subprocesses and disks, so two workers take about
# 60% of the serial time); SHOAL_TEST_WORKERS=0 runs it in this process.
# pytest exits 5 when it collected no test: that is a failure, and set -e makes it one.
exec "$PYTEST" -n "${SHOAL_TEST_WORKERS:-2}" "$@"
