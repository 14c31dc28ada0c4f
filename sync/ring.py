"""Consistent hashing: keys -> partitions -> preference lists of home replicas.

* ``partition_of(key, partitions)`` is ``int.from_bytes(blake2b(key, 8), "big") %
  partitions``: a key's partition never depends on membership.
* Each peer owns ``vnodes`` tokens ``blake2b(f"{replica_id}/{i}", 8)`` on a ring of
  ``2**64`` points (virtual nodes spread a peer's share evenly).
* Partition ``p`` sits at point ``p * 2**64 // partitions``. Walking clockwise from that
  point (the first token at or after it, wrapping around) meets every peer; the first ``n``
  *distinct* peers met are the partition's home replicas, its *preference list*. The rest
  of the walk is the order in which fallbacks are tried (sloppy quorum). Ties between equal
  tokens are broken by replica id, so every peer computes the same ring from the same set.
* With ``n`` at least the number of peers every peer is a home of every partition.

Reference: DeCandia et al., "Dynamo: Amazon's Highly Available Key-value Store" (SOSP 2007),
sections 4.2-4.3. The ring is immutable: membership changes build a new ``Ring``; walks are
computed lazily per partition and cached, and a preference list walks only as far as its
``n`` peers. Rings over the same peers share their sorted points (a simulated group of 1,000
replicas that know each other builds them once, not once per replica).

>>> ring = Ring(["A", "B", "C", "D"], n=3, partitions=8, vnodes=4)
>>> len(ring.preference_list(0)), len(set(ring.preference_list(0)))
(3, 3)
>>> Ring(["A", "B"], n=3, partitions=8, vnodes=4).preference_list(5) in (("A", "B"), ("B", "A"))
True
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from functools import lru_cache
from hashlib import blake2b

__all__ = ["RING_SIZE", "PartitionMemo", "Ring", "partition_of", "token_of"]

RING_SIZE = 2**64


def partition_of(key: str, partitions: int) -> int:
    """The partition of ``key``: ``blake2b(key.encode(), digest_size=8)`` (big-endian) mod
    ``partitions``."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big") % partitions


class PartitionMemo:
    """``partition_of(key, partitions)`` for one partition count, remembering the keys asked
    last (at most ``limit``; all forgotten at once when full). A peer's engine and its store
    ask for the same keys, a bootstrap for each of its keys in both: they share one memo, so
    each key is hashed once."""

    __slots__ = ("_memo", "limit", "partitions")

    def __init__(self, partitions: int, limit: int = 1 << 16) -> None:
        if type(partitions) is not int or partitions < 1:
            raise ValueError(f"partitions must be an int >= 1, got {partitions!r}")
        self.partitions = partitions
        self.limit = limit
        self._memo: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        p = self._memo.get(key)
        if p is None:
            memo = self._memo
            if len(memo) >= self.limit:
                memo.clear()
            p = memo[key] = partition_of(key, self.partitions)
        return p


def token_of(label: str) -> int:
    """A point on the ring: ``blake2b(label.encode(), digest_size=8)`` as a big-endian int."""
    return int.from_bytes(blake2b(label.encode(), digest_size=8).digest(), "big")


@lru_cache(maxsize=4096)
def _tokens(replica_id: str, vnodes: int) -> tuple[tuple[int, str], ...]:
    # Cached: rings are rebuilt on every membership change, peers stay the same.
    return tuple((token_of(f"{replica_id}/{i}"), replica_id) for i in range(vnodes))


@lru_cache(maxsize=16)
def _points(peers: frozenset[str], vnodes: int) -> tuple[list[tuple[int, str]], list[int]]:
    # Cached: the replicas of one process (a simulation) that know the same peers share
    # these lists. Nobody changes them.
    points = sorted(t for peer in peers for t in _tokens(peer, vnodes))
    return points, [t for t, _ in points]


class Ring:
    """An immutable consistent-hash ring over a set of replica ids."""

    __slots__ = ("_homes", "_keys", "_points", "_walks", "n", "partitions", "peers", "vnodes")

    def __init__(self, peers: Iterable[str], *, n: int, partitions: int, vnodes: int) -> None:
        if n < 1 or partitions < 1 or vnodes < 1:
            raise ValueError("n, partitions and vnodes must be >= 1")
        self.peers: frozenset[str] = frozenset(peers)
        for p in self.peers:
            if not isinstance(p, str) or not p:
                raise ValueError(f"replica ids must be non-empty str, got {p!r}")
        self.n = n
        self.partitions = partitions
        self.vnodes = vnodes
        self._points, self._keys = _points(self.peers, vnodes)
        self._walks: dict[int, tuple[str, ...]] = {}
        self._homes: dict[int, tuple[str, ...]] = {}

    def point_of(self, partition: int) -> int:
        """The ring point of ``partition``."""
        return partition * RING_SIZE // self.partitions

    def walk(self, partition: int) -> tuple[str, ...]:
        """Every peer, each once, in clockwise order from the partition's point."""
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} out of range 0..{self.partitions - 1}")
        cached = self._walks.get(partition)
        if cached is None:
            cached = self._walks[partition] = self._first(partition, len(self.peers))
        return cached

    def within(self, peer: str, partition: int, depth: int) -> bool:
        """True iff ``peer`` is among the first ``depth`` peers of the partition's walk."""
        if depth <= self.n:
            return peer in self.preference_list(partition)
        return peer in self._first(partition, depth)

    def _first(self, partition: int, want: int) -> tuple[str, ...]:
        """The first ``want`` distinct peers clockwise from the partition's point."""
        order: list[str] = []
        seen: set[str] = set()
        points = self._points
        total = len(points)
        if total:
            start = bisect.bisect_left(self._keys, self.point_of(partition))
            for i in range(total):
                peer = points[(start + i) % total][1]
                if peer not in seen:
                    seen.add(peer)
                    order.append(peer)
                    if len(order) == want:
                        break
        return tuple(order)

    def preference_list(self, partition: int) -> tuple[str, ...]:
        """The first ``n`` distinct peers clockwise: the partition's home replicas."""
        homes = self._homes.get(partition)
        if homes is None:
            if not 0 <= partition < self.partitions:
                raise ValueError(f"partition {partition} out of range 0..{self.partitions - 1}")
            walk = self._walks.get(partition)
            homes = walk[: self.n] if walk is not None else self._first(partition, self.n)
            self._homes[partition] = homes
        return homes

    def homes_of(self, key: str) -> tuple[str, ...]:
        """The preference list of ``key``'s partition."""
        return self.preference_list(partition_of(key, self.partitions))

    def is_home(self, peer: str, partition: int) -> bool:
        """True iff ``peer`` is one of the partition's home replicas."""
        return peer in self.preference_list(partition)

    def __len__(self) -> int:
        return len(self.peers)
