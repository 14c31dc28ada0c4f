"""Unit tests for crdt/base.py: the registry, from_dict dispatch, join, check_json, exports."""

from __future__ import annotations

import json

import pytest

import crdt
from crdt import KINDS, DecodeError, check_json, from_dict, join, new


def test_kinds_and_new_make_bottoms_of_every_kind() -> None:
    assert KINDS == ("gcounter", "pncounter", "lww", "mvregister", "orset", "ormap")
    for kind in KINDS:
        x = new(kind)
        assert x.kind == kind and x.is_bottom()
        assert x.to_dict()["type"] == kind and x.to_dict()["v"] == 1
        assert from_dict(json.loads(json.dumps(x.to_dict()))) == x


def test_new_of_an_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="zset"):
        new("zset")


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        ([], "$"),
        ({}, "type"),
        ({"type": "zset", "v": 1}, "type"),
        ({"type": 3, "v": 1}, "type"),
        ({"type": "orset"}, "v"),
        ({"type": "orset", "v": 2, "entries": [], "ctx": {"vv": {}, "cloud": []}}, "v"),
    ],
)
def test_from_dict_refuses_unknown_types_and_versions(bad: object, path: str) -> None:
    with pytest.raises(DecodeError) as e:
        from_dict(bad)  # type: ignore[arg-type]
    assert e.value.path == path
    assert isinstance(e.value, ValueError)  # DecodeError is also a ValueError


def test_join_is_pure() -> None:
    a, b = new("gcounter"), new("gcounter")
    a.increment("A")
    b.increment("B", 2)
    j = join(a, b)
    assert j.value == 3 and a.value == 1 and b.value == 2


def test_merge_of_different_kinds_is_a_type_error() -> None:
    for kind in KINDS:
        other = "orset" if kind != "orset" else "gcounter"
        with pytest.raises(TypeError):
            new(kind).merge(new(other))


@pytest.mark.parametrize(
    "good", [None, True, 0, -5, 1.5, "", "x", [], [1, [2]], (1, 2), {}, {"a": [1, {"b": None}]}]
)
def test_check_json_accepts_json_values(good: object) -> None:
    check_json(good)


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (object(), "object"),
        ({1, 2}, "set"),
        (b"x", "bytes"),
        (float("nan"), "nan"),
        (float("-inf"), "inf"),
        ({1: "a"}, "int"),
        ([1, {"a": bytearray()}], "bytearray"),
        (1 + 2j, "complex"),
    ],
)
def test_check_json_refuses_others_naming_the_type(bad: object, named: str) -> None:
    with pytest.raises(TypeError, match=named):
        check_json(bad)


def test_every_state_is_unhashable_and_equality_ignores_other_types() -> None:
    for kind in KINDS:
        x = new(kind)
        with pytest.raises(TypeError):
            hash(x)
        assert x != object()


def test_package_exports_every_public_name() -> None:
    for name in crdt.__all__:
        assert hasattr(crdt, name), name
    assert {"ORSet", "ORMap", "CausalContext", "Timestamp", "from_dict", "KINDS"} <= set(
        crdt.__all__
    )


def test_errors_form_one_tree() -> None:
    assert issubclass(crdt.DecodeError, crdt.CRDTError)
    assert issubclass(crdt.ClockSkewError, crdt.CRDTError)
    e = crdt.DecodeError("a.b", "bad")
    assert str(e) == "a.b: bad" and e.path == "a.b" and e.reason == "bad"
