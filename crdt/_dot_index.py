"""A reverse index of dots, by replica then counter: ``{replica: {counter: owner}}``.

What a causal container (an ORMap) keeps to find the entry holding a dot without a pass over
its entries. Keyed by the replica, then by the counter, it holds no tuple per dot: the
counter is the int the store holds already (a flat store's entries start with their dot's
fields, ``crdt/_flat.py``), where a ``{dot: owner}`` dict held a 2-tuple per dot besides
(56 bytes each: 5.6 MB for a map of 100k registers, ``tests/crdt/test_map_memory.py``).

Each replica's dict holds atoms and owners (tuples of atoms), so once a full collection has
passed, CPython's collector untracks it; only the dict of them, a few items, stays tracked
(a dict holding dicts always is: ``tests/crdt/test_gc_footprint.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from crdt.causal_context import CausalContext
from crdt.dot import Dot

__all__ = ["DotIndex", "index_copy", "index_dots", "index_items", "index_of", "index_pop"]

T = TypeVar("T")

DotIndex = dict[str, dict[int, T]]


def index_of(pairs: Iterable[tuple[Iterable[Dot], T]]) -> DotIndex[T]:
    """The index of ``(dots, owner)`` pairs: each dot of ``dots`` owned by ``owner``."""
    index: DotIndex[T] = {}
    for dots, owner in pairs:
        index_dots(index, dots, owner)
    return index


def index_dots(index: DotIndex[T], dots: Iterable[Dot], owner: T) -> None:
    """Record ``owner`` as the owner of each of ``dots``."""
    for r, c in dots:
        inner = index.get(r)
        if inner is None:
            index[r] = {c: owner}
        else:
            inner[c] = owner


def index_pop(index: DotIndex[T], dots: Iterable[Dot]) -> None:
    """Forget ``dots`` (those not held are ignored)."""
    for r, c in dots:
        inner = index.get(r)
        if inner is not None:
            inner.pop(c, None)
            if not inner:
                del index[r]


def index_copy(index: DotIndex[T]) -> DotIndex[T]:
    """A copy sharing nothing mutable with ``index``."""
    return {r: inner.copy() for r, inner in index.items()}


def index_items(index: DotIndex[T], ctx: CausalContext) -> Iterator[tuple[Dot, T]]:
    """``(dot, owner)`` for each dot of ``ctx`` that ``index`` holds: in O(size of ctx), or
    O(dots held of a replica) where that is less. The pairs of each replica are listed
    before they are yielded, so the caller may change ``index`` meanwhile."""
    for d in ctx.cloud:
        inner = index.get(d[0])
        if inner is not None:
            owner = inner.get(d[1])
            if owner is not None:
                yield d, owner
    for r, n in ctx.vv.items():
        inner = index.get(r)
        if inner is None:
            continue
        if len(inner) < n:
            found = [(c, o) for c, o in inner.items() if c <= n]
        else:
            get = inner.get
            found = [(c, o) for c in range(1, n + 1) if (o := get(c)) is not None]
        for c, owner in found:
            yield (r, c), owner  # type: ignore[misc]
