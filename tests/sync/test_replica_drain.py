"""One ``Persist`` per drain: inputs between two ``Replica.effects()`` calls share it.

The node runs many inputs (a window of concurrent writes, a burst of received pushes) before
it drains the effects; the engine then emits one ``Persist`` holding every durable change of
those inputs, placed before the effects of the first input that changed something durable.
"""

from __future__ import annotations

import json
from typing import Any

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import HintId, HintRecord, LogEntry, Persist, ReadDone, Send, WriteDone
from sync.replica import Replica
from sync.ring import partition_of


def _names(fx: list[Any]) -> list[str]:
    return [type(e).__name__ for e in fx]


def test_inputs_between_drains_share_one_persist_placed_first() -> None:
    r = Replica(ReplicaConfig(n=1), "A")
    for i in range(3):
        r.local_update(i, f"k{i}", "gcounter", lambda c: c.increment("A", 1), now=1.0)
    fx = r.effects()
    assert _names(fx) == ["Persist"] + ["Changed", "WriteDone"] * 3
    persist = fx[0]
    assert isinstance(persist, Persist)
    assert sorted(e.key for e in persist.log) == ["k0", "k1", "k2"]
    parts = {partition_of(f"k{i}", 64) for i in range(3)}
    assert {p for p, _ in persist.summaries} == parts  # each partition's summary, once
    assert r.effects() == []


def test_the_persist_goes_after_effects_that_did_not_need_it() -> None:
    r = Replica(ReplicaConfig(n=1), "A")
    # A read changes nothing durable: its ReadDone needs no Persist.
    r.local_read(1, "k", 1.0, kind="gcounter")
    r.local_update(2, "k", "gcounter", lambda c: c.increment("A", 1), now=1.0)
    fx = r.effects()
    assert _names(fx) == ["ReadDone", "Persist", "Changed", "WriteDone"]
    assert isinstance(fx[0], ReadDone) and isinstance(fx[3], WriteDone)


def _pushes_to(r: Replica, peer: str) -> list[m.Push]:
    return [
        e.message
        for e in r.effects()
        if isinstance(e, Send) and e.peer == peer and isinstance(e.message, m.Push)
    ]


def test_the_last_change_of_a_hint_wins_within_a_drain() -> None:
    # D is a fallback holding hints for C (the key's home; D is none): the hint is added,
    # handed off and acked by C (dropped), then held again from a fresh push, all in one
    # drain: the Persist must store it (an add), not drop it.
    r = Replica(ReplicaConfig(n=1, anti_entropy_interval=None), "D")
    r.peer_up("A", 0.0)
    r.peer_up("C", 0.0)
    r.peer_down("C", 0.0)
    r.effects()
    key = next(k for k in (f"k{i}" for i in range(10_000)) if r.homes(k) == ("C",))
    p = partition_of(key, 64)
    delta = crdt.new("gcounter").increment("A", 2).to_dict()
    entry = m.Entry(
        origin="A", partition=p, seq=1, key=key, kind="gcounter", delta_json=json.dumps(delta)
    )
    r.receive("A", m.Push(push_id=5, entries=[entry], hint_for="C"), 1.0)
    r.effects()
    r.peer_up("C", 1.0)
    (handoff,) = _pushes_to(r, "C")
    r.receive("C", m.Ack(ids=[handoff.push_id]), 1.5)  # dropped...
    r.peer_down("C", 1.5)
    r.receive("A", m.Push(push_id=6, entries=[entry], hint_for="C"), 2.0)  # ...held again
    fx = r.effects()
    (persist,) = [e for e in fx if isinstance(e, Persist)]
    hid = HintId("C", "A", p, 1)
    assert [h.id for h in persist.hints_add] == [hid] and persist.hints_drop == ()
    assert isinstance(persist.hints_add[0], HintRecord)
    assert isinstance(persist.hints_add[0].entry, LogEntry)
    assert r.status()["hints"] == {"C": 1}
    # Held, then handed off and acked, in one drain: the Persist drops it.
    r.peer_up("C", 3.0)
    r.receive("C", m.Ack(ids=[p.push_id for p in _pushes_to(r, "C")]), 3.0)
    (persist,) = [e for e in r.effects() if isinstance(e, Persist)]
    assert persist.hints_drop == (hid,) and persist.hints_add == ()
    assert r.status()["hints"] == {}


def test_kinds_of_and_current_value_give_the_local_kind_and_value() -> None:
    r = Replica(ReplicaConfig(n=1), "A")
    assert r.kinds_of("cart") == () and r.current_value("cart") is None
    r.local_update(1, "cart", "orset", lambda s: s.add("A", "milk"), now=1.0)
    r.effects()
    assert r.kinds_of("cart") == ("orset",)
    assert r.current_value("cart", "pncounter") is None
    value = r.current_value("cart")
    assert value == frozenset({"milk"}) == r.value("cart").value  # type: ignore[union-attr]
    r.local_update(2, "cart", "orset", lambda s: s.add("A", "eggs"), now=1.0)
    assert value == frozenset({"milk"})  # what was read is not a live view
    assert r.current_value("cart") == frozenset({"milk", "eggs"})


def test_a_key_changed_by_several_inputs_of_a_drain_is_announced_once() -> None:
    r = Replica(ReplicaConfig(n=1), "A")
    for i in range(3):
        r.local_update(i, "c", "gcounter", lambda c: c.increment("A", 1), now=1.0)
    assert _names(r.effects()) == ["Persist", "Changed", "WriteDone", "WriteDone", "WriteDone"]
    r.local_update(9, "c", "gcounter", lambda c: c.increment("A", 1), now=1.0)
    assert _names(r.effects()) == ["Persist", "Changed", "WriteDone"]  # a new drain: again
