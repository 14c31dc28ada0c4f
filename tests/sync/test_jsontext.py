"""sync.jsontext: msgspec parses and writes the replication paths' JSON, and what a peer takes
is what pydantic-core took: the same values, the same refusals, the same depth bound."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import from_json, to_json

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.errors import RemoteProtocolError
from sync.jsontext import dump, parse, parse_shallow
from sync.replica import Replica
from sync.ring import partition_of

__all__: list[str] = []


def _text(size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=size)


_atoms = st.none() | st.booleans() | st.integers(min_value=-(2**200), max_value=2**200) | _text(12)
_values = st.recursive(
    _atoms,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=30,
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@settings(max_examples=300, deadline=None)
@given(_values)
def test_parse_and_dump_agree_with_pydantic_core(value: Any) -> None:
    text = to_json(value, inf_nan_mode="null")
    assert dump(value) == text
    assert parse(text.decode()) == from_json(text) == parse_shallow(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',  # the last key wins in both
        "18446744073709551616",  # exact, not a float
        "-" + "9" * 300,
        "1e400",  # pydantic-core reads infinity; msgspec refuses, so pydantic-core answers
        "1.5e308",
        " [1] ",
    ],
)
def test_values_where_the_parsers_could_differ(text: str) -> None:
    assert parse(text) == from_json(text, allow_inf_nan=False)
    assert parse_shallow(text.encode()) == from_json(text, allow_inf_nan=False)


@pytest.mark.parametrize(
    "text",
    ["NaN", "Infinity", "[1] x", '"\\ud800"', '"\\udc00x"', '{"a":1,}', "0012", '"a\tb"', "[1,2"],
)
def test_refusals_are_pydantic_cores(text: str) -> None:
    with pytest.raises(ValueError) as expected:
        from_json(text, allow_inf_nan=False)
    with pytest.raises(ValueError) as got:
        parse(text)
    assert str(got.value) == str(expected.value)
    with pytest.raises(ValueError):
        parse_shallow(text)


def test_the_depth_bound_is_pydantic_cores() -> None:
    # msgspec alone takes 250 levels; pydantic-core, which loads states, stops near 200.
    assert msgspec.json.decode(_nested(250)) is not None
    from_json(_nested(200))
    with pytest.raises(ValueError, match="recursion limit"):
        from_json(_nested(250))
    assert parse(_nested(200)) == from_json(_nested(200))
    with pytest.raises(ValueError, match="recursion limit"):
        parse(_nested(250))


def test_deep_text_raises_value_error_not_recursion_error() -> None:
    for fn in (parse, parse_shallow):
        with pytest.raises(ValueError):
            fn(_nested(100_000))


def test_dump_refuses_what_has_no_json_text() -> None:
    with pytest.raises(ValueError):
        dump(["\ud800"])
    with pytest.raises(TypeError):
        dump([object()])


def test_a_delta_nested_past_the_bound_is_refused_and_changes_nothing() -> None:
    # The delta nests 250 levels inside a register: msgspec would parse it, pydantic-core
    # (every peer's reader of states) would not; the receiver refuses it as before.
    replica = Replica(ReplicaConfig(n=2), "A")
    replica.peer_up("B", 0.0)
    replica.effects()
    shallow = crdt.new("lww").set("B", "X", now_ms=1765000000000).to_json()
    p = partition_of("k", 64)
    for depth, taken in ((60, True), (250, False)):
        delta = shallow.replace('"X"', _nested(depth))
        entry = m.Entry(origin="B", partition=p, seq=1, key="k", kind="lww", delta_json=delta)
        push = m.Push(push_id=depth, entries=[entry])
        if taken:  # (the same delta, shallower: the refusal is the depth's)
            probe = Replica(ReplicaConfig(n=2), "A")
            probe.peer_up("B", 0.0)
            probe.receive("B", push, 1765000000.0)
            assert probe.summary(p).vv == {"B": 1}
            continue
        before = replica.summary(p).to_dict()
        with pytest.raises(RemoteProtocolError, match="bad CRDT state"):
            replica.receive("B", push, 1765000000.0)
        assert replica.summary(p).to_dict() == before
        assert replica.effects() == []
