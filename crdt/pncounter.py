"""PNCounter: a counter that goes up and down.

Two grow-only counters, ``p`` for increments and ``n`` for decrements; value ``p - n``;
join joins both halves (Shapiro et al. 2011, spec. 7). The delta of ``increment`` /
``decrement`` carries only the half and the replica it changed.

``clear()`` is the observed reset of both halves (see :mod:`crdt.gcounter`): the value
reads 0, and increments or decrements the reset did not see survive the join.
``is_live()``: either half is.

Encoding: ``{"type": "pncounter", "v": 1, "p": {replica: n}, "n": {replica: n}}``, and once
the counter was reset ``"p_reset"`` and ``"n_reset"`` (each only when not empty), the
``reset`` vectors of the halves: a counter never reset encodes as it always did.
"""

from __future__ import annotations

from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION, check_header, get_dict
from crdt._split import check_budget, pack, utf8_len
from crdt.gcounter import GCounter, decode_counts, decode_reset

__all__ = ["PNCounter"]

_FIELDS = frozenset({"p", "n", "p_reset", "n_reset"})  # body fields (the resets optional)


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

    def clear(self) -> PNCounter:
        """Reset both halves as seen here (an observed reset); returns the delta."""
        delta = PNCounter()
        delta.p = self.p.clear()
        delta.n = self.n.clear()
        return delta

    def max_counter(self, replica: str) -> int:
        """The larger of ``replica``'s two counts (see :meth:`GCounter.max_counter`)."""
        return max(self.p.max_counter(replica), self.n.max_counter(replica))

    def is_live(self) -> bool:
        """Some increment or decrement outlives every reset seen here."""
        return self.p.is_live() or self.n.is_live()

    def split(self, max_bytes: int) -> list[PNCounter]:
        """This counter as deltas of at most ``max_bytes`` each when encoded, whose join is
        the counter: ``[copy]`` if it fits, else counters of a few replicas of one half each
        (their counts and resets: each below the counter, any of them a valid delta)."""
        budget = check_budget(max_bytes)
        if utf8_len(self.to_json()) <= budget:
            return [self.copy()]
        room = max(1, budget - 96)
        out: list[PNCounter] = []
        for half in ("p", "n"):
            counter: GCounter = getattr(self, half)
            for group in pack(counter._replica_units(), room):
                piece = PNCounter()
                setattr(piece, half, counter._part(group))
                out.append(piece)
        return out or [self.copy()]

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
        text = f"PNCounter({self.value}, p={self.p.counts_dict()!r}, n={self.n.counts_dict()!r}"
        if self.p.reset or self.n.reset:
            text += f", p_reset={self.p.reset_dict()!r}, n_reset={self.n.reset_dict()!r}"
        return text + ")"

    def to_dict(self) -> dict[str, Any]:
        d = {
            "type": self.kind,
            "v": FORMAT_VERSION,
            "p": self.p.counts_dict(),
            "n": self.n.counts_dict(),
        }
        if self.p.reset:
            d["p_reset"] = self.p.reset_dict()
        if self.n.reset:
            d["n_reset"] = self.n.reset_dict()
        return d

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"),
        allow_nan=False)``, written without the dict (every delta sent is encoded once)."""
        text = (
            f'{{"type":"pncounter","v":{FORMAT_VERSION},'
            f'"p":{self.p.counts_json()},"n":{self.n.counts_json()}'
        )
        if self.p.reset:
            text += f',"p_reset":{self.p.reset_json()}'
        if self.n.reset:
            text += f',"n_reset":{self.n.reset_json()}'
        return text + "}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PNCounter:
        body = check_header(d, cls.kind, _FIELDS)
        c = cls()
        c.p.counts = decode_counts(get_dict(body, "p", "p"), "p")
        c.n.counts = decode_counts(get_dict(body, "n", "n"), "n")
        if "p_reset" in body:
            c.p.reset = decode_reset(get_dict(body, "p_reset", "p_reset"), c.p.counts, "p_reset")
        if "n_reset" in body:
            c.n.reset = decode_reset(get_dict(body, "n_reset", "n_reset"), c.n.counts, "n_reset")
        return c
