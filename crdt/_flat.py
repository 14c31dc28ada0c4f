"""Flat dot stores: a DotSet and a DotFun kept as one tuple of atoms each, and their joins.

The dot stores of the delta-state CRDT paper (Almeida, Shoker, Baquero, "Delta State
Replicated Data Types", 2018, section 5.2; :mod:`crdt.dotstores` has them as objects), in
the form that ORSet and ORMap keep them:

- **flat dots** (a DotSet): the dots sorted and flattened into one tuple
  ``(r1, c1, r2, c2, ...)``; a single dot (the common case) is the dot itself. An ORSet
  element's dots.
- **flat entries** of width ``k`` (a DotFun): every entry's ``k`` fields in one tuple, the
  first two the entry's dot ``(r, c)``, entries sorted by dot; a single entry is the tuple of
  its fields. The store of every register and counter embedded in an ORMap (its join is
  :class:`crdt.embedded.FlatStore`'s).

Why flat: CPython's cyclic garbage collector untracks a tuple only during a collection of the
generation the tuple is in, and only if its items are untracked already, so each level of
nesting costs one more collection of an older generation, and a third level reaches the
oldest generation still tracked, where it counts toward the trigger of *full* collections.
A tuple of str, int, float, bool or None is untracked by the first (youngest) collection
that sees it and costs the collector nothing afterwards; a big state made of such tuples is
a handful of tracked objects (``tests/crdt/test_gc_footprint.py``). Flat stores are never
edited in place: every function here returns a new one (or its argument, unchanged).

The join of flat dots takes the two sides' contexts as ``vv`` dicts and ``cloud`` sets,
which its callers hold in their loops.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from crdt.dot import Dot

__all__: list[str] = []

# A flat DotSet: ``(r1, c1, r2, c2, ...)``, sorted; one dot is the dot itself.
Dots = tuple[Any, ...]
# A flat DotFun: its entries' fields in one tuple, a fixed width per store, entries sorted by
# dot; the first two fields of an entry are its dot.
Entries = tuple[Any, ...]


# -- flat dots ------------------------------------------------------------------------------
def dot_pairs(dots: Dots) -> list[Dot]:
    """The dots of a flat ``Dots``, in order."""
    if len(dots) == 2:
        return [dots]  # type: ignore[list-item]
    return list(zip(dots[::2], dots[1::2], strict=True))  # type: ignore[arg-type]


def flat_dots(dots: list[Dot]) -> Dots:
    """Sorted dots (plain tuples) as one flat ``Dots``; a single dot is kept as it is."""
    if len(dots) == 1:
        return dots[0]
    return tuple(chain.from_iterable(dots))


def unseen_dots(dots: Dots, vv: dict[str, int], cloud: set[Dot]) -> Dots:
    """The flat ``dots`` without those the context ``(vv, cloud)`` holds: ``dots`` itself if
    it holds none of them, ``()`` if it holds them all."""
    if len(dots) == 2:  # one dot
        return dots if dots[1] > vv.get(dots[0], 0) and dots not in cloud else ()
    keep = [d for d in dot_pairs(dots) if d[1] > vv.get(d[0], 0) and d not in cloud]
    if 2 * len(keep) == len(dots):
        return dots
    return flat_dots(keep) if keep else ()


def join_dots(
    d1: Dots, d2: Dots, vv: dict[str, int], cloud: set[Dot], ovv: dict[str, int], ocloud: set[Dot]
) -> Dots:
    """The DotSet join of ``d1`` (context ``vv``, ``cloud``) and ``d2`` (``ovv``, ``ocloud``),
    flat and sorted: ``d1`` itself if unchanged, ``()`` if no dot is left."""
    if d1 == d2:
        return d1
    p1, p2 = dot_pairs(d1), dot_pairs(d2)
    new = [d for d in p1 if d in p2 or (d[1] > ovv.get(d[0], 0) and d not in ocloud)]
    for d in p2:
        if d not in p1 and d[1] > vv.get(d[0], 0) and d not in cloud:
            new.append(d)
    if not new:
        return ()
    if len(new) > 1:
        new.sort()
    if new == p1:
        return d1
    return flat_dots(new)


# -- flat entries ---------------------------------------------------------------------------
def rows(store: Entries, k: int) -> list[Entries]:
    """The entries of a flat store of width ``k``, each a tuple, in order."""
    if len(store) == k:
        return [store]
    return [store[i : i + k] for i in range(0, len(store), k)]


def flat(entries: list[Entries]) -> Entries:
    """Entries sorted by dot as one flat store; a single entry as it is; none: ``()``."""
    if len(entries) == 1:
        return entries[0]
    return tuple(chain.from_iterable(entries))
