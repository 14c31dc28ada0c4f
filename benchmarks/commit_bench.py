"""Where one write's commit goes: the instruments behind ``store/writer.py``'s choices.

Run: ``.venv/bin/python benchmarks/commit_bench.py`` (about 30 s; ``--quick`` for a smoke
run). Each measure alternates its cases ``--runs`` times and prints the median per commit
(wall clock: these are latencies, disk syncs included), on SQLite files in a scratch folder:

* **crossing**: a one-row commit (``BEGIN IMMEDIATE``, an upsert, ``COMMIT``) on raw
  ``sqlite3`` at ``FULL`` and ``NORMAL``, run in the caller's thread, against the same
  commit handed to a thread of its own and awaited from an event loop (a queue in, the
  loop's ``call_soon_threadsafe`` out): why a lone commit syncs on the loop;
* **transaction object**: the same commit at ``NORMAL`` through SQLAlchemy's
  ``Connection.begin()`` against the statements on the driver's cursor (what
  ``store.writer._write_lean`` does);
* **a peer's write, in segments**: one ``LWWHandle.set`` awaited at a time on a lone peer
  at ``FULL`` and ``NORMAL``, split at the commit (``store.writer._write_lean``): before it
  (the handle, the engine, the store's preparation), the commit itself, after it (the
  effects, the caller's wake-up); and at ``NORMAL`` with a sleep of ``--sleep-us`` (200)
  in each commit, where ``FULL`` syncs: does the work around a commit slow down because
  the process slept, sync or not?

No figure is asserted by a test; they go into ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["main"]


def _raw(path: Path, level: str) -> tuple[sqlite3.Connection, Callable[[], None]]:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {level}")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT)")
    count = [0]

    def commit() -> None:
        count[0] += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (f"k{count[0] % 500}", "v" * 100))
        conn.execute("COMMIT")

    return conn, commit


async def _in_thread(commit: Callable[[], None], n: int) -> float:
    jobs: SimpleQueue[Any] = SimpleQueue()
    loop = asyncio.get_running_loop()

    def run() -> None:
        while (job := jobs.get()) is not None:
            job()
            loop.call_soon_threadsafe(done.set)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    done = asyncio.Event()
    start = time.perf_counter()
    for _ in range(n):
        done.clear()
        jobs.put(commit)
        await done.wait()
    took = (time.perf_counter() - start) / n
    jobs.put(None)
    worker.join(10.0)
    return took


def _here(commit: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        commit()
    return (time.perf_counter() - start) / n


def crossing(folder: Path, n: int, runs: int) -> None:
    for level in ("FULL", "NORMAL"):
        conn, commit = _raw(folder / f"cross-{level}.db", level)
        here, there = [], []
        for _ in range(runs):
            here.append(_here(commit, n))
            there.append(asyncio.run(_in_thread(commit, n)))
        conn.close()
        print(
            f"  one-row commit at {level}: in the caller's thread {_us(here)}, "
            f"handed to a thread and awaited {_us(there)}"
        )


def transaction_object(folder: Path, n: int, runs: int) -> None:
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    engine = create_engine(f"sqlite+pysqlite:///{folder / 'sqla.db'}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        dbapi.isolation_level = None
        dbapi.execute("PRAGMA journal_mode = WAL")
        dbapi.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        cursor = conn.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        cursor.close()

    conn = engine.connect()
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
    row = [("k", "v" * 100)]
    upsert = "INSERT OR REPLACE INTO t VALUES (?, ?)"

    def through_sqlalchemy() -> None:
        with conn.begin():
            cursor = conn.connection.cursor()
            cursor.executemany(upsert, row)
            cursor.close()

    def on_the_driver() -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany(upsert, row)
        raw.execute("COMMIT")

    sqla, driver = [], []
    for _ in range(runs):
        sqla.append(_here(through_sqlalchemy, n))
        driver.append(_here(on_the_driver, n))
    conn.close()
    engine.dispose()
    print(
        f"  one-row commit at NORMAL: through Connection.begin() {_us(sqla)}, "
        f"on the driver {_us(driver)}"
    )


async def _segments(
    path: Path, level: str, n: int, sleep_s: float = 0.0
) -> tuple[float, float, float]:
    import store.writer as writer
    from shoal import Peer

    marks: list[tuple[float, float]] = []
    lean = writer._write_lean

    def timed(conn: Any, prepared: Any) -> list[int]:
        start = time.perf_counter()
        removed = lean(conn, prepared)
        if sleep_s:
            time.sleep(sleep_s)
        marks.append((start, time.perf_counter()))
        return removed

    writer._write_lean = timed  # type: ignore[assignment]
    try:
        async with Peer.open(str(path), synchronous=level) as peer:
            for i in range(50):
                await peer.lww(f"warm-{i}").set(i)
            before, during, after = [], [], []
            for i in range(n):
                marks.clear()
                start = time.perf_counter()
                await peer.lww(f"key-{i}").set(i)
                end = time.perf_counter()
                if len(marks) == 1:  # (one commit: none of the checkpointer's catch-ups)
                    ((a, b),) = marks
                    before.append(a - start)
                    during.append(b - a)
                    after.append(end - b)
    finally:
        writer._write_lean = lean  # type: ignore[assignment]
    return statistics.median(before), statistics.median(during), statistics.median(after)


def segments(folder: Path, n: int, runs: int, sleep_us: int) -> None:
    cases = [("FULL", 0), ("NORMAL", 0), ("NORMAL", sleep_us)]
    for level, slept in cases:
        got = [
            asyncio.run(_segments(folder / f"seg-{level}-{slept}-{r}.db", level, n, slept / 1e6))
            for r in range(runs)
        ]
        before, during, after = ([g[i] for g in got] for i in range(3))
        label = f"{level}, {slept} us slept in each commit" if slept else level
        print(
            f"  a peer's write at {label} (medians): before its commit {_us(before)}, "
            f"the commit {_us(during)}, after it {_us(after)}"
        )


def _us(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e6:.0f} us"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="alternations of each measure")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts")
    parser.add_argument(
        "--sleep-us", type=int, default=200, help="the sleep in each commit of the third case"
    )
    args = parser.parse_args(argv)
    n = 100 if args.quick else 1000
    runs = 1 if args.quick else args.runs
    folder = Path(tempfile.mkdtemp(prefix="shoal-commit-bench-"))
    try:
        print("crossing into a thread, against committing in the caller's:")
        crossing(folder, n, runs)
        print("SQLAlchemy's Transaction object, against the driver's statements:")
        transaction_object(folder, 10 * n, runs)
        print("one write of a lone peer awaited at a time, split at its commit:")
        segments(folder, n, runs, args.sleep_us)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
