"""Unit tests for crdt/dotstores.py: the joins of DotSet, DotFun and DotMap."""

from __future__ import annotations

from crdt import CausalContext, Dot, DotFun, DotMap, DotSet

A1, A2, B1, B2 = Dot("A", 1), Dot("A", 2), Dot("B", 1), Dot("B", 2)


def test_dotset_join_keeps_common_dots_and_dots_unseen_by_the_other_side() -> None:
    c1 = CausalContext({"A": 2, "B": 1})
    c2 = CausalContext({"A": 1, "B": 2})
    s = DotSet({A1, A2, B1})
    s.join(c1, DotSet({A1, B2}), c2)
    # A1: on both sides. A2: c2 never saw it. B1: c2 saw it and dropped it. B2: new to c1.
    assert s.set == {A1, A2, B2}


def test_dotset_join_is_commutative_on_an_example() -> None:
    c1, c2 = CausalContext({"A": 2}), CausalContext({"A": 1, "B": 1})
    x, y = DotSet({A2}), DotSet({B1})
    x2, y2 = x.copy(), y.copy()
    x.join(c1, y, c2)
    y2.join(c2, x2, c1)
    assert x == y2


def test_dotfun_join_drops_dots_the_other_side_removed_and_adds_new_ones() -> None:
    f: DotFun[str] = DotFun({A1: "old", A2: "kept"})
    f.join(CausalContext({"A": 2}), DotFun({B1: "new"}), CausalContext({"A": 1, "B": 1}))
    assert f.entries == {A2: "kept", B1: "new"}


def test_discard_covered_is_the_join_with_an_empty_store() -> None:
    s = DotSet({A1, A2})
    s.discard_covered(CausalContext({"A": 1}))
    assert s.set == {A2}
    f: DotFun[int] = DotFun({A1: 1, B1: 2})
    f.discard_covered(CausalContext({"B": 1}))
    assert f.entries == {A1: 1}


def test_dotmap_join_is_pointwise_and_drops_emptied_keys() -> None:
    c1 = CausalContext({"A": 2})
    c2 = CausalContext({"A": 2, "B": 1})
    m: DotMap[str, DotSet] = DotMap({"x": DotSet({A1}), "y": DotSet({A2})})
    other: DotMap[str, DotSet] = DotMap({"y": DotSet({A2}), "z": DotSet({B1})})
    m.join(c1, other, c2)
    # x: A1 seen by c2, absent there -> removed; y: common; z: new.
    assert set(m.entries) == {"y", "z"}
    assert m.entries["z"].set == {B1}
    assert sorted(m.dots()) == [A2, B1]


def test_dotmap_join_copies_what_it_takes_from_the_other_side() -> None:
    m: DotMap[str, DotSet] = DotMap()
    other: DotMap[str, DotSet] = DotMap({"z": DotSet({B1})})
    m.join(CausalContext(), other, CausalContext({"B": 1}))
    m.entries["z"].set.add(B2)
    assert other.entries["z"].set == {B1}


def test_nested_dotmap_join_and_equality() -> None:
    inner: DotMap[str, DotSet] = DotMap({"e": DotSet({A1})})
    m: DotMap[str, DotMap[str, DotSet]] = DotMap({"k": inner})
    c = m.copy()
    assert c == m and c.entries["k"] is not inner
    m.join(CausalContext({"A": 1}), DotMap(), CausalContext({"A": 1}))
    assert m.is_empty() and not c.is_empty()
