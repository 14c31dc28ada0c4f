"""GCounter: a grow-only counter.

State: ``replica -> count`` of the increments made at that replica; value: the sum; join:
the pointwise maximum (Shapiro et al., "A comprehensive study of CRDTs", 2011, spec. 6).
The delta of ``increment(r, n)`` is the counter holding only ``r``'s new count (Almeida et
al. 2018, section 4), so joining it twice changes nothing.

Encoding: ``{"type": "gcounter", "v": 1, "counts": {replica: n}}`` (sorted, no zeros).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION, check_header, get_dict
from crdt._json import REPLICA_TEXTS
from crdt.dot import MAX_INT, check_counts, check_replica
from crdt.errors import DecodeError

__all__ = ["GCounter"]

_FIELDS = frozenset({"counts"})  # the body fields of the encoding


def check_amount(n: object) -> int:
    """``n`` must be an int >= 1 (bools are refused)."""
    if type(n) is not int:
        raise TypeError(f"amount must be an int, got {type(n).__name__}")
    if not 1 <= n <= MAX_INT:
        raise ValueError(f"amount must be in 1..2**63-1, got {n}")
    return n


class GCounter:
    """A grow-only counter.

    >>> a, b = GCounter(), GCounter()
    >>> delta = a.increment("A", 2)
    >>> _ = b.increment("B")
    >>> b.merge(delta); b.value
    3
    >>> delta.to_dict()
    {'type': 'gcounter', 'v': 1, 'counts': {'A': 2}}
    """

    kind: ClassVar[str] = "gcounter"
    __slots__ = ("counts",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self.counts: dict[str, int] = check_counts(counts)

    def increment(self, replica: str, n: int = 1) -> GCounter:
        """Add ``n >= 1`` at ``replica``; returns the delta."""
        check_replica(replica)
        check_amount(n)
        total = self.counts.get(replica, 0) + n
        if total > MAX_INT:
            raise ValueError(f"counter overflow: {replica!r}'s total would pass 2**63-1")
        self.counts[replica] = total
        delta = GCounter()
        delta.counts[replica] = total
        return delta

    def merge(self, other: GCounter) -> None:
        """Pointwise maximum, in place."""
        if not isinstance(other, GCounter):
            raise TypeError(f"cannot merge {type(other).__name__} into GCounter")
        counts = self.counts
        for r, n in other.counts.items():
            if n > counts.get(r, 0):
                counts[r] = n

    @property
    def value(self) -> int:
        return sum(self.counts.values())

    def get(self, replica: str) -> int:
        """The increments made at ``replica``."""
        return self.counts.get(replica, 0)

    def copy(self) -> GCounter:
        c = GCounter()
        c.counts = dict(self.counts)
        return c

    def is_bottom(self) -> bool:
        return not self.counts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GCounter):
            return NotImplemented
        return self.counts == other.counts

    def __repr__(self) -> str:
        return f"GCounter({self.value}, {self.counts_dict()!r})"

    def counts_dict(self) -> dict[str, int]:
        return {r: self.counts[r] for r in sorted(self.counts)}

    def counts_json(self) -> str:
        """The JSON text of ``counts_dict()``, as ``json.dumps`` writes it (compact)."""
        rj = REPLICA_TEXTS
        counts = self.counts
        if len(counts) == 1:  # a delta's: nothing to sort (a loop of one turn)
            for r, n in counts.items():
                return f"{{{rj[r]}:{n}}}"
        return "{" + ",".join([f"{rj[r]}:{counts[r]}" for r in sorted(counts)]) + "}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "v": FORMAT_VERSION, "counts": self.counts_dict()}

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"),
        allow_nan=False)``, written without the dict (every delta sent is encoded once)."""
        return f'{{"type":"gcounter","v":{FORMAT_VERSION},"counts":{self.counts_json()}}}'

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GCounter:
        body = check_header(d, cls.kind, _FIELDS)
        c = cls()
        c.counts = decode_counts(get_dict(body, "counts", "counts"), "counts")
        return c


def decode_counts(x: dict[str, Any], path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r, n in x.items():
        if type(r) is not str or not r:
            raise DecodeError(path, f"replica id must be a non-empty string, got {r!r}")
        if type(n) is not int or not 1 <= n <= MAX_INT:
            raise DecodeError(f"{path}.{r}", f"count must be an integer in 1..2**63-1, got {n!r}")
        out[r] = n
    return dict(sorted(out.items()))
