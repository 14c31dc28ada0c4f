"""Seals in log segments survive compaction: a segment holding its origin's entries under two
different seals, rewritten in place by compactions that straddle it, keeps every remaining
entry with the seal that covers it (what :class:`sync.signing.Verifier` checks after a
reload), and drops the entries at or below the watermark."""

from __future__ import annotations

import json

import crdt
from store import Batch, LogRow, default_partition_of
from sync.effects import LogEntry
from sync.signing import Seal, Signer, Verifier
from tests.store.conftest import Backend
from tests.store.helpers import raw_tables

KEY = "cart"
P = default_partition_of(KEY)


def _sealed(signer: Signer) -> tuple[list[LogRow], list[Seal]]:
    """Four own entries (seqs 1..4) of ``signer``: 1 and 2 under one seal, 3 and 4 under
    another; the rows to store and the seal of each, by seq."""
    me = signer.replica_id
    entries = [
        LogEntry.of(me, P, seq, KEY, "orset", crdt.ORSet().add(me, f"e{seq}").to_dict())
        for seq in (1, 2, 3, 4)
    ]
    first, second = signer.seal(entries[:2]), signer.seal(entries[2:])
    seals = [first, first, second, second]
    rows = [
        LogRow(e.origin, e.partition, e.seq, e.key, e.kind, e.delta, seal=s)
        for e, s in zip(entries, seals, strict=True)
    ]
    return rows, seals


def _segments(tables: dict[str, list[tuple[object, ...]]]) -> list[tuple[object, ...]]:
    """(id, first_seq, last_seq, entry seqs, number of seals) of every stored segment."""
    return [
        (r[0], r[3], r[4], [e[0] for e in json.loads(str(r[5]))], len(json.loads(str(r[6]))))
        for r in sorted(tables["log_segments"])
    ]


async def test_compaction_through_a_segment_of_two_seals_keeps_the_rest_verifiable(
    backend: Backend,
) -> None:
    signer = Signer.generate()
    me = signer.replica_id
    rows, seals = _sealed(signer)
    async with await backend.open() as store:
        await store.apply(Batch(log=tuple(rows)))
        ((seg_id, *_),) = before = _segments(await raw_tables(store))
    assert before == [(seg_id, 1, 4, [1, 2, 3, 4], 2)]  # one segment, both seals in it

    for watermark in (1, 2, 3):
        async with await backend.open() as store:
            assert await store.compact(P, {me: watermark}) == 1
        async with await backend.open() as store:  # reloaded from the database
            left = (await store.load()).log
            segments = _segments(await raw_tables(store))
        # Straddled each time: the same segment, rewritten without what is at or below.
        kept = list(range(watermark + 1, 5))
        assert [(s[0], s[1], s[3]) for s in segments] == [(seg_id, watermark + 1, kept)]
        assert [(e.origin, e.partition, e.seq) for e in left] == [(me, P, s) for s in kept]
        verifier = Verifier()
        for e in left:
            assert e.seal is not None and e.delta_json is not None, (watermark, e.seq)
            seal = Seal(*e.seal)
            assert seal == seals[e.seq - 1], (watermark, e.seq)
            entry = LogEntry(e.origin, e.partition, e.seq, e.key, e.kind, e.delta_json)
            assert verifier.covers(seal, entry) is None, (watermark, e.seq)
