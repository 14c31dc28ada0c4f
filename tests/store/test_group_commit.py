"""Group commit equals one-after-another: random batches applied concurrently (merged into
shared transactions) leave the database exactly as applying them one at a time, in the
order of the calls, does."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from sqlalchemy import event

from store import Batch, HintIdRow, HintRow, Loaded, PeerRow, Store, default_partition_of
from tests.store.helpers import counter_row, log_entry, summary

KEYS = [f"k{i}" for i in range(6)]
ORIGINS = ["A", "B"]


def _random_batch(rng: random.Random) -> Batch:
    def some(n: int) -> range:
        return range(rng.choice([0, 0, 1, n]))

    entries = tuple(
        log_entry(
            rng.choice(KEYS), rng.randint(1, 6), origin=rng.choice(ORIGINS), n=rng.randint(1, 9)
        )
        for _ in some(4)
    )
    hints_add = tuple(
        HintRow(
            rng.choice(["T", "U"]),
            log_entry(rng.choice(KEYS), rng.randint(1, 3)),
            float(rng.randint(0, 99)),
        )
        for _ in some(3)
    )
    hints_drop = tuple(
        HintIdRow(rng.choice(["T", "U"]), "A", default_partition_of(key), rng.randint(1, 3))
        for key in (rng.choice(KEYS) for _ in some(2))
    )
    compact = tuple(
        (
            default_partition_of(rng.choice(KEYS)),
            {o: rng.randint(0, 6) for o in rng.sample(ORIGINS, rng.randint(1, 2))},
        )
        for _ in some(2)
    )
    return Batch(
        objects=tuple(counter_row(rng.choice(KEYS), rng.randint(1, 9)) for _ in some(3)),
        log=entries,
        summaries=tuple((rng.randrange(3), summary({"A": rng.randint(0, 9)})) for _ in some(2)),
        hints_add=hints_add,
        hints_drop=hints_drop,
        peers=tuple(
            PeerRow(
                rng.choice(["P", "Q"]),
                f"ws://h/{rng.randint(0, 9)}",
                None,
                None,
                float(rng.randint(0, 9)),
            )
            for _ in some(2)
        ),
        compact=compact,
    )


def _canonical(loaded: Loaded) -> Loaded:
    loaded.hints.sort(key=lambda h: (h.target, h.entry.origin, h.entry.partition, h.entry.seq))
    return loaded


# At NORMAL a lone commit may run in its caller's task, which first lets the callers of the
# same turn of the loop queue (store.Store._submit): they must still commit after it.
@pytest.mark.parametrize("level", ["FULL", "NORMAL"])
@pytest.mark.parametrize("seed", range(8))
async def test_concurrent_applies_equal_sequential_ones(
    tmp_path: Path, seed: int, level: str
) -> None:
    rng = random.Random(seed)
    batches = [_random_batch(rng) for _ in range(40)]
    async with await Store.open(tmp_path / "one.sqlite") as one:
        for batch in batches:
            await one.apply(batch)
        expected = _canonical(await one.load())
    async with await Store.open(tmp_path / "grouped.sqlite", synchronous=level) as grouped:
        commits = 0

        def count(_conn: object) -> None:
            nonlocal commits
            commits += 1

        event.listen(grouped.write_engine, "commit", count)
        await asyncio.wait_for(asyncio.gather(*(grouped.apply(b) for b in batches)), 60)
        got = _canonical(await grouped.load())
    assert got == expected
    assert commits < len(batches)  # they really were grouped
