"""Fault-suite tests: the short version of every workload of :mod:`shoal.faults`, and the
proxy, frame splitter and checkers on their own.

A test marked ``faketime`` needs the ``faketime`` command (scripts/install-faketime.sh, which
scripts/run-tests.sh calls in CI); without it the test skips with that message, except in CI,
where such a skip is reported as a failure (as tests/conftest.py does for PostgreSQL).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faketime: needs the faketime command (scripts/install-faketime.sh)"
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci() and item.get_closest_marker("faketime") is not None:
        if hasattr(report, "wasxfail"):
            return
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: skipped in CI because the faketime command is missing; "
            "scripts/run-tests.sh should have installed it (scripts/install-faketime.sh)"
        )
