"""Schema version 4: the store knows which objects are live, and lists only their keys.

A deleted object stays stored (its state remembers what the delete removed, which later
writes merge with), so ``Store.keys`` goes by the ``live`` flag each checkpoint writes: the
engine's word (``ObjectState.live``), or the decoded state's ``is_live()`` for any other
caller. The kind clashes reported at open count live objects only; the log fold at open
sets the flag; a partial index serves the listing on both backends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

import crdt
from store import (
    LIVE_INDEX,
    Batch,
    InvalidInput,
    LogRow,
    ObjectRow,
    Store,
    default_partition_of,
)
from store.report import report_keys
from sync.effects import ObjectState
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, orset_row, raw_tables


def deleted_counter(key: str, n: int = 2) -> ObjectRow:
    counter = crdt.GCounter()
    counter.increment("A", n)
    counter.clear()
    return ObjectRow(key, "gcounter", counter.to_dict())


def emptied_set(key: str) -> ObjectRow:
    items = crdt.ORSet()
    items.add("A", "milk")
    items.remove("milk")
    return ObjectRow(key, "orset", items.to_dict())


def tombstone(key: str) -> ObjectRow:
    register = crdt.LWWRegister()
    register.set("A", "title", now_ms=1000)
    register.clear("A", now_ms=2000)
    return ObjectRow(key, "lww", register.to_dict())


class _Folded(Batch):
    """A batch that only marks the log folded (as the engine's clean close does)."""

    log_folded = True


async def test_keys_lists_only_keys_holding_a_live_object(backend: Backend) -> None:
    async with await backend.open() as store:
        await store.apply(
            Batch(
                objects=(
                    counter_row("a"),
                    deleted_counter("b"),
                    emptied_set("c"),
                    deleted_counter("d"),  # d: a deleted counter beside a live set
                    orset_row("d", "milk"),
                    deleted_counter("e"),  # e: both kinds deleted
                    emptied_set("e"),
                    tombstone("f"),
                )
            )
        )
        # The engine's checkpoints say it themselves (the state is not decoded).
        await store.apply(
            Batch(
                objects=(
                    ObjectState("g", "gcounter", crdt.GCounter().to_json(), False),  # type: ignore[arg-type]
                    ObjectState.of("h", "orset", orset_row("h", "x").state),  # type: ignore[arg-type]
                )
            )
        )
        assert await store.keys() == ["a", "d", "h"]
        assert await store.keys("e") == []
        # Deleted objects are still stored, and read as they are: a later write merges in.
        got = {(r.key, r.kind): r for r in await store.get_objects(["b", "e", "f"])}
        assert set(got) == {("b", "gcounter"), ("e", "gcounter"), ("e", "orset"), ("f", "lww")}
        assert got[("b", "gcounter")] == deleted_counter("b")
        # A checkpoint of a live state again lists the key again.
        revived = crdt.from_dict(deleted_counter("b").state)
        revived.increment("B", 1)
        await store.apply(Batch(objects=(ObjectRow("b", "gcounter", revived.to_dict()),)))
        assert await store.keys() == ["a", "b", "d", "h"]


async def test_pages_of_keys_skip_deleted_keys_whatever_their_number(backend: Backend) -> None:
    keys = [f"p/{i:03d}" for i in range(300)]
    live = [k for i, k in enumerate(keys) if i % 3 == 0]
    async with await backend.open() as store:
        rows = [counter_row(k) if k in live else deleted_counter(k) for k in keys]
        await store.apply(Batch(objects=(*rows, deleted_counter("q"), counter_row("r"))))
        pages: list[list[str]] = []
        after = None
        for _ in range(100):  # bounded: 15 pages expected
            page = await store.keys("p/", after, 7)
            pages.append(page)
            if len(page) < 7:
                break
            after = page[-1]
        assert [k for p in pages for k in p] == live
        assert all(len(p) == 7 for p in pages[:-1])
        assert await store.keys(None, "p/", 3) == live[:3]
        assert await store.keys(None, keys[-1], 5) == ["r"]


async def test_the_live_index_serves_the_listing(backend: Backend) -> None:
    """The plan of ``Store.keys``'s query reads the partial index of live keys (PostgreSQL:
    with sequential scans and sorts priced out, so that the plan shows what *can* serve the
    query, not what is cheapest on a small table)."""
    async with await backend.open() as store:
        rows = [counter_row(f"k{i:05d}") for i in range(0, 2000, 2)]
        dead = [deleted_counter(f"k{i:05d}") for i in range(1, 2000, 2)]
        await store.apply(Batch(objects=(*rows, *dead)))
        seen: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
            if "GROUP BY" in statement:
                seen.append((statement, params))

        event.listen(store.read_engine, "before_cursor_execute", capture)
        try:
            assert await store.keys("k0", "k00100", 3) == ["k00102", "k00104", "k00106"]
        finally:
            event.remove(store.read_engine, "before_cursor_execute", capture)
        ((statement, params),) = seen
        async with store.engine.connect() as conn:
            if backend.name == "sqlite":
                plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            else:
                await conn.exec_driver_sql("ANALYZE objects")
                await conn.exec_driver_sql("SET enable_seqscan = off")
                await conn.exec_driver_sql("SET enable_sort = off")
                plan = await conn.exec_driver_sql(f"EXPLAIN {statement}", params)
            text = "\n".join(str(row[-1]) for row in plan.all())
    assert LIVE_INDEX in text, text
    assert "TEMP B-TREE" not in text and "Sort" not in text, text  # the index gives the order


async def test_kind_clashes_count_only_live_objects(backend: Backend) -> None:
    async with await backend.open() as store:
        await store.apply(
            Batch(objects=(counter_row("k"), orset_row("k", "x"), counter_row("j"), tombstone("j")))
        )
        assert (await store.load_start(objects_limit=0)).clashes == {"k": ("gcounter", "orset")}
        # Deleting one kind (its checkpoint, not live) resolves the clash.
        await store.apply(Batch(objects=(emptied_set("k"),)))
        assert (await store.load_start(objects_limit=0)).clashes == {}
        assert await store.keys() == ["j", "k"]


async def test_the_log_fold_at_open_sets_the_flag(backend: Backend) -> None:
    """A delete logged but not checkpointed before a crash: the store still lists the key by
    its stored flag until the fold at the next open, which sets it; a reader that must not
    write (``inspect --keys``) folds the tail in memory and agrees at once."""
    part = default_partition_of
    counter = crdt.GCounter()
    counter.increment("A", 2)
    reset = counter.clear()
    revive = crdt.GCounter()
    revive.increment("B", 1)
    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("gone", 2), deleted_counter("back"))))
        await store.apply(_Folded())
        await store.apply(
            Batch(
                log=(
                    LogRow("A", part("gone"), 1, "gone", "gcounter", reset.to_dict()),
                    LogRow("B", part("back"), 1, "back", "gcounter", revive.to_dict()),
                    LogRow("B", part("new"), 1, "new", "gcounter", revive.to_dict()),
                    LogRow("A", part("never"), 1, "never", "gcounter", reset.to_dict()),
                )
            )
        )
        assert await store.keys() == ["gone"]  # the stored flags, not folded yet
    found: list[str] = []
    listed = await asyncio.to_thread(report_keys, backend.url, None, found.extend)
    assert found == ["back", "new"]
    assert (listed.listed, listed.deleted) == (2, 2)  # gone, and never (a bare reset)
    async with await backend.open() as store:
        assert await store.fold_log() == 4
        assert await store.keys() == ["back", "new"]
        assert len(await store.get_objects(["gone", "never"])) == 2  # stored, not listed
    after: list[str] = []
    listed = await asyncio.to_thread(report_keys, backend.url, None, after.extend)
    assert after == found and (listed.listed, listed.deleted) == (2, 2)


async def test_an_object_that_cannot_say_whether_it_is_live_is_refused(backend: Backend) -> None:
    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("a"),)))
        before = await raw_tables(store)
        bad_state = ObjectRow("x", "gcounter", {"type": "gcounter", "counts": "many"})
        with pytest.raises(InvalidInput, match=r"objects\[1\].state for key 'x' is not a valid"):
            await store.apply(Batch(objects=(counter_row("b"), bad_state)))
        bad_flag = ObjectState("y", "gcounter", crdt.GCounter().to_json(), "yes")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match=r"objects\[0\].live must be a bool or None"):
            await store.apply(Batch(objects=(bad_flag,)))  # type: ignore[arg-type]
        assert await raw_tables(store) == before
        assert await store.keys() == ["a"]


def test_a_fresh_database_has_the_index(tmp_path: Any) -> None:
    import sqlite3

    async def make() -> None:
        async with await Store.open(tmp_path / "fresh.db"):
            pass

    asyncio.run(make())
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        sql = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (LIVE_INDEX,)
        ).fetchone()
    assert sql is not None and "WHERE live" in sql[0]
