"""Version vectors: a map replica -> count, partially ordered pointwise.

``a <= b`` iff ``a[r] <= b[r]`` for every replica ``r`` (missing entries are 0). Two vectors
are ``EQUAL``, one is ``BEFORE``/``AFTER`` the other, or they are ``CONCURRENT`` (neither
``<=``). ``merge`` is the pointwise maximum (the lattice join). A vector ``v`` *contains* the
dot ``(r, n)`` iff ``n <= v[r]``: it summarises every event up to ``v[r]`` of each replica.
Reference: Mattern 1989; Almeida et al. 2018 section 5 (the compact part of a causal context).

Zero entries are never stored, so equal vectors have equal encodings:
``{"A": 2, "B": 1}`` (sorted keys).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum

from crdt.dot import MAX_INT, Dot, check_counts, check_replica
from crdt.errors import DecodeError, shown

__all__ = ["Ordering", "VersionVector"]


class Ordering(Enum):
    """How two version vectors compare."""

    BEFORE = "before"
    AFTER = "after"
    EQUAL = "equal"
    CONCURRENT = "concurrent"


class VersionVector:
    """A version vector.

    >>> a = VersionVector({"A": 2})
    >>> b = a.copy()
    >>> b.increment("B")
    ('B', 1)
    >>> a.compare(b), a <= b, b.dominates(a)
    (<Ordering.BEFORE: 'before'>, True, True)
    >>> c = VersionVector({"C": 1})
    >>> c.concurrent_with(b)
    True
    >>> c.merge(b); c.to_dict()
    {'A': 2, 'B': 1, 'C': 1}
    """

    __slots__ = ("_v",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self._v: dict[str, int] = check_counts(counts)

    # -- reading ---------------------------------------------------------------------------
    def get(self, replica: str) -> int:
        """The count of ``replica`` (0 if absent)."""
        return self._v.get(replica, 0)

    def contains(self, dot: Dot) -> bool:
        """True iff the dot ``(r, n)`` has ``n <= self[r]``."""
        return dot[1] <= self._v.get(dot[0], 0)

    def __contains__(self, dot: object) -> bool:
        return isinstance(dot, tuple) and len(dot) == 2 and self.contains(Dot(*dot))

    def items(self) -> Iterator[tuple[str, int]]:
        return iter(self._v.items())

    def __iter__(self) -> Iterator[str]:
        return iter(self._v)

    def __len__(self) -> int:
        return len(self._v)

    def total(self) -> int:
        """The number of dots the vector contains (the sum of its counts)."""
        return sum(self._v.values())

    def is_bottom(self) -> bool:
        return not self._v

    # -- order -----------------------------------------------------------------------------
    def compare(self, other: VersionVector) -> Ordering:
        """BEFORE, AFTER, EQUAL or CONCURRENT."""
        le = self._le(other)
        ge = other._le(self)
        if le and ge:
            return Ordering.EQUAL
        if le:
            return Ordering.BEFORE
        if ge:
            return Ordering.AFTER
        return Ordering.CONCURRENT

    def _le(self, other: VersionVector) -> bool:
        ov = other._v
        return all(n <= ov.get(r, 0) for r, n in self._v.items())

    def __le__(self, other: VersionVector) -> bool:
        return self._le(other)

    def __lt__(self, other: VersionVector) -> bool:
        return self._le(other) and self._v != other._v

    def __ge__(self, other: VersionVector) -> bool:
        return other._le(self)

    def __gt__(self, other: VersionVector) -> bool:
        return other._le(self) and self._v != other._v

    def dominates(self, other: VersionVector) -> bool:
        """True iff ``other <= self`` (self has seen everything other has)."""
        return other._le(self)

    def concurrent_with(self, other: VersionVector) -> bool:
        return self.compare(other) is Ordering.CONCURRENT

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return self._v == other._v

    # -- mutation --------------------------------------------------------------------------
    def increment(self, replica: str) -> Dot:
        """Count one more event of ``replica`` and return its dot."""
        check_replica(replica)
        n = self._v.get(replica, 0) + 1
        self._v[replica] = n
        return Dot(replica, n)

    def merge(self, other: VersionVector) -> None:
        """Pointwise maximum, in place."""
        v = self._v
        for r, n in other._v.items():
            if n > v.get(r, 0):
                v[r] = n

    def copy(self) -> VersionVector:
        c = VersionVector()
        c._v = dict(self._v)
        return c

    # -- codec -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, int]:
        """``{replica: count}`` with sorted keys and no zero entries."""
        return {r: self._v[r] for r in sorted(self._v)}

    @classmethod
    def from_dict(cls, d: object, path: str = "vv") -> VersionVector:
        if type(d) is not dict:
            raise DecodeError(path, f"expected an object, got {type(d).__name__}")
        vv = cls()
        for r, n in d.items():
            if type(r) is not str or not r:
                raise DecodeError(path, f"replica id must be a non-empty string, got {shown(r)}")
            if type(n) is not int or not 1 <= n <= MAX_INT:
                raise DecodeError(f"{path}.{r}", f"count must be an integer >= 1, got {shown(n)}")
            vv._v[r] = n
        return vv

    def __repr__(self) -> str:
        return f"VersionVector({self.to_dict()!r})"
