"""Values, set elements and map keys are JSON values; anything else is refused at the call.

Contract (DESIGN.md, docs/architecture.md section 1): a mutator given a value that is not
JSON raises ``TypeError`` naming the offending type *before anything changes* — the state's
canonical encoding is byte-identical before and after. Set elements and map keys must also be
hashable JSON (no objects). Other bad arguments (replica ids, amounts, kinds, timestamps) are
refused the same way. JSON values that are accepted come back equal (arrays as lists in
registers, as tuples in sets), the caller's list can be changed afterwards without touching
the state, and ``1``, ``1.0`` and ``True`` stay three distinct elements.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given

import crdt
from crdt import ClockSkewError, LWWRegister, MVRegister, ORMap, ORSet, Timestamp
from tests.crdt.conftest import canonical_bytes, crdt_settings, json_values, new

__all__: list[str] = []


@dataclass
class Point:
    x: int


# (bad value, a type name the error message must contain)
NON_JSON: list[tuple[Any, str]] = [
    (object(), "object"),
    ({1, 2}, "set"),
    (frozenset({"a"}), "frozenset"),
    (b"milk", "bytes"),
    (bytearray(b"milk"), "bytearray"),
    (float("nan"), "float"),
    (float("inf"), "float"),
    (-math.inf, "float"),
    (1j, "complex"),
    (Decimal("1.5"), "Decimal"),
    (Point(1), "Point"),
    ({1: "one"}, "int"),
    ({"ok": {"deeper": object()}}, "object"),
    (["milk", {2}], "set"),
    ((1, b"x"), "bytes"),
    ("milk\ud800", "surrogate"),  # a lone surrogate: no UTF-8, so no JSON text on the wire
    (["ok", "\udfff"], "surrogate"),
    (10**4000, "4000 digits"),  # more digits than Python writes as text
]
NON_JSON_IDS = [f"{type(v).__name__}-{name}" for v, name in NON_JSON]

# Hashable JSON is required of elements and keys: JSON objects are refused too.
NOT_ELEMENTS: list[tuple[Any, str]] = [*NON_JSON, ({"a": 1}, "dict"), (["x", {"a": 1}], "dict")]
NOT_ELEMENTS_IDS = [f"{type(v).__name__}-{name}" for v, name in NOT_ELEMENTS]


def populated(kind: str) -> Any:
    x = new(kind)
    if kind == "lww":
        x.set("A", "first", now_ms=1_000)
    elif kind == "mvregister":
        x.set("A", "first")
    elif kind == "orset":
        x.add("A", "milk")
    elif kind == "ormap":
        x.update("A", "cart", "orset", lambda s: s.add("A", "milk"))
        x.update("A", "title", "lww", lambda r: r.set("A", "list", now_ms=1_000))
    elif kind == "gcounter":
        x.increment("A", 2)
    elif kind == "pncounter":
        x.decrement("A", 2)
    return x


def assert_refused(
    kind: str, call: Callable[[Any], object], exc: type[Exception], *words: str
) -> None:
    x = populated(kind)
    before = canonical_bytes(x)
    with pytest.raises(exc) as e:
        call(x)
    for w in words:
        assert w in str(e.value), f"{w!r} not named in: {e.value}"
    assert canonical_bytes(x) == before, "a refused call changed the state"


# --------------------------------------------------------------------------- registers


@pytest.mark.parametrize(("bad", "name"), NON_JSON, ids=NON_JSON_IDS)
def test_lww_set_refuses_a_non_json_value_naming_its_type(bad: Any, name: str) -> None:
    assert_refused("lww", lambda r: r.set("A", bad, now_ms=2_000), TypeError, name)


@pytest.mark.parametrize(("bad", "name"), NON_JSON, ids=NON_JSON_IDS)
def test_mvregister_set_refuses_a_non_json_value_naming_its_type(bad: Any, name: str) -> None:
    assert_refused("mvregister", lambda r: r.set("A", bad), TypeError, name)


# --------------------------------------------------------------------------- sets and maps


@pytest.mark.parametrize(("bad", "name"), NOT_ELEMENTS, ids=NOT_ELEMENTS_IDS)
def test_orset_add_and_remove_refuse_a_non_json_element_naming_its_type(
    bad: Any, name: str
) -> None:
    assert_refused("orset", lambda s: s.add("A", bad), TypeError, name)
    assert_refused("orset", lambda s: s.remove(bad), TypeError, name)


@pytest.mark.parametrize(("bad", "name"), NOT_ELEMENTS, ids=NOT_ELEMENTS_IDS)
def test_ormap_refuses_a_non_json_key_naming_its_type(bad: Any, name: str) -> None:
    def bump(c: Any) -> Any:
        return c.increment("A")

    assert_refused("ormap", lambda m: m.update("A", bad, "gcounter", bump), TypeError, name)
    assert_refused("ormap", lambda m: m.remove(bad), TypeError, name)


@pytest.mark.parametrize(("bad", "name"), NON_JSON, ids=NON_JSON_IDS)
def test_ormap_refuses_a_non_json_value_set_inside_update_and_changes_nothing(
    bad: Any, name: str
) -> None:
    assert_refused(
        "ormap", lambda m: m.update("A", "title", "lww", lambda r: r.set("A", bad)), TypeError, name
    )
    assert_refused(
        "ormap", lambda m: m.update("A", "note", "mvregister", lambda r: r.set("A", bad)), TypeError
    )

    def add_bad(s: Any) -> Any:
        return s.add("A", bad)

    assert_refused("ormap", lambda m: m.update("A", "cart", "orset", add_bad), TypeError, name)


def test_ormap_refuses_a_non_json_element_deep_in_a_nested_map_and_changes_nothing() -> None:
    def nested(m: Any) -> Any:
        return m.update("A", "inner", "orset", lambda s: s.add("A", b"bytes"))

    assert_refused("ormap", lambda m: m.update("A", "child", "ormap", nested), TypeError, "bytes")


def test_ormap_update_whose_fn_raises_changes_nothing_even_after_a_first_mutation() -> None:
    def half_done(s: Any) -> None:
        s.add("A", "eggs")  # a valid mutation first...
        raise RuntimeError("app bug")  # ...then the app's function fails

    assert_refused("ormap", lambda m: m.update("A", "cart", "orset", half_done), RuntimeError)


def test_ormap_update_refuses_an_unknown_kind_and_a_kind_the_key_does_not_hold() -> None:
    def noop(v: Any) -> None:
        return None

    assert_refused("ormap", lambda m: m.update("A", "x", "zset", noop), ValueError, "zset")
    assert_refused(
        "ormap",
        lambda m: m.update("A", "cart", "gcounter", lambda c: c.increment("A")),
        TypeError,
        "orset",
    )


# --------------------------------------------------------------------------- other arguments


@pytest.mark.parametrize(
    ("kind", "call"),
    [
        ("gcounter", lambda x, r: x.increment(r)),
        ("pncounter", lambda x, r: x.decrement(r)),
        ("lww", lambda x, r: x.set(r, "v", now_ms=2_000)),
        ("mvregister", lambda x, r: x.set(r, "v")),
        ("orset", lambda x, r: x.add(r, "v")),
        ("ormap", lambda x, r: x.update(r, "k", "gcounter", lambda c: c.increment(r))),
    ],
)
@pytest.mark.parametrize(("replica", "exc"), [(1, TypeError), (None, TypeError), ("", ValueError)])
def test_a_bad_replica_id_is_refused_and_changes_nothing(
    kind: str, call: Callable[[Any, Any], object], replica: Any, exc: type[Exception]
) -> None:
    assert_refused(kind, lambda x: call(x, replica), exc)


@pytest.mark.parametrize("kind", ["gcounter", "pncounter"])
@pytest.mark.parametrize(
    ("n", "exc"), [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_a_bad_amount_is_refused_and_changes_nothing(
    kind: str, n: Any, exc: type[Exception]
) -> None:
    assert_refused(kind, lambda c: c.increment("A", n), exc)
    if kind == "pncounter":
        assert_refused(kind, lambda c: c.decrement("A", n), exc)


def test_lww_set_with_a_timestamp_far_ahead_of_the_clock_is_refused_and_changes_nothing() -> None:
    ahead = Timestamp(10_000_000, 0, "A")
    assert_refused("lww", lambda r: r.set("A", "x", timestamp=ahead, now_ms=2_000), ClockSkewError)
    # A timestamp is a plain tuple (wall_ms, logical, replica): anything else is refused.
    for bad, word in [([5, 0, "A"], "list"), ((5, 0), "tuple"), ((5, -1, "A"), "tuple")]:
        assert_refused("lww", lambda r, bad=bad: r.set("A", "x", timestamp=bad), TypeError, word)
        assert_refused(
            "ormap",
            lambda m, bad=bad: m.update("A", "t", "lww", lambda r: r.set("A", "x", bad)),
            TypeError,
            word,
        )


@pytest.mark.parametrize("kind", ["gcounter", "pncounter", "lww", "mvregister", "orset", "ormap"])
def test_merging_another_kind_is_refused_and_changes_nothing(kind: str) -> None:
    other = new("mvregister" if kind != "mvregister" else "orset")
    assert_refused(kind, lambda x: x.merge(other), TypeError)


# --------------------------------------------------------------------------- accepted values


@crdt_settings
@given(value=json_values)
def test_registers_keep_any_json_value_and_give_it_back_equal(value: Any) -> None:
    lww, mv = LWWRegister(), MVRegister()
    lww.set("A", value, now_ms=1_000)
    mv.set("A", value)
    assert lww.value == value
    assert mv.values == (value,)
    for x in (lww, mv):
        assert crdt.from_dict(x.to_dict()) == x


def test_register_values_are_copied_at_the_call() -> None:
    cart = ["milk"]
    lww, mv, m = LWWRegister(), MVRegister(), ORMap()
    lww.set("A", cart, now_ms=1_000)
    mv.set("A", cart)
    m.update("A", "cart", "mvregister", lambda r: r.set("A", cart))
    cart.append("eggs")
    assert lww.value == ["milk"]
    assert mv.values == (["milk"],)
    assert m.value == {"cart": (["milk"],)}


def test_tuples_are_json_arrays_lists_in_registers_and_tuples_in_sets() -> None:
    mv = MVRegister()
    mv.set("A", ("milk", 1))
    assert mv.values == (["milk", 1],)
    s = ORSet()
    s.add("A", ["milk", 1])
    assert s.value == frozenset({("milk", 1)})
    assert ("milk", 1) in s and ["milk", 1] in s
    s.remove(("milk", 1))
    assert s.value == frozenset()


def test_one_one_point_zero_and_true_are_three_distinct_set_elements() -> None:
    s = ORSet()
    for e in (1, 1.0, True):
        s.add("A", e)
    assert [repr(entry[0]) for entry in s.to_dict()["entries"]] == ["1", "1.0", "True"]
    s.remove(True)
    assert [repr(entry[0]) for entry in s.to_dict()["entries"]] == ["1", "1.0"]
    back = crdt.from_dict(s.to_dict())
    assert back == s


def test_elements_that_are_json_but_unusual_are_kept() -> None:
    s = ORSet()
    odd = [None, "", 0, -0.5, 2**70, "é€\u0000", [], [[], [None]]]
    for e in odd:
        s.add("A", e)
    assert len(s.to_dict()["entries"]) == len(odd)
    assert crdt.from_dict(s.to_dict()) == s


def test_decoding_takes_values_deeper_than_a_write_may_make_up_to_a_readers_depth() -> None:
    """A write's value nests at most MAX_DEPTH (64) levels; a state from a peer of an older
    version (or a database it wrote) may hold deeper ones: it decodes, up to a JSON reader's
    depth, and past that is a DecodeError, as any bad state is (not a bare ValueError)."""
    import crdt
    from crdt import MAX_DEPTH, DecodeError

    def nested(depth: int) -> object:
        value: object = 1
        for _ in range(depth):
            value = [value]
        return value

    deep = nested(MAX_DEPTH + 40)
    one_dot = {"vv": {"A": 1}, "cloud": []}
    states = [
        {"type": "lww", "v": 1, "ts": [5, 0, "A"], "value": deep},
        {"type": "mvregister", "v": 1, "entries": [[["A", 1], deep]], "ctx": one_dot},
        {"type": "orset", "v": 1, "entries": [[deep, [["A", 1]]]], "ctx": one_dot},
    ]
    for state in states:
        assert crdt.from_dict(state).to_dict() == crdt.from_dict(state).to_dict()
        text = json.dumps(state).replace(json.dumps(deep), json.dumps(nested(300)))
        with pytest.raises(DecodeError):
            crdt.from_dict(json.loads(text))


def test_map_nesting_is_counted_per_map_and_a_refused_update_changes_nothing() -> None:
    import crdt
    from crdt import MAX_NESTING

    def deepen(levels: int) -> object:
        """``fn`` for an update of the map at depth 1 that writes at the bottom of
        ``levels`` maps (the outermost counted)."""

        def at(level: int) -> object:
            if level == levels:
                return lambda m: m.update("A", "leaf", "lww", lambda r: r.set("A", level))
            return lambda m: m.update("A", "k", "ormap", at(level + 1))

        return at(2)

    outer = crdt.ORMap()
    outer.update("A", "top", "ormap", deepen(MAX_NESTING))  # the deepest allowed
    before = outer.to_dict()
    with pytest.raises(ValueError, match=f"at most {MAX_NESTING}"):
        outer.update("A", "top", "ormap", deepen(MAX_NESTING + 1))
    assert outer.to_dict() == before
    outer.update("A", "top", "ormap", deepen(MAX_NESTING))  # the refusal left no trace

    # Another map updated inside an update's fn is not counted as nested in it.
    other = crdt.ORMap()
    outer.update(
        "A", "top", "ormap", lambda m: other.update("A", "x", "ormap", deepen(MAX_NESTING))
    )
    assert other.value["x"] is not None
