"""Small commits at ``synchronous=NORMAL`` without the crossing into the writer's thread.

At NORMAL a WAL commit syncs nothing, so a small transaction runs on the writer's
connection in the event loop's thread when the writer's thread is idle; at FULL only a lone
one does (its caller waits for nothing else), while syncs are quick; a big one runs in the
thread; the connection is never used by both at once; and the
WAL is checkpointed by a thread of its own, never inside a commit on the loop
(``store.writer``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from store import Batch, Store
from store.writer import (
    AUTOCHECKPOINT_PAGES,
    CHECKPOINT_COMMITS,
    INLINE_MAX_BYTES,
    INLINE_MAX_ROWS,
    SYNC_HERE_MAX,
    ThreadWriter,
)
from tests.store.helpers import counter_row, key_in, log_entry, orset_row


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


@pytest.mark.parametrize("level", ["FULL", "EXTRA"])
async def test_a_lone_small_commit_syncs_in_the_callers_thread(tmp_path: Path, level: str) -> None:
    """Where commits sync, a small commit runs in the caller's thread only when its caller
    says it is lone (nothing else waits on the loop meanwhile); a big one crosses anyway."""
    loop_thread = threading.current_thread().name
    async with await Store.open(str(tmp_path / "l.db"), synchronous=level) as store:
        threads = _commit_threads(store)
        await store.apply(Batch(objects=(counter_row("lone", 1),)), grouped=False, lone=True)
        await store.apply(Batch(objects=(counter_row("other", 2),)), grouped=False)
        big = tuple(counter_row(f"big{i}", 1) for i in range(INLINE_MAX_ROWS + 1))
        await store.apply(Batch(objects=big), grouped=False, lone=True)
        rows = await store.get_objects(["lone", "other", "big0"])
    assert threads == [loop_thread, "shoal-store-writer", "shoal-store-writer"]
    assert {r.key: r.state for r in rows} == {
        "lone": counter_row("lone", 1).state,
        "other": counter_row("other", 2).state,
        "big0": counter_row("big0", 1).state,
    }


async def test_lone_commits_cross_while_syncs_are_slow(tmp_path: Path) -> None:
    """A disk whose syncs are slow (here a commit that takes 5 ms) sends lone commits into
    the thread once the average of small commits passes SYNC_HERE_MAX, so the loop stops
    waiting for them; once syncs are quick again (measured in the thread), they come back.

    "Quick again" is made so, not assumed of the machine's disk: the connection stops
    syncing (``synchronous = OFF``), so that a loaded machine whose FULL syncs take more
    than SYNC_HERE_MAX cannot fail the second half."""
    loop_thread = threading.current_thread().name
    async with await Store.open(str(tmp_path / "s.db"), synchronous="FULL") as store:
        writer = _writer(store)
        threads = _commit_threads(store)

        connections: list[Any] = []

        def slow(conn: Any) -> None:
            connections.append(conn)
            time.sleep(0.005)

        event.listen(store.write_engine, "commit", slow)
        for i in range(30):
            await store.apply(Batch(objects=(counter_row(f"s{i}", 1),)), grouped=False, lone=True)
        here = threads.count(loop_thread)
        assert 1 <= here <= 10, threads  # the first ones, until the average said "slow"
        assert set(threads[here:]) == {"shoal-store-writer"}
        assert writer.sync_time >= SYNC_HERE_MAX
        event.remove(store.write_engine, "commit", slow)
        # The writer is idle between our awaits: its one connection stops syncing.
        raw = connections[-1].connection.driver_connection
        raw.execute("PRAGMA synchronous = OFF").fetchall()
        threads.clear()
        for i in range(60):
            await store.apply(Batch(objects=(counter_row(f"q{i}", 1),)), grouped=False, lone=True)
        assert threads[0] == "shoal-store-writer" and threads[-1] == loop_thread, threads
        rows = await store.get_objects([f"s{i}" for i in range(30)] + [f"q{i}" for i in range(60)])
    assert len(rows) == 90


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


@pytest.mark.parametrize("level", ["NORMAL", "FULL"])
async def test_the_writers_connection_is_made_in_its_thread_never_on_the_loop(
    tmp_path: Path, level: str
) -> None:
    """Connecting runs the connection's hook (the journal mode, which may wait up to the busy
    timeout for another connection's lock): after a failed commit dropped the connection,
    the next commit connects in the writer's thread, and the ones after it run on the loop
    again."""
    loop_thread = threading.current_thread().name
    async with await Store.open(str(tmp_path / "n.db"), synchronous=level) as store:
        await store.apply(Batch(objects=(counter_row("k", 1),)), grouped=False, lone=True)
        connected: list[str] = []
        event.listen(
            store.write_engine,
            "connect",
            lambda *_: connected.append(threading.current_thread().name),
        )

        def fail(_conn: Any) -> None:
            raise RuntimeError("disk on fire")

        event.listen(store.write_engine, "commit", fail)
        with pytest.raises(RuntimeError):
            await store.apply(Batch(objects=(counter_row("k", 2),)), grouped=False, lone=True)
        event.remove(store.write_engine, "commit", fail)
        threads = _commit_threads(store)
        for i in range(3):
            await store.apply(Batch(objects=(counter_row("k", 3 + i),)), grouped=False, lone=True)
        row = await store.get_object("k")
    assert connected == ["shoal-store-writer"]
    assert threads == ["shoal-store-writer", loop_thread, loop_thread]
    assert row is not None and row.state == counter_row("k", 5).state


def _autocheckpoint(writer: ThreadWriter) -> int:
    """The writer's connection's ``wal_autocheckpoint`` (read on the loop: the thread idle)."""
    pages: int = writer._thread.run_here(
        lambda conn: conn.connection.driver_connection.execute(
            "PRAGMA wal_autocheckpoint"
        ).fetchone()[0]
    )
    return pages


async def _checkpointed(writer: ThreadWriter, count: int) -> None:
    """Wait (bounded) until the checkpointer ran ``count`` checkpoints and is idle, and the
    writer's thread has copied what was committed meanwhile (it is idle again)."""
    for _ in range(500):
        checkpointer = writer._checkpointer
        if writer.checkpoints >= count and checkpointer is not None and checkpointer.idle():
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"{writer.checkpoints} checkpoints, the checkpointer busy")
    await asyncio.sleep(0)  # (its future's callback queues the writer's copy)
    for _ in range(500):
        if writer._thread.idle():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the writer's thread stayed busy")


def _wal_restarts(path: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time a writer starts
    the WAL over from its beginning."""
    header = Path(f"{path}-wal").read_bytes()[:16]
    return int.from_bytes(header[12:16], "big")


async def test_the_wal_is_checkpointed_by_the_checkpointer_and_stays_bounded(
    tmp_path: Path,
) -> None:
    """A commit on the loop runs without SQLite's automatic checkpoint (it would run inside
    the commit); the checkpointer checkpoints every CHECKPOINT_COMMITS commits, so the WAL
    does not grow with the number of writes."""
    path = tmp_path / "w.db"
    async with await Store.open(str(path), synchronous="NORMAL") as store:
        writer = _writer(store)
        await store.apply(Batch(objects=(counter_row("first", 1),)))
        assert _autocheckpoint(writer) == 0
        sizes = []
        for r in range(3):
            for i in range(CHECKPOINT_COMMITS):
                await store.apply(Batch(objects=(counter_row(f"k{r}-{i}", 1),)))
            sizes.append(Path(f"{path}-wal").stat().st_size)
            await _checkpointed(writer, r + 1)
        # Each checkpoint lets the next commits reuse the WAL from its start: its file stays
        # at what CHECKPOINT_COMMITS small commits need (about 4 MB here), not three times.
        assert sizes[2] <= sizes[0] * 1.2, sizes


async def test_the_wal_starts_over_after_a_checkpoint_that_could_not_copy_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpointer copies the WAL while commits go on, and copies only what no reader
    still needs; SQLite starts the WAL over only once a checkpoint caught up with its end,
    which that copy often does not (commits came meanwhile: the WAL grew by a megabyte per
    checkpoint). The writer's thread then copies the rest, between two commits: the next
    commit starts the WAL over. Here a reader holds the checkpointer's copy back."""
    copied, release = threading.Event(), threading.Event()
    path = tmp_path / "r.db"
    async with await Store.open(str(path), synchronous="NORMAL") as store:
        writer = _writer(store)
        checkpoint = writer._checkpoint

        def copy_then_hold(conn: Any) -> None:
            checkpoint(conn)
            copied.set()
            release.wait(10.0)

        monkeypatch.setattr(writer, "_checkpoint", copy_then_hold)
        await store.apply(Batch(objects=(counter_row("first", 1),)))
        reader = sqlite3.connect(str(path), isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM objects").fetchall()  # its snapshot: now
            for i in range(CHECKPOINT_COMMITS):
                await store.apply(Batch(objects=(counter_row(f"k{i}", 1),)))
            assert await asyncio.to_thread(copied.wait, 10.0)
            reader.execute("ROLLBACK")
        finally:
            reader.close()
            restarts = _wal_restarts(path)
            release.set()
        await _checkpointed(writer, 1)
        await store.apply(Batch(objects=(counter_row("next", 1),)))
        assert _wal_restarts(path) == restarts + 1
        rows = await store.get_objects([f"k{i}" for i in range(CHECKPOINT_COMMITS)] + ["next"])
    assert len(rows) == CHECKPOINT_COMMITS + 1


async def test_commits_stay_on_the_loop_while_a_checkpoint_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The periodic checkpoint runs on a connection of its own: while it copies the WAL into
    the database, the writer's thread is idle and small commits still run on the loop (in
    the writer's thread, the commits behind a checkpoint all crossed into it and waited)."""
    loop_thread = threading.current_thread().name
    entered, release = threading.Event(), threading.Event()
    ran_in: list[str] = []
    path = tmp_path / "k.db"
    async with await Store.open(str(path), synchronous="NORMAL") as store:
        writer = _writer(store)
        checkpoint = writer._checkpoint

        def held_checkpoint(conn: Any) -> None:
            ran_in.append(threading.current_thread().name)
            entered.set()
            release.wait(10.0)
            checkpoint(conn)

        monkeypatch.setattr(writer, "_checkpoint", held_checkpoint)
        threads = _commit_threads(store)
        for i in range(CHECKPOINT_COMMITS):
            await store.apply(Batch(objects=(counter_row(f"k{i}", 1),)))
        assert await asyncio.to_thread(entered.wait, 10.0)
        try:
            for i in range(20):  # while the checkpoint is held
                await store.apply(Batch(objects=(counter_row(f"during{i}", i + 1),)))
            assert not release.is_set() and writer.checkpoints == 0
        finally:
            release.set()
        for _ in range(100):
            if writer.checkpoints:
                break
            await asyncio.sleep(0.02)
        rows = await store.get_objects([f"during{i}" for i in range(20)])
    assert ran_in == ["shoal-store-checkpointer"]
    assert writer.checkpoints == 1
    assert set(threads) == {loop_thread}, threads
    assert {r.key: r.state for r in rows} == {
        f"during{i}": counter_row(f"during{i}", i + 1).state for i in range(20)
    }


async def test_big_commits_in_the_thread_keep_the_wal_bounded(tmp_path: Path) -> None:
    """Commits too big for the loop run in the thread with SQLite's automatic checkpoint
    back on: the WAL stays at about what one of them writes, as at FULL (before, with the
    checkpoint off on that connection for every commit, 60 such commits left 45 MB of WAL
    between two of the thread's checkpoints)."""
    path = tmp_path / "big.db"
    async with await Store.open(str(path), synchronous="NORMAL") as store:
        writer = _writer(store)
        threads = _commit_threads(store)
        for c in range(60):
            rows = tuple(counter_row(f"k{c}_{i}", 1) for i in range(1000))
            await store.apply(Batch(objects=rows))
        assert set(threads) == {"shoal-store-writer"}
        assert _autocheckpoint(writer) == AUTOCHECKPOINT_PAGES
        wal = Path(f"{path}-wal").stat().st_size
        assert writer.checkpoints == 0  # (the thread's own checkpoints did not do it)
    assert wal <= 12_000_000, wal


async def test_big_text_and_compactions_commit_in_the_thread(tmp_path: Path) -> None:
    """Few rows do not make a transaction small: one big state, or a compaction (which reads
    and rewrites the log it compacts), runs in the thread."""
    async with await Store.open(str(tmp_path / "t.db"), synchronous="NORMAL") as store:
        threads = _commit_threads(store)
        big = orset_row("big", *(f"element-{i:05}" for i in range(INLINE_MAX_BYTES // 20)))
        await store.apply(Batch(objects=(big,)))
        key = key_in(3, 0)
        await store.apply(Batch(log=tuple(log_entry(key, s) for s in range(1, 4))))
        await store.apply(Batch(compact=((3, {"A": 2}),)))
        row = await store.get_object("big")
    assert row is not None and row.state == big.state
    assert threads[0] == "shoal-store-writer"  # the big state
    assert threads[1] == threading.current_thread().name  # three small log entries
    assert threads[2] == "shoal-store-writer"  # the compaction


async def test_a_write_begun_before_close_is_committed_not_left_waiting(tmp_path: Path) -> None:
    """A commit on the loop first lets the callers of its turn queue; ``aclose`` in that turn
    queues the writer's stop. The write commits (close waits for it) instead of queueing
    behind the stop, where nobody would ever take it."""
    path = str(tmp_path / "c.db")
    store = await Store.open(path, synchronous="NORMAL")
    await store.apply(Batch(objects=(counter_row("a", 1),)))
    write = asyncio.ensure_future(store.apply(Batch(objects=(counter_row("k", 5),))))
    await asyncio.sleep(0)  # the write is in its yield, holding the commit
    await store.aclose()
    await asyncio.wait_for(write, 10.0)
    async with await Store.open(path) as again:
        row = await again.get_object("k")
    assert row is not None and row.state == counter_row("k", 5).state


async def test_the_stores_own_locked_write_does_not_stall_a_commit_on_the_loop(
    tmp_path: Path,
) -> None:
    """Rotating the replica id writes through the async engine, whose statements need the
    loop. A commit on the loop meanwhile must not wait in SQLite's busy handler for that lock
    (holding the loop, so the rotation could not finish: the commit failed after the busy
    timeout); it is handed to the thread and both complete."""
    path = str(tmp_path / "r.db")
    async with await Store.open(path, synchronous="NORMAL", busy_timeout_ms=3000) as store:
        await store.apply(Batch(objects=(counter_row("a", 1),)))
        threads = _commit_threads(store)
        began = asyncio.Event()

        def on_begin(_conn: Any) -> None:
            began.set()

        # (the async engine's BEGIN IMMEDIATE has run when its "begin" event reaches this)
        event.listen(store._engine.sync_engine, "begin", on_begin)
        rotation = asyncio.ensure_future(store.rotate_replica_id())
        await asyncio.wait_for(began.wait(), 10.0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(store.apply(Batch(objects=(counter_row("k", 2),))), 10.0)
        took = loop.time() - start
        new_id = await asyncio.wait_for(rotation, 10.0)
        row = await store.get_object("k")
    assert row is not None and row.state == counter_row("k", 2).state
    assert new_id and threads == ["shoal-store-writer"]
    assert took < 2.5, took  # not the busy timeout (3 s) spent holding the loop


_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


async def test_another_process_holding_the_write_lock_never_blocks_the_loop(
    tmp_path: Path,
) -> None:
    """Another process holds the database's write lock: a small write at NORMAL waits for it
    in the writer's thread (up to the busy timeout) while the event loop keeps running, and
    commits once the lock is released."""
    path = str(tmp_path / "p.db")
    async with await Store.open(path, synchronous="NORMAL", busy_timeout_ms=10_000) as store:
        await store.apply(Batch(objects=(counter_row("a", 1),)))
        threads = _commit_threads(store)
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _HOLD_LOCK,
            path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert await asyncio.wait_for(holder.stdout.readline(), 10.0) == b"locked\n"
            loop = asyncio.get_running_loop()
            start = loop.time()
            write = asyncio.ensure_future(store.apply(Batch(objects=(counter_row("k", 9),))))
            for _ in range(30):  # 0.3 s of a loop that is free to run
                await asyncio.sleep(0.01)
            # A loop held by the commit's busy wait would take the busy timeout (10 s) here.
            ran_for = loop.time() - start
            assert not write.done()  # waiting for the lock, in the thread
        finally:
            holder.stdin.write(b"go\n")
            await holder.stdin.drain()
            await asyncio.wait_for(holder.wait(), 10.0)
        await asyncio.wait_for(write, 10.0)
        row = await store.get_object("k")
    assert ran_for < 5.0, ran_for
    assert row is not None and row.state == counter_row("k", 9).state
    assert threads == ["shoal-store-writer"]


@pytest.mark.parametrize("grouped", [True, False])
async def test_a_sole_writer_commits_without_a_turn_of_the_loop(
    tmp_path: Path, grouped: bool
) -> None:
    """By default a commit that may run in the caller's thread first lets the other callers
    of this turn of the loop queue (one turn); a caller that is the store's only writer and
    groups its own batches (``grouped=False``, a peer's executor) commits without that turn:
    nothing else on the loop runs meanwhile."""
    async with await Store.open(str(tmp_path / "g.db"), synchronous="NORMAL") as store:
        await store.apply(Batch(objects=(counter_row("warm", 1),)))
        ran: list[str] = []

        async def other() -> None:
            ran.append("other")

        task = asyncio.ensure_future(other())
        await store.apply(Batch(objects=(counter_row("k", 3),)), grouped=grouped)
        ran.append("committed")
        await task
        row = await store.get_object("k")
    assert row is not None and row.state == counter_row("k", 3).state
    assert ran == (["other", "committed"] if grouped else ["committed", "other"])
