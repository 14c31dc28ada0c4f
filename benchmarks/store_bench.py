"""Durable local writes/s through ``store.Store``, each beside raw ``sqlite3`` in the same run.

A *write* is one delta as the engine persists it: a log entry, the key's object checkpoint,
and the summary of its partition, all in the transaction that acknowledges it. Raw sqlite3
gets exactly the same rows (JSON-encoded the same way, into the same schema, WAL, the same
``synchronous`` level) with the cheapest stdlib code for each case:

* batches of 1 / 100 / 1000: the store awaits ``apply`` of one batch at a time; raw sqlite3
  runs ``executemany`` per table and one commit per batch;
* 1000 concurrent single writers: 1000 tasks each ``apply`` one write at once (group
  commit), two rounds; raw sqlite3 does what a naive writer does, one commit per write
  (timed on the first 500 writes).

Targets (issue 3): batches of 1000 >= 0.6x raw executemany; 1000 concurrent single writers
>= 4x raw one-commit-per-row. Each figure is the median of ``--repeat`` runs.

    .venv/bin/python benchmarks/store_bench.py [--synchronous FULL|NORMAL] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine  # noqa: E402

from store import Batch, LogRow, ObjectRow, Store, default_partition_of  # noqa: E402
from store.schema import metadata  # noqa: E402

__all__ = ["main"]

ORIGIN = "bench"


def _writes(n: int, rng: random.Random) -> list[tuple[str, int, int, dict[str, Any]]]:
    """``n`` writes: (key, partition, seq, state) with random keys, per-partition seqs."""
    seqs: dict[int, int] = {}
    out = []
    for _ in range(n):
        key = f"user:{rng.getrandbits(64):016x}"
        part = default_partition_of(key)
        seqs[part] = seqs.get(part, 0) + 1
        state = {"type": "gcounter", "v": 1, "counts": {ORIGIN: rng.randint(1, 1000)}}
        out.append((key, part, seqs[part], state))
    return out


def _batch(writes: list[tuple[str, int, int, dict[str, Any]]]) -> Batch:
    summaries: dict[int, int] = {}
    for _key, part, seq, _state in writes:
        summaries[part] = max(seq, summaries.get(part, 0))
    return Batch(
        objects=tuple(ObjectRow(k, "gcounter", s) for k, _p, _q, s in writes),
        log=tuple(LogRow(ORIGIN, p, q, k, "gcounter", s) for k, p, q, s in writes),
        summaries=tuple((p, {"vv": {ORIGIN: n}, "cloud": []}) for p, n in summaries.items()),
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# -- raw sqlite3 -----------------------------------------------------------------------------


def _raw_db(path: Path, synchronous: str) -> sqlite3.Connection:
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def _raw_commit(
    conn: sqlite3.Connection, writes: list[tuple[str, int, int, dict[str, Any]]]
) -> None:
    summaries: dict[int, int] = {}
    objects = []
    segments: dict[int, list[tuple[int, str, str, str]]] = {}
    for key, part, seq, state in writes:
        blob = _dumps(state)
        objects.append((key, "gcounter", part, blob))
        segments.setdefault(part, []).append((seq, key, "gcounter", blob))
        summaries[part] = max(seq, summaries.get(part, 0))
    # The log as the store keeps it: one segment row per (partition, origin) per transaction.
    log = [
        (part, ORIGIN, min(e[0] for e in seg), max(e[0] for e in seg), json.dumps(seg))
        for part, seg in segments.items()
    ]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO objects (key, kind, partition, state) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key, kind) DO UPDATE SET partition = excluded.partition,"
        " state = excluded.state",
        objects,
    )
    conn.executemany(
        "INSERT INTO log_segments (partition, origin, first_seq, last_seq, entries)"
        " VALUES (?, ?, ?, ?, ?)",
        log,
    )
    conn.executemany(
        "INSERT INTO summaries (partition, ctx) VALUES (?, ?) ON CONFLICT (partition)"
        " DO UPDATE SET ctx = excluded.ctx",
        [(p, _dumps({"vv": {ORIGIN: n}, "cloud": []})) for p, n in summaries.items()],
    )
    conn.execute("COMMIT")


def raw_batches(path: Path, synchronous: str, writes: list[Any], size: int) -> float:
    conn = _raw_db(path, synchronous)
    start = time.perf_counter()
    for i in range(0, len(writes), size):
        _raw_commit(conn, writes[i : i + size])
    elapsed = time.perf_counter() - start
    conn.close()
    return len(writes) / elapsed


# -- the store -------------------------------------------------------------------------------


async def store_batches(path: Path, synchronous: str, writes: list[Any], size: int) -> float:
    batches = [_batch(writes[i : i + size]) for i in range(0, len(writes), size)]
    async with await Store.open(path, synchronous=synchronous) as store:
        start = time.perf_counter()
        for batch in batches:
            await store.apply(batch)
        elapsed = time.perf_counter() - start
    return len(writes) / elapsed


async def store_concurrent(path: Path, synchronous: str, writes: list[Any], writers: int) -> float:
    rounds = [
        [_batch([w]) for w in writes[i : i + writers]] for i in range(0, len(writes), writers)
    ]
    async with await Store.open(path, synchronous=synchronous) as store:
        start = time.perf_counter()
        for batches in rounds:
            await asyncio.gather(*(store.apply(b) for b in batches))
        elapsed = time.perf_counter() - start
    return len(writes) / elapsed


# -- driver ----------------------------------------------------------------------------------


def _medians(runs: int, fns: list[Callable[[Path], float]], workdir: Path) -> list[float]:
    """Median of ``runs`` runs of each fn, interleaved (store, raw, store, raw, ...) so that a
    noisy disk hits both sides alike."""
    results: list[list[float]] = [[] for _ in fns]
    for i in range(runs):
        for j, fn in enumerate(fns):
            case_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"run{i}-{j}-"))
            try:
                results[j].append(fn(case_dir / "bench.sqlite"))
            finally:
                shutil.rmtree(case_dir, ignore_errors=True)
    return [statistics.median(r) for r in results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--dir",
        type=Path,
        default=ROOT / "benchmarks" / "out",
        help="where the database files go (a real disk, not tmpfs)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    sync = args.synchronous
    rng = random.Random(args.seed)

    cases: list[tuple[str, int, str, float]] = []  # (name, writes, vs, target ratio)
    results: list[dict[str, Any]] = []

    def run(
        name: str,
        n: int,
        store_fn: Callable[[Path, list[Any]], float],
        raw_fn: Callable[[Path, list[Any]], float],
        raw_name: str,
        target: float,
    ) -> None:
        writes = _writes(n, rng)
        s, r = _medians(
            args.repeat, [lambda p: store_fn(p, writes), lambda p: raw_fn(p, writes)], args.dir
        )
        results.append(
            {
                "case": name,
                "writes": n,
                "store_per_s": round(s),
                "raw": raw_name,
                "raw_per_s": round(r),
                "ratio": round(s / r, 2),
                "target": target,
                "ok": (s / r >= target) if target else None,
            }
        )
        cases.append((name, n, raw_name, target))
        print(
            f"{name:<28} {n:>6} writes  store {s:>9,.0f}/s  raw {r:>9,.0f}/s "
            f"({raw_name})  ratio {s / r:5.2f}"
            + (f"  target >= {target} {'ok' if s / r >= target else 'MISSED'}" if target else ""),
            flush=True,
        )

    print(
        f"store_bench: SQLite WAL, synchronous={sync}, median of {args.repeat}, files in {args.dir}"
    )
    for size, n, target in ((1, 300, 0.0), (100, 5000, 0.0), (1000, 10_000, 0.6)):
        run(
            f"batches of {size}",
            n,
            lambda p, w, size=size: asyncio.run(store_batches(p, sync, w, size)),
            lambda p, w, size=size: raw_batches(p, sync, w, size),
            "executemany per batch" if size > 1 else "one commit per write",
            target,
        )
    # Raw one-commit-per-write is timed on the first 500 writes: its rate does not depend on
    # the count, and 2000 fsyncs per run would dominate the benchmark's time.
    run(
        "1000 concurrent writers",
        2000,
        lambda p, w: asyncio.run(store_concurrent(p, sync, w, 1000)),
        lambda p, w: raw_batches(p, sync, w[:500], 1),
        "one commit per write",
        4.0,
    )
    if args.json:
        print(
            json.dumps({"synchronous": sync, "repeat": args.repeat, "results": results}, indent=2)
        )
    return 0 if all(r["ok"] is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
