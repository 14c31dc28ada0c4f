"""What a big ORMap costs in memory, measured with tracemalloc (issue 11: a new peer takes a
map of 100k entries in pieces and holds it whole while it merges them and checkpoints it).

The map here is built as a new peer builds it: pieces of a split state, each decoded from its
text by pydantic-core (as ``sync.replica.inbound`` does) and merged in turn, so that the
reverse index of the map is made by the indexed join, as on that peer.
"""

from __future__ import annotations

import gc
import json
import tracemalloc

import pytest
from pydantic_core import from_json

from crdt import ORMap, from_dict

N = 20_000


def _source() -> ORMap:
    m = ORMap()
    for i in range(N):
        m.update(
            "zrqmmi4sos4gtty4cf7i",
            f"field {i:06d}",
            "lww",
            lambda r, i=i: r.set("zrqmmi4sos4gtty4cf7i", i, now_ms=1_780_000_000_000 + i),
        )
    return m


def _received(pieces: list[str]) -> ORMap:
    m = ORMap()
    for text in pieces:
        m.merge(from_dict(from_json(text, allow_inf_nan=False)))
    return m


def test_the_reverse_index_of_a_received_map_holds_no_tuple_per_dot() -> None:
    pieces = [p.to_json() for p in _source().split(100_000)]
    assert len(pieces) > 8  # enough pieces for the indexed join to take over
    gc.collect()
    tracemalloc.start()  # before the map is made: only what is allocated from now on counts
    try:
        m = _received(pieces)
        assert m._index is not None
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        m._index = None  # what the index held is freed
        gc.collect()
        freed = before - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # A dict slot per dot (its hash, key and value, with the table's slack): 30 bytes here.
    # Keyed by dot tuples, it held a 56-byte tuple per dot besides (85 bytes a dot).
    assert freed / N < 45, f"the index holds {freed / N:.0f} bytes a dot"


def test_encoding_a_big_map_holds_little_beside_its_text() -> None:
    m = _source()
    gc.collect()
    tracemalloc.start()
    try:
        text = m.to_json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The text and its parts (each the size of its entries' text): twice the text, with the
    # fragments of one part and the sorted keys besides. The fragments of every entry at
    # once, then the entries' text apart from the state's, took 2.5 times the text.
    assert peak / len(text) < 2.25, f"encoding took {peak / len(text):.2f} times the text"


@pytest.mark.parametrize("n", [2, 1024, 1025, 2051])
@pytest.mark.parametrize("keys", ["plain", "escaped", "ints"])
def test_a_map_in_parts_writes_the_canonical_text(n: int, keys: str) -> None:
    from crdt._map_codec import PART_ENTRIES

    assert PART_ENTRIES == 1024  # n: one part, one part exactly, one entry over, three parts
    m = ORMap()
    for i in range(n):
        key: object = {"plain": f"k{i:05d}", "escaped": f'k"{i}é', "ints": i * 7 - n}[keys]
        m.update("A", key, "lww", lambda r, i=i: r.set("A", i, now_ms=5 + i))
    m.update(
        "B", "nested", "ormap", lambda inner: inner.update("B", 1, "orset", lambda s: s.add("B", 2))
    )
    want = json.dumps(m.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert m.to_json() == want
    assert from_dict(json.loads(want)) == m
