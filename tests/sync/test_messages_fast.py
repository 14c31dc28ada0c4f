"""The fast path of :mod:`sync.messages` (Push, Deltas, Ack, SnapshotChunk) agrees with the
pydantic path.

``decode`` reads the replication stream without pydantic's per-field machinery and hands
anything it does not accept to the pydantic validator. These tests check that both paths
accept exactly the same messages, build equal models, and that ``encode`` of the fast types
gives JSON the pydantic serializer would accept back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from sync import messages as m
from sync.effects import LogEntry
from sync.errors import RemoteProtocolError

DELTA = {"type": "gcounter", "v": 1, "counts": {"A": 1}}
FIELDS = ("origin", "partition", "seq", "key", "kind", "delta_json")
# An entry on the wire: [origin, partition, seq, key, kind, delta_json] (the delta's text).
ENTRY = ["A", 3, 7, "k", "gcounter", json.dumps(DELTA)]
# An object of a state transfer's chunk.
SNAP = {"key": "k", "kind": "gcounter", "state_json": json.dumps(DELTA)}


def _with(**change: Any) -> list[Any]:
    return [change.get(name, value) for name, value in zip(FIELDS, ENTRY, strict=True)]


def _pydantic(data: bytes) -> m.Message | None:
    try:
        return m._ADAPTER.validate_json(data, context=m._WIRE)
    except ValidationError:
        return None


def _ours(data: bytes) -> m.Message | None:
    try:
        return m.decode(data, max_size=10**6)
    except RemoteProtocolError:
        return None


def test_fast_types_decode_to_equal_models() -> None:
    for raw in (
        {"proto": 1, "t": "push", "push_id": 5, "entries": [ENTRY], "hint_for": "C"},
        {"proto": 1, "t": "push", "push_id": 5, "entries": [ENTRY]},
        {"proto": 1, "t": "deltas", "batch_id": 2, "partition": 3, "entries": [ENTRY]},
        {"proto": 1, "t": "deltas", "batch_id": 2, "partition": 3, "entries": [], "more": True},
        {"proto": 1, "t": "ack", "ids": [1, 2, -3]},
        {"proto": 1, "t": "snapshot", "batch_id": 4, "partition": 2, "objects": [SNAP]},
        {
            "proto": 1,
            "t": "snapshot",
            "batch_id": 4,
            "partition": 0,
            "objects": [SNAP, {**SNAP, "piece": True}, {**SNAP, "piece": False, "x": 1}],
            "last": True,
            "remaining": [0, 0],
        },
        {
            "proto": 1,
            "t": "snapshot",
            "batch_id": 4,
            "partition": 2,
            "objects": [],
            "summary": None,
        },
    ):
        data = json.dumps(raw).encode()
        assert m._fast_decode(from_json(data)) is not None, raw  # the fast path took it
        got, want = _ours(data), _pydantic(data)
        assert got is not None and got == want and type(got) is type(want)
        assert _fields_set(got) == _fields_set(want)
        assert m.decode(m.encode(got)) == got


def _fields_set(value: Any) -> Any:
    """The fields set of a model and of every model inside it, as a comparable tree."""
    if isinstance(value, BaseModel):
        return (
            sorted(value.model_fields_set),
            {name: _fields_set(getattr(value, name)) for name in type(value).model_fields},
        )
    if isinstance(value, list | tuple):
        return [_fields_set(v) for v in value]
    return None


def test_a_chunk_with_a_summary_is_judged_by_the_pydantic_path() -> None:
    """The chunk carrying its partition's summary (one a partition) takes the pydantic path,
    which checks the summary's maps pair by pair: a key given twice, once out of range, is
    refused (parsed JSON keeps only the last of the two)."""
    head = b'{"proto":1,"t":"snapshot","batch_id":4,"partition":0,"objects":[],"summary":'
    good = head + b'{"vv":{"A":3},"cloud":[["B",5]]}}'
    twice = head + b'{"vv":{"A":0,"A":1},"cloud":[]}}'
    assert m._fast_decode(from_json(good)) is None
    got = _ours(good)
    assert isinstance(got, m.SnapshotChunk) and got == _pydantic(good)
    assert _fields_set(got) == _fields_set(_pydantic(good))
    assert _pydantic(twice) is None
    with pytest.raises(RemoteProtocolError, match="summary"):
        m.decode(twice)


def test_extra_fields_are_ignored_like_the_models_do() -> None:
    data = json.dumps({"proto": 1, "t": "push", "push_id": 1, "x": 0, "entries": [ENTRY]})
    got = _ours(data.encode())
    want = m.Push(push_id=1, entries=[LogEntry(*ENTRY)])
    assert got == _pydantic(data.encode()) == want
    assert isinstance(got, m.Push) and list(dataclasses.astuple(got.entries[0]))[:6] == ENTRY


@pytest.mark.parametrize(
    "entry",
    [
        ENTRY[:5],  # too short
        [*ENTRY, "extra"],  # too long
        dict(zip(FIELDS, ENTRY, strict=True)),  # the object form is not the wire's
    ],
)
def test_an_entry_is_exactly_a_six_item_array(entry: Any) -> None:
    data = json.dumps({"proto": 1, "t": "push", "push_id": 1, "entries": [entry]}).encode()
    with pytest.raises(RemoteProtocolError, match="entries"):
        m.decode(data)
    assert _pydantic(data) is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"seq": 0}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": 1.0}, "seq"),
        ({"partition": -1}, "partition"),
        ({"origin": ""}, "origin"),
        ({"kind": ""}, "kind"),
        ({"key": 3}, "key"),
        ({"key": ""}, "key"),  # the store keys rows by it
        ({"seq": 2**63}, "seq"),  # past a signed 64-bit column
        ({"delta_json": [1]}, "delta_json"),
        ({"delta_json": DELTA}, "delta_json"),  # a decoded object, not its text
    ],
)
def test_bad_entries_are_refused_with_the_pydantic_reason(
    change: dict[str, Any], where: str
) -> None:
    data = json.dumps({"proto": 1, "t": "push", "push_id": 1, "entries": [_with(**change)]})
    with pytest.raises(RemoteProtocolError, match=where):
        m.decode(data.encode())


def test_non_finite_numbers_are_judged_by_the_pydantic_path() -> None:
    data = b'{"proto":1,"t":"push","push_id":NaN,"entries":[["A",0,1,"k","lww","{}"]]}'
    with pytest.raises(RemoteProtocolError):
        m.decode(data)
    assert _pydantic(data) is None  # both paths refuse a NaN where an int belongs


_scalar = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.text(max_size=2)
_value = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=4,
)
_entry = st.tuples(*(st.one_of(_value, st.just(value)) for value in ENTRY)).map(list) | _value
_snap = (
    st.fixed_dictionaries(
        {name: st.one_of(_value, st.just(value)) for name, value in SNAP.items()},
        optional={"piece": st.one_of(st.booleans(), _value), "x": _value},
    )
    | _value
)
_ctx = (
    st.fixed_dictionaries(
        {},
        optional={
            "vv": st.dictionaries(st.sampled_from(["A", "", "a b"]), st.integers(-1, 3)) | _value,
            "cloud": st.lists(
                st.tuples(st.sampled_from(["B", ""]), st.integers(-1, 3)).map(list) | _value,
                max_size=2,
            )
            | _value,
        },
    )
    | _value
)
_message = st.fixed_dictionaries(
    {
        "proto": st.sampled_from([1, 1, 1, 2, True, 1.0]),
        "t": st.sampled_from(["push", "deltas", "ack", "snapshot"]),
    },
    optional={
        "push_id": st.one_of(st.integers(-5, 5), _value),
        "batch_id": st.one_of(st.integers(-5, 5), _value),
        "partition": st.one_of(st.integers(-2, 5), _value),
        "hint_for": st.one_of(st.none(), st.text(max_size=2), _value),
        "more": st.one_of(st.booleans(), _value),
        "ids": st.one_of(st.lists(st.integers(-5, 5), max_size=3), _value),
        "entries": st.lists(_entry, max_size=3) | _value,
        "objects": st.lists(_snap, max_size=3) | _value,
        "summary": st.one_of(st.none(), _ctx),
        "last": st.one_of(st.booleans(), _value),
        "remaining": st.one_of(
            st.none(), st.tuples(st.integers(-1, 2), st.integers(0, 2)).map(list), _value
        ),
    },
)


# Chunks of a state transfer, mostly well-formed (every required field there, each one valid
# or any value), so that both paths accept some and refuse others for every reason.
_snapshot = st.fixed_dictionaries(
    {
        "proto": st.sampled_from([1, 1, 1, 1, True, 1.0]),
        "t": st.just("snapshot"),
        "batch_id": st.one_of(st.integers(-5, 5), st.integers(-5, 5), _value),
        "partition": st.one_of(st.integers(-1, 5), st.integers(0, 5), _value),
        "objects": st.lists(st.just(SNAP) | _snap, max_size=3) | _value,
    },
    optional={
        "summary": st.one_of(
            st.none(),
            st.just({"vv": {"A": 3}, "cloud": [["B", 5]]}),
            st.just({}),
            _ctx,
        ),
        "last": st.one_of(st.booleans(), st.booleans(), _value),
        "remaining": st.one_of(st.none(), st.just([1, 2]), _value),
    },
)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(raw=_message | _snapshot)
def test_both_paths_accept_the_same_messages(raw: dict[str, Any]) -> None:
    data = json.dumps(raw).encode()
    got, want = _ours(data), _pydantic(data)
    assert got == want
    if got is not None:
        assert type(got) is type(want)
        assert _fields_set(got) == _fields_set(want)
        assert m.decode(m.encode(got)) == got


@pytest.mark.parametrize("piece", [False, True])
def test_snap_object_builds_what_model_construct_builds(piece: bool) -> None:
    """``snap_object`` (a state transfer's fast constructor) makes the model that
    ``model_construct`` makes: equal, the same fields set, the same bytes in a chunk."""
    text = '{"type":"gcounter","v":1,"counts":{"A":2}}'
    fast = m.snap_object("k\\u00e9", "gcounter", text, piece=piece)
    slow = (
        m.SnapObject.model_construct(key="k\\u00e9", kind="gcounter", state_json=text, piece=True)
        if piece
        else m.SnapObject.model_construct(key="k\\u00e9", kind="gcounter", state_json=text)
    )
    assert fast == slow and type(fast) is m.SnapObject
    assert fast.model_fields_set == slow.model_fields_set and fast.piece is piece

    def chunk(obj: m.SnapObject) -> bytes:
        return m.encode(m.SnapshotChunk.model_construct(batch_id=1, partition=0, objects=[obj]))

    assert chunk(fast) == chunk(slow)
    assert m.decode(chunk(fast)) == m.decode(chunk(slow))
