"""Unit tests of sync.messages: round trips and every way decode refuses input."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync import messages as m
from sync.errors import RemoteProtocolError

DELTA = {"type": "gcounter", "v": 1, "counts": {"A": 1}}
# An entry's delta travels as the JSON text of its to_dict() form.
ENTRY = m.Entry(
    origin="A", partition=3, seq=7, key="k", kind="gcounter", delta_json=json.dumps(DELTA)
)

SAMPLES: list[m.Message] = [
    m.Hello(group="g", replica_id="A", nonce="n1", address="ws://127.0.0.1:1", site="eu"),
    m.AuthReply(mac="00ff", nonce="n2"),
    m.Welcome(replica_id="B"),
    m.Goodbye(code=1002, reason="bad message"),
    m.Push(push_id=1, entries=[ENTRY], hint_for="C"),
    m.Ack(ids=[1, 2, 3]),
    m.ReadReq(req_id=9, key="k", kind="gcounter"),
    m.ReadResp(req_id=9, key="k", kind="gcounter", state=DELTA),
    m.ReadResp(req_id=9, key="k", kind="gcounter", state=None),
    m.Repair(key="k", kind="gcounter", state=DELTA),
    m.Summary(
        parts={0: m.Ctx(vv={"A": 2}, cloud=[("B", 4)]), 63: m.Ctx()},
        known_peers=[m.PeerInfo(replica_id="A", address=None, site="eu")],
        reply=True,
    ),
    m.Deltas(batch_id=5, partition=3, entries=[ENTRY], more=True),
    m.SnapshotChunk(
        batch_id=6,
        partition=3,
        objects=[m.SnapObject(key="k", kind="gcounter", state_json=json.dumps(DELTA))],
        summary=m.Ctx(vv={"A": 7}),
        last=True,
    ),
    m.Ping(nonce=1),
    m.Pong(nonce=1),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x).__name__)
def test_round_trip(msg: m.Message) -> None:
    data = m.encode(msg)
    assert isinstance(data, bytes)
    out = m.decode(data, max_size=100_000)
    assert out == msg and type(out) is type(msg)
    assert json.loads(data)["proto"] == 1
    assert m.decode(data.decode(), max_size=100_000) == msg  # text frames too


def test_summary_partitions_travel_as_object_keys() -> None:
    raw = json.loads(m.encode(SAMPLES[10]))
    assert set(raw["parts"]) == {"0", "63"}
    assert raw["parts"]["0"] == {"vv": {"A": 2}, "cloud": [["B", 4]]}


def test_a_summary_says_offer_only_when_it_offers() -> None:
    """``offer`` (the sender is no home of the partitions) is on the wire only when true, so
    the summaries of a home read as before, and one without it (from a peer of an earlier
    version) asks."""
    asked = m.Summary(parts={0: m.Ctx()}, reply=True)
    assert "offer" not in json.loads(m.encode(asked))
    offered = m.Summary(parts={0: m.Ctx()}, reply=True, offer=True)
    assert json.loads(m.encode(offered))["offer"] is True
    assert m.decode(m.encode(offered), max_size=1000) == offered
    assert m.decode(_raw(t="summary", parts={"0": {}}), max_size=1000).offer is False


def _entry_array(**change: Any) -> list[Any]:
    fields = dataclasses.asdict(ENTRY)
    fields.update(change)
    return list(fields.values())


def _raw(**fields: Any) -> bytes:
    return json.dumps({"proto": 1, **fields}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"ack"', "must be a JSON object"),
        (_raw(t="teleport"), "unknown message type 'teleport'"),
        (_raw(ids=[1]), "no type tag"),
        (json.dumps({"t": "ack", "proto": 2, "ids": []}).encode(), "protocol version 2"),
        (json.dumps({"t": "ack", "ids": []}).encode(), "missing protocol version"),
        (json.dumps({"t": "future", "proto": 9}).encode(), "protocol version 9"),
        (_raw(t="ack", ids=["1"]), "bad field 'ids.0'"),
        (_raw(t="ack"), "bad field 'ids'"),
        (_raw(t="read", req_id=1.5, key="k"), "req_id"),
        (_raw(t="push", push_id=1, entries=[_entry_array(seq=0)]), "seq"),
        (_raw(t="push", push_id=1, entries=[_entry_array(origin="")]), "origin"),
        (_raw(t="push", push_id=1, entries=[_entry_array(delta_json=[1])]), "delta_json"),
        (_raw(t="summary", parts={"x": {"vv": {}, "cloud": []}}), "parts"),
        (_raw(t="summary", parts={"-1": {"vv": {}, "cloud": []}}), "parts"),
        (_raw(t="summary", parts={"0": {"vv": {"A": 0}, "cloud": []}}), "parts"),
        (_raw(t="summary", parts={"0": {"vv": {}, "cloud": [["A"]]}}), "parts"),
        (_raw(t="deltas", batch_id=1, partition=0, entries=[], more="yes"), "more"),
        # Texts the store keeps in columns of their own: replica ids, keys, addresses.
        (_raw(t="push", push_id=1, entries=[], hint_for=""), "hint_for"),
        (_raw(t="push", push_id=1, entries=[], hint_for="a b"), "hint_for"),
        (_raw(t="repair", key="", kind="gcounter", state=DELTA), "key"),
        (_raw(t="repair", key="a\x00b", kind="gcounter", state=DELTA), "key"),
        (_raw(t="read", req_id=1, key=""), "key"),
        (_raw(t="read_resp", req_id=1, key="", state=None), "key"),
        (
            _raw(
                t="snapshot",
                batch_id=1,
                partition=0,
                objects=[{"key": "", "kind": "x", "state": {}}],
            ),
            "objects.0.key",
        ),
        (_raw(t="summary", known_peers=[{"replica_id": "x\x00"}]), "known_peers"),
        (_raw(t="summary", known_peers=[{"replica_id": "B", "site": "\x00"}]), "known_peers"),
        (_raw(t="summary", known_peers=[{"replica_id": "B", "address": "w" * 513}]), "known_peers"),
        (_raw(t="summary", parts={"0": {"vv": {"": 1}, "cloud": []}}), "parts"),
        (_raw(t="summary", parts={"0": {"vv": {"A": 2**62 + 1}, "cloud": []}}), "parts"),
        (_raw(t="summary", parts={"0": {"vv": {}, "cloud": [["A", 2**62 + 1]]}}), "parts"),
        # No member can ask another to forget anyone: the message does not exist.
        (_raw(t="forget", replica_id="Z"), "unknown message type 'forget'"),
    ],
)
def test_decode_refuses_bad_input_with_a_clear_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        m.decode(data, max_size=10_000)
    assert info.value.peer is None and info.value.reason


def test_decode_refuses_oversized_messages_before_parsing() -> None:
    data = m.encode(m.Ack(ids=list(range(100))))
    assert m.decode(data, max_size=len(data)) == m.Ack(ids=list(range(100)))
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        m.decode(data, max_size=len(data) - 1)
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        m.decode(b"x" * 11, max_size=10)  # not even JSON: the size is checked first


def test_default_size_limit_is_4_mib() -> None:
    big = m.encode(m.Ping()) + b" " * (4 * 1024 * 1024)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        m.decode(big)


def test_messages_are_immutable() -> None:
    with pytest.raises(ValueError):
        SAMPLES[5].ids = []  # type: ignore[misc]


_text = st.text(max_size=8)
_entries = st.lists(
    st.builds(
        m.Entry,
        origin=_text.filter(bool),
        partition=st.integers(0, 1000),
        seq=st.integers(1, 2**40),
        key=_text.filter(bool),
        kind=st.sampled_from(["gcounter", "orset"]),
        delta_json=st.dictionaries(_text, st.integers() | _text, max_size=3).map(json.dumps),
    ),
    max_size=5,
)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    push_id=st.integers(-(2**62), 2**62),
    entries=_entries,
    hint=st.none() | st.from_regex(m.REPLICA_ID_PATTERN, fullmatch=True),
)
def test_push_round_trips(push_id: int, entries: list[m.Entry], hint: str | None) -> None:
    msg = m.Push(push_id=push_id, entries=entries, hint_for=hint)
    assert m.decode(m.encode(msg)) == msg


def test_model_construct_sets_the_protocol_version() -> None:
    msg = m.Ack.model_construct(ids=[4])
    assert msg.proto == 1
    assert m.decode(m.encode(msg)) == m.Ack(ids=[4])
