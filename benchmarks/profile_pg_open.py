"""Where a relay's open on PostgreSQL goes: ``Peer.open`` of ``pg_relay_bench.py``'s database,
statement by statement.

Run: ``.venv/bin/python benchmarks/profile_pg_open.py`` (``--keys N``, 1M by default: the
database ``pg_relay_bench.py`` builds and caches, built here if missing; ``--opens K`` opens
in a row, 2; ``--profile`` adds a cProfile of each open, ``--top`` rows of it; ``--pg-url``
as in ``pg_relay_bench.py``). Each open is of the same ``CREATE DATABASE ... TEMPLATE`` copy
(dropped afterwards), in this process, as the benchmark's relay opens (``relay=True``,
listening, 64 MiB cache). Printed per open: its time, the number of SQL statements and their
total time as the client waits for them, the slowest statements, and the plan of the slowest
one as the server ran it (``EXPLAIN (ANALYZE, BUFFERS)``, run after the open, inside a
transaction rolled back). Nothing is asserted; a tool for the performance work, as
``profile_e2e.py`` is.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
from pg_relay_bench import _admin, _server_url, _with_db, ensure_pg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["main"]

SLOWEST = 5


class Statements:
    """Every statement any engine of this process runs, with the time the client waited."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, Any]] = []
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        conn.info.setdefault("shoal_t0", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        took = time.perf_counter() - conn.info["shoal_t0"].pop()
        self.seen.append((took, statement, params))


async def _explain(url: str, statement: str, params: Any) -> str:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            out = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
            plan = "\n".join(str(row[0]) for row in out.all())
            await conn.rollback()
            return plan
    finally:
        await engine.dispose()


async def run(url: str, n: int, opens: int, profile: bool, top: int) -> None:
    peer_class = benchlib.load_peer()
    built = await ensure_pg(url, n)
    copy = f"shoal_bench_prof_{uuid.uuid4().hex[:10]}"
    await _admin(url, f'CREATE DATABASE "{copy}" TEMPLATE "{built}"')
    run_url = _with_db(url, copy)
    statements = Statements()
    try:
        for i in range(opens):
            statements.seen.clear()
            prof = cProfile.Profile() if profile else None
            t0 = time.perf_counter()
            if prof is not None:
                prof.enable()
            peer = await peer_class.open(
                run_url,
                relay=True,
                listen="127.0.0.1:0",
                cache_bytes=64 * 1024 * 1024,
                secret=benchlib.SECRET.decode(),
            )
            if prof is not None:
                prof.disable()
            took = time.perf_counter() - t0
            seen = list(statements.seen)
            await peer.aclose()
            waited = sum(s for s, _, _ in seen)
            print(f"open {i + 1}: {took:.3f} s; {len(seen)} statements, {waited:.3f} s of them")
            slowest = sorted(seen, key=lambda s: s[0], reverse=True)
            for s, stmt, _ in slowest[:SLOWEST]:
                print(f"  {s * 1000:8.1f} ms  {' '.join(stmt.split())[:150]}")
            if prof is not None:
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
                print(buf.getvalue())
            if i == opens - 1 and slowest:
                _, stmt, params = slowest[0]
                print("plan of the slowest statement, run again:")
                print(await _explain(run_url, stmt, params))
    finally:
        await _admin(url, f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--opens", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="a cProfile of each open")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--pg-url", help="the server's SQLAlchemy URL (any database on it)")
    args = parser.parse_args(argv)
    if args.keys < 1 or args.opens < 1:
        parser.error("--keys and --opens must be positive")
    benchlib.preamble("profile_pg_open: where a relay's open on PostgreSQL goes", argv)
    url = _server_url(args.pg_url)
    asyncio.run(run(url, args.keys, args.opens, args.profile, args.top))
    print(f"load average at the end: {benchlib.load_now()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
