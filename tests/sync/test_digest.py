"""Digests and the unseen part of a causal state (``sync/digest.py``).

* For states drawn from one causal history (the CRDT law tests' histories), joining
  ``unseen_part(ours, theirs.context)`` into ``theirs`` gives exactly ``join(theirs, ours)``,
  for every causal kind; it is never bigger than our whole state; and for a replica that saw
  most of our state it is much smaller.
* With our context, the part tells exactly which dots our store holds (``part_holds``): how a
  read learns that a replier with the reader's context removed what the reader holds.
* Equal states have equal digests whatever order built them; different ones differ.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import crdt
from crdt import CausalContext, ORSet
from sync.digest import (
    causal_context,
    held_dots,
    members_digest,
    part_digest,
    part_holds,
    root_digest,
    state_digest,
    unseen_part,
)
from tests.crdt.conftest import REPLICAS, crdt_settings, history_steps, run_history

__all__: list[str] = []

CAUSAL = ("mvregister", "orset", "ormap")


@crdt_settings
@given(st.data())
def test_joining_the_unseen_part_equals_joining_the_whole_state(data: Any) -> None:
    kind = data.draw(st.sampled_from(CAUSAL), label="kind")
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    states = [*h.states.values(), *h.snapshots]
    ours = data.draw(st.sampled_from(states), label="ours")
    theirs = data.draw(st.sampled_from(states), label="theirs")
    seen = causal_context(theirs)
    assert seen is not None
    part = unseen_part(ours, seen)
    assert part is not None and part.kind == kind
    assert crdt.from_dict(part.to_dict()) == part, "the part must encode as a valid state"
    expected = theirs.copy()
    expected.merge(ours)
    got = theirs.copy()
    got.merge(part)
    assert got == expected
    assert len(part.to_json()) <= len(ours.to_json())


@crdt_settings
@given(st.data())
def test_the_unseen_part_and_the_context_tell_the_dots_held(data: Any) -> None:
    kind = data.draw(st.sampled_from(CAUSAL), label="kind")
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    states = [*h.states.values(), *h.snapshots]
    ours = data.draw(st.sampled_from(states), label="ours")
    theirs = data.draw(st.sampled_from(states), label="theirs")
    part = unseen_part(ours, causal_context(theirs) or CausalContext())
    ctx = causal_context(ours)
    assert part is not None and ctx is not None
    assert part_holds(ctx, part) == held_dots(ours)


def test_a_remove_shows_in_the_part_though_the_contexts_are_equal() -> None:
    holder, remover = ORSet(), ORSet()
    remover.merge(holder.add("A", "milk"))
    remover.remove("milk")
    assert holder.context == remover.context and holder != remover
    part = unseen_part(remover, holder.context)
    assert part is not None and part_holds(remover.context, part) == set()
    assert held_dots(holder) == {("A", 1)}


@crdt_settings
@given(st.data())
def test_the_unseen_part_of_a_state_for_itself_changes_nothing(data: Any) -> None:
    kind = data.draw(st.sampled_from(CAUSAL), label="kind")
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    ours = h.states[data.draw(st.sampled_from(REPLICAS))]
    part = unseen_part(ours, causal_context(ours) or CausalContext())
    assert part is not None
    merged = ours.copy()
    merged.merge(part)
    assert merged == ours


def test_the_unseen_part_of_a_big_set_for_a_replica_slightly_behind_is_small() -> None:
    ours = ORSet()
    for i in range(5000):
        ours.add("a", f"element {i}")
    theirs = ours.copy()
    for i in range(5000, 5010):
        ours.add("a", f"element {i}")
    ours.remove("element 3")
    part = unseen_part(ours, theirs.context)
    assert part is not None
    assert part.value == frozenset(f"element {i}" for i in range(5000, 5010))
    got = theirs.copy()
    got.merge(part)
    assert got == ours
    assert len(part.to_json()) * 100 < len(ours.to_json())


def test_kinds_without_a_causal_context_have_no_unseen_part() -> None:
    for kind in ("gcounter", "pncounter", "lww"):
        state = crdt.new(kind)
        assert causal_context(state) is None
        assert unseen_part(state, CausalContext()) is None


@crdt_settings
@given(st.data())
def test_equal_states_have_equal_digests(data: Any) -> None:
    kind = data.draw(st.sampled_from(("gcounter", "pncounter", "mvregister", "orset", "ormap")))
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    a, b = h.states["A"].copy(), h.states["B"].copy()
    ab, ba = a.copy(), b.copy()
    ab.merge(b)
    ba.merge(a)
    assert state_digest(ab) == state_digest(ba)
    assert (state_digest(a) == state_digest(b)) == (a == b)


def test_digests_of_summaries_and_members() -> None:
    one = CausalContext({"A": 3})
    same = CausalContext({"A": 2}, [("A", 3)])
    assert part_digest(5, one) == part_digest(5, same)
    assert part_digest(5, one) != part_digest(6, one)
    assert part_digest(5, None) == part_digest(5, CausalContext())
    assert part_digest(5, one) != part_digest(5, CausalContext({"A": 4}))
    assert root_digest(["ab", "cd"]) != root_digest(["cd", "ab"])
    assert members_digest(["b", "a"]) == members_digest(["a", "b"])
    assert members_digest(["a"]) != members_digest(["a", "b"])
    assert state_digest(None) is None and len(state_digest(ORSet()) or "") == 16
