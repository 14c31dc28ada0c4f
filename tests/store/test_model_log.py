"""Seeded random runs of the log against an in-memory model (both backends)."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from sqlalchemy import insert

import crdt
from store import SEGMENT_COLUMNS, Batch, LogRow, Store, log_segments, pack_segments, sql
from tests.store.conftest import Backend

# More seeds when hunting: SHOAL_MODEL_SEEDS=100.
SEEDS = int(os.environ.get("SHOAL_MODEL_SEEDS", "3"))
PARTS = 4
ORIGINS = ["A", "B", "AB", "a", "é", "Z", "\U0001f600", "A\x7f"]
KEYS = ["k", "ky", "ké", "k\U0001f600", "kk", "kkk", "\uffff", "\ud7ff", "K"]


def part_of(key: str) -> int:
    return sum(ord(ch) for ch in key) % PARTS


def delta(origin: str, n: int) -> dict[str, Any]:
    c = crdt.GCounter()
    c.increment(origin, n)
    return c.to_dict()


def row(origin: str, seq: int, key: str, n: int) -> LogRow:
    return LogRow(origin, part_of(key), seq, key, "gcounter", delta(origin, n))


class Model:
    def __init__(self) -> None:
        # (partition, origin) -> seq -> (key, n) of the first stored copy
        self.log: dict[tuple[int, str], dict[int, tuple[str, int]]] = {}

    def append(self, rows: list[LogRow]) -> None:
        for r in rows:
            self.log.setdefault((r.partition, r.origin), {}).setdefault(
                r.seq, (r.key, r.delta["counts"][r.origin])
            )

    def compact(self, part: int, wm: dict[str, int]) -> int:
        gone = 0
        for (p, origin), by_seq in self.log.items():
            if p != part:
                continue
            mark = wm.get(origin, 0)
            for seq in [s for s in by_seq if s <= mark]:
                del by_seq[seq]
                gone += 1
        return gone

    def entries(self) -> list[tuple[str, int, int, str, int]]:
        return sorted(
            (origin, p, seq, key, n)
            for (p, origin), by_seq in self.log.items()
            for seq, (key, n) in by_seq.items()
        )

    def missing(self, part: int, vv: dict[str, int], cloud: set[tuple[str, int]]) -> list[Any]:
        return sorted(
            (origin, seq, key, n)
            for (p, origin), by_seq in self.log.items()
            if p == part
            for seq, (key, n) in by_seq.items()
            if seq > vv.get(origin, 0) and (origin, seq) not in cloud
        )


async def append_raw(store: Store, rows: list[LogRow]) -> None:
    """One segment per (partition, origin), as given (seq order inside it), one statement
    each, bypassing prepare's dedup: dots may repeat across segments."""
    groups: dict[tuple[int, str], dict[int, LogRow]] = {}
    for r in rows:
        groups.setdefault((r.partition, r.origin), {}).setdefault(r.seq, r)
    segs = []
    for (p, origin), by_seq in groups.items():
        ents = [(s, by_seq[s].key, "gcounter", sql.encode(by_seq[s].delta)) for s in sorted(by_seq)]
        segs.extend(pack_segments(p, origin, ents))
    async with store.engine.begin() as conn:
        for seg in segs:
            await conn.execute(insert(log_segments), [dict(zip(SEGMENT_COLUMNS, seg, strict=True))])


def as_tuple(r: LogRow) -> tuple[str, int, int, str, int]:
    return (r.origin, r.partition, r.seq, r.key, r.delta["counts"][r.origin])


@pytest.mark.parametrize("seed", range(SEEDS))
@pytest.mark.parametrize("cut", [None, (3, 10**9), (1000, 150)], ids=["plain", "n3", "b150"])
async def test_log_reads_match_a_model(
    backend: Backend, seed: int, cut: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if cut is not None:
        from store import schema

        monkeypatch.setattr(schema, "SEGMENT_MAX_ENTRIES", cut[0])
        monkeypatch.setattr(schema, "SEGMENT_MAX_BYTES", cut[1])
    rng = random.Random(seed)
    model = Model()
    counter = 0
    async with await backend.open(partitions=PARTS, partition_of=part_of) as store:
        for _step in range(40):
            op = rng.random()
            if op < 0.5:
                rows = []
                origins = rng.sample(ORIGINS, rng.randint(1, 3))
                for _ in range(rng.randint(1, 25)):
                    counter += 1
                    origin = rng.choice(origins)
                    rows.append(row(origin, rng.randint(1, 40), rng.choice(KEYS), counter))
                # prepare keeps the first of a dot within a batch too
                if rng.random() < 0.5:
                    await store.apply(Batch(log=tuple(rows)))
                else:
                    await append_raw(store, rows)
                # model: first within the batch, then per segment (same outcome)
                firsts: dict[tuple[int, str, int], LogRow] = {}
                for r in rows:
                    firsts.setdefault((r.partition, r.origin, r.seq), r)
                model.append(list(firsts.values()))
            elif op < 0.7:
                part = rng.randrange(PARTS)
                wm = {o: rng.randint(0, 30) for o in rng.sample(ORIGINS, rng.randint(1, 4))}
                expected = model.compact(part, wm)
                if rng.random() < 0.5:
                    got = await store.compact(part, wm)
                    assert got == expected
                else:
                    await store.apply(Batch(compact=((part, wm),)))
            else:
                part = rng.randrange(PARTS)
                vv = {o: rng.randint(0, 30) for o in rng.sample(ORIGINS, rng.randint(0, 4))}
                cloud = {
                    (rng.choice(ORIGINS), rng.randint(1, 40)) for _ in range(rng.randint(0, 5))
                }
                batch = rng.choice([1, 2, 3, 7, 500])
                got = [
                    (r.origin, r.seq, r.key, r.delta["counts"][r.origin])
                    async for page in store.deltas_missing(
                        part, {"vv": vv, "cloud": [list(d) for d in sorted(cloud)]}, batch
                    )
                    for r in page
                ]
                assert got == model.missing(part, vv, cloud), (vv, cloud, batch)
        loaded = await store.load()
        assert sorted(as_tuple(r) for r in loaded.log) == model.entries()
        # log-dot order: (partition, origin, seq)
        assert [(r.partition, r.origin, r.seq) for r in loaded.log] == sorted(
            (r.partition, r.origin, r.seq) for r in loaded.log
        )
        async with store.engine.connect() as conn:
            count = await conn.run_sync(sql.count_log)
        assert count == len(model.entries())
