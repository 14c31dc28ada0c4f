"""What the store may hold that the cache does not: the keys evicted, as a span per partition.

The engine holds a bounded cache of objects (:mod:`sync.replica.local_data`); an input that
needs an object the cache lacks has it loaded from the store first, if the store may hold
it. When the cache held every object at the start (a new peer, or a small store loaded
whole), the store holds an object the cache lacks only if the cache evicted it since. This
table keeps, per partition, the lowest and highest key evicted: a key outside its
partition's span (or of a partition with none) is absent from the store too, and nothing is
loaded for it. The span only grows, so it stays true whatever the order of the evictions;
it is exact for what a new peer's bootstrap brings, partition by partition in key order
(each chunk's keys lie past the span its earlier chunks left), where one eviction anywhere
used to send every later chunk's keys to the store, to find nothing. It costs one memoized
partition and two string comparisons per key asked, and two strings per partition.

Knows nothing else of the engine.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Evicted"]


class Evicted:
    """Per partition, the span of the keys evicted from the cache since the start."""

    __slots__ = ("_partition", "_spans", "whole")

    def __init__(self, partition: Callable[[str], int]) -> None:
        self._partition = partition
        self._spans: dict[int, tuple[str, str]] = {}
        #: The cache held every object at the start (else the store may hold any key).
        self.whole = True

    def __bool__(self) -> bool:
        """True if the store may hold an object the cache lacks."""
        return not self.whole or bool(self._spans)

    def add(self, key: str, partition: int | None = None) -> None:
        """``key`` left the cache (its objects complete in the store); ``partition``: the
        key's, when the caller knows it."""
        p = self._partition_of(key) if partition is None else partition
        if p is None:  # (never a key held; to be safe, every key is asked of the store)
            self.whole = False
            return
        span = self._spans.get(p)
        if span is None:
            self._spans[p] = (key, key)
        elif key < span[0]:
            self._spans[p] = (key, span[1])
        elif key > span[1]:
            self._spans[p] = (span[0], key)

    def may_hold(self, key: str, partition: int | None = None) -> bool:
        """Whether the store may hold an object of ``key`` that the cache does not hold;
        ``partition``: the key's, when the caller knows it (a state-transfer chunk's keys
        are all of its partition), so that it is not computed again."""
        if not self.whole:
            return True
        p = self._partition_of(key) if partition is None else partition
        if p is None:  # not a key: asked of the store as before (its input's check refuses it)
            return True
        span = self._spans.get(p)
        return span is not None and span[0] <= key <= span[1]

    def _partition_of(self, key: str) -> int | None:
        if type(key) is not str:
            return None
        try:
            return self._partition(key)
        except UnicodeError:  # a lone surrogate: no UTF-8, no partition
            return None
