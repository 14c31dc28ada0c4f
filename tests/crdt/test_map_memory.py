"""What a big ORMap costs in memory, measured with tracemalloc (issue 11: a new peer takes a
map of 100k entries in pieces and holds it whole while it merges them and checkpoints it).

The map here is built as a new peer builds it: pieces of a split state, each decoded from its
text by pydantic-core (as ``sync.replica.inbound`` does) and merged in turn, so that the
reverse index of the map is made by the indexed join, as on that peer.
"""

from __future__ import annotations

import gc
import tracemalloc

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
