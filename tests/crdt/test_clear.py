"""``clear``, the observed reset a delete writes, and ``is_live``, for every kind.

Properties (hypothesis, over states of one causal history as in ``test_laws.py``): the join
laws hold with a clear anywhere in the history; a clear concurrent with updates keeps the
updates (the causal kinds and the counters); a clear joined with the state it observed is
not live and reads as the bottom. The LWW register is not causal: its delete is a tombstone
ordered by timestamp (a later set wins, an earlier one loses), tested by example. The
encodings of cleared states are pinned here; a state never cleared encodes as before (its
golden vectors in ``golden/`` are unchanged).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdt
from crdt import DecodeError, GCounter, LWWRegister, ORMap, ORSet, PNCounter
from tests.crdt.conftest import (
    KINDS,
    REPLICAS,
    apply_op,
    canonical_bytes,
    crdt_settings,
    elements,
    history_steps,
    json_values,
    new,
    run_history,
)

__all__: list[str] = []


def joined(*states: Any) -> Any:
    out = states[0].copy()
    for s in states[1:]:
        out.merge(s)
    return out


def assert_same(x: Any, y: Any) -> None:
    assert x == y
    assert canonical_bytes(x) == canonical_bytes(y)
    assert x.value == y.value


def clear_op(kind: str) -> list[Any]:
    return ["clear", 1_004] if kind == "lww" else ["clear"]


@st.composite
def steps_with_a_clear(draw: Any, kind: str) -> list[list[Any]]:
    """A history with one clear (besides those the history draws itself) somewhere in it."""
    steps = draw(history_steps(kind, min_size=2, max_size=12))
    at = draw(st.integers(0, len(steps)))
    who = draw(st.sampled_from(REPLICAS))
    return [*steps[:at], [who, *clear_op(kind)], *steps[at:]]


# --------------------------------------------------------------------------- the join laws


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_the_join_laws_hold_with_a_clear_in_the_history(kind: str, data: st.DataObject) -> None:
    h = run_history(kind, data.draw(steps_with_a_clear(kind), label="steps"))
    picks = data.draw(st.lists(st.integers(0, len(h.snapshots) - 1), min_size=3, max_size=3))
    a, b, c = (h.snapshots[i] for i in picks)
    assert_same(joined(a, b), joined(b, a))
    assert_same(joined(joined(a, b), c), joined(a, joined(b, c)))
    assert_same(joined(a, a), a)
    assert_same(joined(joined(a, b), b), joined(a, b))


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_a_clears_delta_joined_into_the_old_state_gives_the_new_state(
    kind: str, data: st.DataObject
) -> None:
    h = run_history(kind, data.draw(history_steps(kind, min_size=1, max_size=12), label="steps"))
    state = h.snapshots[data.draw(st.integers(0, len(h.snapshots) - 1), label="state")].copy()
    old = state.copy()
    delta = apply_op(state, "B", clear_op(kind))
    assert type(delta) is type(old)
    assert_same(joined(old, delta), state)
    assert_same(joined(old, delta, delta), state)  # idempotent


# --------------------------------------------------------------------------- liveness


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_a_clear_joined_with_the_state_it_observed_is_not_live(
    kind: str, data: st.DataObject
) -> None:
    h = run_history(kind, data.draw(history_steps(kind, min_size=1, max_size=12), label="steps"))
    seen = h.snapshots[data.draw(st.integers(0, len(h.snapshots) - 1), label="state")]
    cleared = seen.copy()
    delta = apply_op(cleared, "B", clear_op(kind))
    assert not cleared.is_live()
    assert cleared.value == new(kind).value
    # The state it observed, joined again (a late delivery of what it had seen): not live.
    cleared.merge(seen)
    assert not cleared.is_live()
    assert cleared.value == new(kind).value
    # A replica holding that state receives the clear's delta: the same, not live.
    elsewhere = seen.copy()
    elsewhere.merge(delta)
    assert_same(elsewhere, cleared)
    assert not elsewhere.is_live()


@pytest.mark.parametrize("kind", KINDS)
def test_a_bottom_is_not_live_and_one_update_makes_it_live(kind: str) -> None:
    first = {
        "gcounter": ["increment", 1],
        "pncounter": ["decrement", 1],
        "lww": ["set", None, 1_000],  # a null value is a value, not a tombstone
        "mvregister": ["set", None],
        "orset": ["add", "milk"],
        "ormap": ["update", "k", "gcounter", ["increment", 1]],
    }[kind]
    state = new(kind)
    assert not state.is_live()
    apply_op(state, "A", first)
    assert state.is_live()
    apply_op(state, "A", clear_op(kind))
    assert not state.is_live()


def test_a_counter_at_zero_is_live_until_it_is_reset() -> None:
    c = PNCounter()
    c.increment("A", 2)
    c.decrement("A", 2)
    assert c.value == 0 and c.is_live()  # it holds contributions that sum to nothing
    c.clear()
    assert c.value == 0 and not c.is_live()


# --------------------------------------------------------------------------- concurrent updates

_NO_CLEARS = {
    "gcounter": st.tuples(st.just("increment"), st.integers(1, 5)).map(list),
    "pncounter": st.tuples(st.sampled_from(["increment", "decrement"]), st.integers(1, 5)).map(
        list
    ),
    "mvregister": st.tuples(st.just("set"), json_values).map(list),
    "orset": st.tuples(st.just("add"), elements).map(list),
    "ormap": st.tuples(
        st.just("update"),
        st.sampled_from(["x", "y", 3]),
        st.just("orset"),
        st.tuples(st.just("add"), elements).map(list),
    ).map(list),
}


def _expected(kind: str, ops: list[list[Any]]) -> Any:
    """What the concurrent updates ``ops`` alone show once they survive a clear."""
    if kind == "gcounter":
        return sum(op[1] for op in ops)
    if kind == "pncounter":
        return sum(op[1] if op[0] == "increment" else -op[1] for op in ops)
    if kind == "mvregister":
        return (json.loads(json.dumps(ops[-1][1])),)
    if kind == "orset":
        return set().union(*(_added(op[1]) for op in ops))
    out: dict[Any, set[Any]] = {}
    for op in ops:
        out.setdefault(op[1], set()).update(_added(op[3][1]))
    return out


def _added(element: Any) -> frozenset[Any]:
    s = ORSet()
    s.add("A", element)
    return s.value


@pytest.mark.parametrize("kind", list(_NO_CLEARS))
@crdt_settings
@given(data=st.data())
def test_a_clear_concurrent_with_updates_keeps_the_updates(kind: str, data: st.DataObject) -> None:
    h = run_history(kind, data.draw(history_steps(kind, max_size=10), label="steps"))
    a, b = h.states["A"], h.states["B"]
    a.merge(b.copy())
    b.merge(a.copy())  # both have seen everything
    ops = data.draw(st.lists(_NO_CLEARS[kind], min_size=1, max_size=4), label="B's updates")
    cleared = apply_op(a, "A", clear_op(kind))  # A clears what it saw...
    updates = [apply_op(b, "B", op) for op in ops]  # ...while B updates, concurrently
    for d in updates:
        a.merge(d)
    b.merge(cleared)
    assert_same(a, b)
    assert a.is_live()
    value = a.value
    if kind == "ormap":
        value = {k: set(v) for k, v in value.items()}
    assert value == _expected(kind, ops)


def test_a_map_clear_keeps_a_concurrent_update_with_only_its_own_effect() -> None:
    a, b = ORMap(), ORMap()
    b.merge(a.update("A", "cart", "orset", lambda s: s.add("A", "milk")))
    b.merge(a.update("A", "title", "lww", lambda r: r.set("A", "t", now_ms=1_000)))
    cleared = a.clear()
    up = b.update("B", "cart", "orset", lambda s: s.add("B", "eggs"))
    a.merge(up)
    b.merge(cleared)
    assert_same(a, b)
    assert a.value == {"cart": frozenset({"eggs"})}


def test_an_lww_delete_is_a_tombstone_a_later_set_wins_an_earlier_loses() -> None:
    a, b = LWWRegister(), LWWRegister()
    b.merge(a.set("A", "dark", now_ms=1_000))
    tomb = a.clear("A", now_ms=2_000)
    later = b.set("B", "light", now_ms=3_000)  # concurrent, but later: it wins
    earlier = LWWRegister().set("C", "old", now_ms=1_500)  # earlier than the tombstone: lost
    for reg in (a, b):
        reg.merge(tomb)
        reg.merge(earlier)
    assert not a.is_live() and a.value is None
    a.merge(later)
    b.merge(later)
    assert_same(a, b)
    assert a.value == "light" and a.is_live()


def test_an_lww_tombstone_beats_a_value_under_one_identical_timestamp() -> None:
    ts = crdt.Timestamp(1_000, 0, "A")
    value, tomb = LWWRegister(), LWWRegister()
    value.set("A", None, timestamp=ts)
    tomb.clear("A", timestamp=ts)
    assert_same(joined(value, tomb), joined(tomb, value))
    assert not joined(value, tomb).is_live()


# --------------------------------------------------------------------------- encodings

CLEARED = [
    (
        "gcounter",
        [["A", "increment", 2], ["B", "increment", 1], ["merge", "A", "B"], ["A", "clear"]],
        '{"counts":{"A":2,"B":1},"reset":{"A":2,"B":1},"type":"gcounter","v":1}',
    ),
    (
        "pncounter",
        [["A", "increment", 3], ["A", "decrement", 1], ["A", "clear"], ["A", "increment", 1]],
        '{"n":{"A":1},"n_reset":{"A":1},"p":{"A":4},"p_reset":{"A":3},"type":"pncounter","v":1}',
    ),
    (
        "lww",
        [["A", "set", "x", 1000], ["A", "clear", 1000]],
        '{"deleted":true,"ts":[1000,1,"A"],"type":"lww","v":1,"value":null}',
    ),
    (
        "orset",
        [["A", "add", "milk"], ["B", "add", "eggs"], ["merge", "A", "B"], ["A", "clear"]],
        '{"ctx":{"cloud":[],"vv":{"A":1,"B":1}},"entries":[],"type":"orset","v":1}',
    ),
    (
        "mvregister",
        [["A", "set", "x"], ["A", "clear"]],
        '{"ctx":{"cloud":[],"vv":{"A":1}},"entries":[],"type":"mvregister","v":1}',
    ),
    (
        "ormap",
        [["A", "update", "k", "orset", ["add", "x"]], ["A", "clear"]],
        '{"ctx":{"cloud":[],"vv":{"A":1}},"entries":[],"type":"ormap","v":1}',
    ),
]


@pytest.mark.parametrize(("kind", "steps", "encoded"), CLEARED, ids=[c[0] for c in CLEARED])
def test_a_cleared_state_encodes_as_pinned_and_decodes_back(
    kind: str, steps: list[list[Any]], encoded: str
) -> None:
    state = run_history(kind, steps).states["A"]
    assert canonical_bytes(state).decode() == encoded
    back = crdt.from_dict(json.loads(encoded))
    assert_same(back, state)
    assert back.to_json() == json.dumps(
        back.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


@pytest.mark.parametrize(
    ("d", "path"),
    [
        ({"type": "gcounter", "v": 1, "counts": {"A": 1}, "reset": {"A": 2}}, "reset.A"),
        ({"type": "gcounter", "v": 1, "counts": {}, "reset": {"B": 1}}, "reset.B"),
        ({"type": "gcounter", "v": 1, "counts": {"A": 1}, "reset": []}, "reset"),
        ({"type": "pncounter", "v": 1, "p": {}, "n": {"A": 1}, "n_reset": {"A": 3}}, "n_reset.A"),
        ({"type": "lww", "v": 1, "value": "x", "ts": [1, 0, "A"], "deleted": True}, "value"),
        ({"type": "lww", "v": 1, "value": None, "ts": None, "deleted": True}, "deleted"),
        ({"type": "lww", "v": 1, "value": None, "ts": [1, 0, "A"], "deleted": False}, "deleted"),
    ],
)
def test_a_malformed_reset_or_tombstone_is_refused_naming_the_field(
    d: dict[str, Any], path: str
) -> None:
    with pytest.raises(DecodeError) as err:
        crdt.from_dict(d)
    assert err.value.path == path


def test_a_counter_never_reset_has_no_reset_field() -> None:
    c = GCounter()
    c.increment("A", 2)
    assert "reset" not in c.to_dict() and "reset" not in c.to_json()
    p = PNCounter()
    p.increment("A", 2)
    assert set(p.to_dict()) == {"type", "v", "p", "n"}
