"""Convergence under an unreliable network: deltas delivered late, out of order, twice, or lost
and sent again still bring every replica to the state that full-state merging gives.

The model (hypothesis draws it, so failures shrink to a short story):

* three replicas A, B, C run random mutations; every mutation's delta goes into a shared log;
* between mutations, the network delivers *some* log entries to *some* replicas, in any order,
  duplicates included — each replica's later mutations observe only what reached it — and
  now and then one replica merges another's full state;
* then the full states are snapshotted and joined (the full-state path), and the network
  resends every delta to every replica in a random order with duplicates (the dropped ones
  get through at last), plus to a fresh replica D that only ever saw deltas;
* every replica must now equal the full-state join: same ``==``, same value, same canonical
  bytes.

A variant with long histories makes contexts big enough for the types' "large context"
merge paths (the small-context fast paths dominate short histories).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.crdt.conftest import (
    KINDS,
    REPLICAS,
    apply_op,
    biased_op,
    canonical_bytes,
    crdt_settings,
    new,
)

__all__: list[str] = []


def simulate(kind: str, data: st.DataObject, max_ops: int) -> None:
    n_ops = data.draw(st.integers(1, max_ops), label="mutations")
    states = {r: new(kind) for r in REPLICAS}
    log: list[Any] = []
    for _ in range(n_ops):
        replica = data.draw(st.sampled_from(REPLICAS), label="replica")
        op = biased_op(data.draw, kind, states[replica])
        log.append(apply_op(states[replica], replica, op))
        # Some deliveries now: any target, any logged delta (old ones too: duplicates and
        # reordering), possibly none at all (what is never delivered here was dropped).
        deliveries = data.draw(
            st.lists(
                st.tuples(st.sampled_from(REPLICAS), st.integers(0, len(log) - 1)), max_size=3
            ),
            label="deliveries",
        )
        for target, i in deliveries:
            states[target].merge(log[i])
        # Now and then a full-state sync between two replicas (anti-entropy by state): the
        # large-context merge path once contexts have grown.
        pair = st.tuples(st.sampled_from(REPLICAS), st.sampled_from(REPLICAS))
        sync = data.draw(st.none() | pair, label="full-state sync")
        if sync is not None:
            states[sync[0]].merge(states[sync[1]].copy())

    full = new(kind)
    for r in REPLICAS:
        full.merge(states[r].copy())

    states["D"] = new(kind)
    for target in states:
        order = data.draw(st.permutations(range(len(log))), label=f"resend order to {target}")
        dups = data.draw(
            st.lists(st.integers(0, len(log) - 1), max_size=3), label=f"duplicates to {target}"
        )
        for i in [*order, *dups]:
            states[target].merge(log[i])

    for target, s in states.items():
        assert s == full, f"replica {target} did not converge"
        assert s.value == full.value
        assert canonical_bytes(s) == canonical_bytes(full)


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_deltas_reordered_duplicated_and_resent_converge_to_the_full_state_join(
    kind: str, data: st.DataObject
) -> None:
    simulate(kind, data, max_ops=12)


@pytest.mark.parametrize("kind", ["orset", "ormap", "mvregister"])
@settings(crdt_settings, max_examples=12)
@given(data=st.data())
def test_long_histories_converge_through_the_large_context_merge_paths(
    kind: str, data: st.DataObject
) -> None:
    simulate(kind, data, max_ops=60)


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_deltas_joined_into_bottom_in_any_order_rebuild_the_replica_state(
    kind: str, data: st.DataObject
) -> None:
    """A replica's state is exactly the join of the deltas it made and received."""
    n_ops = data.draw(st.integers(1, 12), label="mutations")
    state = new(kind)
    deltas = []
    for _ in range(n_ops):
        replica = data.draw(st.sampled_from(REPLICAS), label="replica")
        deltas.append(apply_op(state, replica, biased_op(data.draw, kind, state)))
    order = data.draw(st.permutations(range(len(deltas))), label="order")
    rebuilt = new(kind)
    for i in order:
        rebuilt.merge(deltas[i])
    assert rebuilt == state
    assert canonical_bytes(rebuilt) == canonical_bytes(state)
