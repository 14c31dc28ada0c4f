"""examples/web in a real browser: two pages, each attached to its own peer (a phone and a
laptop, syncing through a relay), driven as a person would: typing, clicking, ticking.

Every wait is bounded (Playwright's ``expect`` with a timeout); every test saves screenshots
of both pages under tests/web/screenshots/, also when it fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.web.conftest import SCREENSHOTS

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 20_000  # per expectation: a link to redial and an anti-entropy round, with room


def _example() -> ModuleType:
    name = "shoal_examples_web_run"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "web" / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules[name]


class Page:
    """One device's page, with the few gestures the tests use."""

    def __init__(self, page: Any, device: Any) -> None:
        self.page, self.device = page, device
        from playwright.async_api import expect

        self.expect = expect

    async def open(self) -> None:
        await self.page.goto(self.device.url)
        await self.expect(self.page.get_by_test_id("live")).to_have_attribute(
            "data-state", "live", timeout=WAIT_MS
        )

    async def new_list(self, title: str) -> None:
        field = self.page.get_by_test_id("new-list-input")
        await field.fill(title)
        await field.press("Enter")
        await self.expect(self.page.get_by_test_id("list-title")).to_have_text(
            title, timeout=WAIT_MS
        )

    async def add(self, *items: str) -> None:
        field = self.page.get_by_test_id("new-item-input")
        for item in items:
            await field.fill(item)
            await field.press("Enter")
            await self.expect(self.item(item)).to_have_count(1, timeout=WAIT_MS)

    def item(self, text: str) -> Any:
        return self.page.locator(f'[data-testid="item"][data-text="{text}"]')

    def labels(self) -> Any:
        return self.page.locator('[data-testid="item"] label')

    async def has_items(self, *texts: str) -> None:
        await self.expect(self.labels()).to_have_text(list(texts), timeout=WAIT_MS)

    async def go_online(self, online: bool) -> None:
        toggle = self.page.get_by_test_id("network-toggle")
        await toggle.click()
        await self.expect(toggle).to_have_attribute("data-online", str(online).lower())
        relay = self.page.locator('[data-testid="peer"][data-name="relay"]')
        if online:
            await self.expect(relay).to_have_attribute("data-state", "connected", timeout=WAIT_MS)
        else:  # down, labelled with the reason the status gives (e.g. "unreachable")
            await self.expect(relay).to_have_class(re.compile(r"\bdown\b"), timeout=WAIT_MS)

    async def write_note(self, text: str) -> None:
        status = self.page.get_by_test_id("note-status")
        await self.page.get_by_test_id("note-input").fill(text)
        await self.expect(status).to_have_text("Not saved yet", timeout=WAIT_MS)
        await self.page.get_by_test_id("save-note").click()
        await self.expect(status).to_have_text("Saved", timeout=WAIT_MS)

    async def shows_siblings(self, *texts: str) -> None:
        siblings = self.page.get_by_test_id("note-sibling").locator(".sibling-text")
        await self.expect(siblings).to_have_count(len(texts), timeout=WAIT_MS)
        assert sorted(await siblings.all_inner_texts()) == sorted(texts)

    async def shows_note(self, text: str) -> None:
        await self.expect(self.page.get_by_test_id("note-conflict")).to_be_hidden(timeout=WAIT_MS)
        await self.expect(self.page.get_by_test_id("note-input")).to_have_value(
            text, timeout=WAIT_MS
        )


@contextlib.asynccontextmanager
async def two_devices(browser: Any, folder: Path, test: str) -> AsyncIterator[tuple[Page, Page]]:
    """The example's relay, phone and laptop; a page on the phone and one on the laptop,
    each in its own browser context (as two devices would be). Screenshots on the way out."""
    async with _example().start(folder, devices=2) as crew:
        _, phone, laptop = crew
        pages = []
        for device in (phone, laptop):
            context = await browser.new_context(viewport={"width": 1200, "height": 760})
            pages.append(Page(await context.new_page(), device))
        try:
            for page in pages:
                await page.open()
            yield pages[0], pages[1]
        finally:
            SCREENSHOTS.mkdir(exist_ok=True)
            for page in pages:
                path = SCREENSHOTS / f"{test}-{page.device.name}.png"
                await page.page.screenshot(path=str(path), full_page=True)
                await page.page.context.close()


async def test_an_item_added_on_one_device_appears_on_the_other(
    browser: Any, tmp_path: Path
) -> None:
    async with two_devices(browser, tmp_path, "item-appears") as (phone, laptop):
        await phone.new_list("Groceries")
        await phone.add("milk", "eggs")
        await laptop.expect(laptop.page.get_by_test_id("list-title")).to_have_text(
            "Groceries", timeout=WAIT_MS
        )
        await laptop.has_items("milk", "eggs")
        # A tick on the laptop shows on the phone, live.
        await laptop.page.get_by_role("checkbox", name="eggs").check()
        await phone.expect(phone.item("eggs")).to_have_attribute(
            "data-done", "true", timeout=WAIT_MS
        )
        await phone.expect(phone.page.get_by_role("checkbox", name="eggs")).to_be_checked()


async def test_offline_edits_on_both_devices_converge(browser: Any, tmp_path: Path) -> None:
    async with two_devices(browser, tmp_path, "offline-converge") as (phone, laptop):
        await phone.new_list("Groceries")
        await phone.add("milk")
        await laptop.has_items("milk")

        await phone.go_online(False)  # the phone's link to the relay is cut for real
        await phone.add("eggs")
        await phone.item("milk").get_by_role("button").click()  # removed on the phone...
        await laptop.page.get_by_role("checkbox", name="milk").check()  # ...ticked meanwhile
        await laptop.add("bread")
        await phone.has_items("eggs")
        await laptop.has_items("milk", "bread")  # nothing of the phone's got through
        SCREENSHOTS.mkdir(exist_ok=True)
        await phone.page.screenshot(path=str(SCREENSHOTS / "offline-converge-offline-phone.png"))

        await phone.go_online(True)
        await phone.has_items("eggs", "bread")
        await laptop.has_items("eggs", "bread")
        peers = [d.peer for d in (phone.device, laptop.device)]
        states = [p.replica.current_value(key) for p in peers for key in _keys(p)]
        assert states[: len(states) // 2] == states[len(states) // 2 :]


def _keys(peer: Any) -> list[str]:
    return sorted(k for k in peer.replica.keys() if k.startswith("shop:"))  # noqa: SIM118


async def test_concurrent_note_edits_show_siblings_and_resolve(
    browser: Any, tmp_path: Path
) -> None:
    async with two_devices(browser, tmp_path, "note-siblings") as (phone, laptop):
        await phone.new_list("Weekend")
        await laptop.expect(laptop.page.get_by_test_id("list-title")).to_have_text(
            "Weekend", timeout=WAIT_MS
        )

        # Both edit the note while the phone is offline: two siblings, side by side on both.
        await phone.go_online(False)
        await phone.write_note("Market on Saturday")
        await laptop.write_note("Bakery before 9")
        await phone.go_online(True)
        await phone.shows_siblings("Market on Saturday", "Bakery before 9")
        await laptop.shows_siblings("Market on Saturday", "Bakery before 9")
        SCREENSHOTS.mkdir(exist_ok=True)
        await laptop.page.screenshot(path=str(SCREENSHOTS / "note-siblings-conflict-laptop.png"))

        # Merging writes one note that has seen both: it replaces them everywhere.
        order = (
            await phone.page.get_by_test_id("note-sibling")
            .locator(".sibling-text")
            .all_inner_texts()
        )
        await phone.page.get_by_test_id("merge-siblings").click()
        merged = "\n".join(order)
        await phone.shows_note(merged)
        await laptop.shows_note(merged)

        # Again, and this time the laptop keeps the phone's version.
        await laptop.go_online(False)
        await phone.write_note("Only the market")
        await laptop.write_note("Only the bakery")
        await laptop.go_online(True)
        await laptop.shows_siblings("Only the market", "Only the bakery")
        kept = laptop.page.get_by_test_id("note-sibling").filter(has_text="Only the market")
        await kept.get_by_test_id("keep-sibling").click()
        await laptop.shows_note("Only the market")
        await phone.shows_note("Only the market")
