"""``split(max_bytes)``: every kind cut into deltas that fit, whose join is the state.

Properties, for both cuts (``CRDT.split``, and ``split_text`` of ``crdt/_split_text.py``
on the stored text), over states of one causal history (``conftest.run_history``), for
every kind, with small budgets so that states are cut: the join of the pieces is the
state; every piece fits the budget unless it cannot be cut further (one element, one value,
one replica's counts); every piece is below the state; joining the pieces in any order,
with duplicates, into any other replica state of the history gives what joining the whole
state gives; and a piece never removes a dot the state holds live (the bug of a piece
carrying the whole context).
Then big states, built directly: a set of thousands of elements with removals, a map of
every embedded kind with a nested map too big for one piece, a register overwritten many
times.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdt
from crdt import MVRegister, ORMap, ORSet
from crdt._split import removed_contexts
from crdt._split_text import split_text
from tests.crdt.conftest import KINDS, canonical_bytes, crdt_settings, history_steps, run_history

__all__: list[str] = []

# The two ways a state is cut, both held to the properties below: ``CRDT.split`` on the
# object, and ``split_text`` on its stored text (the pieces decoded, as a receiver does).
CUTS: dict[str, Callable[[Any, int], list[Any]]] = {
    "split": lambda state, budget: state.split(budget),
    "split_text": lambda state, budget: [
        crdt.from_dict(json.loads(t)) for t in split_text(state.to_json(), budget)
    ],
}
cuts = pytest.mark.parametrize("cut", sorted(CUTS))


def size(x: Any) -> int:
    return len(x.to_json().encode("utf-8", "surrogatepass"))


def join_all(kind: str, pieces: list[Any], into: Any = None) -> Any:
    out = crdt.new(kind) if into is None else into.copy()
    for p in pieces:
        out.merge(p)
    return out


def assert_same(x: Any, y: Any) -> None:
    assert x == y
    assert canonical_bytes(x) == canonical_bytes(y)


def live_dots(x: Any) -> set[Any]:
    """The dots of the entries of a causal state (none for the counters and LWW)."""
    if isinstance(x, ORSet):
        return {d for e in x.value for d in x.dots_of(e)}
    if isinstance(x, ORMap):
        from crdt.ormap import _map_dots

        return set(_map_dots(x._entries))
    if isinstance(x, MVRegister):
        return set(x._store.entries)
    return set()


def draw_case(data: st.DataObject, kind: str) -> tuple[Any, list[Any], int]:
    h = run_history(kind, data.draw(history_steps(kind, max_size=24), label="steps"))
    state = h.snapshots[data.draw(st.integers(0, len(h.snapshots) - 1), label="state")]
    budget = data.draw(st.integers(1, max(1, size(state) + 10)), label="budget")
    return state, h.snapshots, budget


@cuts
@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_the_join_of_the_pieces_is_the_state(kind: str, cut: str, data: st.DataObject) -> None:
    state, _, budget = draw_case(data, kind)
    pieces = CUTS[cut](state, budget)
    assert pieces and all(p.kind == kind for p in pieces)
    assert_same(join_all(kind, pieces), state)
    if size(state) <= budget:
        assert len(pieces) == 1


@cuts
@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_every_piece_fits_or_cannot_be_cut(kind: str, cut: str, data: st.DataObject) -> None:
    state, _, budget = draw_case(data, kind)
    for p in CUTS[cut](state, budget):
        assert size(p) <= budget or len(CUTS[cut](p, budget)) == 1, (p.to_json(), budget)


@cuts
@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_every_piece_is_below_the_state(kind: str, cut: str, data: st.DataObject) -> None:
    state, _, budget = draw_case(data, kind)
    for p in CUTS[cut](state, budget):
        assert_same(join_all(kind, [state, p]), state)


@cuts
@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_pieces_in_any_order_with_duplicates_into_any_state_join_as_the_state(
    kind: str, cut: str, data: st.DataObject
) -> None:
    state, snapshots, budget = draw_case(data, kind)
    other = snapshots[data.draw(st.integers(0, len(snapshots) - 1), label="other")]
    pieces = CUTS[cut](state, budget)
    order = data.draw(st.permutations(pieces + pieces[: data.draw(st.integers(0, len(pieces)))]))
    assert_same(join_all(kind, order, into=other), join_all(kind, [other, state]))


@cuts
@pytest.mark.parametrize("kind", ["mvregister", "orset", "ormap"])
@crdt_settings
@given(data=st.data())
def test_a_piece_never_removes_what_the_state_holds(
    kind: str, cut: str, data: st.DataObject
) -> None:
    state, snapshots, budget = draw_case(data, kind)
    other = snapshots[data.draw(st.integers(0, len(snapshots) - 1), label="other")]
    pieces = CUTS[cut](state, budget)
    some = data.draw(st.lists(st.sampled_from(pieces), max_size=len(pieces)), label="some")
    held = join_all(kind, some, into=other)
    keep = live_dots(held) & live_dots(state)
    for p in pieces:
        assert keep <= live_dots(join_all(kind, [held, p]))


@pytest.mark.parametrize("kind", KINDS)
def test_a_budget_must_be_a_positive_int(kind: str) -> None:
    state = crdt.new(kind)
    with pytest.raises(ValueError, match="max_bytes"):
        state.split(0)
    with pytest.raises(TypeError, match="max_bytes"):
        state.split(1.5)


# -- big states ------------------------------------------------------------------------------
def test_a_big_set_with_removals_splits_into_pieces_that_fit() -> None:
    rng = random.Random(7)
    s = ORSet()
    for i in range(6000):
        s.add("AAAAAAAAAAAAAAAAAAAA", f"item-{i}")
        if rng.random() < 0.4:
            s.remove(f"item-{rng.randrange(i + 1)}")
    s.add("BBBBBBBBBBBBBBBBBBBB", "late")
    budget = 8_000
    pieces = s.split(budget)
    assert len(pieces) > 10 and all(size(p) <= budget for p in pieces)
    assert_same(join_all("orset", pieces), s)
    # Any half of the pieces, in reverse, into a replica holding everything: nothing lost.
    assert_same(join_all("orset", pieces[::-2], into=s), s)
    # The removed elements' dots travel in pieces of their own, with no element.
    empty = [p for p in pieces if not p.value]
    assert empty and all(p.context.size() > 0 for p in empty)


def inc(c: Any) -> Any:
    return c.increment("A")


def test_a_map_of_every_kind_with_a_nested_map_too_big_for_one_piece() -> None:
    m = ORMap()
    for i in range(300):
        m.update("A", f"c{i}", "pncounter", lambda c: c.increment("A", 3))
        m.update("B", f"r{i}", "lww", lambda r, i=i: r.set("B", f"value {i}", now_ms=1_000))
        m.update("A", f"s{i}", "orset", lambda s, i=i: s.add("A", i))
        m.update("C", f"v{i}", "mvregister", lambda r, i=i: r.set("C", [i, "é€"]))
    for i in range(2000):
        m.update("A", "nested", "ormap", lambda n, i=i: n.update("A", f"k{i}", "gcounter", inc))
    for i in range(0, 300, 3):
        m.remove(f"r{i}")
    budget = 6_000
    pieces = m.split(budget)
    assert all(size(p) <= budget for p in pieces)
    nested = [p for p in pieces if "nested" in p.value]
    assert len(nested) > 5  # the nested map was cut by its entries
    assert_same(join_all("ormap", pieces), m)
    assert_same(join_all("ormap", list(reversed(pieces)) + pieces[:3]), m)


def test_an_overwritten_register_sends_its_old_dots_compactly() -> None:
    r = MVRegister()
    for i in range(50_000):
        r.set("A", i)
    r.merge(MVRegister().set("B", "x" * 300))
    pieces = r.split(200)
    assert_same(join_all("mvregister", pieces), r)
    assert sum(size(p) for p in pieces) < 2_000  # A's 49,999 old dots: one number


def test_removed_dots_below_every_live_dot_are_one_number_per_replica() -> None:
    ctx = crdt.CausalContext({"A": 10, "B": 3}, [("A", 12)])
    head, *rest = removed_contexts(ctx, [("A", 5), ("A", 7), ("B", 1)], 1000)
    assert head.to_dict() == {"vv": {"A": 4}, "cloud": []}
    cloud = [["A", 6], ["A", 8], ["A", 9], ["A", 10], ["A", 12], ["B", 2], ["B", 3]]
    assert [c.to_dict() for c in rest] == [{"vv": {}, "cloud": cloud}]
