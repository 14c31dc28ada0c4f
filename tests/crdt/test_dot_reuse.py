"""A dot used twice by its origin (two elements, or two map keys, added with one dot) still
joins the same in every order.

Such deltas come only from a faulty or hostile origin (each write takes a fresh dot), but
they can reach every replica, each in its own order. The join of a delta whose context holds
a dot drops that dot from every element or key its store does not hold it under, so joining
both deltas leaves neither. The fast path of a one-dot delta (``merge``, ``merge_dict``)
used to skip a dot seen already: each replica kept the element it heard of first, for good,
and anti-entropy (which compares log dots) never saw a difference.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdt
from tests.crdt.conftest import crdt_settings


def _set_delta(element: str, c: int) -> dict[str, Any]:
    ctx = {"vv": {"H": 1}, "cloud": []} if c == 1 else {"vv": {}, "cloud": [["H", c]]}
    return {"type": "orset", "v": 1, "entries": [[element, [["H", c]]]], "ctx": ctx}


def _map_delta(key: str, c: int) -> dict[str, Any]:
    ctx = {"vv": {"H": 1}, "cloud": []} if c == 1 else {"vv": {}, "cloud": [["H", c]]}
    body = [[["H", c], [5, 0, "H"], key]]
    return {"type": "ormap", "v": 1, "entries": [[key, "lww", body]], "ctx": ctx}


DELTAS = {"orset": _set_delta, "ormap": _map_delta}


def _joined(kind: str, deltas: list[dict[str, Any]], how: str) -> Any:
    """The deltas joined in order into a fresh state: by ``merge`` of each decoded one, by
    ``merge_dict`` where it takes them, or by ``merge`` into a state that holds its reverse
    index from the start."""
    state: Any = crdt.new(kind)
    if how == "indexed":
        state.merge(crdt.from_dict(DELTAS[kind]("seed", 40)))  # a first delta...
        state.merge(crdt.from_dict(DELTAS[kind]("seed2", 41)))  # ...and a join that indexes
        assert state._index is not None
    for d in deltas:
        if how == "merge_dict" and crdt.merge_dict(state, d):
            continue
        state.merge(crdt.from_dict(d))
    return state


@pytest.mark.parametrize("how", ["merge", "merge_dict", "indexed"])
@pytest.mark.parametrize("kind", ["orset", "ormap"])
def test_two_elements_with_one_dot_join_to_neither_in_both_orders(kind: str, how: str) -> None:
    a, b = DELTAS[kind]("a", 3), DELTAS[kind]("b", 3)
    first, second = _joined(kind, [a, b], how), _joined(kind, [b, a], how)
    assert first == second
    assert first.to_json() == second.to_json()
    assert "a" not in first.value and "b" not in first.value


@pytest.mark.parametrize("kind", ["orset", "ormap"])
def test_the_same_delta_twice_changes_nothing(kind: str) -> None:
    d = DELTAS[kind]("a", 3)
    once, twice = _joined(kind, [d], "merge"), _joined(kind, [d, d], "merge")
    assert once == twice and "a" in once.value
    assert _joined(kind, [d, d], "merge_dict") == once


@pytest.mark.parametrize("kind", ["orset", "ormap"])
@crdt_settings
@given(
    writes=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 4)), min_size=1, max_size=6
    ),
    how=st.sampled_from(["merge", "merge_dict", "indexed"]),
)
def test_one_dot_deltas_join_alike_in_every_order(
    kind: str, writes: list[tuple[str, int]], how: str
) -> None:
    deltas = [DELTAS[kind](name, c) for name, c in writes]
    results = [_joined(kind, list(p), how) for p in itertools.permutations(deltas)]
    assert all(r == results[0] for r in results)
    assert len({r.to_json() for r in results}) == 1


def _ctx(c: int) -> dict[str, Any]:
    return {"vv": {"H": 1}, "cloud": []} if c == 1 else {"vv": {}, "cloud": [["H", c]]}


def _register_delta(value: Any, c: int) -> dict[str, Any]:
    return {"type": "mvregister", "v": 1, "entries": [[["H", c], value]], "ctx": _ctx(c)}


def _embedded_delta(kind: str, value: Any, c: int) -> dict[str, Any]:
    """An ORMap delta writing ``value`` at the key "k" as an embedded ``kind``, with dot c."""
    body: Any = {
        "lww": [[["H", c], [5, 0, "H"], value]],
        "mvregister": [[["H", c], value]],
        "gcounter": [[["H", c], value]],
    }[kind]
    return {"type": "ormap", "v": 1, "entries": [["k", kind, body]], "ctx": _ctx(c)}


@pytest.mark.parametrize(
    "deltas",
    [
        [_register_delta(v, c) for v, c in (("a", 3), ("b", 3), ("c", 2), ({"x": 1}, 3))],
        [_register_delta(v, 3) for v in (1, True)],  # equal to Python, not to JSON
        *(
            [_embedded_delta(kind, v, c) for v, c in ((1, 3), (2, 3), (7, 2))]
            for kind in ("lww", "mvregister", "gcounter")
        ),
        [_embedded_delta("lww", v, 3) for v in (1, True)],
        [_embedded_delta("mvregister", v, 3) for v in (0, False)],
    ],
    ids=[
        "mvregister",
        "mvregister-1-true",
        "ormap-lww",
        "ormap-mvregister",
        "ormap-gcounter",
        "ormap-lww-1-true",
        "ormap-mvregister-0-false",
    ],
)
def test_two_values_with_one_dot_join_alike_in_every_order(deltas: list[dict[str, Any]]) -> None:
    """A dot its origin wrote twice with two values (a register's, an embedded value's):
    every replica keeps the same one, whatever order it heard of them in."""
    results = set()
    for p in itertools.permutations(deltas):
        state: Any = crdt.new(p[0]["type"])
        for d in p:
            state.merge(crdt.from_dict(d))
        results.add(state.to_json())
    assert len(results) == 1, results


def _full_state(kind: str, value: Any) -> dict[str, Any]:
    """A full state (a context of 50 dots: ``merge`` takes its full pass, not a delta's
    path) holding ``value`` at the dot (H, 3): a standalone register, or a map's ``kind``."""
    ctx = {"vv": {"H": 50}, "cloud": []}
    if kind == "mvregister":
        return {"type": "mvregister", "v": 1, "entries": [[["H", 3], value]], "ctx": ctx}
    body = _embedded_delta(kind, value, 3)["entries"][0][2]
    return {"type": "ormap", "v": 1, "entries": [["k", kind, body]], "ctx": ctx}


# Two values that Python takes as equal (``==``) but whose JSON texts differ.
_LOOKALIKES = [
    (1, True),
    (0.0, -0.0),
    ([1], [True]),
    ([1], [1.0]),
    ({"a": 0}, {"a": False}),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # an object's keys in another order
]


@pytest.mark.parametrize("pair", _LOOKALIKES, ids=repr)
@pytest.mark.parametrize("how", ["delta", "full"])
@pytest.mark.parametrize("kind", ["mvregister", "lww", "mvregister-in-map"])
def test_two_lookalike_values_with_one_dot_join_alike_in_both_orders(
    pair: tuple[Any, Any], how: str, kind: str
) -> None:
    """A dot its origin wrote twice with two values equal to Python but not to JSON: every
    replica keeps the same one (its encoding, ``to_json``, is the same), whether it hears of
    them as deltas or as full states, in either order."""

    def encode(value: Any) -> dict[str, Any]:
        if kind == "mvregister":
            return _register_delta(value, 3) if how == "delta" else _full_state(kind, value)
        inner = "lww" if kind == "lww" else "mvregister"
        return _embedded_delta(inner, value, 3) if how == "delta" else _full_state(inner, value)

    results = set()
    for p in itertools.permutations(pair):
        state: Any = crdt.new(encode(p[0])["type"])
        for value in p:
            state.merge(crdt.from_dict(encode(value)))
        results.add(state.to_json())
    assert len(results) == 1, results


@pytest.mark.parametrize("pair", _LOOKALIKES, ids=repr)
def test_two_lookalike_values_with_one_timestamp_join_alike_in_both_orders(
    pair: tuple[Any, Any],
) -> None:
    """The standalone LWW register: two values written with one timestamp (by a faulty or
    hostile origin) that tie on their canonical text (an object and the same one with its
    keys reordered): every replica keeps the same text, in either order."""
    results = set()
    for p in itertools.permutations(pair):
        state = crdt.new("lww")
        for value in p:
            state.merge(crdt.from_dict({"type": "lww", "v": 1, "value": value, "ts": [5, 0, "H"]}))
        results.add(state.to_json())
    assert len(results) == 1, results
