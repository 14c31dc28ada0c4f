"""The seed's shopping-cart scenario (issue 2, DESIGN.md), exactly as written there.

Replicas A and B share one cart. A sets ``["milk"]`` while B concurrently sets ``["eggs"]``;
A then sets ``["milk", "flour"]`` having seen only its own value, and B sets
``["eggs", "ham"]`` likewise. An ``MVRegister`` then holds exactly the two siblings
``["milk", "flour"]`` and ``["eggs", "ham"]``; a union resolver gives the four items; a ``set``
by a replica that has merged both leaves one value. The same story on an ``ORSet`` ends with
all four items and no siblings.

Each replica ships its deltas to the other only after both have written, and the exchange is
checked both by deltas (in both delivery orders) and by full states.
"""

from __future__ import annotations

from typing import Any

import pytest

from crdt import MVRegister, ORSet
from tests.crdt.conftest import canonical_bytes

__all__: list[str] = []

FOUR_ITEMS = frozenset({"milk", "flour", "eggs", "ham"})


def concurrent_carts() -> tuple[MVRegister, MVRegister, list[MVRegister], list[MVRegister]]:
    a, b = MVRegister(), MVRegister()
    deltas_a = [a.set("A", ["milk"])]
    deltas_b = [b.set("B", ["eggs"])]
    deltas_a.append(a.set("A", ["milk", "flour"]))  # A has seen only its own value
    deltas_b.append(b.set("B", ["eggs", "ham"]))  # B likewise
    return a, b, deltas_a, deltas_b


def union(values: tuple[Any, ...]) -> frozenset[Any]:
    return frozenset().union(*values)


@pytest.mark.parametrize("by", ["deltas", "reversed deltas", "full states"])
def test_seed_cart_mvregister_keeps_exactly_the_two_latest_concurrent_carts_as_siblings(
    by: str,
) -> None:
    a, b, deltas_a, deltas_b = concurrent_carts()
    # Before any exchange each replica sees only its own latest cart.
    assert a.values == (["milk", "flour"],)
    assert b.values == (["eggs", "ham"],)
    if by == "full states":
        a_state = a.copy()
        a.merge(b)
        b.merge(a_state)
    else:
        step = -1 if by == "reversed deltas" else 1
        for d in deltas_b[::step]:
            a.merge(d)
        for d in deltas_a[::step]:
            b.merge(d)

    assert a == b
    assert canonical_bytes(a) == canonical_bytes(b)
    assert len(a.values) == 2
    assert sorted(a.values) == [["eggs", "ham"], ["milk", "flour"]]
    # The first carts were superseded by their own replica's second write: not siblings.
    assert ["milk"] not in a.values and ["eggs"] not in a.values
    # Siblings are listed in the same (stable) order on both replicas.
    assert a.values == b.values


def test_seed_cart_union_resolver_gives_the_four_items() -> None:
    a, b, _, deltas_b = concurrent_carts()
    for d in deltas_b:
        a.merge(d)
    assert a.resolve(union) == FOUR_ITEMS
    b.merge(a)
    assert b.resolve(union) == FOUR_ITEMS


def test_seed_cart_set_by_a_replica_that_merged_both_leaves_one_value_everywhere() -> None:
    a, b, deltas_a, deltas_b = concurrent_carts()
    for d in deltas_b:
        a.merge(d)
    resolved = sorted(a.resolve(union))
    d = a.set("A", resolved)
    assert a.values == (resolved,)
    # B had not merged A's carts; A's resolving set has seen both siblings, so it replaces
    # both on B too once B receives A's deltas (in any order).
    for x in [d, *deltas_a]:
        b.merge(x)
    assert b.values == (resolved,)
    assert a == b
    assert set(resolved) == FOUR_ITEMS


def test_seed_cart_set_by_a_replica_that_saw_only_one_side_does_not_resolve_the_conflict() -> None:
    """The converse, so the test above cannot pass by accident: B has not merged A's carts."""
    a, b, _, deltas_b = concurrent_carts()
    d = b.set("B", ["eggs", "ham", "bacon"])
    for x in [*deltas_b, d]:
        a.merge(x)
    assert sorted(a.values) == [["eggs", "ham", "bacon"], ["milk", "flour"]]


@pytest.mark.parametrize("by", ["deltas", "full states"])
def test_seed_cart_orset_ends_with_all_four_items_and_no_siblings(by: str) -> None:
    a, b = ORSet(), ORSet()
    deltas_a = [a.add("A", "milk")]
    deltas_b = [b.add("B", "eggs")]
    deltas_a.append(a.add("A", "flour"))  # ["milk", "flour"]: milk is already in
    deltas_b.append(b.add("B", "ham"))  # ["eggs", "ham"]
    if by == "full states":
        a_state = a.copy()
        a.merge(b)
        b.merge(a_state)
    else:
        for d in deltas_b:
            a.merge(d)
        for d in deltas_a:
            b.merge(d)
    assert a == b
    assert a.value == b.value == FOUR_ITEMS
    # No siblings: every item is there exactly once, as a plain element.
    assert len(a) == 4
    assert sorted(e[0] for e in a.to_dict()["entries"]) == sorted(FOUR_ITEMS)
