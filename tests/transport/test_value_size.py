"""Values bigger than one message, through real peers on 127.0.0.1.

A value that could not travel is refused at the call with ``ValueTooLarge``, before
anything changes here or anywhere: nothing reaches the database (checked by reopening it)
or the other peer, and the link stays up (it used to close with 1009 again and again). A
value just under ``max_value_bytes`` (half a message by default) replicates over a real
websocket.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sync.errors import ValueTooLarge
from sync.replica.outbound import value_size
from tests.transport.conftest import WAIT, eventually, linked, local_value, open_peer

__all__: list[str] = []

FIVE_MB = "x" * (5 * 1024 * 1024)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


async def test_a_5_mb_value_is_refused_at_the_call_and_nothing_changes(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        await a.orset("cart").add("milk", w=2, timeout=WAIT)
        writes = [
            lambda: a.orset("cart").add(FIVE_MB),
            lambda: a.lww("title").set(FIVE_MB),
            lambda: a.mvregister("note").set([FIVE_MB]),
            lambda: a.ormap("prefs").update(
                FIVE_MB[:3_000_000], "gcounter", lambda c: c.increment()
            ),
        ]
        for write in writes:
            with pytest.raises(ValueTooLarge) as refused:
                await write()
            assert refused.value.limit == a.config.value_limit == 2 * 1024 * 1024
            assert refused.value.size > refused.value.limit
            assert "max_value_bytes" in str(refused.value)
        # Inside a map's update: raised from the await, the map unchanged.
        with pytest.raises(ValueTooLarge):
            await a.ormap("prefs").update("theme", "lww", lambda reg: reg.set(FIVE_MB))
        with pytest.raises(ValueTooLarge):
            await a.ormap("prefs").update(
                "nested", "ormap", lambda m: m.update("deep", "orset", lambda s: s.add(FIVE_MB))
            )
        assert local_value(a, "cart") == frozenset({"milk"})
        assert a.replica.keys() == ["cart"]
        # The link was never asked to carry it: still up, and it still carries writes.
        await a.orset("cart").add("eggs", w=2, timeout=WAIT)
        assert local_value(b, "cart") == frozenset({"milk", "eggs"})
        assert b.replica.keys() == ["cart"]
    finally:
        await b.aclose()
        await a.aclose()
    # Nothing of it reached either database.
    for db in (tmp_path / "a.db", tmp_path / "b.db"):
        assert len(_rows(db, "SELECT 1 FROM log_segments WHERE entries LIKE '%xxxxxxxx%'")) == 0
        assert len(_rows(db, "SELECT 1 FROM objects WHERE state LIKE '%xxxxxxxx%'")) == 0
    a = await open_peer(tmp_path / "a.db", listen=None)
    try:
        assert a.replica.keys() == ["cart"]
        assert await a.orset("cart").value() == frozenset({"milk", "eggs"})
        assert await a.lww("title").value() is None
    finally:
        await a.aclose()


async def test_a_value_just_under_the_limit_replicates_over_websockets(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        limit = a.config.value_limit
        room = limit - value_size("title")
        largest = "é" * ((room - 4) // 2)  # two bytes each, and its quotes (escaped again)
        assert room - 2 < value_size(largest) <= room
        result = await a.lww("title").set(largest, w=2, timeout=WAIT)
        assert set(result.acked_by) == {a.replica_id, b.replica_id}
        assert local_value(b, "title") == largest
        with pytest.raises(ValueTooLarge):
            await a.lww("title").set(largest + "éé")
        await eventually(lambda: local_value(b, "title") == largest, "b to keep the value")
    finally:
        await b.aclose()
        await a.aclose()


async def test_max_value_bytes_is_an_option_of_peer_open(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db", listen=None, max_value_bytes=1000)
    try:
        await a.orset("s").add("y" * 900)
        with pytest.raises(ValueTooLarge) as refused:
            await a.orset("s").add("y" * 1000)
        assert refused.value.limit == 1000
        assert await a.orset("s").value() == frozenset({"y" * 900})
    finally:
        await a.aclose()
