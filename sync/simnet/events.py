"""The simulator's scheduled events and their queue, and its state per replica and per link.

Knows the simulated disk and the simulator's replica type.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync.config import ReplicaConfig
from sync.effects import ReadPage
from sync.simnet.disk import SimDisk
from sync.simnet.ops import SimReplica

__all__ = [
    "Deliver",
    "Detect",
    "Event",
    "EventQueue",
    "Fetch",
    "Link",
    "Node",
    "Tick",
    "Trap",
]


@dataclass(frozen=True, slots=True)
class Deliver:
    """A message in flight from ``src`` to ``dst`` (void if either crashed since)."""

    src: str
    dst: str
    data: bytes
    kind: str
    src_life: int
    dst_life: int


@dataclass(frozen=True, slots=True)
class Tick:
    """A replica's timer, due at ``at`` (void if the replica crashed since)."""

    replica: str
    life: int
    at: float


@dataclass(frozen=True, slots=True)
class Detect:
    """The failure detector of ``observer`` looks at its link to ``peer``."""

    observer: str
    peer: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """A replica's ``ReadPage``, answered from its disk (void if it crashed since)."""

    replica: str
    life: int
    read: ReadPage


Event = Deliver | Tick | Detect | Fetch


class EventQueue:
    """The events to come, in ``(time, insertion order)``, and whether any of them keeps the
    cluster busy: a delivery, a failure detection or a store read (a timer alone does not)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = 0
        self._busy = 0  # the events queued that are not timers

    def push(self, at: float, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, event))
        if not isinstance(event, Tick):
            self._busy += 1

    def pop(self) -> tuple[float, Event] | None:
        """The next event and its time, taken off the queue (None: the queue is empty)."""
        if not self._heap:
            return None
        at, _, event = heapq.heappop(self._heap)
        if not isinstance(event, Tick):
            self._busy -= 1
        return at, event

    def next_at(self) -> float | None:
        """The time of the next event (None: the queue is empty)."""
        return self._heap[0][0] if self._heap else None

    @property
    def busy(self) -> bool:
        """A delivery, a failure detection or a store read is queued."""
        return self._busy > 0


@dataclass(slots=True)
class Link:
    """The faults of one directed link: drop probability and delay range."""

    drop: float
    lo: float
    hi: float


@dataclass(slots=True)
class Trap:
    """A crash armed between two effects (see ``SimCluster.crash_when``)."""

    predicate: Callable[[Any], bool]
    before: bool


@dataclass(slots=True)
class Node:
    """One replica of the cluster: its config, disk, live object and incarnation."""

    config: ReplicaConfig
    disk: SimDisk
    site: str | None
    replica: SimReplica | None = None
    life: int = 0  # incremented at each crash: messages and timers of a past life are void
    timers: set[float] = field(default_factory=set)
    trap: Trap | None = None
