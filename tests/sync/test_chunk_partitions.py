"""A state transfer's chunk costs one partition lookup per key: the check's.

A new peer's bootstrap brings every key once, in chunks of one partition. What the engine
must load for a chunk (``wants_message``, then ``require`` after the check) is found from
that partition's span of evicted keys, the chunk's partition given, and the keys it adopts
are not looked up again: only the check computes (or finds in the memo) each key's
partition, to refuse a key that is not in the chunk's partition.
"""

from __future__ import annotations

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.replica import Replica
from sync.ring import PartitionMemo
from tests.sync.conftest import ask_transfer

__all__: list[str] = []

PART = 5


class _Counting(PartitionMemo):
    """A partition memo that counts the keys it is asked for."""

    __slots__ = ("calls",)

    def __init__(self, partitions: int) -> None:
        super().__init__(partitions)
        self.calls = 0

    def __call__(self, key: str) -> int:
        self.calls += 1
        return super().__call__(key)


def _keys(count: int) -> list[str]:
    memo = PartitionMemo(64)
    return sorted(k for k in (f"key-{i:05d}" for i in range(64 * count * 2)) if memo(k) == PART)[
        :count
    ]


def _chunk(batch_id: int, keys: list[str]) -> m.SnapshotChunk:
    objects = []
    for i, key in enumerate(keys):
        state = crdt.new("gcounter")
        state.increment("C", i + 1)
        objects.append(m.SnapObject(key=key, kind="gcounter", state_json=state.to_json()))
    return m.SnapshotChunk(batch_id=batch_id, partition=PART, objects=objects)


def test_a_chunk_looks_up_each_key_partition_once_and_still_loads_what_was_evicted() -> None:
    memo = _Counting(64)
    r = Replica(ReplicaConfig(n=2), "A", partition_of=memo)
    r.peer_up("B", 0.0)
    r.effects()
    ask_transfer(r, "B", [PART], 0.0)
    keys = _keys(60)
    first, later = keys[:40:2], keys[40:]
    assert r.wants_message("B", _chunk(1, first)) == ([], [])
    r.receive("B", _chunk(1, first), 0.0)
    r.effects()  # the chunk's keys leave the cache (transient): the span is first's
    held = set(r.keys())
    assert all(key not in held for key in first)

    # A key within the span evicted from the partition may be in the store: it is named.
    between = keys[1:39:2]
    assert r.wants_message("B", _chunk(2, between))[0] == between

    # Keys past it are absent from the store too: nothing is named, nothing is looked up
    # but each key's partition by the check, once.
    memo.calls = 0
    chunk = _chunk(3, later)
    assert r.wants_message("B", chunk) == ([], [])
    r.receive("B", chunk, 0.0)
    assert memo.calls == len(later)
    held = set(r.keys())
    assert all(key in held for key in later)
