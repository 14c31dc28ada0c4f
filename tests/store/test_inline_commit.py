"""Small commits at ``synchronous=NORMAL`` without the crossing into the writer's thread.

At NORMAL a WAL commit syncs nothing, so a small transaction runs on the writer's
connection in the event loop's thread when the writer's thread is idle; a big one, and every
commit at FULL, runs in the thread; the connection is never used by both at once; and the
WAL is checkpointed by the thread, never inside a commit on the loop (``store.writer``).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from store import Batch, Store
from store.writer import CHECKPOINT_COMMITS, INLINE_MAX_ROWS, ThreadWriter
from tests.store.helpers import counter_row


def _commit_threads(store: Store) -> list[str]:
    """Names of the threads the store's commits run in, from now on (in order)."""
    names: list[str] = []

    def commit(_conn: Any) -> None:
        names.append(threading.current_thread().name)

    event.listen(store.write_engine, "commit", commit)
    return names


def _writer(store: Store) -> ThreadWriter:
    writer = store._writer_db
    assert isinstance(writer, ThreadWriter)
    return writer


@pytest.mark.parametrize(("level", "here"), [("NORMAL", True), ("FULL", False), ("EXTRA", False)])
async def test_a_lone_small_commit_runs_in_the_callers_thread_only_where_nothing_syncs(
    tmp_path: Path, level: str, here: bool
) -> None:
    loop_thread = threading.current_thread().name
    async with await Store.open(str(tmp_path / "s.db"), synchronous=level) as store:
        threads = _commit_threads(store)
        for i in range(5):
            await store.apply(Batch(objects=(counter_row(f"k{i}", i + 1),)))
        rows = await store.get_objects([f"k{i}" for i in range(5)])
    assert [r.state for r in rows] == [counter_row(f"k{i}", i + 1).state for i in range(5)]
    assert threads == [loop_thread if here else "shoal-store-writer"] * 5


async def test_a_big_commit_crosses_into_the_thread_and_concurrent_commits_still_group(
    tmp_path: Path,
) -> None:
    """A transaction of more than INLINE_MAX_ROWS rows runs in the thread; concurrent
    callers still group into few transactions."""
    loop_thread = threading.current_thread().name
    async with await Store.open(str(tmp_path / "b.db"), synchronous="NORMAL") as store:
        threads = _commit_threads(store)
        big = tuple(counter_row(f"big{i}", 1) for i in range(INLINE_MAX_ROWS + 1))
        await store.apply(Batch(objects=big))
        assert threads == ["shoal-store-writer"]
        await asyncio.gather(
            *(store.apply(Batch(objects=(counter_row(f"g{i}", i + 1),))) for i in range(50))
        )
        grouped = threads[1:]
        rows = await store.get_objects([f"g{i}" for i in range(50)] + ["big0"])
    assert len(rows) == 51
    # Grouped as before (the first caller lets the others of its turn queue, and the writer
    # task takes them all: one or two transactions, not 50), small enough to run here.
    assert 1 <= len(grouped) <= 2 and set(grouped) == {loop_thread}, grouped


async def test_the_connection_is_never_used_by_the_loop_while_the_thread_holds_it(
    tmp_path: Path,
) -> None:
    """A big commit held in the thread, its caller cancelled: the thread still holds the
    connection, so a small commit meanwhile must wait for it and run in the thread, not on
    the loop beside it."""
    loop_thread = threading.current_thread().name
    release = threading.Event()
    entered = threading.Event()
    async with await Store.open(str(tmp_path / "c.db"), synchronous="NORMAL") as store:
        threads = _commit_threads(store)

        def hold(_conn: Any) -> None:
            if threading.current_thread().name == "shoal-store-writer" and not release.is_set():
                entered.set()
                release.wait(10.0)

        event.listen(store.write_engine, "commit", hold)
        big = tuple(counter_row(f"big{i}", 1) for i in range(INLINE_MAX_ROWS + 1))
        held = asyncio.ensure_future(store.apply(Batch(objects=big)))
        assert await asyncio.to_thread(entered.wait, 10.0)
        held.cancel()
        small = asyncio.ensure_future(store.apply(Batch(objects=(counter_row("s", 7),))))
        await asyncio.sleep(0.05)
        assert not small.done()  # waiting for the thread, not committed beside it
        release.set()
        await asyncio.wait_for(small, 10.0)
        event.remove(store.write_engine, "commit", hold)
        row = await store.get_object("s")
    assert row is not None and row.state == counter_row("s", 7).state
    assert loop_thread not in threads[: threads.index("shoal-store-writer") + 2]


async def test_a_failed_small_commit_raises_to_its_caller_and_the_next_one_works(
    tmp_path: Path,
) -> None:
    class Boom(Exception):
        pass

    async with await Store.open(str(tmp_path / "f.db"), synchronous="NORMAL") as store:
        await store.apply(Batch(objects=(counter_row("k", 1),)))

        def fail(_conn: Any) -> None:
            raise Boom("disk on fire")

        event.listen(store.write_engine, "commit", fail)
        with pytest.raises(Boom):
            await store.apply(Batch(objects=(counter_row("k", 2),)))
        event.remove(store.write_engine, "commit", fail)
        assert (await store.get_object("k")).state == counter_row("k", 1).state  # type: ignore[union-attr]
        await store.apply(Batch(objects=(counter_row("k", 3),)))
        row = await store.get_object("k")
    assert row is not None and row.state == counter_row("k", 3).state


async def test_the_wal_is_checkpointed_by_the_writers_thread_and_stays_bounded(
    tmp_path: Path,
) -> None:
    """SQLite's automatic checkpoint is off on the writer's connection at NORMAL (it would run
    inside a commit on the loop); the writer's thread checkpoints every CHECKPOINT_COMMITS
    commits, so the WAL does not grow with the number of writes."""
    path = tmp_path / "w.db"
    async with await Store.open(str(path), synchronous="NORMAL") as store:
        writer = _writer(store)
        auto = writer._thread.run_here(
            lambda conn: conn.connection.driver_connection.execute(
                "PRAGMA wal_autocheckpoint"
            ).fetchone()[0]
        )
        assert auto == 0
        sizes = []
        for i in range(3 * CHECKPOINT_COMMITS):
            await store.apply(Batch(objects=(counter_row(f"k{i}", 1),)))
            if i % CHECKPOINT_COMMITS == CHECKPOINT_COMMITS - 1:
                sizes.append(Path(f"{path}-wal").stat().st_size)
        for _ in range(100):  # the third checkpoint runs after the last commit
            if writer.checkpoints >= 3:
                break
            await asyncio.sleep(0.02)
        assert writer.checkpoints >= 3
        # Each checkpoint lets the next commits reuse the WAL from its start: its file stays
        # at what CHECKPOINT_COMMITS small commits need (about 1 MB here), not three times.
        assert sizes[2] <= sizes[0] * 1.5, sizes
