"""Browser tests: the shopping list of examples/web in headless Chromium, driven by
Playwright's Python API.

The browser is Debian's Chromium (/usr/bin/chromium, or SHOAL_CHROMIUM_PATH), installed by
scripts/install-chromium.sh, which scripts/run-tests.sh calls in CI; Playwright's own browser
download is never used. Without the binary (or without playwright) a test marked
``chromium`` skips with a message saying how to install it, except in CI, where such a skip
is reported as a failure (as tests/conftest.py does for PostgreSQL).

Each test saves screenshots of its pages under tests/web/screenshots/ (git-ignored), also
when it fails, so that what the browser showed can be looked at.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("SHOAL_CHROMIUM_PATH", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# Flags for a headless browser on a machine without a network beyond loopback.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chromium: needs Debian's Chromium (scripts/install-chromium.sh)"
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci() and item.get_closest_marker("chromium") is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: skipped in CI because Chromium or playwright is missing; "
            "scripts/run-tests.sh should have installed it (scripts/install-chromium.sh)"
        )


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (Playwright's ``Browser``), closed after the test."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: run 'bash scripts/install-chromium.sh' (as root)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
