"""GCounter: a grow-only counter, with an observed reset.

State: ``replica -> count`` of the increments made at that replica; value: the sum; join:
the pointwise maximum (Shapiro et al., "A comprehensive study of CRDTs", 2011, spec. 6).
The delta of ``increment(r, n)`` is the counter holding only ``r``'s new count (Almeida et
al. 2018, section 4), so joining it twice changes nothing.

``clear()`` is an *observed reset* (what deleting a counter does): a second vector, ``reset``,
records per replica the count that the reset saw, and the value is the sum over replicas of
``count - reset``. ``reset`` joins by the pointwise maximum too, and a reset only records
counts it has seen, so ``reset[r] <= counts[r]`` holds in every state and the pair of
vectors is a join-semilattice. An increment concurrent with the reset raises its replica's
count above what the reset saw: it survives the join (as a concurrent update survives an
observed remove in a map). The delta of ``clear()`` carries both vectors as they were seen.
``is_live()``: some replica counts more than the last reset it saw (a reset counter, or a
fresh one, is not live).

Encoding: ``{"type": "gcounter", "v": 1, "counts": {replica: n}}`` (sorted, no zeros), and
``"reset": {replica: n}`` (the same form) only once the counter was reset: a counter never
reset encodes as it always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION, check_header, get_dict
from crdt._json import REPLICA_TEXTS
from crdt._split import check_budget, pack, utf8_len
from crdt.dot import MAX_INT, check_counts, check_replica
from crdt.errors import DecodeError, shown

__all__ = ["GCounter"]

_FIELDS = frozenset({"counts", "reset"})  # the body fields of the encoding ("reset": optional)


def check_amount(n: object) -> int:
    """``n`` must be an int >= 1 (bools are refused)."""
    if type(n) is not int:
        raise TypeError(f"amount must be an int, got {type(n).__name__}")
    if not 1 <= n <= MAX_INT:
        raise ValueError(f"amount must be in 1..2**63-1, got {shown(n)}")
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
    >>> reset = b.clear()             # B resets what it has seen (A's 2 and its own 1)...
    >>> _ = a.increment("A", 5)       # ...while A counts on: A's increment survives
    >>> a.merge(reset); b.merge(a); a.value, b.value, b.is_live()
    (5, 5, True)
    """

    kind: ClassVar[str] = "gcounter"
    __slots__ = ("counts", "reset")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self.counts: dict[str, int] = check_counts(counts)
        #: Per replica, the count the last reset seen here had observed (never above counts).
        self.reset: dict[str, int] = {}

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

    def clear(self) -> GCounter:
        """Reset what this replica has seen (an observed reset: the value reads 0, and
        increments that it has not seen survive the join); returns the delta."""
        self.reset = dict(self.counts)
        delta = GCounter()
        delta.counts = dict(self.counts)
        delta.reset = dict(self.counts)
        return delta

    def merge(self, other: GCounter) -> None:
        """Pointwise maximum of both vectors, in place."""
        if not isinstance(other, GCounter):
            raise TypeError(f"cannot merge {type(other).__name__} into GCounter")
        counts = self.counts
        for r, n in other.counts.items():
            if n > counts.get(r, 0):
                counts[r] = n
        if other.reset:
            reset = self.reset
            for r, n in other.reset.items():
                if n > reset.get(r, 0):
                    reset[r] = n

    @property
    def value(self) -> int:
        if self.reset:
            return sum(self.counts.values()) - sum(self.reset.values())
        return sum(self.counts.values())

    def get(self, replica: str) -> int:
        """The increments made at ``replica`` since the last reset seen here."""
        return self.counts.get(replica, 0) - self.reset.get(replica, 0)

    def max_counter(self, replica: str) -> int:
        """``replica``'s count as far as this state knows it (0 if none; a reset's record
        of it included). Only ``replica`` raises it, by its increments: a receiver refuses
        a state that raises its own (``sync.replica.inbound``), which would otherwise leave
        it no room to count (a forged 2**63-1 made every later increment an overflow)."""
        return max(self.counts.get(replica, 0), self.reset.get(replica, 0))

    def is_live(self) -> bool:
        """Some replica's increments outlive every reset seen here."""
        reset = self.reset
        if not reset:
            return any(self.counts.values())  # (counts are never negative)
        return any(n > reset.get(r, 0) for r, n in self.counts.items())

    def copy(self) -> GCounter:
        c = GCounter()
        c.counts = dict(self.counts)
        if self.reset:
            c.reset = dict(self.reset)
        return c

    def is_bottom(self) -> bool:
        return not self.counts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GCounter):
            return NotImplemented
        return self.counts == other.counts and self.reset == other.reset

    def __repr__(self) -> str:
        if self.reset:
            return f"GCounter({self.value}, {self.counts_dict()!r}, reset={self.reset_dict()!r})"
        return f"GCounter({self.value}, {self.counts_dict()!r})"

    def split(self, max_bytes: int) -> list[GCounter]:
        """This counter as deltas of at most ``max_bytes`` each when encoded, whose join is
        the counter: ``[copy]`` if it fits, else counters of a few replicas each (their
        counts and resets: each below the counter, any of them a valid delta)."""
        budget = check_budget(max_bytes)
        if utf8_len(self.to_json()) <= budget:
            return [self.copy()]
        groups = pack(self._replica_units(), max(1, budget - 64))
        return [self._part(group) for group in groups] or [self.copy()]

    def _replica_units(self) -> list[tuple[str, int]]:
        """Per replica, its weight in an encoding: its count and reset, commas included."""
        rj, reset = REPLICA_TEXTS, self.reset
        return [
            (r, 2 * utf8_len(rj[r]) + len(str(n)) + len(str(reset.get(r, 0))) + 4)
            for r, n in sorted(self.counts.items())
        ]

    def _part(self, replicas: list[str]) -> GCounter:
        """The counter restricted to ``replicas`` (counts and resets)."""
        part = GCounter()
        part.counts = {r: self.counts[r] for r in replicas}
        part.reset = {r: self.reset[r] for r in replicas if r in self.reset}
        return part

    def counts_dict(self) -> dict[str, int]:
        return {r: self.counts[r] for r in sorted(self.counts)}

    def reset_dict(self) -> dict[str, int]:
        return {r: self.reset[r] for r in sorted(self.reset)}

    def counts_json(self) -> str:
        """The JSON text of ``counts_dict()``, as ``json.dumps`` writes it (compact)."""
        return _vector_json(self.counts)

    def reset_json(self) -> str:
        """The JSON text of ``reset_dict()``, as ``json.dumps`` writes it (compact)."""
        return _vector_json(self.reset)

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.kind, "v": FORMAT_VERSION, "counts": self.counts_dict()}
        if self.reset:
            d["reset"] = self.reset_dict()
        return d

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"),
        allow_nan=False)``, written without the dict (every delta sent is encoded once)."""
        head = f'{{"type":"gcounter","v":{FORMAT_VERSION},"counts":{self.counts_json()}'
        if self.reset:
            return f'{head},"reset":{self.reset_json()}}}'
        return head + "}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GCounter:
        body = check_header(d, cls.kind, _FIELDS)
        c = cls()
        c.counts = decode_counts(get_dict(body, "counts", "counts"), "counts")
        if "reset" in body:
            c.reset = decode_reset(get_dict(body, "reset", "reset"), c.counts, "reset")
        return c


def _vector_json(counts: dict[str, int]) -> str:
    """The compact JSON text of ``{replica: n}``, sorted, as ``json.dumps`` writes it."""
    rj = REPLICA_TEXTS
    if len(counts) == 1:  # a delta's: nothing to sort (a loop of one turn)
        for r, n in counts.items():
            return f"{{{rj[r]}:{n}}}"
    return "{" + ",".join([f"{rj[r]}:{counts[r]}" for r in sorted(counts)]) + "}"


def decode_counts(x: dict[str, Any], path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r, n in x.items():
        if type(r) is not str or not r:
            raise DecodeError(path, f"replica id must be a non-empty string, got {shown(r)}")
        if type(n) is not int or not 1 <= n <= MAX_INT:
            raise DecodeError(
                f"{path}.{r}", f"count must be an integer in 1..2**63-1, got {shown(n)}"
            )
        out[r] = n
    return dict(sorted(out.items()))


def decode_reset(x: dict[str, Any], counts: dict[str, int], path: str) -> dict[str, int]:
    """A reset vector: counts (as :func:`decode_counts`) none above the replica's count (a
    reset only records what it saw)."""
    out = decode_counts(x, path)
    for r, n in out.items():
        if n > counts.get(r, 0):
            raise DecodeError(f"{path}.{r}", f"reset {n} is above the replica's count")
    return out
