"""The store's single writer: if it ever stops, callers get an error instead of waiting; its
transactions run in a thread of their own."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from store import Batch, Store, StoreError
from tests.store.helpers import counter_row, log_entry


async def test_apply_after_the_writer_stopped_raises_instead_of_hanging(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "w.db"))
    try:
        await store.apply(Batch(objects=(counter_row("k", 1),)))
        store._writer.cancel()  # a writer that died (a bug, a cancelled task)
        with contextlib.suppress(asyncio.CancelledError):
            await store._writer
        with pytest.raises(StoreError, match="writer"):
            await asyncio.wait_for(store.apply(Batch(objects=(counter_row("k", 2),))), 5.0)
        row = await store.get_object("k")
        assert row is not None and row.state == counter_row("k", 1).state
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(store.aclose(), 5.0)


async def test_a_transaction_runs_in_one_thread_off_the_event_loop(tmp_path: Path) -> None:
    """SQLite: a commit, from its BEGIN to its COMMIT, runs in the writer's own thread, so a
    transaction crosses into it once rather than once per statement."""
    statements: list[tuple[int, str]] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append((threading.get_ident(), statement.split()[0].upper()))

    def begin(_conn: Any) -> None:  # (BEGIN goes to the driver's cursor: no cursor event)
        statements.append((threading.get_ident(), "BEGIN"))

    def commit(_conn: Any) -> None:
        statements.append((threading.get_ident(), "COMMIT"))

    async with await Store.open(str(tmp_path / "t.db")) as store:
        event.listen(store.write_engine, "before_cursor_execute", before)
        event.listen(store.write_engine, "begin", begin)
        event.listen(store.write_engine, "commit", commit)
        await store.apply(Batch(objects=(counter_row("k", 1),)))
        await asyncio.gather(
            *(store.apply(Batch(objects=(counter_row(f"g{i}", i + 1),))) for i in range(20))
        )
        event.remove(store.write_engine, "before_cursor_execute", before)
        event.remove(store.write_engine, "begin", begin)
        event.remove(store.write_engine, "commit", commit)
        row = await store.get_object("g19")
    assert row is not None and row.state == counter_row("g19", 20).state
    kinds = [kind for _, kind in statements]
    assert kinds[:2] == ["BEGIN", "COMMIT"]
    threads = {thread for thread, _ in statements}
    assert len(threads) == 1
    assert threading.get_ident() not in threads


async def test_a_read_runs_in_one_thread_of_its_own_with_a_small_page_cache(
    tmp_path: Path,
) -> None:
    """SQLite: a read (its BEGIN, statements and COMMIT) runs in the reader's own thread,
    neither the event loop's nor the writer's, on a connection whose page cache is
    READER_CACHE_KIB; what it reads is what was committed."""
    from store.writer import READER_CACHE_KIB

    reads: list[tuple[int, str]] = []
    writes: set[int] = set()

    def on_read(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        reads.append((threading.get_ident(), statement.split()[0].upper()))

    def on_begin(_conn: Any) -> None:  # (BEGIN goes to the driver's cursor: no cursor event)
        reads.append((threading.get_ident(), "BEGIN"))

    def on_write(_conn: Any, *_args: Any) -> None:
        writes.add(threading.get_ident())

    async with await Store.open(str(tmp_path / "r.db")) as store:
        await store.apply(Batch(objects=(counter_row("k", 1),)))
        event.listen(store.read_engine, "before_cursor_execute", on_read)
        event.listen(store.read_engine, "begin", on_begin)
        event.listen(store.write_engine, "before_cursor_execute", on_write)
        await store.apply(Batch(objects=(counter_row("j", 2),)))
        rows = await asyncio.gather(store.get_objects(["k", "j", "absent"]), store.keys())
        cache = await store._read(lambda conn: conn.exec_driver_sql("PRAGMA cache_size").scalar())
        event.remove(store.read_engine, "before_cursor_execute", on_read)
        event.remove(store.read_engine, "begin", on_begin)
        event.remove(store.write_engine, "before_cursor_execute", on_write)
    assert [(r.key, r.state) for r in rows[0]] == [
        ("j", counter_row("j", 2).state),
        ("k", counter_row("k", 1).state),
    ]
    assert rows[1] == ["j", "k"]
    assert cache == -READER_CACHE_KIB
    threads = {thread for thread, _ in reads}
    assert len(threads) == 1 and not threads & writes and threading.get_ident() not in threads
    assert [kind for _, kind in reads].count("BEGIN") == 3  # one transaction per read


async def test_a_driver_error_in_a_write_is_sqlalchemys_and_rolls_back(tmp_path: Path) -> None:
    """The rows go to the driver's cursor directly (store.sql._executemany): a driver error
    still surfaces as SQLAlchemy's DBAPIError, and nothing of the batch is written."""
    async with await Store.open(str(tmp_path / "e.db")) as store:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON log_segments"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        batch = Batch(objects=(counter_row("k", 1),), log=(log_entry("k", 1),))
        with pytest.raises(DBAPIError, match="refused by the test"):
            await asyncio.wait_for(store.apply(batch), 10.0)
        assert await store.get_object("k") is None
        await store.apply(Batch(objects=(counter_row("after", 2),)))  # the writer goes on
        row = await store.get_object("after")
    assert row is not None and row.state == counter_row("after", 2).state
