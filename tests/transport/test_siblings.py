"""Siblings pile up only with concurrent writers; past a bound they are reported, never dropped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from .conftest import WAIT, eventually, linked, local_value, open_peer


async def test_a_register_over_the_sibling_warning_is_logged_once_and_kept_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = await open_peer(tmp_path / "b.db", sibling_warning=1)
    a = await open_peer(tmp_path / "a.db", listen=None, sibling_warning=1)
    await a.mvregister("note").set("from a")  # offline: a has no peers yet
    await b.mvregister("note").set("from b")
    await a.aclose()
    caplog.set_level(logging.WARNING, logger="shoal.peer")
    a = await open_peer(tmp_path / "a.db", peers=[b.url], sibling_warning=1)
    try:
        await linked(a, b)
        both = ("from a", "from b")
        for peer, name in ((b, "b"), (a, "a")):
            await eventually(
                lambda peer=peer: sorted(local_value(peer, "note") or ()) == sorted(both),
                f"siblings at {name}",
            )
        assert sorted(await b.mvregister("note").values()) == sorted(both)  # none dropped

        # Once per peer that holds the siblings (a and b share this process's log): never
        # once per change. Both hold them now, so both warn (each once its change callback
        # ran, just after the engine took the change).
        def warnings() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "has 2 siblings" in r.getMessage()]

        await eventually(lambda: len(warnings()) >= 2, "a warning from each peer")
        assert len(warnings()) == 2 and all("'note'" in r.getMessage() for r in warnings())
        count = len(warnings())
        await b.mvregister("note").set("one note", w=2, timeout=WAIT)  # b has seen both
        await eventually(lambda: local_value(a, "note") == ("one note",), "resolved at a")
        assert len([r for r in caplog.records if "has 2 siblings" in r.getMessage()]) == count
    finally:
        await a.aclose()
        await b.aclose()
