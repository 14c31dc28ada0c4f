"""The counters embedded in an ORMap (kinds ``gcounter`` and ``pncounter``): causal counters.

A standalone counter (``crdt/gcounter.py``) is not causal, so a map could not remove it by
the dots it has seen. Embedded, a counter is a DotFun: each replica keeps *one* dot carrying
its running totals ``(p, n)``, and an increment replaces that replica's dot with a fresh one
carrying the new totals (riak_dt's ``riak_dt_emcntr``, the counter of ``riak_dt_map``). So
the store stays bounded (one entry per replica), and a remove of the key followed by a
concurrent increment keeps exactly the replicas whose dots the remove did not see, with
their running totals (Riak map semantics). The join keeps one entry per replica, its latest,
whatever order the deltas come in (``_latest``). Value: the sum of ``p - n``.

Store: flat entries ``(r, c, p, n)`` (``crdt/_flat.py``), sorted by dot. Encoding (the body
of the map entry): ``gcounter`` ``[[dot, p], ...]``, ``pncounter`` ``[[dot, p, n], ...]``,
dots as ``[r, c]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from crdt._flat import flat, rows
from crdt._json import REPLICA_TEXTS
from crdt.causal_context import CausalContext, claim_dot
from crdt.dot import MAX_INT, Dot, check_replica, dot_from_json
from crdt.embedded import DotTaker, FlatKind
from crdt.errors import DecodeError, shown
from crdt.gcounter import check_amount

__all__ = ["EmbeddedCounter", "EmbeddedPNCounter"]

Store = tuple[Any, ...]  # (r, c, p, n, ...)


class EmbeddedCounter(DotTaker):
    """A grow-only counter in an ORMap (what ``update``'s ``fn`` gets for ``"gcounter"``).

    One dot per replica, carrying its running total:

    >>> from crdt import ORMap
    >>> m = ORMap()
    >>> for n in (2, 3):
    ...     _ = m.update("A", "hits", "gcounter", lambda c: c.increment("A", n))
    >>> m.value, m.to_dict()["entries"]
    ({'hits': 5}, [['hits', 'gcounter', [[['A', 2], 5]]]])
    """

    kind: ClassVar[str] = "gcounter"
    __slots__ = ()

    @property
    def value(self) -> int:
        return _value(self.store)

    def increment(self, replica: str, n: int = 1) -> EmbeddedCounter:
        """Add ``n >= 1`` at ``replica``; returns the view (``update`` returns the delta)."""
        check_replica(replica)
        return self._bump(replica, check_amount(n), 0)

    def _bump(self, replica: str, dp: int, dn: int) -> EmbeddedCounter:
        """Replace ``replica``'s entry by one with a fresh dot and the totals plus ``dp, dn``."""
        p, n = dp, dn
        rest = []
        for x in rows(self.store, 4):
            if x[0] == replica:
                p += x[2]
                n += x[3]
            else:
                rest.append(x)
        if p > MAX_INT or n > MAX_INT:
            raise ValueError(f"counter overflow: {replica!r}'s total would pass 2**63-1")
        rest.append((replica, self.take_dot(replica)[1], p, n))
        rest.sort()
        self.store = flat(rest)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value})"


class EmbeddedPNCounter(EmbeddedCounter):
    """A counter that goes both ways in an ORMap (``fn``'s argument for ``"pncounter"``).

    >>> from crdt import ORMap
    >>> m = ORMap()
    >>> def restock(c):
    ...     c.increment("A", 5)
    ...     c.decrement("A", 2)
    >>> _ = m.update("A", "stock", "pncounter", restock)
    >>> m.value, m.to_dict()["entries"]
    ({'stock': 3}, [['stock', 'pncounter', [[['A', 2], 5, 2]]]])
    """

    kind: ClassVar[str] = "pncounter"
    __slots__ = ()

    def decrement(self, replica: str, n: int = 1) -> EmbeddedCounter:
        """Subtract ``n >= 1`` at ``replica``; returns the view."""
        check_replica(replica)
        return self._bump(replica, 0, check_amount(n))


def _value(store: Store) -> int:
    return sum(store[2::4]) - sum(store[3::4])


class _CounterKind(FlatKind):
    width = 4

    def value(self, store: Store) -> int:
        return _value(store)

    def join(self, s1: Store, ctx1: CausalContext, s2: Store, ctx2: CausalContext) -> Store:
        """The DotFun join, then one entry per replica: its latest (see :func:`_latest`)."""
        return _latest(super().join(s1, ctx1, s2, ctx2))


def _latest(store: Store) -> Store:
    """``store`` with, per replica, only its entry of the highest counter (``store`` itself if
    it holds one entry per replica already).

    A replica's entries are its running totals, each made replacing the one before it (or
    after a remove it saw), so a later one has seen every earlier one: an earlier entry is
    never live beside a later one in a full state. A delta's context holds only the dot it
    replaced, though, so a replica that missed the delta in between (a lost push, gaps taken
    out of order, the pieces of a state transfer) would hold both, counting the earlier total
    twice until the missing delta came. Keeping the latest (its dot past the earlier one in
    the context already) is riak_dt_emcntr's merge, which keeps one entry per actor.
    """
    if len(store) <= 4:
        return store
    replicas = store[0::4]
    if len(set(replicas)) == len(replicas):
        return store
    # Sorted by dot: a replica's entries are a run, its latest the last of the run.
    last = len(replicas) - 1
    return flat([x for i, x in enumerate(rows(store, 4)) if i == last or replicas[i + 1] != x[0]])


class GCounterKind(_CounterKind):
    """The embedded ``gcounter``: entries ``(r, c, p, 0)``, encoded ``[[dot, p], ...]``."""

    kind = "gcounter"
    view_type = EmbeddedCounter

    def encode(self, store: Store) -> list[Any]:
        return [[[x[0], x[1]], x[2]] for x in rows(store, 4)]

    def to_json(self, store: Store) -> str:
        rj = REPLICA_TEXTS
        body = ",".join(
            [f"[[{rj[store[i]]},{store[i + 1]}],{store[i + 2]}]" for i in range(0, len(store), 4)]
        )
        return f"[{body}]"

    def decode(self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> Store:
        return _decode(body, ctx, path, seen, 2)


class PNCounterKind(_CounterKind):
    """The embedded ``pncounter``: entries ``(r, c, p, n)``, encoded ``[[dot, p, n], ...]``."""

    kind = "pncounter"
    view_type = EmbeddedPNCounter

    def encode(self, store: Store) -> list[Any]:
        return [[[x[0], x[1]], x[2], x[3]] for x in rows(store, 4)]

    def to_json(self, store: Store) -> str:
        rj = REPLICA_TEXTS
        body = ",".join(
            [
                f"[[{rj[store[i]]},{store[i + 1]}],{store[i + 2]},{store[i + 3]}]"
                for i in range(0, len(store), 4)
            ]
        )
        return f"[{body}]"

    def decode(self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> Store:
        return _decode(body, ctx, path, seen, 3)


def _decode(body: list[Any], ctx: CausalContext, path: str, seen: set[Dot], width: int) -> Store:
    """Entries ``[dot, p]`` (``width`` 2) or ``[dot, p, n]`` (3) as a flat store."""
    out: list[Store] = []
    for i, entry in enumerate(body):
        p = f"{path}[{i}]"
        if type(entry) is not list or len(entry) != width:
            raise DecodeError(p, f"expected an array of {width} items")
        dot = dot_from_json(entry[0], f"{p}[0]")
        claim_dot(dot, ctx, seen, f"{p}[0]")
        nums = entry[1:] if width == 3 else [entry[1], 0]
        for j, x in enumerate(nums[: width - 1]):
            if type(x) is not int or not 0 <= x <= MAX_INT:
                raise DecodeError(f"{p}[{j + 1}]", f"expected an integer >= 0, got {shown(x)}")
        out.append((dot[0], dot[1], nums[0], nums[1]))
    out.sort()
    return flat(out)


GCOUNTER = GCounterKind()
PNCOUNTER = PNCounterKind()
