"""Unit tests for crdt/version_vector.py: the partial order, merge, and codec."""

from __future__ import annotations

import json

import pytest

from crdt import DecodeError, Dot, Ordering, VersionVector


def test_compare_covers_the_four_orderings() -> None:
    a = VersionVector({"A": 1, "B": 2})
    assert a.compare(VersionVector({"A": 1, "B": 2})) is Ordering.EQUAL
    assert a.compare(VersionVector({"A": 2, "B": 2})) is Ordering.BEFORE
    assert a.compare(VersionVector({"A": 1})) is Ordering.AFTER
    assert a.compare(VersionVector({"A": 2, "B": 1})) is Ordering.CONCURRENT
    assert a.compare(VersionVector({"C": 1})) is Ordering.CONCURRENT


def test_operators_follow_the_partial_order() -> None:
    small, big = VersionVector({"A": 1}), VersionVector({"A": 1, "B": 1})
    assert small <= big and small < big and big >= small and big > small
    assert not big <= small
    assert big.dominates(small) and not small.dominates(big)
    assert small <= small.copy() and not small < small.copy()
    other = VersionVector({"C": 1})
    assert other.concurrent_with(small) and not other <= small and not small <= other


def test_missing_entries_count_as_zero_and_zeros_are_not_stored() -> None:
    v = VersionVector({"A": 0, "B": 2})
    assert v.get("A") == 0 and v.get("Z") == 0
    assert v == VersionVector({"B": 2})
    assert v.to_dict() == {"B": 2}


def test_increment_returns_the_new_dot_and_contains_sees_it() -> None:
    v = VersionVector()
    assert v.increment("A") == Dot("A", 1)
    assert v.increment("A") == Dot("A", 2)
    assert v.contains(Dot("A", 2)) and not v.contains(Dot("A", 3))
    assert Dot("A", 1) in v and Dot("B", 1) not in v


def test_merge_is_the_pointwise_maximum() -> None:
    a = VersionVector({"A": 3, "B": 1})
    a.merge(VersionVector({"B": 4, "C": 1}))
    assert a.to_dict() == {"A": 3, "B": 4, "C": 1}


def test_encoding_is_sorted_and_round_trips() -> None:
    v = VersionVector({"B": 1, "A": 2})
    assert json.dumps(v.to_dict()) == '{"A": 2, "B": 1}'
    assert VersionVector.from_dict(v.to_dict()) == v


@pytest.mark.parametrize(
    ("bad", "path"),
    [([], "vv"), ({"A": 0}, "vv.A"), ({"A": "1"}, "vv.A"), ({"": 1}, "vv"), ({1: 1}, "vv")],
)
def test_malformed_encoding_is_refused(bad: object, path: str) -> None:
    with pytest.raises(DecodeError) as e:
        VersionVector.from_dict(bad)
    assert e.value.path == path


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        VersionVector({"A": -1})
    with pytest.raises(TypeError):
        VersionVector({1: 1})  # type: ignore[dict-item]


def test_version_vectors_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(VersionVector())
