"""The engine's safety net for deltas that could not travel in one message.

A caller of ``Replica.local_update`` that bypasses the handles (which check every value at
the call) may hand the engine a mutator whose delta is bigger than a message can carry.
The engine refuses it with ``ValueTooLarge`` before anything changes: ``fn`` ran on a fresh
bottom (a new key) or on a copy of the object, which was dropped; no effect, no log entry,
no log dot used. A delta just under the limit is accepted and replicates (the simulator
decodes every message with the receiver's limit, so a message too big would fail there).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.config import MESSAGE_ENVELOPE, MIN_MESSAGE_BYTES, ReplicaConfig
from sync.errors import LocalProtocolError, ValueTooLarge
from sync.replica import Replica
from sync.replica.outbound import entry_size, text_size, value_size
from sync.replica.updates import LIVE_SLACK

__all__: list[str] = []

LIMIT = 64 * 1024  # max_message_bytes of these tests


def _replica() -> Replica:
    r = Replica(ReplicaConfig(n=1, max_message_bytes=LIMIT), "A")
    r.local_update(1, "cart", "orset", lambda s: s.add("A", "milk"), 0.0)
    r.effects()
    return r


def _snapshot(r: Replica) -> tuple[Any, ...]:
    state = r.value("cart")
    assert state is not None
    return (state.to_json(), r.status()["log_size"], r.summary(r._data.partition("cart")))


@pytest.mark.parametrize("key", ["cart", "new-key"])
def test_a_delta_too_big_for_a_message_is_refused_and_nothing_changes(key: str) -> None:
    r = _replica()
    before = _snapshot(r)
    big = "x" * LIMIT
    with pytest.raises(ValueTooLarge) as refused:
        r.local_update(2, key, "orset", lambda s: s.add("A", big), 1.0)
    assert refused.value.limit == LIMIT - MESSAGE_ENVELOPE
    assert refused.value.size > refused.value.limit
    assert "refused, nothing was written" in str(refused.value)
    assert isinstance(refused.value, ValueError)
    assert r.effects() == []  # no Persist, no Changed, no WriteDone
    assert _snapshot(r) == before
    assert key == "cart" or r.value(key) is None
    # The log dot was not used: the next write takes the one the refused write would have.
    r.local_update(3, "cart", "orset", lambda s: s.add("A", "eggs"), 2.0)
    (persist, *_) = r.effects()
    assert [e.seq for e in persist.log] == [2]


def test_every_kind_of_oversized_write_is_refused(kit: Any) -> None:
    r = Replica(ReplicaConfig(n=1, max_message_bytes=LIMIT), "A")
    big = ["y"] * (LIMIT // 4)
    writes: list[tuple[str, Any]] = [
        ("lww", lambda reg: reg.set("A", big, now_ms=1)),
        ("mvregister", lambda reg: reg.set("A", big)),
        ("orset", lambda s: s.add("A", big)),
        ("ormap", lambda m: m.update("A", "k", "mvregister", lambda v: v.set("A", big))),
    ]
    for op_id, (kind, fn) in enumerate(writes):
        with pytest.raises(ValueTooLarge):
            r.local_update(op_id, f"{kind}-key", kind, fn, 0.0)
    assert r.effects() == [] and r.keys() == []


@pytest.mark.parametrize("filler", ["y", '"', "\\", "\u00e9", "\U0001f6d2"])
def test_at_the_smallest_message_a_checked_value_still_fits_in_an_entry(filler: str) -> None:
    """Every ``max_message_bytes`` accepted keeps the handles' promise: a value under
    ``value_limit`` (half a message) makes an entry under ``entry_limit``, with
    ``LIVE_SLACK`` to spare, so a checked write may run on the live object. (Messages of a
    few KiB, where it did not and a checked write ran on a copy, are refused.)"""
    smallest = ReplicaConfig(n=1, max_message_bytes=MIN_MESSAGE_BYTES)
    assert smallest.value_limit + LIVE_SLACK <= smallest.entry_limit
    with pytest.raises(ValueError, match="max_message_bytes must be >= 65536"):
        ReplicaConfig(n=1, max_message_bytes=6000)
    r = Replica(smallest, "A")
    room = smallest.value_limit - value_size("cart") - 16
    value = filler * (room // (value_size(filler * 2) - value_size(filler)) - 4)
    assert room - 64 < value_size(value) <= room  # what the handles check: it passes
    r.local_update(1, "cart", "orset", lambda s: s.add("A", value), 0.0, checked=True)
    state = r.value("cart")
    assert state is not None and state.value == frozenset({value})


def test_a_broken_promise_of_a_checked_caller_is_a_local_protocol_error() -> None:
    r = _replica()
    with pytest.raises(LocalProtocolError, match="checked=True"):
        r.local_update(2, "cart", "orset", lambda s: s.add("A", "z" * LIMIT), 1.0, checked=True)
    assert r.effects() == []  # nothing logged or sent


def test_a_delta_just_under_the_limit_replicates(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(2), n=2, max_message_bytes=LIMIT, anti_entropy_interval=1.0)
    cluster.run_for(cluster.detect_delay + 0.5)
    value = "v" * (LIMIT - MESSAGE_ENVELOPE - 400)
    op = cluster.update("p000", "big", "lww", lambda reg: reg.set("p000", value, now_ms=1), w=2)
    assert cluster.run_until(lambda: op.done, max_steps=10_000)
    assert op.ok, op.outcome
    entry = cluster.disk("p000").log[("p000", op.result.dot.partition, 1)]  # type: ignore[union-attr]
    assert LIMIT - MESSAGE_ENVELOPE - 400 < entry_size(entry) <= LIMIT - MESSAGE_ENVELOPE
    kit.settle(cluster)
    assert cluster.values("big") == dict.fromkeys(cluster.ids, value)
    assert cluster.protocol_errors == []


def test_value_size_counts_utf8_and_the_escapes_of_a_delta_in_a_message() -> None:
    assert value_size("abc") == 5 + 2  # "abc": 5 bytes, its two quotes escaped again
    assert value_size("é") == 4 + 2  # two bytes of UTF-8
    assert value_size('a"b') == 6 + 4  # "a\\"b": a backslash and three quotes
    assert value_size({"k": [1, 2]}) == len('{"k":[1,2]}') + 2
    assert value_size(object()) == 0  # not JSON: the CRDT refuses it with its own message


@settings(max_examples=300, derandomize=True)
@given(st.text() | st.text(alphabet='ab"\\/ \t\x7f'))
def test_value_size_of_a_string_is_what_its_json_text_takes_in_an_entry(s: str) -> None:
    import json

    assert value_size(s) == text_size(json.dumps(s, ensure_ascii=False))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"max_value_bytes": 0}, ValueError),
        ({"max_value_bytes": 3 * 1024 * 1024}, ValueError),  # over half of 4 MiB
        ({"max_value_bytes": 1.5}, TypeError),
        ({"max_value_bytes": True}, TypeError),
    ],
)
def test_max_value_bytes_is_checked(fields: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="max_value_bytes"):
        ReplicaConfig(**fields)


def test_max_value_bytes_defaults_to_half_a_message() -> None:
    assert ReplicaConfig().value_limit == 2 * 1024 * 1024
    assert ReplicaConfig(max_message_bytes=128 * 1024).value_limit == 64 * 1024
    assert ReplicaConfig(max_value_bytes=1000).value_limit == 1000
    assert ReplicaConfig().entry_limit == 4 * 1024 * 1024 - MESSAGE_ENVELOPE
