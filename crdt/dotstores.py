"""The three dot stores of the delta-state CRDT paper, and their joins.

A causal CRDT is a pair (dot store, causal context). The context holds every dot the replica
has seen; the store holds the dots still *live*. A dot that is in the context but not in the
store was removed, which is why no tombstones are needed. Joins (Almeida, Shoker, Baquero,
"Delta State Replicated Data Types", 2018, section 5.2):

- ``DotSet``  (a set of dots):
  ``(s1, c1) ⊔ (s2, c2) = ((s1 & s2) | (s1 - c2) | (s2 - c1), c1 | c2)``
- ``DotFun``  (dot -> value; a dot's value never changes): the same on the dot keys; a dot
  present on both sides has the same value on both.
- ``DotMap``  (key -> embedded dot store): join the embedded stores pointwise with the two
  outer contexts; a key whose store becomes empty disappears.

The ``join`` methods here work *in place* on the store only, and read the contexts of both
sides; the caller merges the contexts afterwards (``c1.merge(c2)``), since the store join
needs the contexts as they were before. Joining with a side's absent store is joining with an
empty store: ``s1 ⊔ {} = s1 - c2`` is :meth:`discard_covered`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

from crdt._json import encoding_rank, same_json
from crdt.causal_context import CausalContext
from crdt.dot import Dot

__all__ = ["DotFun", "DotMap", "DotSet", "DotStore"]

V = TypeVar("V")
K = TypeVar("K")
S = TypeVar("S", bound="DotStore")


class DotStore(Protocol):
    """What every dot store offers."""

    def dots(self) -> Iterator[Dot]: ...
    def is_empty(self) -> bool: ...
    def join(self, ctx: CausalContext, other: Any, other_ctx: CausalContext) -> None: ...
    def discard_covered(self, ctx: CausalContext) -> None: ...
    def copy(self) -> Any: ...


class DotSet:
    """A set of dots.

    >>> c1, c2 = CausalContext({"A": 2}), CausalContext({"A": 1, "B": 1})
    >>> s = DotSet({Dot("A", 2)}); s.join(c1, DotSet({Dot("B", 1)}), c2)
    >>> sorted(s.dots())      # (A,2) is unseen by c2: kept; (B,1) is new to c1: added
    [('A', 2), ('B', 1)]
    """

    __slots__ = ("set",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, dots: set[Dot] | None = None) -> None:
        self.set: set[Dot] = set(dots) if dots else set()

    def dots(self) -> Iterator[Dot]:
        return iter(self.set)

    def is_empty(self) -> bool:
        return not self.set

    def join(self, ctx: CausalContext, other: DotSet, other_ctx: CausalContext) -> None:
        s1, s2 = self.set, other.set
        oc = other_ctx.contains
        c = ctx.contains
        self.set = {d for d in s1 if d in s2 or not oc(d)} | {d for d in s2 if not c(d)}

    def discard_covered(self, ctx: CausalContext) -> None:
        c = ctx.contains
        self.set = {d for d in self.set if not c(d)}

    def copy(self) -> DotSet:
        return DotSet(self.set)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotSet) and self.set == other.set

    def __repr__(self) -> str:
        return f"DotSet({sorted(self.set)!r})"


class DotFun(Generic[V]):
    """A map dot -> value; values are immutable once written.

    >>> f: DotFun[str] = DotFun({Dot("A", 1): "x"})
    >>> f.join(CausalContext({"A": 1}), DotFun({Dot("B", 1): "y"}), CausalContext({"A": 1, "B": 1}))
    >>> f.entries      # (A,1) was seen by the other side and is gone there: removed
    {('B', 1): 'y'}
    """

    __slots__ = ("entries",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, entries: dict[Dot, V] | None = None) -> None:
        self.entries: dict[Dot, V] = dict(entries) if entries else {}

    def dots(self) -> Iterator[Dot]:
        return iter(self.entries)

    def is_empty(self) -> bool:
        return not self.entries

    def join(self, ctx: CausalContext, other: DotFun[V], other_ctx: CausalContext) -> None:
        e1, e2 = self.entries, other.entries
        oc = other_ctx.contains
        c = ctx.contains
        out = {d: v for d, v in e1.items() if d in e2 or not oc(d)}
        for d, v in e2.items():
            if d not in out:
                if not c(d):
                    out[d] = v
            elif not same_json(out[d], v) and encoding_rank(v) < encoding_rank(out[d]):
                # One dot, two values: its origin used the dot twice (a faulty or hostile
                # one). Either side may hear of either first; the smaller encoding is kept
                # everywhere, so that replicas agree.
                out[d] = v
        self.entries = out

    def discard_covered(self, ctx: CausalContext) -> None:
        c = ctx.contains
        self.entries = {d: v for d, v in self.entries.items() if not c(d)}

    def copy(self) -> DotFun[V]:
        return DotFun(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotFun) and self.entries == other.entries

    def __repr__(self) -> str:
        return f"DotFun({dict(sorted(self.entries.items()))!r})"


class DotMap(Generic[K, S]):
    """A map key -> embedded dot store; empty embedded stores are dropped.

    >>> m: DotMap[str, DotSet] = DotMap({"x": DotSet({Dot("A", 1)})})
    >>> m.join(CausalContext({"A": 1}), DotMap(), CausalContext({"A": 1}))
    >>> m.is_empty()         # the other side saw (A,1) and dropped it: x is removed
    True
    """

    __slots__ = ("entries",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, entries: dict[K, S] | None = None) -> None:
        self.entries: dict[K, S] = dict(entries) if entries else {}

    def dots(self) -> Iterator[Dot]:
        for s in self.entries.values():
            yield from s.dots()

    def is_empty(self) -> bool:
        return not self.entries

    def join(self, ctx: CausalContext, other: DotMap[K, S], other_ctx: CausalContext) -> None:
        mine = self.entries
        theirs = other.entries
        for k, s2 in theirs.items():
            s1 = mine.get(k)
            if s1 is None:
                s = s2.copy()
                s.discard_covered(ctx)
                if not s.is_empty():
                    mine[k] = s
            else:
                s1.join(ctx, s2, other_ctx)
                if s1.is_empty():
                    del mine[k]
        for k in [k for k in mine if k not in theirs]:
            s1 = mine[k]
            s1.discard_covered(other_ctx)
            if s1.is_empty():
                del mine[k]

    def discard_covered(self, ctx: CausalContext) -> None:
        mine = self.entries
        for k in list(mine):
            s = mine[k]
            s.discard_covered(ctx)
            if s.is_empty():
                del mine[k]

    def copy(self) -> DotMap[K, S]:
        return DotMap({k: s.copy() for k, s in self.entries.items()})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotMap) and self.entries == other.entries

    def __repr__(self) -> str:
        return f"DotMap({self.entries!r})"
