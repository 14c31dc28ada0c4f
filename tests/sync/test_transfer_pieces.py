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
from sync.effects import Alarm, Effect, ReadPage, Send
from sync.replica import transfer
from sync.replica.timers import Timer, TimerKind
from sync.ring import partition_of
from tests.sync.test_replica import Wire, add, inc

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


def test_a_state_that_cannot_be_cut_is_left_out_with_an_alarm_and_the_rest_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A's stored text of the big set fails to cut part-way (a damaged row). That partition
    is left out of C's transfer with an alarm, the partitions queued after it are sent all
    the same, no timer is lost, and the next anti-entropy round tries it again. (The error
    used to come out of each pump, from an ack or, since pieces leave one per round, from
    the pump's timer: there it dropped the other timers due in the same tick, and the
    partitions queued after it were never sent.)"""
    w = Wire("ABC", n=3, anti_entropy_interval=5.0, max_message_bytes=64 * 1024)
    big = partition_of(KEY, 64)
    later = [k for k in (f"s{i}" for i in range(5000)) if partition_of(k, 64) > big][:3]
    real_split = transfer.split_text

    def damaged(text: str, budget: int) -> Iterator[str]:
        for i, piece in enumerate(real_split(text, budget)):
            if i == 4:
                raise ValueError("unknown kind")  # a damaged stored row, mid-way
            yield piece

    reads: list[int] = []  # the partitions of the pages A's transfers read
    real_answer = w.answer_page

    def answer(i: str, read: ReadPage) -> None:
        if i == "A":
            reads.append(read.partition)
        real_answer(i, read)

    monkeypatch.setattr(transfer, "split_text", damaged)
    monkeypatch.setattr(w, "answer_page", answer)
    w.connect([("A", "B")])
    for i, key in enumerate(later):
        w.r["A"].local_update(100 + i, key, "gcounter", inc("A"), w.now)
    _big_set_then_c_connects(w, 2000)
    w.hold = lambda *a: False
    w.release()
    w.advance(1.0)
    (alarm,) = [a for a in w.of("A", Alarm) if a.kind == "unreadable_state"]
    assert alarm.peer == "C" and f"partition {big}" in alarm.message
    assert all(w.value("C", k) == 1 for k in later)  # the partitions after it went
    assert w.r["C"].summary(big) != w.r["A"].summary(big)
    assert Timer(TimerKind.ANTI_ENTROPY) in w.r["A"]._timers
    tried = reads.count(big)
    w.advance(10.0)  # the next rounds: the partition is tried again
    assert reads.count(big) > tried >= 1
    assert len([a for a in w.of("A", Alarm) if a.kind == "unreadable_state"]) == 1  # (once)
