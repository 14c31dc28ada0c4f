"""A state transfer serves a big stored state in bounded memory (issue 11).

The sender holds a partition's objects as their stored texts, a page at a time
(``sync/replica/transfer.py``). A state too big for one message goes out as pieces; these
tests check, on the ``Transfers`` component alone, that the pieces of a big ORMap are cut
from its text without decoding the map whole, that the stream makes its chunks as they are
taken (at most ``AHEAD`` ahead), that the pieces join as the stored state and keep the
page's order, and that the memory this takes is far below the map's size (tracemalloc's
peak, not a timing). Before the change, the map was decoded whole (about 14 times its text)
and every piece made at once.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

import crdt
from crdt import ORMap
from sync.config import ReplicaConfig
from sync.effects import ObjectState
from sync.replica.outbound import text_size
from sync.replica.transfer import AHEAD, Chunk, Stream, Transfers

__all__: list[str] = []

MAX_MESSAGE = 64 * 1024


class _Outbound:
    """What ``Transfers`` asks of outbound batching: the bytes of entries a message holds."""

    def batch_bytes(self) -> int:
        return MAX_MESSAGE // 2  # Outbound.batch_bytes: half the receiver's limit


def transfers() -> Transfers:
    config = ReplicaConfig(max_message_bytes=MAX_MESSAGE)
    return Transfers(config, "A", None, None, _Outbound())  # type: ignore[arg-type]


def big_map(n: int) -> ORMap:
    m = ORMap()
    for i in range(n):
        m.update(
            "replica-A", f"field {i:06d}", "lww", lambda r, i=i: r.set("replica-A", i, now_ms=i)
        )
        if i % 50 == 0:
            m.update("replica-B", f"set {i:06d}", "orset", lambda s, i=i: s.add("replica-B", i))
    for i in range(0, n, 10):
        m.remove(f"field {i:06d}")
    return m


def small(key: str) -> ObjectState:
    return ObjectState(key, "gcounter", crdt.GCounter().increment("replica-A", 1).to_json())


def drain(stream: Stream, *, held: int | None = None) -> list[Chunk]:
    """Take the stream's chunks one at a time, as the anti-entropy pump does (checking, if
    ``held`` is given, that it never holds more than that many)."""
    out = []
    for _ in range(100_000):
        ready = stream.ready.ahead()
        if not ready:
            return out
        assert held is None or ready <= held
        out.append(stream.ready.popleft())
    raise AssertionError("the stream did not end")


def test_the_pieces_of_a_big_stored_map_join_as_it_in_the_order_of_the_page() -> None:
    state = big_map(5_000)
    text = state.to_json()
    assert text_size(text) > 4 * MAX_MESSAGE
    stream = Stream(7)
    transfers().page(stream, [small("a"), ObjectState("big", "ormap", text), small("z")], True)
    chunks = drain(stream)
    objects = [o for c in chunks for o in c.objects]
    assert objects[0].key == "a" and objects[-1].key == "z" and not objects[0].piece
    pieces = [o for o in objects if o.key == "big"]
    assert len(pieces) > 8 and all(o.piece for o in pieces)
    assert all(c.size <= _Outbound().batch_bytes() for c in chunks)
    assert sum(c.rows for c in chunks) == 3  # the big map counted once, with its last piece
    joined = ORMap()
    for o in pieces:
        joined.merge(crdt.from_dict(json.loads(o.state_json)))
    assert joined == state and joined.to_json() == text


def test_a_big_stored_map_is_never_decoded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    text = big_map(5_000).to_json()
    decoded: list[int] = []  # the entries of every ORMap decoded while the stream runs
    real = ORMap.from_dict.__func__  # type: ignore[attr-defined]

    def counting(cls: type[ORMap], d: dict[str, Any]) -> ORMap:
        decoded.append(len(d.get("entries", ())))
        return real(cls, d)  # type: ignore[no-any-return]

    monkeypatch.setattr(ORMap, "from_dict", classmethod(counting))
    stream = Stream(7)
    transfers().page(stream, [ObjectState("big", "ormap", text)], True)
    chunks = drain(stream)
    assert len(chunks) > 8
    entries = json.loads(text)["entries"]
    assert max(decoded, default=0) < len(entries) // 8, "the whole map was decoded"


def test_a_stream_makes_the_chunks_of_a_big_state_as_they_are_taken() -> None:
    stream = Stream(7)
    transfers().page(stream, [ObjectState("big", "ormap", big_map(5_000).to_json())], True)
    assert len(stream.ready) == AHEAD  # not every piece at once
    chunks = drain(stream, held=AHEAD)
    assert len(chunks) > 4 * AHEAD


def test_serving_a_big_stored_map_takes_far_less_memory_than_the_map() -> None:
    text = big_map(20_000).to_json()
    tr = transfers()
    tracemalloc.start()
    try:
        stream = Stream(7)
        tr.page(stream, [ObjectState("big", "ormap", text)], True)
        sent = 0
        while stream.ready.ahead():  # each chunk dropped once taken, as once it is sent
            sent += len(stream.ready.popleft().objects)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent > 30
    # Decoded whole, the map took about 14 times its text; cut from its text, the stream
    # holds AHEAD chunks (a message's worth each) and the piece being filled.
    assert peak < len(text) // 4, (peak, len(text))


def test_a_stored_state_that_cannot_be_cut_leaves_the_stream_stuck_never_complete() -> None:
    text = big_map(5_000).to_json()
    at = text.index('"lww"', len(text) // 2)
    corrupt = text[:at] + '"nope"' + text[at + 5 :]  # an entry of an unknown kind, mid-way
    stream = Stream(7)
    transfers().page(stream, [ObjectState("big", "ormap", corrupt)], True)
    taken = 0
    with pytest.raises(ValueError, match="unknown kind"):
        for _ in range(1_000):
            stream.ready.popleft()
            taken += 1
    assert taken > AHEAD
    # Never "one chunk left": the last chunk, whose summary would claim the whole map, never
    # goes; every later take fails the same way.
    assert len(stream.ready) > 1
    with pytest.raises(ValueError, match="unknown kind"):
        stream.ready.popleft()
