"""PNCounter: a counter that goes up and down.

Two grow-only counters, ``p`` for increments and ``n`` for decrements; value ``p - n``;
join joins both halves (Shapiro et al. 2011, spec. 7). The delta of ``increment`` /
``decrement`` carries only the half and the replica it changed.

Encoding: ``{"type": "pncounter", "v": 1, "p": {replica: n}, "n": {replica: n}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION, check_header, get_dict
from crdt.gcounter import GCounter, decode_counts

__all__ = ["PNCounter"]

_FIELDS = frozenset({"p", "n"})  # the body fields of the encoding


class PNCounter:
    """A positive-negative counter.

    >>> a, b = PNCounter(), PNCounter()
    >>> d1 = a.increment("A", 5)
    >>> d2 = b.decrement("B", 2)
    >>> a.merge(d2); b.merge(d1)
    >>> a.value, a == b
    (3, True)
    """

    kind: ClassVar[str] = "pncounter"
    __slots__ = ("n", "p")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.p = GCounter()
        self.n = GCounter()

    def increment(self, replica: str, n: int = 1) -> PNCounter:
        """Add ``n >= 1``; returns the delta."""
        delta = PNCounter()
        delta.p = self.p.increment(replica, n)
        return delta

    def decrement(self, replica: str, n: int = 1) -> PNCounter:
        """Subtract ``n >= 1``; returns the delta."""
        delta = PNCounter()
        delta.n = self.n.increment(replica, n)
        return delta

    def merge(self, other: PNCounter) -> None:
        if not isinstance(other, PNCounter):
            raise TypeError(f"cannot merge {type(other).__name__} into PNCounter")
        self.p.merge(other.p)
        self.n.merge(other.n)

    @property
    def value(self) -> int:
        return self.p.value - self.n.value

    def copy(self) -> PNCounter:
        c = PNCounter()
        c.p = self.p.copy()
        c.n = self.n.copy()
        return c

    def is_bottom(self) -> bool:
        return self.p.is_bottom() and self.n.is_bottom()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PNCounter):
            return NotImplemented
        return self.p == other.p and self.n == other.n

    def __repr__(self) -> str:
        return f"PNCounter({self.value}, p={self.p.counts_dict()!r}, n={self.n.counts_dict()!r})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "v": FORMAT_VERSION,
            "p": self.p.counts_dict(),
            "n": self.n.counts_dict(),
        }

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"),
        allow_nan=False)``, written without the dict (every delta sent is encoded once)."""
        return (
            f'{{"type":"pncounter","v":{FORMAT_VERSION},'
            f'"p":{self.p.counts_json()},"n":{self.n.counts_json()}}}'
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PNCounter:
        body = check_header(d, cls.kind, _FIELDS)
        c = cls()
        c.p.counts = decode_counts(get_dict(body, "p", "p"), "p")
        c.n.counts = decode_counts(get_dict(body, "n", "n"), "n")
        return c
