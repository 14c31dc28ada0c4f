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

from sync.config import MESSAGE_ENVELOPE, ReplicaConfig
from sync.errors import LocalProtocolError, ValueTooLarge
from sync.replica import Replica
from sync.replica.outbound import entry_size, text_size, value_size

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


def test_where_a_message_is_a_few_kib_a_checked_write_too_big_changes_nothing() -> None:
    """With a ``max_message_bytes`` so small that a value under ``value_limit`` (half a
    message) can still make an entry over ``entry_limit``, a checked write runs on a copy:
    refused with ``ValueTooLarge`` and nothing changed (it ran on the live object before,
    which kept an element that was never logged, so never replicated)."""
    small = ReplicaConfig(n=1, max_message_bytes=6000)
    value = "y" * 2500
    assert len(value) < small.value_limit  # what the handles check: it passes
    r = Replica(small, "A")
    r.local_update(1, "cart", "orset", lambda s: s.add("A", "milk"), 0.0)
    r.effects()
    before = _snapshot(r)
    with pytest.raises(ValueTooLarge):
        r.local_update(2, "cart", "orset", lambda s: s.add("A", value), 1.0, checked=True)
    assert r.effects() == []
    assert _snapshot(r) == before  # the set still holds "milk" alone


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
    assert ReplicaConfig(max_message_bytes=1000).value_limit == 500
    assert ReplicaConfig(max_value_bytes=1000).value_limit == 1000
    assert ReplicaConfig().entry_limit == 4 * 1024 * 1024 - MESSAGE_ENVELOPE
