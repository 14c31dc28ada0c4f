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

from store import Batch, Store, StoreError
from tests.store.helpers import counter_row


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
    """SQLite: every statement of a commit (BEGIN, the inserts, COMMIT) runs in the writer's
    own thread, so a transaction crosses into it once rather than once per statement."""
    statements: list[tuple[int, str]] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append((threading.get_ident(), statement.split()[0].upper()))

    def commit(_conn: Any) -> None:
        statements.append((threading.get_ident(), "COMMIT"))

    async with await Store.open(str(tmp_path / "t.db")) as store:
        event.listen(store.write_engine, "before_cursor_execute", before)
        event.listen(store.write_engine, "commit", commit)
        await store.apply(Batch(objects=(counter_row("k", 1),)))
        await asyncio.gather(
            *(store.apply(Batch(objects=(counter_row(f"g{i}", i + 1),))) for i in range(20))
        )
        event.remove(store.write_engine, "before_cursor_execute", before)
        event.remove(store.write_engine, "commit", commit)
        row = await store.get_object("g19")
    assert row is not None and row.state == counter_row("g19", 20).state
    kinds = [kind for _, kind in statements]
    assert kinds[:3] == ["BEGIN", "INSERT", "COMMIT"]
    threads = {thread for thread, _ in statements}
    assert len(threads) == 1
    assert threading.get_ident() not in threads
