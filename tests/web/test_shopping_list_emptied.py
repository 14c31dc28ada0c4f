"""examples/web in a real browser when a key is left with nothing live: unticking the only
ticked item, removing the only item. No error on the page that did it, the other page
follows live on the same websocket, and a page that reads the key afresh (its socket back
after a while) forgets what it held instead of keeping a stale view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.test_shopping_list_browser import WAIT_MS, Page, two_devices

pytestmark = [pytest.mark.chromium, pytest.mark.slow]


async def _no_error(page: Page) -> None:
    await page.expect(page.page.locator("#status-error")).to_be_hidden()


async def test_unticking_and_removing_the_only_item(browser: Any, tmp_path: Path) -> None:
    async with two_devices(browser, tmp_path, "emptied") as (phone, laptop):
        sockets: list[Any] = []
        laptop.page.on("websocket", lambda ws: sockets.append(ws))  # a reconnect: another
        await phone.new_list("Groceries")
        await phone.add("milk")
        await laptop.has_items("milk")

        await phone.page.get_by_role("checkbox", name="milk").check()
        await laptop.expect(laptop.item("milk")).to_have_attribute(
            "data-done", "true", timeout=WAIT_MS
        )
        await phone.page.get_by_role("checkbox", name="milk").uncheck()  # the set emptied
        await laptop.expect(laptop.item("milk")).to_have_attribute(
            "data-done", "false", timeout=WAIT_MS
        )
        await _no_error(phone)

        await phone.page.get_by_role("checkbox", name="milk").check()
        await laptop.expect(laptop.item("milk")).to_have_attribute(
            "data-done", "true", timeout=WAIT_MS
        )
        await phone.item("milk").get_by_role("button").click()  # the map and the set emptied
        for page in (phone, laptop):
            await page.expect(page.labels()).to_have_count(0, timeout=WAIT_MS)
            await page.expect(page.page.locator("#no-items")).to_be_visible()
        await _no_error(phone)
        assert sockets == []
        await laptop.expect(laptop.page.get_by_test_id("live")).to_have_attribute(
            "data-state", "live"
        )
        # Removing an item sends both writes, whatever the first answered.
        phone_peer = phone.device.peer
        live = phone_peer.replica.keys()
        assert [k for k in live if k.endswith((":done", ":items"))] == []


async def test_a_page_back_online_forgets_a_key_emptied_meanwhile(
    browser: Any, tmp_path: Path
) -> None:
    async with two_devices(browser, tmp_path, "emptied-meanwhile") as (phone, laptop):
        await phone.new_list("Groceries")
        await phone.add("milk")
        await phone.page.get_by_role("checkbox", name="milk").check()
        await laptop.expect(laptop.item("milk")).to_have_attribute(
            "data-done", "true", timeout=WAIT_MS
        )
        # The laptop's page loses its socket (and does not redial yet)...
        await laptop.page.evaluate("() => { const ws = socket; socket = null; ws.close(); }")
        await phone.page.get_by_role("checkbox", name="milk").uncheck()
        peer = laptop.device.peer
        for _ in range(WAIT_MS // 20):  # bounded: until the untick reached the laptop's peer
            live = peer.replica.keys()
            if not any(k.endswith(":done") for k in live):
                break
            await laptop.page.wait_for_timeout(20)
        else:
            raise AssertionError("the untick never reached the laptop's peer")
        await laptop.expect(laptop.item("milk")).to_have_attribute("data-done", "true")
        # ...then gets it back: it reads every key afresh, and a 404 means nothing there.
        await laptop.page.evaluate("() => subscribe()")
        await laptop.expect(laptop.item("milk")).to_have_attribute(
            "data-done", "false", timeout=WAIT_MS
        )
        await _no_error(laptop)
