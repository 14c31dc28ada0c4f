"""Issue 14, the goals across peers: w=2 latency, writes in flight, bytes per change, growth.

Run through ``speed_bench.py`` (``--goals w2,inflight,bytes,growth``); each function here
returns the goal's table.

* ``w2`` -- **w=2 across two peers on loopback**: B in its own process (``bench_child.py``,
  listening), A in this one dialling it, ``n=2``, both at ``synchronous=FULL``, then both
  at ``NORMAL``; A awaits ``lww(key).set(i, w=2)`` for ``N`` new keys one after the other
  (the ack means B has it on disk). References in the same run: a *raw durable round trip*
  (A commits the store's rows for one write in raw sqlite3, sends 200 B over a plain
  ``websockets`` connection to a process that commits them as one row in its own SQLite
  file, at the same level, and acks) and a *raw websocket round trip* (the same without
  SQLite). At FULL both sides sync to disk in turn (a peer sends nothing that depends on a
  change before the change is durable), so the raw durable round trip, two syncs, bounds
  the p50 from below. Goal: p50 at most 1.5 ms; p99 reported.
* ``inflight`` -- **1, 10, 100 and 10,000 writes in flight against pycrdt-websocket**: the
  ``e2e_bench.py`` topology (A and B dial a relay; three peers in one process, one SQLite
  file each, FULL, ``n=3, w=1``; half ``orset.add``, half ``ormap.update`` as in that
  benchmark), issued in windows of ``k``: the next window starts when B's subscription shows
  the whole window (B notifies after its commit, and the relay commits before it forwards,
  so the window is durable on all three). pycrdt-websocket: ``k`` map sets on A, then wait
  until B's map holds them (nothing durable; B's additions are counted from its map events,
  as pycrdt's ``len(Map)`` walks the whole map). Goal: shoal ahead in every row, >= 8x at
  10,000.
* ``bytes`` -- **one change to a 100k-element ORSet**: two peers in two processes holding a
  converged ORSet of 100k elements (``dbgen.py``), B dialling A through a counting TCP proxy
  (``benchlib.CountingProxy``; anti-entropy every hour, so that nothing else is sent); A adds
  one element with ``w=2``; the TCP payload bytes of the link each way (A->B: the change;
  B->A: its ack), median of 5 changes. pycrdt-websocket: A's ``Map`` of 100k keys, one set;
  the bytes from A to the server (one hop). Goal: at most 128 B per hop.
* ``growth`` -- **cost per update at 100k updates vs at 10k**: ``e2e_bench.run_shoal`` at
  both counts (windows of 1000, durable on relay and B); the reference is e2e_bench's
  pycrdt-websocket scenario (every set, then wait until B holds them all) counted as in
  ``inflight`` (``e2e_bench.run_pycrdt`` calls ``len(map)`` on every event, which costs
  O(n) in pycrdt and would make the reference's own growth quadratic). Goal: shoal's time per
  update at 100k within 1.1x of that at 10k.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import benchlib
import dbgen
import e2e_bench
import store_bench
from benchlib import Child, CountingProxy, GoalTable, Spread, percentile

__all__ = ["goal_bytes", "goal_growth", "goal_inflight", "goal_w2"]

W2_GOAL_P50_MS = 1.5
INFLIGHT_GOAL_AT_10K = 8.0
BYTES_GOAL = 128
GROWTH_GOAL = 1.1
WARMUP = 20
WINDOW_LIMIT_S = 30.0  # a window of writes not seen on B by then: the run fails
SECRET = benchlib.SECRET.decode()


async def _connected(peer: Any, limit: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not (await peer.status())["connected"]:
        if loop.time() > deadline:
            raise TimeoutError(f"no link within {limit:.0f} s")
        await asyncio.sleep(0.05)


def _bounded(coro: Any, limit: float) -> Any:
    """Run ``coro`` in a fresh event loop, within ``limit`` seconds (else TimeoutError)."""
    return asyncio.run(asyncio.wait_for(coro, limit))


def _lat(samples: list[float], total: float) -> dict[str, float]:
    return {
        "rate": len(samples) / total,
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
    }


# --------------------------------------------------------------------------- w=2


async def _shoal_w2(n: int, level: str) -> dict[str, float]:
    with benchlib.scratch("w2") as folder:
        return await _shoal_w2_in(folder, n, level)


async def _shoal_w2_in(folder: Path, n: int, level: str) -> dict[str, float]:
    opts = json.dumps({"n": 2, "w": 1, "secret": SECRET, "synchronous": level})
    b = await Child.start("peer-B", folder, "peer", "--db", str(folder / "b.db"), "--listen",
                          "127.0.0.1:0", "--options", opts)  # fmt: skip
    async with b:
        url = (await b.event("ready", 60.0))["url"]
        peer_class = benchlib.load_peer()
        async with peer_class.open(
            str(folder / "a.db"), peers=[url], n=2, w=2, secret=SECRET, synchronous=level
        ) as a:
            await _connected(a)
            for i in range(WARMUP):
                await a.lww(f"warm-{i}").set(i, w=2)
            samples = []
            start = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                await a.lww(f"key-{i}").set(i, w=2)
                samples.append(time.perf_counter() - t)
            total = time.perf_counter() - start
    return _lat(samples, total)


async def _raw_w2(n: int, durable: bool, seed: int, level: str) -> dict[str, float]:
    with benchlib.scratch("w2-raw") as folder:
        return await _raw_w2_in(folder, n, durable, seed, level)


async def _raw_w2_in(
    folder: Path, n: int, durable: bool, seed: int, level: str
) -> dict[str, float]:
    from websockets.asyncio.client import connect

    db = ["--db", str(folder / "echo.db"), "--synchronous", level]
    echo = await Child.start("raw-echo", folder, "raw-echo", *(db if durable else []))
    conn = store_bench._raw_db(folder / "raw.db", level) if durable else None
    writes = store_bench._writes(n + WARMUP, random.Random(seed))
    payload = bytes(200)
    try:
        async with echo:
            url = (await echo.event("ready", 30.0))["url"]
            async with connect(url, compression=None) as ws:
                samples = []
                start = time.perf_counter()
                for i, w in enumerate(writes):
                    if i == WARMUP:
                        samples, start = [], time.perf_counter()
                    t = time.perf_counter()
                    if conn is not None:
                        store_bench._raw_commit(conn, [w])
                    await ws.send(payload)
                    await ws.recv()
                    samples.append(time.perf_counter() - t)
                total = time.perf_counter() - start
    finally:
        if conn is not None:
            conn.close()
    return _lat(samples, total)


def goal_w2(args: argparse.Namespace) -> GoalTable:
    n = 100 if args.quick else 500
    table = GoalTable(
        "w=2 across two peers on loopback (two processes): latency of one write",
        f"p50 <= {W2_GOAL_P50_MS} ms; p99 reported",
    )
    for level in ("FULL", "NORMAL"):
        print(f"  w=2, synchronous={level}, {n} writes per run", flush=True)
        out = benchlib.interleaved(
            [
                ("shoal w=2", lambda left, lv=level: _bounded(_shoal_w2(n, lv), left)),
                (
                    "raw durable round trip",
                    lambda left, lv=level: _bounded(_raw_w2(n, True, args.seed, lv), left),
                ),
                (
                    "raw websocket round trip",
                    lambda left, lv=level: _bounded(_raw_w2(n, False, args.seed, lv), left),
                ),
            ],
            args.runs,
            args.budget,
        )
        shoal, raw, net = (out[k].results for k in out)
        if not shoal:
            table.add(f"p50, {level}", out["shoal w=2"].failure or "no run", "", "n/a", False)
            continue
        for q in ("p50", "p99"):
            got = Spread([r[f"{q}_ms"] for r in shoal])
            ref = Spread([r[f"{q}_ms"] for r in raw])
            floor = Spread([r[f"{q}_ms"] for r in net])
            table.add(
                f"{q} latency, {level}",
                got.text("{:.2f}", " ms"),
                f"raw durable {ref.text('{:.2f}', ' ms')}; websocket alone "
                f"{floor.text('{:.2f}', ' ms')}",
                f"{got.median / ref.median:.1f}x raw durable" if ref.values else "n/a",
                got.median <= W2_GOAL_P50_MS if q == "p50" else None,
            )
        rate = Spread([r["rate"] for r in shoal])
        table.add(
            f"writes/s, {level}",
            rate.text("{:,.0f}", "/s"),
            Spread([r["rate"] for r in raw]).text(),
            "",
        )
    return table


# --------------------------------------------------------------------------- in flight


async def _shoal_inflight(k: int, total: int) -> float:
    with benchlib.scratch("inflight") as folder:
        return await _shoal_inflight_in(folder, k, total)


async def _shoal_inflight_in(folder: Path, k: int, total: int) -> float:
    seen = {"set": 0, "map": 0}
    changed = asyncio.Event()

    async def follow(sub: Any, name: str) -> None:
        async for value in sub:
            seen[name] = len(value)
            changed.set()

    async with AsyncExitStack() as stack:
        _paths, a, _relay, b = await e2e_bench.three_peers(stack, folder)
        subs = [b.subscribe(e2e_bench.SET_KEY), b.subscribe(e2e_bench.MAP_KEY)]
        followers = [
            asyncio.create_task(follow(sub, name))
            for sub, name in zip(subs, ("set", "map"), strict=True)
        ]
        items, table = a.orset(e2e_bench.SET_KEY), a.ormap(e2e_bench.MAP_KEY)

        def op(i: int) -> Any:
            if i % 2 == 0:
                return items.add(f"item-{i}")
            return table.update(f"k{i}", "lww", lambda reg, i=i: reg.set(i))

        start = time.perf_counter()
        for low in range(0, total, k):
            high = min(total, low + k)
            await asyncio.gather(*(op(i) for i in range(low, high)))
            want = ((high + 1) // 2, high // 2)
            while seen["set"] < want[0] or seen["map"] < want[1]:
                changed.clear()
                await asyncio.wait_for(changed.wait(), WINDOW_LIMIT_S)
        took = time.perf_counter() - start
        for sub in subs:
            sub.close()
        await asyncio.gather(*followers)
    return took


async def _pycrdt_inflight(k: int, total: int) -> float:
    """pycrdt-websocket, ``k`` map sets at a time: seconds until B holds all ``total``."""
    async with benchlib.pycrdt_pair() as pair:
        changed = asyncio.Event()
        added = [0]

        def seen(event: Any) -> None:
            # Counted from the events: pycrdt's len(Map) walks the whole map (O(n)).
            added[0] += sum(1 for c in event.keys.values() if c["action"] == "add")
            changed.set()

        pair.map_b.observe(seen)
        start = time.perf_counter()
        for low in range(0, total, k):
            high = min(total, low + k)
            for i in range(low, high):
                pair.map_a[f"k{i}"] = i  # one transaction, one update message, per set
            while added[0] < high:
                changed.clear()
                await asyncio.wait_for(changed.wait(), WINDOW_LIMIT_S)
        took = time.perf_counter() - start
        if len(pair.map_b) != total:
            raise AssertionError(f"B holds {len(pair.map_b)} keys, expected {total}")
        return took


def goal_inflight(args: argparse.Namespace) -> GoalTable:
    table = GoalTable(
        "writes in flight, A -> relay/server -> B: updates/s (shoal durable on all three)",
        f"shoal ahead of pycrdt-websocket in every row; >= {INFLIGHT_GOAL_AT_10K:.0f}x at 10,000",
    )
    sizes = {1: 100, 10: 500, 100: 2000, 10_000: 10_000} if args.quick else {
        1: 300, 10: 2000, 100: 5000, 10_000: 10_000}  # fmt: skip
    missing = benchlib.pycrdt_missing()
    for k, total in sizes.items():
        print(f"  {k:,} in flight, {total:,} updates per run", flush=True)
        cases = [("shoal", lambda left, k=k, t=total: _bounded(_shoal_inflight(k, t), left))]
        if missing is None:
            cases.append(
                ("pycrdt", lambda left, k=k, t=total: _bounded(_pycrdt_inflight(k, t), left))
            )
        out = benchlib.interleaved(cases, args.runs, args.budget)
        shoal = Spread([total / s for s in out["shoal"].results])
        ref = Spread([total / s for s in out["pycrdt"].results]) if missing is None else Spread()
        if not shoal.values or not ref.values:
            why = out["shoal"].failure or missing or "no run"
            table.add(f"{k:,} in flight", shoal.text("{:,.0f}", "/s"), why, "n/a", False)
            continue
        ratio = shoal.median / ref.median
        need = INFLIGHT_GOAL_AT_10K if k == 10_000 else 1.0
        table.add(
            f"{k:,} in flight ({total:,} updates)",
            shoal.text("{:,.0f}", "/s"),
            f"pycrdt-websocket {ref.text('{:,.0f}', '/s')}",
            f"{ratio:.2f}x",
            ratio > need if need == 1.0 else ratio >= need,
        )
    return table


# --------------------------------------------------------------------------- bytes per change


async def _shoal_bytes(built: dbgen.Built, changes: int) -> dict[str, list[int]]:
    with benchlib.scratch("bytes") as folder:
        return await _shoal_bytes_in(folder, built, changes)


async def _shoal_bytes_in(folder: Path, built: dbgen.Built, changes: int) -> dict[str, list[int]]:
    quiet_ae = {"secret": SECRET, "anti_entropy_interval": 3600.0}
    b = await Child.start("peer-B", folder, "peer", "--db",
                          str(dbgen.copy_db(built.b, folder / "b.db")), "--listen",
                          "127.0.0.1:0", "--options", json.dumps(quiet_ae))  # fmt: skip
    out: dict[str, list[int]] = {"a_to_b": [], "b_to_a": [], "payload_out": [], "payload_in": []}
    async with b:
        url = (await b.event("ready", 120.0))["url"]
        async with CountingProxy.to_url(url) as proxy:
            via = await proxy.start()
            peer_class = benchlib.load_peer()
            a_path = dbgen.copy_db(built.a, folder / "a.db")
            async with peer_class.open(str(a_path), peers=[via], **quiet_ae) as a:
                await _connected(a, 120.0)
                await benchlib.settle(proxy.counts, quiet=1.0, limit=60.0)
                handle = a.orset("big:set")
                for j in range(changes):
                    up0, down0 = proxy.counts()
                    s0 = _link(await a.status())
                    await handle.add(f"new element {j}", w=2)
                    await benchlib.settle(proxy.counts, quiet=0.3, limit=10.0)
                    up1, down1 = proxy.counts()
                    s1 = _link(await a.status())
                    out["a_to_b"].append(up1 - up0)
                    out["b_to_a"].append(down1 - down0)
                    out["payload_out"].append(s1[0] - s0[0])
                    out["payload_in"].append(s1[1] - s0[1])
    return out


def _link(status: dict[str, Any]) -> tuple[int, int]:
    peers = status["peers"].values()
    return sum(p["bytes_out"] for p in peers), sum(p["bytes_in"] for p in peers)


async def _pycrdt_bytes(changes: int, deflate: bool) -> dict[str, list[int]]:
    items = {f"element {i:06d}": True for i in range(100_000)}
    out: dict[str, list[int]] = {"a_to_server": [], "server_to_b": []}
    async with benchlib.pycrdt_pair(items, count_a=True, count_b=True, deflate=deflate) as pair:
        pa, pb = pair.proxy_a, pair.proxy_b
        assert pa is not None and pb is not None
        await benchlib.settle(lambda: (pa.counts(), pb.counts()), quiet=1.0, limit=60.0)
        changed = asyncio.Event()
        pair.map_b.observe(lambda _e: changed.set())
        for j in range(changes):
            a0, b0 = pa.up, pb.down
            changed.clear()
            pair.map_a[f"new element {j}"] = True
            await asyncio.wait_for(changed.wait(), 10.0)
            await benchlib.settle(lambda: (pa.counts(), pb.counts()), quiet=0.3, limit=10.0)
            out["a_to_server"].append(pa.up - a0)
            out["server_to_b"].append(pb.down - b0)
    return out


def goal_bytes(args: argparse.Namespace) -> GoalTable:
    changes = 5
    table = GoalTable(
        "one change to a 100k-element ORSet: bytes on the wire per hop (TCP payload)",
        f"<= {BYTES_GOAL} B per hop",
    )
    print(f"  bytes of one change, {changes} changes", flush=True)
    built = dbgen.ensure("orset", 100_000, "compacted", pair=True)
    shoal = _bounded(_shoal_bytes(built, changes), args.budget)
    print(f"    shoal: {shoal}", flush=True)
    refs: dict[bool, dict[str, list[int]]] = {}
    if benchlib.pycrdt_missing() is None:
        for deflate in (True, False):
            refs[deflate] = _bounded(_pycrdt_bytes(changes, deflate), args.budget)
            print(f"    pycrdt-websocket, deflate={deflate}: {refs[deflate]}", flush=True)
    up = Spread([float(x) for x in shoal["a_to_b"]])
    payload = Spread([float(x) for x in shoal["payload_out"]])
    hops = {d: Spread([float(x) for x in r["a_to_server"]]).median for d, r in refs.items()}
    table.add(
        "the change, A -> B",
        f"{up.median:,.0f} B (frame {payload.median:,.0f} B: deflated on the link's stream, "
        "with its 16-byte tag)",
        f"pycrdt-websocket A -> server {hops[False]:,.0f} B without compression, "
        f"{hops[True]:,.0f} B with websockets' default permessage-deflate"
        if refs
        else "n/a",
        f"{up.median / hops[False]:.1f}x uncompressed, {up.median / hops[True]:.1f}x deflated"
        if refs
        else "n/a",
        up.median <= BYTES_GOAL,
    )
    down = Spread([float(x) for x in shoal["b_to_a"]])
    table.add(
        "its ack, B -> A",
        f"{down.median:,.0f} B (message payload {Spread(shoal['payload_in']).median:,.0f} B)",
        "pycrdt-websocket has no ack" if refs else "n/a",
        "",
    )
    return table


# --------------------------------------------------------------------------- growth


def goal_growth(args: argparse.Namespace) -> GoalTable:
    small, big = (1_000, 10_000) if args.quick else (10_000, 100_000)
    table = GoalTable(
        f"cost per update at {big:,} updates vs at {small:,} (e2e_bench: A -> relay -> B)",
        f"shoal's time per update at {big:,} <= {GROWTH_GOAL}x that at {small:,}",
    )
    print(f"  growth: {small:,} and {big:,} updates", flush=True)
    # e2e_bench bounds each wait by its WAIT_LIMIT_S (60 s), too short for 100k updates on a
    # loaded machine: this goal's runs are bounded by the budget instead.
    limit = e2e_bench.WAIT_LIMIT_S = max(e2e_bench.WAIT_LIMIT_S, args.budget)
    cases = [
        (f"shoal {small}", lambda left: e2e_bench.run_shoal(small, 1000, min(left, limit))),
        (f"shoal {big}", lambda left: e2e_bench.run_shoal(big, 1000, min(left, limit))),
    ]
    if benchlib.pycrdt_missing() is None:
        # e2e_bench's scenario (every set, then wait for B), counted without len() per event.
        cases += [
            (f"pycrdt {small}", lambda left: _bounded(_pycrdt_inflight(small, small), left)),
            (f"pycrdt {big}", lambda left: _bounded(_pycrdt_inflight(big, big), left)),
        ]
    out = benchlib.interleaved(cases, args.runs, args.budget)

    def per_update(label: str, n: int) -> Spread:
        return Spread([s / n * 1e6 for s in out[label].results]) if label in out else Spread()

    s_small, s_big = per_update(f"shoal {small}", small), per_update(f"shoal {big}", big)
    p_small, p_big = per_update(f"pycrdt {small}", small), per_update(f"pycrdt {big}", big)
    ref = (
        f"pycrdt-websocket {p_small.text('{:.0f}', ' us')} -> {p_big.text('{:.0f}', ' us')} "
        f"({p_big.median / p_small.median:.2f}x)"
        if p_small.values and p_big.values
        else "n/a"
    )
    if not s_small.values or not s_big.values:
        why = out[f"shoal {big}"].failure or out[f"shoal {small}"].failure or "no run"
        mark = table.note(why)
        table.add("time per update", f"did not finish {mark}", ref, "n/a", False)
        return table
    growth = s_big.median / s_small.median
    table.add(
        "time per update",
        f"{s_small.text('{:.0f}', ' us')} -> {s_big.text('{:.0f}', ' us')}",
        ref,
        f"{growth:.2f}x",
        growth <= GROWTH_GOAL,
    )
    return table
