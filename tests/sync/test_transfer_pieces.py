"""A big state's pieces leave one per round of the engine, each as soon as it is cut.

Serving a state bigger than one message, the engine cuts its stored text into pieces
(tens of milliseconds each for a map of 100k entries). The effects of a round go out when
it ends, so a round that cut and sent a window's worth of pieces (``ae_max_inflight``,
plus the chunks made ahead) kept the new peer waiting for all of them before the first
arrived. Now a round sends at most one chunk holding a piece and the next is cut in a round
of its own (a timer, ``transfer.PIECE_GAP`` later), and a piece is cut only when it is
about to go: the first chunk leaves once its pieces and those of the next chunk (which says
it is not the last) are cut, and the one piece more that shows the next chunk full.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync import messages as m
from sync.effects import Effect, Send
from sync.replica import transfer
from sync.ring import partition_of
from tests.sync.test_replica import Wire, add

__all__: list[str] = []

KEY = "big"


def _big_set_then_c_connects(w: Wire, count: int) -> None:
    """A and B compact one OR-set of ``count`` long elements (several messages big), then
    C connects to A with its acks to A held: C gets the set by state transfer, in pieces."""
    w.connect([("A", "B")])
    for i in range(count):
        w.r["A"].local_update(i, KEY, "orset", add(f"element {i:05d} " + "x" * 200, "A"), w.now)
    w.run()
    w.advance(5.0)
    assert w.r["A"].status()["log_size"] == 0
    w.hold = lambda src, dst, msg: isinstance(msg, m.Ack) and dst == "A" and src == "C"
    w.sent.clear()
    w.connect([("A", "C")])


def _pieces(w: Wire) -> list[m.SnapObject]:
    return [
        o
        for s, d, x in w.sent
        if isinstance(x, m.SnapshotChunk) and s == "A" and d == "C"
        for o in x.objects
        if o.key == KEY
    ]


def test_each_piece_leaves_in_a_round_of_its_own_as_soon_as_it_is_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = Wire("ABC", n=3, anti_entropy_interval=5.0, max_message_bytes=64 * 1024)
    events: list[int] = []  # 0 for a piece cut; n > 0 for a chunk of n pieces A sent
    real_split = transfer.split_text

    def counting(text: str, budget: int) -> Iterator[str]:
        for piece in real_split(text, budget):
            events.append(0)
            yield piece

    rounds: list[int] = []  # per drain of A's effects: the chunks of pieces in it
    real_drain = w.drain

    def drain(i: str) -> list[Effect]:
        fx = real_drain(i)
        if i == "A":
            sizes = [
                len(e.message.objects)
                for e in fx
                if isinstance(e, Send)
                and isinstance(e.message, m.SnapshotChunk)
                and any(o.piece for o in e.message.objects)
            ]
            rounds.append(len(sizes))
            events.extend(sizes)
        return fx

    monkeypatch.setattr(transfer, "split_text", counting)
    monkeypatch.setattr(w, "drain", drain)
    _big_set_then_c_connects(w, 2000)
    first = next(i for i, e in enumerate(events) if e > 0)
    after = [e for e in events[first:] if e > 0]
    # Before the first chunk went, its pieces and the next chunk's were cut (that one says
    # it is not the last), and the piece that showed the second full: not the pieces of a
    # window of four chunks and of the two made ahead of them.
    assert first <= events[first] + after[1 if len(after) > 1 else 0] + 1
    window = w.config.ae_max_inflight
    for _ in range(window):
        w.advance(transfer.PIECE_GAP)  # the rounds the pump's timer asks for
    assert sum(1 for e in events if e > 0) == window  # full: the next waits for an ack
    w.hold = lambda *a: False
    w.release()
    w.advance(1.0)  # (the pump's rounds, one piece each, until the last)
    assert max(rounds) == 1  # never two chunks of pieces in one round
    assert sum(e for e in events if e > 0) == events.count(0) == len(_pieces(w))
    assert w.value("C", KEY) == w.value("A", KEY)
    p = partition_of(KEY, 64)
    assert w.r["C"].summary(p) == w.r["A"].summary(p)
