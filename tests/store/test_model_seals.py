"""Seeded random runs: sealed log entries, hints (add, drop), peers, compaction and the
seal sweep, against an in-memory model (both backends)."""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any

import pytest
from sqlalchemy import select

import crdt
from store import Batch, HintIdRow, HintRow, LogRow, PeerRow, seals, writes
from store.schema import hints as hints_table
from store.schema import log_segments
from tests.store.conftest import Backend

# More seeds when hunting: SHOAL_MODEL_SEEDS=100.
SEEDS = int(os.environ.get("SHOAL_MODEL_SEEDS", "3"))
PARTS = 3
ORIGINS = ["A", "B", "é"]
KEYS = ["k", "kk", "ké", "x\U0001f600", "y"]
TARGETS = ["T1", "T2", "ü"]


def part_of(key: str) -> int:
    return sum(ord(ch) for ch in key) % PARTS


def delta(origin: str, n: int) -> dict[str, Any]:
    return crdt.GCounter().increment(origin, n).to_dict()


def seal_pool(rng: random.Random) -> list[tuple[str, str, str, str] | None]:
    return [None] + [
        (o, f"key{i}", f"dg{i}{o}", f"sig{rng.randrange(10**6)}") for o in ORIGINS for i in range(3)
    ]


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_seals_hints_peers_match_a_model(
    backend: Backend, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sweep due at almost every compaction, or as a peer runs them.
    monkeypatch.setattr(writes, "SWEEP_MIN", [1, 2, 256][seed % 3])
    rng = random.Random(seed)
    pool = seal_pool(rng)
    log: dict[tuple[int, str, int], tuple[str, int, Any]] = {}
    hints: dict[tuple[str, str, int, int], tuple[str, int, Any, int]] = {}
    peers: dict[str, PeerRow] = {}
    n = 0

    def entry() -> LogRow:
        nonlocal n
        n += 1
        origin, key = rng.choice(ORIGINS), rng.choice(KEYS)
        seal = rng.choice(pool)
        return LogRow(
            origin, part_of(key), rng.randint(1, 12), key, "gcounter", delta(origin, n), seal=seal
        )

    def make_batch() -> Batch:
        entries = tuple(entry() for _ in range(rng.randint(0, 8)))
        adds = tuple(
            HintRow(rng.choice(TARGETS), entry(), float(rng.randrange(10**6)) / 1000)
            for _ in range(rng.randint(0, 4))
        )
        drops = tuple(
            HintIdRow(
                rng.choice(TARGETS), rng.choice(ORIGINS), rng.randrange(PARTS), rng.randint(1, 12)
            )
            for _ in range(rng.randint(0, 3) if rng.random() < 0.5 else 0)
        )
        if hints and rng.random() < 0.5:
            t, o, p, s = rng.choice(sorted(hints))
            drops += (HintIdRow(t, o, p, s),)
        ps = tuple(
            PeerRow(
                rng.choice(TARGETS),
                address=rng.choice([None, "h:1", "h:2"]),
                last_seen=float(rng.randrange(10**6)) / 1000,
                forgotten=rng.random() < 0.3,
            )
            for _ in range(rng.randint(0, 2))
        )
        comp = ()
        if rng.random() < 0.3:
            comp = ((rng.randrange(PARTS), {o: rng.randint(0, 12) for o in ORIGINS}),)
        return Batch(log=entries, hints_add=adds, hints_drop=drops, peers=ps, compact=comp)

    def model_apply(b: Batch) -> None:
        for e in b.log:
            log.setdefault(
                (e.partition, e.origin, e.seq), (e.key, e.delta["counts"][e.origin], e.seal)
            )
        for h in b.hints_add:
            e = h.entry
            hints.setdefault(
                (h.target, e.origin, e.partition, e.seq),
                (e.key, e.delta["counts"][e.origin], e.seal, round(h.stored_at * 1000)),
            )
        for p in b.peers:
            peers[p.replica_id] = p
        for d in b.hints_drop:
            hints.pop((d.target, d.origin, d.partition, d.seq), None)
        for part, wm in b.compact:
            for dot in [d for d in log if d[0] == part and d[2] <= wm.get(d[1], 0)]:
                del log[dot]

    async with await backend.open(partitions=PARTS, partition_of=part_of) as store:
        for _step in range(30):
            r = rng.random()
            if r < 0.6:
                b = make_batch()
                await store.apply(b)
                model_apply(b)
            elif r < 0.8:
                batches = [make_batch() for _ in range(rng.randint(2, 5))]
                await asyncio.gather(*(store.apply(b) for b in batches))
                for b in batches:
                    model_apply(b)
            else:
                part = rng.randrange(PARTS)
                wm = {o: rng.randint(0, 12) for o in ORIGINS}
                await store.compact(part, wm)
                model_apply(Batch(compact=((part, wm),)))
                async with store.engine.connect() as conn:
                    stored = set((await conn.execute(select(seals.c.id))).scalars())
                    named: set[str] = set()
                    for (text,) in await conn.execute(select(log_segments.c.seals)):
                        named.update(json.loads(text))
                    named.update(
                        s
                        for s in (await conn.execute(select(hints_table.c.seal))).scalars()
                        if s is not None
                    )
                assert named <= stored
            loaded = await store.load()
            got_log = {
                (e.partition, e.origin, e.seq): (e.key, e.delta["counts"][e.origin], e.seal)
                for e in loaded.log
            }
            assert len(got_log) == len(loaded.log)
            assert got_log == log
            got_hints = {
                (h.target, h.entry.origin, h.entry.partition, h.entry.seq): (
                    h.entry.key,
                    h.entry.delta["counts"][h.entry.origin],
                    h.entry.seal,
                    round(h.stored_at * 1000),
                )
                for h in loaded.hints
            }
            assert got_hints == hints
            assert {k: (p.address, p.last_seen, p.forgotten) for k, p in loaded.peers.items()} == {
                k: (p.address, round(p.last_seen * 1000) / 1000, p.forgotten)
                for k, p in peers.items()
            }
            part = rng.randrange(PARTS)
            got_missing = [
                ((r.partition, r.origin, r.seq), r.seal)
                async for page in store.deltas_missing(
                    part, {"vv": {}, "cloud": []}, rng.choice([1, 3, 500])
                )
                for r in page
            ]
            assert got_missing == sorted(
                ((d, v[2]) for d, v in log.items() if d[0] == part),
                key=lambda x: (x[0][1], x[0][2]),
            )
