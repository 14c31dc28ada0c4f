"""Unit tests for crdt/dot.py: the Dot value type and its JSON form."""

from __future__ import annotations

import pytest

from crdt import DecodeError, Dot
from crdt.dot import check_replica, dot_from_json, dot_to_json


def test_dot_is_a_plain_hashable_tuple_ordered_by_replica_then_counter() -> None:
    assert Dot("A", 2) == ("A", 2)
    assert hash(Dot("A", 2)) == hash(("A", 2))
    assert sorted([Dot("B", 1), Dot("A", 10), Dot("A", 2)]) == [
        Dot("A", 2),
        Dot("A", 10),
        Dot("B", 1),
    ]


def test_dot_json_round_trip() -> None:
    assert dot_to_json(Dot("A", 3)) == ["A", 3]
    assert dot_from_json(["A", 3], "x") == Dot("A", 3)


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        (None, "d"),
        (["A"], "d"),
        (["A", 1, 2], "d"),
        ("A1", "d"),
        ([1, 1], "d[0]"),
        (["", 1], "d[0]"),
        (["A", 0], "d[1]"),
        (["A", -1], "d[1]"),
        (["A", 1.0], "d[1]"),
        (["A", True], "d[1]"),
        (["A", "1"], "d[1]"),
    ],
)
def test_malformed_dot_is_refused_naming_the_path(bad: object, path: str) -> None:
    with pytest.raises(DecodeError) as e:
        dot_from_json(bad, "d")
    assert e.value.path == path


def test_replica_ids_must_be_non_empty_strings() -> None:
    assert check_replica("A") == "A"
    with pytest.raises(TypeError, match="int"):
        check_replica(1)
    with pytest.raises(ValueError):
        check_replica("")
