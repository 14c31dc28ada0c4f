"""A map update that makes many changes at once, through real peers on 127.0.0.1.

One ``update`` may call its embedded value's mutators any number of times (``fn`` adds a
batch of elements to a nested set, or sets a register under each of many nested keys).
Each change costs more than its value in the map's delta: a dot (a replica id and a
counter), in the entry and in the context, and a register's timestamp. A handle checked the
values alone against ``max_value_bytes``, so an update of many small values passed the
check, ran on the live map (a checked write's fast path), and only then turned out too big
for one message: ``LocalProtocolError``, and the live map kept the change, never logged nor
sent (this peer showed elements no other peer would ever get). The room now counts what
each change adds, so such an update is refused with ``ValueTooLarge`` from inside ``fn``,
before the map changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.errors import ValueTooLarge
from sync.replica.updates import LIVE_SLACK
from tests.transport.conftest import WAIT, eventually, linked, local_value, open_peer

__all__: list[str] = []

SMALL = {"max_message_bytes": 64 * 1024}  # a value limit of 32 KiB, an entry of 60 KiB


def _adds(count: int, start: int = 0) -> Any:
    """``fn`` of an update adding ``count`` short elements to a nested set (about 10 bytes
    of value each, several times that with their dots), numbered from ``start``."""

    def fn(s: Any) -> Any:
        delta = None
        for i in range(start, start + count):
            delta = s.add(f"e{i:05d}")
        return delta

    return fn


def _nested_sets(count: int) -> Any:
    """``fn`` of an update setting a number under each of ``count`` keys of a nested map."""

    def fn(m: Any) -> Any:
        delta = None
        for i in range(count):
            delta = m.update(f"k{i:04d}", "lww", lambda reg, i=i: reg.set(i))
        return delta

    return fn


@pytest.mark.parametrize(
    ("kind", "many", "few"),
    [("orset", _adds(1500), _adds(20)), ("ormap", _nested_sets(500), _nested_sets(20))],
)
async def test_an_update_of_many_small_changes_too_big_for_a_message_is_refused(
    tmp_path: Path, kind: str, many: Any, few: Any
) -> None:
    a = await open_peer(tmp_path / "a.db", **SMALL)
    b = await open_peer(tmp_path / "b.db", peers=[a.url], **SMALL)
    try:
        await linked(a, b)
        prefs = a.ormap("prefs")
        await prefs.update("theme", "lww", lambda reg: reg.set("dark"), w=2, timeout=WAIT)
        with pytest.raises(ValueTooLarge) as refused:
            await prefs.update("big", kind, many)
        # Past what a log entry holds (less the engine's slack), values and changes together.
        assert refused.value.limit == a.config.entry_limit - LIVE_SLACK
        assert "each change adds beside its value" in str(refused.value)
        # Nothing changed here, nor anywhere.
        assert local_value(a, "prefs") == {"theme": "dark"}
        assert a.replica.status()["log_size"] == 1
        # A smaller batch fits, and reaches the other peer.
        await prefs.update("big", kind, few, w=2, timeout=WAIT)
        assert local_value(b, "prefs") == local_value(a, "prefs")
        assert len(local_value(b, "prefs")["big"]) == 20
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_clashed_map_key_too_big_to_remove_is_refused_and_the_other_ways_out_work(
    tmp_path: Path,
) -> None:
    """A remove carries each dot of what it removes: a map key whose kind holds more
    elements than one message can list cannot be removed at once (``ValueTooLarge``, nothing
    changes, the clash stays). The docs' other ways out still end the clash: removing the
    other kind, or deleting the whole map (its delete carries the map's compact context)."""
    async with await open_peer(tmp_path / "a.db", **SMALL) as a:
        prefs = a.ormap("prefs")
        await prefs.update("other", "lww", lambda reg: reg.set("x"))
        for batch in range(10):  # 2,000 elements, in updates that fit
            await prefs.update("theme", "orset", _adds(200, 200 * batch))
    async with await open_peer(tmp_path / "b.db", **SMALL) as b:
        await b.ormap("prefs").update("theme", "pncounter", lambda c: c.increment(2))
    a = await open_peer(tmp_path / "a.db", **SMALL)
    b = await open_peer(tmp_path / "b.db", peers=[a.url], **SMALL)
    try:
        await linked(a, b)

        def clashed(p: Any) -> bool:
            return ("theme",) in p.replica._data._map_clashes.by_key.get("prefs", {})

        def b_holds_all() -> bool:
            state = b.replica.value("prefs")
            theme = None if state is None else state.get("theme", "orset")
            return theme is not None and len(theme.value) == 2000

        await eventually(b_holds_all, "B to hold A's 2,000 elements")
        await eventually(lambda: clashed(a) and clashed(b), "the clash on both peers")
        state = await b.ormap("prefs").state()
        for remove in (
            lambda: b.ormap("prefs").remove("theme", kind="orset"),
            lambda: b.ormap("prefs").remove("theme"),
        ):
            with pytest.raises(ValueTooLarge):
                await remove()
            assert await b.ormap("prefs").state() == state and clashed(b)
        await b.ormap("prefs").remove("theme", kind="pncounter", w=2, timeout=WAIT)
        await eventually(lambda: not clashed(a) and not clashed(b), "the clash to end")
        assert len(local_value(a, "prefs")["theme"]) == 2000
    finally:
        await b.aclose()
        await a.aclose()
