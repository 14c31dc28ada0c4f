"""Long-lived CRDT state is (nearly) invisible to CPython's cyclic garbage collector.

Every object the collector tracks is walked by each full collection, so a state made of a
few tracked objects per element makes every full collection cost O(state). Dots and
timestamps are plain tuples, the stores hold only str/int keys and tuples of those, and
CPython untracks such tuples (and dicts holding only untracked things) the first time a
collection sees them. These tests pin that: after ``gc.collect()`` a big ORSet or ORMap of
LWW registers adds a small constant number of tracked objects, whatever its size.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from crdt import Dot, ORMap, ORSet, Timestamp

N = 1000
# The objects of the state itself (the CRDT object, its dicts, its context and cloud set),
# plus slack for anything the interpreter allocates meanwhile; far below one per element.
MAX_TRACKED = 20


def _settle() -> None:
    """Collect until nothing more is untracked: a pass untracks a tuple only if its items
    already are, so a tuple nested three deep may need three passes (a long-lived state
    sees many more than that)."""
    for _ in range(5):
        n = len(gc.get_objects())
        gc.collect()
        if len(gc.get_objects()) == n:
            return


def _tracked_after_building(build: Callable[[], Any]) -> tuple[int, Any]:
    _settle()
    before = len(gc.get_objects())
    state = build()
    _settle()
    return len(gc.get_objects()) - before, state


def _orset() -> ORSet:
    s = ORSet()
    for i in range(N):
        s.add("A", f"e{i}")
    s.add("B", 7)  # int elements too
    return s


def _ormap() -> ORMap:
    m = ORMap()
    for i in range(N):
        value = i if i % 2 else f"v{i}"
        m.update("A", f"k{i}", "lww", lambda r, v=value, i=i: r.set("A", v, now_ms=1_000 + i))
    return m


def _merged(make: Callable[[], Any]) -> Callable[[], Any]:
    """A state built on another replica from the deltas of ``make``'s, decoded from dicts."""

    def build() -> Any:
        src = make()
        dst = type(src)()
        dst.merge(type(src).from_dict(src.to_dict()))
        return dst

    return build


@pytest.mark.parametrize(
    "build",
    [_orset, _ormap, _merged(_orset), _merged(_ormap)],
    ids=["orset", "ormap", "orset-decoded", "ormap-decoded"],
)
def test_a_big_state_adds_a_small_constant_number_of_tracked_objects(
    build: Callable[[], Any],
) -> None:
    tracked, state = _tracked_after_building(build)
    assert len(state) >= N
    assert tracked <= MAX_TRACKED, f"{tracked} GC-tracked objects for {N} elements"


def test_deltas_merged_one_by_one_leave_the_state_untracked() -> None:
    def build() -> tuple[ORSet, ORMap]:
        s_src, m_src = ORSet(), ORMap()
        s, m = ORSet(), ORMap()
        for i in range(N):
            s.merge(ORSet.from_dict(s_src.add("B", f"e{i}").to_dict()))
            d = m_src.update("B", i, "lww", lambda r, i=i: r.set("B", f"v{i}", now_ms=5 + i))
            m.merge(ORMap.from_dict(d.to_dict()))
        return s, m

    tracked, (s, m) = _tracked_after_building(build)
    assert len(s) == len(m) == N
    assert tracked <= 2 * MAX_TRACKED, f"{tracked} GC-tracked objects for {N} elements"


def test_the_internal_containers_are_untracked_after_a_collection() -> None:
    s = _orset()
    m = _ormap()
    _settle()
    assert not gc.is_tracked(s._entries)
    assert not any(gc.is_tracked(dots) for dots in s._entries.values())
    assert not gc.is_tracked(m._entries)
    assert not any(gc.is_tracked(store) for store in m._entries.values())
    # The index (crdt/_dot_index.py): one dict per replica, untracked; the dict of them is
    # tracked (a dict holding dicts always is), one object of a few items.
    assert m._index is not None and not any(gc.is_tracked(x) for x in m._index.values())


def test_dots_and_timestamps_are_plain_tuples() -> None:
    assert type(Dot("A", 1)) is tuple and Dot("A", 1) == ("A", 1)
    assert type(Timestamp(5, 0, "A")) is tuple and Timestamp(5, 0, "A") == (5, 0, "A")
    s = ORSet()
    (dot,) = s.add("A", "x").dots_of("x")
    assert type(dot) is tuple
    m = ORMap()
    m.update("A", "k", "lww", lambda r: r.set("A", 1, now_ms=3))
    assert type(m.get("k").timestamp) is tuple


def _tracked_tuples() -> int:
    """The exact tuples the collector tracks now (whoever holds them)."""
    return sum(1 for o in gc.get_objects() if type(o) is tuple)


@pytest.mark.parametrize(
    "build",
    [_orset, _ormap, _merged(_orset), _merged(_ormap)],
    ids=["orset", "ormap", "orset-decoded", "ormap-decoded"],
)
def test_new_state_is_untracked_by_the_young_collections(build: Callable[[], Any]) -> None:
    """A tuple is untracked only by a collection of the generation it sits in, and only if
    its items already are; a tuple of tuples of tuples therefore reaches the oldest
    generation still tracked, and counts toward CPython's trigger for full collections. The
    stores nest at most two levels, so the two young collections untrack all of them."""
    _settle()
    gc.disable()
    try:
        before = _tracked_tuples()
        state = build()
        gc.collect(0)
        gc.collect(1)
        tracked = _tracked_tuples() - before
    finally:
        gc.enable()
    assert len(state) >= N
    assert tracked <= MAX_TRACKED, f"{tracked} tuples still tracked for {N} elements"


def _nested_tuples(x: object) -> list[tuple[Any, ...]]:
    """The tuples in ``x`` (a store, a dict of stores, recursively) that hold a tuple."""
    if type(x) is dict:
        return [t for k, v in x.items() for t in (*_nested_tuples(k), *_nested_tuples(v))]
    if type(x) is tuple:
        return [x] if any(type(i) is tuple for i in x) else []
    return []


def test_every_store_tuple_holds_only_atoms() -> None:
    """One level of tuples, whatever the kind: the first collection that sees them untracks
    them, whatever order the collector examines them in."""
    s = _orset()
    s.merge(ORSet.from_dict(ORSet().add("B", "e1").to_dict()))  # an element with two dots
    m = _ormap()
    for kind, fn in [
        ("gcounter", lambda c: c.increment("A", 2)),
        ("pncounter", lambda c: c.decrement("A", 3)),
        ("mvregister", lambda r: r.set("A", "x")),
        ("orset", lambda t: t.add("A", "y")),
        ("ormap", lambda n: n.update("A", "in", "lww", lambda r: r.set("A", 1, now_ms=1))),
    ]:
        m.update("A", kind, kind, fn)
        other = ORMap()
        other.update("B", kind, kind, fn)  # a concurrent write: two entries in the store
        m.merge(other)
    assert s._index is not None and m._index is not None
    for store in (s._entries, s._index, m._entries, m._index):
        assert _nested_tuples(store) == []
