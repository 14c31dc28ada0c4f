"""The engine's timers fire one by one: a handler that raises loses no other timer.

``Timers.firing`` used to unset every due timer before the first fired. A handler that
raised (a state transfer's pump, cutting a corrupt stored state, runs from a timer) then
dropped the timers due after it in that tick: an anti-entropy round, a compaction, a write's
deadline, never set again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.replica import transfer
from sync.replica.timers import Timer, TimerKind, Timers
from tests.sync.test_replica import Wire
from tests.sync.test_transfer_pieces import _big_set_then_c_connects

__all__: list[str] = []

FIRST, SECOND, THIRD = (Timer(TimerKind.WRITE, i) for i in (1, 2, 3))


def _three_due() -> Timers:
    timers = Timers()
    for when, timer in ((1.0, FIRST), (2.0, SECOND), (3.0, THIRD)):
        timers.set(timer, when)
    return timers


def test_a_handler_that_raises_leaves_the_timers_after_it_set() -> None:
    timers = _three_due()
    with pytest.raises(RuntimeError):
        for timer in timers.firing(5.0):
            if timer == FIRST:
                raise RuntimeError("the handler failed")
    assert FIRST not in timers and SECOND in timers and THIRD in timers
    assert timers.next() == 2.0  # due at the next tick
    assert list(timers.firing(5.0)) == [SECOND, THIRD]


def test_a_timer_an_earlier_handler_cancels_or_moves_does_not_fire() -> None:
    timers = _three_due()
    fired = []
    for timer in timers.firing(5.0):
        fired.append(timer)
        if timer == FIRST:
            timers.cancel(SECOND)
            timers.set(THIRD, 9.0)
    assert fired == [FIRST]
    assert timers.next() == 9.0


def test_timers_set_for_now_by_a_round_fire_in_the_next_up_to_the_bound() -> None:
    timers = Timers()
    timers.set(FIRST, 1.0)
    fired = []
    for timer in timers.firing(5.0, rounds=3):
        fired.append(timer)
        timers.set(timer, 5.0)  # again, for now: the next round
    assert fired == [FIRST, FIRST, FIRST]
    assert timers.next() == 5.0  # (the bound: it waits for the next tick)


def test_a_corrupt_state_cut_from_the_pump_timer_loses_no_other_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A serves C a big set whose stored text fails to cut part-way; the pump's timer and
    the next anti-entropy round come due in the same tick, the pump's first."""
    w = Wire("ABC", n=3, anti_entropy_interval=5.0, max_message_bytes=64 * 1024)
    real_split = transfer.split_text

    def corrupt(text: str, budget: int) -> Iterator[str]:
        for i, piece in enumerate(real_split(text, budget)):
            if i == 4:
                raise ValueError("unknown kind")  # a corrupt stored row, mid-way
            yield piece

    monkeypatch.setattr(transfer, "split_text", corrupt)
    _big_set_then_c_connects(w, 2000)
    a = w.r["A"]
    timers = a._timers
    pump, gossip = Timer(TimerKind.AE_PUMP, "C"), Timer(TimerKind.ANTI_ENTROPY)
    assert pump in timers and gossip in timers
    assert timers._when[pump] < timers._when[gossip]
    with pytest.raises(ValueError, match="unknown kind"):
        a.tick(timers._when[gossip])  # a late tick: both due, the pump first
    assert gossip in timers, "the anti-entropy round's timer was lost"
