"""The simulated network's fault model (:class:`SimNetwork`): per directed link a drop
probability and a delay range, duplication and reordering on every link, and a partition.

It decides whether and when a message sent arrives, and which replicas are on the same side
of the partition; it knows nothing of replicas, their crashes or the event queue (the cluster
asks it, then schedules the deliveries). Every random draw of a simulation is made here, from
one ``random.Random(seed)``, in the order messages are sent: the same seed and the same sends
give the same arrivals. Arguments are checked by the caller, with :func:`check_probability`
and :func:`check_delay`, before anything changes.

Knows the simulator's link record, counters and error type.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from sync.simnet.events import Link
from sync.simnet.ops import MessageStats, SimulationError

__all__ = ["SimNetwork", "check_delay", "check_probability"]

Pair = tuple[str, str]


class SimNetwork:
    """The faults of a simulated network; ``latency`` is the delay range of a link that no
    fault changed. Without ``reorder`` every link is FIFO, like one TCP connection."""

    def __init__(self, seed: int, latency: tuple[float, float]) -> None:
        self._rng = random.Random(seed)
        self._latency = latency
        self._links: dict[Pair, Link] = {}
        self._fifo: dict[Pair, float] = {}  # the latest arrival scheduled on each link
        self._dup = 0.0
        self._reorder = False
        self._sides: dict[str, int] | None = None  # replica -> its side of the partition
        self._cut: set[Pair] = set()  # links cut both ways (replicas that never reach each other)

    def drop(self, pairs: Iterable[Pair], p: float) -> None:
        """Messages on the directed links ``pairs`` are lost with probability ``p``."""
        for a, b in pairs:
            self._link(a, b).drop = p

    def delay(self, pairs: Iterable[Pair], lo: float, hi: float) -> None:
        """Messages on the directed links ``pairs`` take a uniform draw in ``[lo, hi]``."""
        for a, b in pairs:
            link = self._link(a, b)
            link.lo, link.hi = lo, hi

    def duplicate(self, p: float) -> None:
        """Each message is sent twice with probability ``p``."""
        self._dup = p

    def reorder(self, enabled: bool) -> None:
        """Let messages on one link overtake each other."""
        self._reorder = enabled

    def partition(self, sides: Mapping[str, int]) -> None:
        """Cut the network: replicas talk only to those with the same side number."""
        self._sides = dict(sides)

    def cut(self, pairs: Iterable[Pair]) -> None:
        """The links ``pairs`` carry nothing, and their ends see each other down, until
        :meth:`heal` (two devices behind NAT that never reach each other)."""
        self._cut.update(pairs)

    def join(self, replica_id: str) -> None:
        """A replica joins: during a partition it is alone (on a side of its own)."""
        if self._sides is not None:
            self._sides[replica_id] = max(self._sides.values()) + 1

    def heal(self) -> None:
        """Remove the partition and every fault (drop, delay, duplicate, reorder)."""
        self._sides = None
        self._cut.clear()
        self._links.clear()
        self._dup = 0.0
        self._reorder = False

    def connected(self, a: str, b: str) -> bool:
        """``a`` and ``b`` are on the same side of the partition (if any), and their link is
        not cut."""
        if (a, b) in self._cut:
            return False
        return self._sides is None or self._sides[a] == self._sides[b]

    def arrivals(
        self, src: str, dst: str, now: float, kind: str, stats: MessageStats
    ) -> list[float]:
        """When the copies of a message sent from ``src`` to ``dst`` at ``now`` arrive (none:
        dropped), counting duplicates and drops of ``kind`` in ``stats``."""
        link = self._link(src, dst)
        copies = 1
        if self._dup > 0 and self._rng.random() < self._dup:
            copies = 2
            stats.duplicated[kind] += 1
        arrivals = []
        for _ in range(copies):
            if link.drop > 0 and self._rng.random() < link.drop:
                stats.dropped[kind] += 1
                continue
            at = now + self._rng.uniform(link.lo, link.hi)
            if not self._reorder:
                at = max(at, self._fifo.get((src, dst), 0.0))
                self._fifo[(src, dst)] = at
            arrivals.append(at)
        return arrivals

    def _link(self, a: str, b: str) -> Link:
        link = self._links.get((a, b))
        if link is None:
            link = self._links[(a, b)] = Link(0.0, *self._latency)
        return link


def check_probability(what: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise SimulationError(f"{what} probability must be in [0, 1], not {p}")


def check_delay(lo: float, hi: float) -> None:
    if not 0.0 <= lo <= hi:
        raise SimulationError(f"delay range must satisfy 0 <= lo <= hi, not ({lo}, {hi})")
