"""The engine's timers fire one by one: a handler that raises loses no other timer.

``Timers.firing`` used to unset every due timer before the first fired. A handler that
raised (a state transfer's pump, cutting a corrupt stored state, ran from a timer: see
``tests/sync/test_transfer_pieces.py``) then dropped the timers due after it in that tick:
an anti-entropy round, a compaction, a write's deadline, never set again.
"""

from __future__ import annotations

import pytest

from sync.replica.timers import Timer, TimerKind, Timers

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
