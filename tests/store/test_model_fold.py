"""Seeded random runs: log, checkpoints, compaction, fold mark, fold, inspect vs a model."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import insert

import crdt
from store import SEGMENT_COLUMNS, Batch, LogRow, ObjectRow, log_segments, pack_segments, sql
from store.report import read_keys, read_report
from tests.store.conftest import Backend

# More seeds when hunting: SHOAL_MODEL_SEEDS=100.
SEEDS = int(os.environ.get("SHOAL_MODEL_SEEDS", "3"))
PARTS = 3
KEYS = ["a", "a\u00e9", "a\U0001f600", "a\uffff", "ab", "a\x7f", "a~", "b", "", "ab\u00e9", "abc"]
KEYS = [k for k in KEYS if k]


def part_of(key: str) -> int:
    return sum(ord(ch) for ch in key) % PARTS


@dataclass(frozen=True)
class Folded(Batch):
    log_folded: bool = True


class Model:
    def __init__(self) -> None:
        self.truth: dict[tuple[str, str], Any] = {}
        self.seq: dict[int, int] = {}

    def live_keys(self) -> list[str]:
        return sorted({k for (k, _kind), s in self.truth.items() if s.is_live()})


def checkpoint(model: Model, keys: set[str]) -> tuple[ObjectRow, ...]:
    return tuple(
        ObjectRow(k, kind, s.to_dict()) for (k, kind), s in sorted(model.truth.items()) if k in keys
    )


async def check_inspect(store: Any, model: Model) -> None:
    async with store.engine.connect() as conn:
        report = await conn.run_sync(lambda c: read_report(c, "db"))
        pages: list[list[str]] = []
        keys_report = await conn.run_sync(lambda c: read_keys(c, "db", None, pages.append))
        pages_a: list[list[str]] = []
        await conn.run_sync(lambda c: read_keys(c, "db", "a\U0001f600", pages_a.append))
    want = {(k, kind): s.value for (k, kind), s in model.truth.items() if s.is_live()}
    got = {(o.key, o.kind): o.value for o in report.objects}
    assert got == {oid: sorted(v) if isinstance(v, frozenset) else v for oid, v in want.items()}
    assert report.deleted == sum(1 for s in model.truth.values() if not s.is_live())
    listed = [k for p in pages for k in p]
    assert listed == model.live_keys()
    dead = {k for (k, _), s in model.truth.items()} - set(model.live_keys())
    assert keys_report.deleted == len(dead)
    assert [k for p in pages_a for k in p] == [
        k for k in model.live_keys() if k.startswith("a\U0001f600")
    ]


async def check_folded(store: Any, model: Model) -> None:
    rows = await store.get_objects([k for k, _ in model.truth])
    got = {(r.key, r.kind): crdt.from_dict(r.state) for r in rows}
    assert set(got) == set(model.truth)
    for oid, state in model.truth.items():
        assert got[oid] == state, oid
    assert await store.keys() == model.live_keys()
    for prefix in ("a", "ab", "a\U0001f600", "a\uffff", "b", "a\x7f"):
        want = [k for k in model.live_keys() if k.startswith(prefix)]
        paged: list[str] = []
        after = None
        while True:
            page = await store.keys(prefix=prefix, after=after, limit=2)
            paged += page
            if len(page) < 2:
                break
            after = page[-1]
        assert paged == want, prefix


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_fold_and_inspect_match_a_model(backend: Backend, seed: int) -> None:
    rng = random.Random(seed)
    model = Model()
    store = await backend.open(partitions=PARTS, partition_of=part_of)
    try:
        for _step in range(60):
            op = rng.random()
            if op < 0.5:
                entries = []
                for _ in range(rng.randint(1, 6)):
                    key = rng.choice(KEYS)
                    kind = "orset" if rng.random() < 0.85 else "gcounter"
                    state = model.truth.setdefault(
                        (key, kind),
                        crdt.from_dict(
                            crdt.ORSet().to_dict() if kind == "orset" else crdt.GCounter().to_dict()
                        ),
                    )
                    if kind == "gcounter":
                        delta = state.increment("R", 1)
                    else:
                        r = rng.random()
                        if r < 0.55 or not state.value:
                            delta = state.add("R", rng.randrange(5))
                        elif r < 0.85:
                            delta = state.remove(rng.choice(sorted(state.value)))
                        else:
                            delta = state.clear()
                    p = part_of(key)
                    model.seq[p] = model.seq.get(p, 0) + 1
                    entries.append(LogRow("R", p, model.seq[p], key, kind, delta.to_dict()))
                ckpt = checkpoint(model, {e.key for e in entries}) if rng.random() < 0.3 else ()
                await store.apply(Batch(log=tuple(entries), objects=ckpt))
                if rng.random() < 0.2:  # a dot stored again, raw
                    e = rng.choice(entries)
                    (seg,) = pack_segments(
                        e.partition, e.origin, [(e.seq, e.key, e.kind, sql.encode(e.delta))]
                    )
                    async with store.engine.begin() as conn:
                        await conn.execute(
                            insert(log_segments), [dict(zip(SEGMENT_COLUMNS, seg, strict=True))]
                        )
            elif op < 0.65:
                # The engine checkpoints a partition's objects, then compacts it.
                p = rng.randrange(PARTS)
                wm = {"R": rng.randint(0, model.seq.get(p, 0))}
                keys = {k for k, _ in model.truth if part_of(k) == p}
                if rng.random() < 0.5:
                    await store.apply(Batch(objects=checkpoint(model, keys), compact=((p, wm),)))
                else:
                    await store.apply(Batch(objects=checkpoint(model, keys)))
                    await store.compact(p, wm)
            elif op < 0.75:
                # A clean close: every object checkpointed, the log marked folded.
                await store.apply(Folded(objects=checkpoint(model, {k for k, _ in model.truth})))
            elif op < 0.85:
                await check_inspect(store, model)
            else:
                # A crash: the store reopens and folds.
                await store.aclose()
                store = await backend.open(partitions=PARTS, partition_of=part_of)
                await store.fold_log(page=rng.choice([1, 2, 200]))
                await check_folded(store, model)
        await check_inspect(store, model)
        await store.fold_log()
        await check_folded(store, model)
    finally:
        await store.aclose()


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_pages_of_objects_match_a_model(backend: Backend, seed: int) -> None:
    rng = random.Random(seed)
    kinds = ["gcounter", "orset", "lww"]
    async with await backend.open(partitions=PARTS, partition_of=part_of) as store:
        truth: dict[tuple[str, str], tuple[str, bool]] = {}
        for _round in range(6):
            rows = []
            for _ in range(rng.randint(1, 12)):
                key = rng.choice(KEYS) + rng.choice(["", "\u00e9", "a", "\U0001f600" * 3])
                kind = rng.choice(kinds[:2])
                if kind == "gcounter":
                    state = crdt.GCounter().increment("R", rng.randint(1, 10 ** rng.randint(1, 18)))
                else:
                    s = crdt.ORSet()
                    for i in range(rng.randint(0, 4)):
                        s.add("R", "x" * rng.randint(0, 50) + str(i))
                    state = s
                rows.append(ObjectRow(key, kind, state.to_dict()))
                truth[(key, kind)] = (state.to_json(), state.is_live())
            await store.apply(Batch(objects=tuple(rows)))
            # stored text may differ from to_json; compare decoded values
            for part in range(PARTS):
                want = sorted(oid for oid in truth if part_of(oid[0]) == part)
                for limit, budget in ((1, 1), (2, 10**6), (3, 120), (500, 1)):
                    got: list[tuple[str, str]] = []
                    texts: dict[tuple[str, str], str] = {}
                    after = None
                    while True:
                        page, end = await store.objects_page(part, after, limit, budget)
                        assert len(page) <= limit
                        got += [(k, kind) for k, kind, _ in page]
                        texts.update(((k, kind), text) for k, kind, text in page)
                        if end:
                            break
                        assert page
                        after = (page[-1][0], page[-1][1])
                    assert got == want, (limit, budget)
                snap = [(r.key, r.kind) async for p in store.snapshot(part, chunk=2) for r in p]
                assert snap == want
                counts = await store.count_objects([part])
                if want:
                    assert counts[part] == (len(want), sum(len(t) for t in texts.values()))
                else:
                    assert part not in counts
            loaded = await store.load_start(rng.choice([0, 5, 1000]))
            live_kinds: dict[str, list[str]] = {}
            for (k, kind), (_t, live) in truth.items():
                if live:
                    live_kinds.setdefault(k, []).append(kind)
            assert loaded.clashes == {
                k: tuple(sorted(v)) for k, v in sorted(live_kinds.items()) if len(v) > 1
            }
            assert await store.keys(limit=10**6) == sorted(live_kinds)
