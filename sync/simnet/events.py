"""The simulator's scheduled events, and its state per replica and per link.

Knows the simulated disk and the simulator's replica type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync.config import ReplicaConfig
from sync.effects import ReadPage
from sync.simnet.disk import SimDisk
from sync.simnet.ops import SimReplica

__all__ = ["Deliver", "Detect", "Event", "Fetch", "Link", "Node", "Tick", "Trap"]


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
