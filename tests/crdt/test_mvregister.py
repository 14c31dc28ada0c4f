"""Unit tests for crdt/mvregister.py: siblings, supersession, resolve, codec."""

from __future__ import annotations

import pytest

from crdt import DecodeError, MVRegister


def test_concurrent_sets_are_kept_as_siblings_in_dot_order() -> None:
    a, b = MVRegister(), MVRegister()
    db = b.set("B", "from B")
    da = a.set("A", "from A")
    a.merge(db)
    b.merge(da)
    assert a.values == b.values == ("from A", "from B")
    assert a.value == a.values and a == b


def test_a_set_after_seeing_every_sibling_replaces_them() -> None:
    a, b = MVRegister(), MVRegister()
    da, db = a.set("A", 1), b.set("B", 2)
    a.merge(db)
    b.merge(da)
    assert a.values == (1, 2)
    d = a.set("A", 3)
    b.merge(d)
    assert a.values == b.values == (3,)


def test_sibling_count_is_the_number_of_values() -> None:
    a, b, c = MVRegister(), MVRegister(), MVRegister()
    assert a.sibling_count == 0
    for r, replica in ((a, "A"), (b, "B"), (c, "C")):
        r.set(replica, replica.lower())
    a.merge(b)
    assert a.sibling_count == len(a.values) == 2
    a.merge(c)
    assert a.sibling_count == len(a.values) == 3
    a.set("A", "one")
    assert a.sibling_count == len(a.values) == 1


def test_a_sequential_set_on_one_replica_replaces_its_own_value() -> None:
    r = MVRegister()
    r.set("A", 1)
    r.set("A", 2)
    assert r.values == (2,)


def test_the_delta_of_set_covers_the_values_it_replaced() -> None:
    a = MVRegister()
    a.set("A", "old")
    old = a.copy()
    d = a.set("A", "new")
    old.merge(d)
    assert old == a and old.values == ("new",)


def test_resolve_folds_siblings() -> None:
    a, b = MVRegister(), MVRegister()
    a.set("A", ["milk", "flour"])
    a.merge(b.set("B", ["eggs"]))
    assert a.resolve(lambda vs: sorted(set().union(*vs))) == ["eggs", "flour", "milk"]


def test_clear_empties_the_register_observed_remove_style() -> None:
    a, b = MVRegister(), MVRegister()
    b.merge(a.set("A", 1))
    d = b.clear()
    concurrent = a.set("A", 2)
    a.merge(d)
    b.merge(concurrent)
    assert a.values == b.values == (2,)


def test_values_are_copies() -> None:
    r = MVRegister()
    r.set("A", ["x"])
    r.values[0].append("y")
    assert r.values == (["x"],)


def test_non_json_values_are_refused_and_change_nothing() -> None:
    r = MVRegister()
    r.set("A", 1)
    before = r.to_dict()
    with pytest.raises(TypeError, match="set"):
        r.set("A", {1})
    with pytest.raises(TypeError, match="int"):
        r.set("A", {2: "x"})
    assert r.to_dict() == before


def test_equality_distinguishes_json_types_python_conflates() -> None:
    a, b = MVRegister(), MVRegister()
    a.set("A", 1)
    b.set("A", True)
    assert a != b


def test_codec_round_trip_and_refusals() -> None:
    r = MVRegister()
    r.set("A", {"k": 1})
    r.merge(MVRegister().set("B", None))
    d = r.to_dict()
    assert d["entries"] == [[["A", 1], {"k": 1}], [["B", 1], None]]
    assert MVRegister.from_dict(d) == r
    bad = {"type": "mvregister", "v": 1, "entries": [[["C", 1], 1]], "ctx": d["ctx"]}
    with pytest.raises(DecodeError, match="not covered") as e:
        MVRegister.from_dict(bad)
    assert e.value.path == "entries[0][0]"
    with pytest.raises(DecodeError) as e:
        MVRegister.from_dict({"type": "mvregister", "v": 1, "entries": []})
    assert e.value.path == "ctx"


def test_a_set_replaces_what_it_saw_at_a_replica_that_missed_the_set_in_between() -> None:
    """The delta of a set carries every dot seen where it was made: a replica that missed
    the delta of an earlier set (a lost push, whose gap anti-entropy fills later) still drops
    the value that earlier set overwrote, instead of showing it as a sibling."""
    a, b = MVRegister(), MVRegister()
    b.merge(a.set("A", "v1"))
    a.set("A", "v2")  # its delta is lost on the way to B
    b.merge(a.set("A", "v3"))
    assert b.values == a.values == ("v3",)
