"""Timers of the engine: named deadlines on one heap, keyed by a typed :class:`Timer`.

The engine never sleeps: a component sets a :class:`Timer` for a time on the caller's clock,
:meth:`Timers.next` says when :meth:`sync.replica.Replica.tick` must be called next, and
:meth:`Timers.firing` hands the due timers to the façade one by one, which fires each with a
``match`` on its :class:`TimerKind`. Setting a timer again moves it; cancelling is lazy (the
heap keeps stale entries and skips them), so both are O(log n).

This module knows no other part of the engine.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

__all__ = ["Timer", "TimerKind", "Timers"]


class TimerKind(Enum):
    """What a timer is for (and what its :attr:`Timer.subject` names)."""

    WRITE = "write"  #: a pending write's deadline (subject: its op id)
    READ = "read"  #: a pending read's deadline (subject: its op id)
    COMPACT = "compact"  #: the periodic compaction pass (no subject)
    ANTI_ENTROPY = "anti_entropy"  #: the next anti-entropy round (no subject)
    AE_TIMEOUT = "ae_timeout"  #: an anti-entropy batch unacknowledged too long (the peer)
    AE_PUMP = "ae_pump"  #: send a state transfer's next chunks to a peer (the peer)
    SWEEP = "sweep"  #: forgetting pushes whose ack no longer matters (no subject)
    HANDOFF = "handoff"  #: the next hint hand-off batch to a peer (the peer)
    HINT_EXPIRY = "hint_expiry"  #: the oldest held hint leaves the hint window (no subject)


@dataclass(frozen=True, slots=True)
class Timer:
    """Names one timer: its kind and what it is about (an op id, a peer, or nothing)."""

    kind: TimerKind
    subject: int | str | None = None


class Timers:
    """Named timers on a heap with lazy cancellation."""

    __slots__ = ("_heap", "_n", "_when")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._when: dict[Timer, float] = {}
        self._n = 0  # insertion order: timers due at the same time fire in the order set

    def set(self, timer: Timer, when: float) -> None:
        """Fire ``timer`` at ``when`` (replacing its previous time, if any)."""
        self._when[timer] = when
        heapq.heappush(self._heap, (when, self._n, timer))
        self._n += 1

    def set_if_earlier(self, timer: Timer, when: float) -> None:
        """Fire ``timer`` at ``when`` unless it is already set to fire earlier."""
        current = self._when.get(timer)
        if current is None or when < current:
            self.set(timer, when)

    def cancel(self, timer: Timer) -> None:
        self._when.pop(timer, None)

    def __contains__(self, timer: Timer) -> bool:
        return timer in self._when

    def next(self) -> float | None:
        """When the earliest timer fires (None: no timer is set)."""
        heap = self._heap
        while heap and self._when.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def firing(self, now: float, rounds: int = 4) -> Iterator[Timer]:
        """The timers due at ``now``, in firing order, each unset as it comes (so a handler
        that raises leaves the timers after it set, due at the next tick); those set for
        ``now`` by the handlers of a round fire in the next one (at most ``rounds``)."""
        heap, when_of = self._heap, self._when
        for _ in range(rounds):
            mark = self._n  # timers set from here on (by the handlers) wait for the next round
            fired = False
            while heap and heap[0][0] <= now:
                if heap[0][1] >= mark:
                    break  # (the earliest left was set in this round: so are the rest due)
                when, _, timer = heapq.heappop(heap)
                if when_of.get(timer) != when:
                    continue  # cancelled or moved: a stale entry
                del when_of[timer]
                fired = True
                yield timer
            if not fired:
                return
