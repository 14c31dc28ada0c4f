"""``peer.delete(key)`` through real peers on 127.0.0.1.

A delete is the kind's observed reset written as a write: it replicates, counts acks and
returns a ``WriteResult``; afterwards the key reads as the empty value of its kind on every
peer and is left out of the listing, also after a restart. Deleting a key that holds nothing
here is a ``KeyError`` and changes nothing; a kind that is not the key's, a ``TypeError``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.transport.conftest import WAIT, eventually, linked, local_value, open_peer

__all__: list[str] = []


def _log_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM log_segments").fetchone()[0])


async def test_a_delete_replicates_and_the_key_reads_empty_everywhere(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        await a.orset("cart").add("milk", w=2, timeout=WAIT)
        await a.lww("title").set("Groceries", w=2, timeout=WAIT)
        await a.pncounter("visits").increment(3, w=2, timeout=WAIT)
        assert b.replica.keys() == ["cart", "title", "visits"]

        result = await a.delete("cart", w=2, timeout=WAIT)
        assert result.key == "cart" and set(result.acked_by) == {a.replica_id, b.replica_id}
        assert await b.orset("cart").value() == frozenset()
        await b.pncounter("visits").delete(w=2, timeout=WAIT)  # the handle's delete
        assert await a.pncounter("visits").value() == 0
        for peer in (a, b):
            assert peer.replica.keys() == ["title"]
        # The key can be written again: a new element is live again everywhere.
        await b.orset("cart").add("eggs", w=2, timeout=WAIT)
        assert local_value(a, "cart") == frozenset({"eggs"})
        assert a.replica.keys() == ["cart", "title"]
    finally:
        await b.aclose()
        await a.aclose()
    a = await open_peer(tmp_path / "a.db", listen=None)
    try:
        assert a.replica.keys() == ["cart", "title"]  # the deleted counter stays deleted
        assert await a.pncounter("visits").value() == 0
    finally:
        await a.aclose()


async def test_an_lww_delete_is_a_tombstone_that_a_later_set_beats(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        await a.lww("title").set("Groceries", w=2, timeout=WAIT)
        await b.delete("title", w=2, timeout=WAIT)
        assert await a.lww("title").value() is None and a.replica.keys() == []
        # a has seen the tombstone: its clock ticks past it, so this set is later and wins.
        await a.lww("title").set("Shopping", w=2, timeout=WAIT)
        assert local_value(b, "title") == "Shopping" and b.replica.keys() == ["title"]
    finally:
        await b.aclose()
        await a.aclose()


async def test_deleting_what_is_not_here_is_an_error_and_changes_nothing(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db", listen=None)
    try:
        await a.orset("cart").add("milk")
        await a.node.drain()
        before = _log_rows(tmp_path / "a.db")
        with pytest.raises(KeyError, match="not held here"):
            await a.delete("nothing")
        with pytest.raises(KeyError, match="holds no orset"):  # named, but not here
            await a.delete("nothing", kind="orset")
        with pytest.raises(TypeError, match="holds an orset, not a lww"):
            await a.delete("cart", kind="lww")
        with pytest.raises(ValueError, match="unknown CRDT kind"):
            await a.delete("cart", kind="set")
        await a.delete("cart")
        with pytest.raises(KeyError, match="not held here"):  # deleted already: nothing live
            await a.delete("cart")
        with pytest.raises(KeyError, match="holds no orset"):  # named: the same
            await a.delete("cart", kind="orset")
        await a.node.drain()
        assert _log_rows(tmp_path / "a.db") == before + 1  # the one delete, nothing else
        assert a.replica.keys() == [] and a.replica.value("nothing") is None
    finally:
        await a.aclose()


async def test_an_add_concurrent_with_a_delete_survives_it(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    b_id = b.replica_id
    try:
        await linked(a, b)
        await a.orset("cart").add("milk", w=2, timeout=WAIT)
        await b.aclose()
        await eventually(lambda: b_id not in a.transport.links, "a to see b go")
        await a.delete("cart")  # a deletes what it saw...
        b = await open_peer(tmp_path / "b.db", listen=None)
        await b.orset("cart").add("eggs")  # ...while b, offline, adds: concurrent
        await b.aclose()
        b = await open_peer(tmp_path / "b.db", peers=[a.url])
        await eventually(
            lambda: local_value(a, "cart") == local_value(b, "cart") == frozenset({"eggs"}),
            "both to keep only the concurrent add",
        )
    finally:
        await b.aclose()
        await a.aclose()
