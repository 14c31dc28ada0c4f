"""Suite-wide pytest configuration.

In CI a test marked ``postgres`` must run: if it skips (no server), the skip is reported as a
failure, so a green CI run always includes the PostgreSQL backend.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci() and item.get_closest_marker("postgres") is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: postgres test skipped in CI; the PostgreSQL server did not come up "
            "(scripts/test-postgres.sh start) or SHOAL_TEST_PG_URL was not exported"
        )
