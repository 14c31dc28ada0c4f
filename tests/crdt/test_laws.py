"""The join-semilattice laws, generic over every CRDT kind (hypothesis properties).

For states drawn from one causal history on replicas A, B, C (see ``conftest.run_history``):
merge is commutative, associative and idempotent, bottom is its identity, merging never
changes its argument; and joining a mutator's delta into the state before the mutation gives
exactly the state after it (Almeida et al., "Delta State Replicated Data Types", def. 2.3).
Equality is checked twice: with ``==`` and with the canonical encoding, so an ``==`` that
depends on internal ordering, or a codec that does, fails here.

The ORMap laws that are specific to an observed-remove map of causal values (a concurrent
update survives a remove, carrying only its own effect) are at the end.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.crdt.conftest import (
    KINDS,
    apply_op,
    canonical_bytes,
    crdt_settings,
    history_steps,
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


def draw_states(data: st.DataObject, kind: str, count: int) -> list[Any]:
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    picks = data.draw(
        st.lists(st.integers(0, len(h.snapshots) - 1), min_size=count, max_size=count),
        label="snapshots",
    )
    return [h.snapshots[i] for i in picks]


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_merge_is_commutative(kind: str, data: st.DataObject) -> None:
    a, b = draw_states(data, kind, 2)
    assert_same(joined(a, b), joined(b, a))


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_merge_is_associative(kind: str, data: st.DataObject) -> None:
    a, b, c = draw_states(data, kind, 3)
    assert_same(joined(joined(a, b), c), joined(a, joined(b, c)))


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_merge_is_idempotent(kind: str, data: st.DataObject) -> None:
    a, b = draw_states(data, kind, 2)
    assert_same(joined(a, a), a)
    ab = joined(a, b)
    assert_same(joined(ab, b), ab)
    assert_same(joined(ab, a), ab)


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_bottom_is_the_identity_and_merge_leaves_its_argument_alone(
    kind: str, data: st.DataObject
) -> None:
    (a,) = draw_states(data, kind, 1)
    bottom = new(kind)
    assert bottom.is_bottom()
    assert_same(joined(a, bottom), a)
    assert_same(joined(bottom, a), a)
    before = canonical_bytes(a)
    target = new(kind)
    target.merge(a)
    assert canonical_bytes(a) == before


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_joining_a_mutators_delta_into_the_old_state_gives_the_new_state(
    kind: str, data: st.DataObject
) -> None:
    steps = data.draw(history_steps(kind, min_size=1, max_size=16), label="steps")
    states = {r: new(kind) for r in ("A", "B", "C")}
    for step in steps:
        if step[0] == "merge":
            states[step[1]].merge(states[step[2]].copy())
            continue
        replica, *op = step
        old = states[replica].copy()
        delta = apply_op(states[replica], replica, op)
        assert type(delta) is type(old)
        via_delta = old.copy()
        via_delta.merge(delta)
        assert_same(via_delta, states[replica])
        # A delta is idempotent too: delivering it again changes nothing.
        via_delta.merge(delta)
        assert_same(via_delta, states[replica])


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_copy_is_independent_of_the_original(kind: str, data: st.DataObject) -> None:
    a, b = draw_states(data, kind, 2)
    before = canonical_bytes(a)
    c = a.copy()
    assert_same(c, a)
    c.merge(b)
    steps = data.draw(history_steps(kind, max_size=4), label="more steps")
    for step in steps:
        if step[0] != "merge":
            apply_op(c, step[0], step[1:])
    assert canonical_bytes(a) == before


# --------------------------------------------------------------------------- ORMap


def test_ormap_concurrent_update_survives_a_remove_with_only_its_own_effect() -> None:
    a = new("ormap")
    b = new("ormap")
    b.merge(a.update("A", "cart", "orset", lambda s: s.add("A", "milk")))
    # Concurrently: A removes the key, B adds to the set under it.
    rm = a.remove("cart")
    up = b.update("B", "cart", "orset", lambda s: s.add("B", "eggs"))
    a.merge(up)
    b.merge(rm)
    assert a == b
    assert a.value == {"cart": frozenset({"eggs"})}


def test_ormap_concurrent_counter_increment_survives_a_remove_with_its_replicas_total() -> None:
    # Riak's embedded counter (emcntr): each replica keeps one dot with its running total, so
    # the state stays bounded. A concurrent increment survives a remove carrying that
    # replica's whole contribution; contributions of other replicas that the remove saw go.
    a = new("ormap")
    b = new("ormap")
    b.merge(a.update("A", "hits", "gcounter", lambda c: c.increment("A", 2)))
    a.merge(b.update("B", "hits", "gcounter", lambda c: c.increment("B", 7)))
    rm = b.remove("hits")
    up = a.update("A", "hits", "gcounter", lambda c: c.increment("A", 3))
    a.merge(rm)
    b.merge(up)
    assert_same(a, b)
    assert a.value == {"hits": 5}


def test_ormap_remove_of_a_parent_key_keeps_a_concurrent_nested_update_only() -> None:
    a = new("ormap")
    b = new("ormap")

    def add_x(m: Any) -> Any:
        return m.update("A", "x", "pncounter", lambda c: c.increment("A", 5))

    def set_y(m: Any) -> Any:
        return m.update("B", "y", "mvregister", lambda r: r.set("B", "hi"))

    b.merge(a.update("A", "child", "ormap", add_x))
    rm = a.remove("child")
    up = b.update("B", "child", "ormap", set_y)
    a.merge(up)
    b.merge(rm)
    assert_same(a, b)
    assert a.value == {"child": {"y": ("hi",)}}


def test_ormap_observed_remove_removes_the_key_everywhere_once_delivered() -> None:
    a = new("ormap")
    b = new("ormap")
    b.merge(a.update("A", "title", "lww", lambda r: r.set("A", "Groceries", now_ms=1_000)))
    rm = b.remove("title")
    a.merge(rm)
    assert a.value == {} == b.value
    assert_same(a, b)


def test_ormap_one_key_updated_concurrently_with_two_kinds_converges_and_removes_both() -> None:
    """Not in the contract, but must still converge: entries are keyed by (key, kind)."""
    a = new("ormap")
    b = new("ormap")
    da = a.update("A", "x", "gcounter", lambda c: c.increment("A", 2))
    db = b.update("B", "x", "orset", lambda s: s.add("B", "milk"))
    a.merge(db)
    b.merge(da)
    assert_same(a, b)
    assert "x" in a.value
    rm = a.remove("x")
    b.merge(rm)
    assert_same(a, b)
    assert a.value == {}


@crdt_settings
@given(data=st.data())
def test_ormap_delta_path_equals_full_state_path_with_removes(data: st.DataObject) -> None:
    """Two worlds run the same mutations; one syncs by deltas, the other by full states.

    Each sync point delivers everything so far, so both worlds observe the same states before
    every mutation and must agree after every step, removes included.
    """
    steps = data.draw(history_steps("ormap", min_size=2, max_size=16), label="steps")
    delta_world = {r: new("ormap") for r in ("A", "B", "C")}
    full_world = {r: new("ormap") for r in ("A", "B", "C")}
    deltas: list[Any] = []
    has: dict[str, set[int]] = {r: set() for r in ("A", "B", "C")}  # delta indices per replica
    for step in steps:
        if step[0] == "merge":
            _, dst, src = step
            # Full world: dst joins src's state. Delta world: dst receives the deltas src has
            # (its own and what it received), which is everything src's state is made of.
            full_world[dst].merge(full_world[src].copy())
            for i in sorted(has[src] - has[dst]):
                delta_world[dst].merge(deltas[i])
            has[dst] |= has[src]
        else:
            replica, *op = step
            deltas.append(apply_op(delta_world[replica], replica, op))
            has[replica].add(len(deltas) - 1)
            apply_op(full_world[replica], replica, op)
        for r in ("A", "B", "C"):
            assert_same(delta_world[r], full_world[r])
