"""Review of the state-transfer pass-through (a key held nowhere here never enters the cache).

Until its drain ends, a passed-through key is held here: ``keys()``, ``kinds_of()`` and
``value()`` see it (``LocalData._held``/``_take_passed``). A read of the objects that goes to
``LocalData._objects`` directly does not, and tells something else about the same state.
"""

from __future__ import annotations

import json

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Persist
from sync.replica import Replica
from sync.ring import partition_of
from tests.sync.conftest import ask_transfer

__all__: list[str] = []

KEY = "register"
PART = partition_of(KEY, 64)


def _replica() -> Replica:
    r = Replica(ReplicaConfig(n=2), "A")
    r.peer_up("B", 0.0)
    r.effects()
    ask_transfer(r, "B", [PART], 0.0)
    return r


def _two_siblings() -> crdt.MVRegister:
    reg = crdt.MVRegister()
    reg.set("C", "from C")
    other = crdt.MVRegister()
    other.set("D", "from D")
    reg.merge(other)  # concurrent writes: two siblings
    assert reg.sibling_count == 2
    return reg


def test_status_lists_the_siblings_of_a_register_passed_through_in_this_drain() -> None:
    r = _replica()
    reg = _two_siblings()
    obj = m.SnapObject(key=KEY, kind="mvregister", state_json=reg.to_json())
    r.receive("B", m.SnapshotChunk(batch_id=1, partition=PART, objects=[obj]), 0.0)
    # The key is held here until the drain ends: listed, its kind known...
    assert r.keys() == [KEY]
    assert r.kinds_of(KEY) == ("mvregister",)
    # ...but status() walks only the cache (LocalData.siblings reads _objects), so the
    # register's two siblings go unreported, while a state adopted into the cache (the
    # path before the pass-through, or the same key once anything reads it) lists them.
    assert r.status()["siblings"] == {KEY: 2}


def test_admitting_a_key_passed_through_in_this_drain_keeps_what_it_holds() -> None:
    # An adapter may admit more than wants_* named: a key passed through in this drain is
    # held here (the store has nothing of it yet), and admit keeps it, as it keeps a cached
    # one, instead of marking it absent (a later write would start from nothing, and the
    # drain's Persist would store two rows for it).
    r = _replica()
    reg = _two_siblings()
    obj = m.SnapObject(key=KEY, kind="mvregister", state_json=reg.to_json())
    r.receive("B", m.SnapshotChunk(batch_id=1, partition=PART, objects=[obj]), 0.0)
    r.admit([KEY], [])
    r.local_update(1, KEY, "mvregister", lambda s: s.set("A", "from A"), 0.0)
    rows = [o for fx in r.effects() if isinstance(fx, Persist) for o in fx.objects]
    assert [(o.key, o.kind) for o in rows] == [(KEY, "mvregister")]
    stored = crdt.from_dict(json.loads(rows[0].state_json))
    assert stored.value == ("from A",)  # the write covers both siblings it saw
    assert stored.sibling_count == 1
