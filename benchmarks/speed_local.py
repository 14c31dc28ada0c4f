"""Issue 14, the local goals: one durable write in flight, and 1000 concurrent writers.

Run through ``speed_bench.py`` (``--goals serial,concurrent``); each function here returns
the goal's table. The reference is raw ``sqlite3`` writing the same rows as the store does
for one write (the key's object, its log segment, its partition's summary: ``store_bench``'s
``_raw_commit``), at the same ``synchronous`` level, in the same schema, one commit per
write, runs interleaved with shoal's.

* ``serial`` -- **one write in flight, w=1, durable**: a lone ``Peer`` (no links) awaits
  ``peer.lww(key).set(i)`` for ``N`` new keys one after the other; latency of each await.
  Goal: at least 0.5x raw sqlite3's writes/s, p50 latency at most 2x a raw commit.
* ``concurrent`` -- **1000 concurrent single writers at synchronous=NORMAL**: the store
  (``store_bench.store_concurrent``: 1000 tasks each ``apply`` one write, two rounds) and a
  lone ``Peer`` (1000 concurrent ``lww(key).set`` futures gathered, two rounds), each against
  raw sqlite3 one commit per write. Goal: at least 4x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import time
from pathlib import Path
from typing import Any

import benchlib
import store_bench
from benchlib import GoalTable, Spread, percentile

__all__ = ["goal_concurrent", "goal_serial"]

WARMUP = 20
SERIAL_GOAL_RATE = 0.5
SERIAL_GOAL_P50 = 2.0
CONCURRENT_GOAL = 4.0


def _latency(samples: list[float], total: float) -> dict[str, float]:
    return {
        "rate": len(samples) / total,
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
    }


def _fresh(label: str) -> Path:
    return benchlib.run_folder(label) / "bench.db"


# --------------------------------------------------------------------------- one in flight


async def _peer_serial(path: Path, synchronous: str, n: int) -> dict[str, float]:
    peer_class = benchlib.load_peer()
    async with peer_class.open(str(path), synchronous=synchronous) as peer:
        for i in range(WARMUP):
            await peer.lww(f"warm-{i}").set(i)
        samples = []
        start = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            await peer.lww(f"key-{i}").set(i)
            samples.append(time.perf_counter() - t)
        total = time.perf_counter() - start
    return _latency(samples, total)


def peer_serial(synchronous: str, n: int) -> dict[str, float]:
    path = _fresh("serial")
    try:
        return asyncio.run(_peer_serial(path, synchronous, n))
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def raw_serial(synchronous: str, n: int, seed: int) -> dict[str, float]:
    """Raw sqlite3, one commit per write of the store's rows; latency of each commit."""
    path = _fresh("serial-raw")
    writes = store_bench._writes(n + WARMUP, random.Random(seed))
    conn = store_bench._raw_db(path, synchronous)
    try:
        for w in writes[:WARMUP]:
            store_bench._raw_commit(conn, [w])
        samples = []
        start = time.perf_counter()
        for w in writes[WARMUP:]:
            t = time.perf_counter()
            store_bench._raw_commit(conn, [w])
            samples.append(time.perf_counter() - t)
        total = time.perf_counter() - start
    finally:
        conn.close()
        shutil.rmtree(path.parent, ignore_errors=True)
    return _latency(samples, total)


def goal_serial(args: argparse.Namespace) -> GoalTable:
    table = GoalTable(
        "one write in flight, w=1, durable: a lone peer vs raw sqlite3 one commit per write",
        f"writes/s >= {SERIAL_GOAL_RATE}x raw at the same synchronous level; "
        f"p50 latency <= {SERIAL_GOAL_P50:.0f}x a raw commit",
    )
    n = 100 if args.quick else 500
    for level in ("FULL", "NORMAL"):
        print(f"  one in flight, synchronous={level}, {n} writes per run", flush=True)
        out = benchlib.interleaved(
            [
                ("shoal", lambda _left, level=level: peer_serial(level, n)),
                ("raw sqlite3", lambda _left, level=level: raw_serial(level, n, args.seed)),
            ],
            args.runs,
            args.budget,
        )
        shoal, raw = out["shoal"].results, out["raw sqlite3"].results
        if not shoal or not raw:
            table.add(level, out["shoal"].failure or "no run", "", "n/a", False)
            continue
        rate = Spread([r["rate"] for r in shoal])
        raw_rate = Spread([r["rate"] for r in raw])
        ratio = rate.median / raw_rate.median
        table.add(
            f"writes/s, {level}",
            rate.text("{:,.0f}", "/s"),
            raw_rate.text("{:,.0f}", "/s"),
            f"{ratio:.2f}x",
            ratio >= SERIAL_GOAL_RATE,
        )
        p50 = Spread([r["p50_ms"] for r in shoal])
        raw_p50 = Spread([r["p50_ms"] for r in raw])
        p50_ratio = p50.median / raw_p50.median
        table.add(
            f"p50 latency, {level}",
            p50.text("{:.2f}", " ms"),
            raw_p50.text("{:.2f}", " ms"),
            f"{p50_ratio:.1f}x",
            p50_ratio <= SERIAL_GOAL_P50,
        )
        table.add(
            f"p99 latency, {level}",
            Spread([r["p99_ms"] for r in shoal]).text("{:.2f}", " ms"),
            Spread([r["p99_ms"] for r in raw]).text("{:.2f}", " ms"),
            "",
        )
    return table


# --------------------------------------------------------------------------- 1000 writers


async def _peer_concurrent(path: Path, synchronous: str, total: int, writers: int) -> float:
    peer_class = benchlib.load_peer()
    async with peer_class.open(str(path), synchronous=synchronous) as peer:
        await asyncio.gather(*(peer.lww(f"warm-{i}").set(i) for i in range(writers)))
        start = time.perf_counter()
        for r in range(total // writers):
            await asyncio.gather(*(peer.lww(f"key-{r}-{i}").set(i) for i in range(writers)))
        return total / (time.perf_counter() - start)


def peer_concurrent(synchronous: str, total: int, writers: int) -> float:
    path = _fresh("concurrent")
    try:
        return asyncio.run(_peer_concurrent(path, synchronous, total, writers))
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def store_concurrent(synchronous: str, writes: list[Any], writers: int) -> float:
    path = _fresh("concurrent-store")
    try:
        return asyncio.run(store_bench.store_concurrent(path, synchronous, writes, writers))
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def raw_per_write(synchronous: str, writes: list[Any]) -> float:
    path = _fresh("concurrent-raw")
    try:
        return store_bench.raw_batches(path, synchronous, writes, 1)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def goal_concurrent(args: argparse.Namespace) -> GoalTable:
    level, writers, total = "NORMAL", 1000, 2000
    table = GoalTable(
        f"1000 concurrent single writers, synchronous={level}, vs raw one commit per write",
        f">= {CONCURRENT_GOAL:.0f}x raw sqlite3",
    )
    writes = store_bench._writes(total, random.Random(args.seed))
    print(f"  1000 concurrent writers, {total} writes per run, raw timed on 500", flush=True)
    out = benchlib.interleaved(
        [
            ("store", lambda _left: store_concurrent(level, writes, writers)),
            ("peer", lambda _left: peer_concurrent(level, total, writers)),
            ("raw sqlite3", lambda _left: raw_per_write(level, writes[:500])),
        ],
        args.runs,
        args.budget,
    )
    raw = Spread(out["raw sqlite3"].results)
    for label, what in (("store", "store.Store.apply"), ("peer", "Peer, lww(key).set")):
        got = Spread(out[label].results)
        if not got.values or not raw.values:
            table.add(what, out[label].failure or "no run", "", "n/a", False)
            continue
        ratio = got.median / raw.median
        table.add(
            f"writes/s, {what}",
            got.text("{:,.0f}", "/s"),
            raw.text("{:,.0f}", "/s"),
            f"{ratio:.2f}x",
            ratio >= CONCURRENT_GOAL,
        )
    return table
