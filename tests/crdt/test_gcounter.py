"""Unit tests for crdt/gcounter.py."""

from __future__ import annotations

import pytest

from crdt import DecodeError, GCounter


def test_increments_sum_across_replicas_and_merge_takes_the_max() -> None:
    a, b = GCounter(), GCounter()
    a.increment("A", 2)
    b.increment("B")
    b.increment("B", 4)
    a.merge(b)
    b.merge(a)
    assert a.value == b.value == 7 and a == b
    a.merge(b)  # idempotent
    assert a.value == 7


def test_delta_carries_the_new_total_of_its_replica_only() -> None:
    c = GCounter()
    c.increment("A", 2)
    c.increment("B", 1)
    d = c.increment("A", 3)
    assert d.to_dict() == {"type": "gcounter", "v": 1, "counts": {"A": 5}}
    old = GCounter({"A": 2, "B": 1})
    old.merge(d)
    old.merge(d)
    assert old == c


@pytest.mark.parametrize("n", [0, -1])
def test_non_positive_amounts_are_refused_and_change_nothing(n: int) -> None:
    c = GCounter({"A": 1})
    with pytest.raises(ValueError):
        c.increment("A", n)
    assert c.value == 1


@pytest.mark.parametrize("n", [1.0, True, "1", None])
def test_non_int_amounts_are_refused_naming_the_type(n: object) -> None:
    c = GCounter()
    with pytest.raises(TypeError, match=type(n).__name__):
        c.increment("A", n)  # type: ignore[arg-type]
    assert c.is_bottom()


def test_bad_replica_ids_are_refused() -> None:
    c = GCounter()
    with pytest.raises(TypeError):
        c.increment(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        c.increment("")
    assert c.is_bottom()


def test_merge_with_another_kind_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        GCounter().merge(object())  # type: ignore[arg-type]


def test_codec_is_sorted_and_round_trips() -> None:
    c = GCounter()
    c.increment("B")
    c.increment("A", 2)
    assert list(c.to_dict()["counts"]) == ["A", "B"]
    assert GCounter.from_dict(c.to_dict()) == c
    assert c.get("A") == 2 and c.get("Z") == 0


def test_copy_is_independent_and_unhashable() -> None:
    c = GCounter({"A": 1})
    d = c.copy()
    d.increment("A")
    assert c.value == 1 and d.value == 2
    with pytest.raises(TypeError):
        hash(c)


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        ({"type": "gcounter", "v": 1}, "counts"),
        ({"type": "gcounter", "v": 1, "counts": {"A": 0}}, "counts.A"),
        ({"type": "gcounter", "v": 2, "counts": {}}, "v"),
        ({"type": "gcounter", "v": 1, "counts": {}, "extra": 1}, "extra"),
    ],
)
def test_malformed_dicts_are_refused(bad: dict[str, object], path: str) -> None:
    with pytest.raises(DecodeError) as e:
        GCounter.from_dict(bad)
    assert e.value.path == path
