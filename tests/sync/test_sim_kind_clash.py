"""Issue 10 item 2 in the simulator: one key written as two kinds on two sides of a partition.

Before, the receiver of the other kind raised ``RemoteProtocolError`` ("key 'k' holds a
orset, not a pncounter"), so the sender's link closed and the two sides never agreed. An
object is now named by its key and kind: both objects replicate everywhere the same way,
through pushes, anti-entropy, read repair and state transfer.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.effects import KindClashFound
from sync.errors import KindClash

WANT = {"orset": frozenset({"milk", "eggs"}), "pncounter": 5}


def _objects(cluster: Any, rid: str) -> dict[str, Any]:
    return {kind: cluster.value(rid, "k", kind).value for kind in cluster.kinds_of(rid, "k")}


@pytest.mark.parametrize("n", [2, 4])
def test_two_kinds_written_across_a_partition_converge_everywhere(kit: Any, n: int) -> None:
    ids = kit.ids(4)
    cluster = kit.cluster(ids, n=n, anti_entropy_interval=1.0, checkpoint_every=2, seed=n)
    cluster.partition([ids[:2], ids[2:]])
    cluster.run_for(2.0)
    cluster.update("p000", "k", "orset", kit.add("p000", "milk"))
    cluster.update("p001", "k", "orset", kit.add("p001", "eggs"))
    cluster.update("p002", "k", "pncounter", kit.incr("p002", 7))
    cluster.update("p003", "k", "pncounter", lambda c: c.decrement("p003", 2))
    cluster.run_for(5.0)
    assert cluster.protocol_errors == []
    cluster.heal()
    cluster.run_for(10.0)
    holders = kit.ring(cluster).homes_of("k")
    assert cluster.protocol_errors == [] and cluster.anomalies == []
    assert cluster.converged(["k"], holders=lambda _k: holders)
    for rid in holders:
        assert _objects(cluster, rid) == WANT
        status = cluster.replica(rid).status()
        assert status["kind_clashes"] == {"k": ["orset", "pncounter"]}
        found = [e for r, e in cluster.other_effects if r == rid and isinstance(e, KindClashFound)]
        assert found == [KindClashFound("k", ("orset", "pncounter"))], "reported once"
        # Each kind's object is durable on its own row.
        assert {kind for key, kind in cluster.disk(rid).objects if key == "k"} <= set(WANT)

    # Local writes name both kinds; reads of each kind work, at any level.
    rid = holders[0]
    before = cluster.disk(rid).persists
    with pytest.raises(KindClash) as info:
        cluster.update(rid, "k", "orset", kit.add(rid, "ham"))
    assert info.value.kinds == ("orset", "pncounter")
    with pytest.raises(TypeError, match="holds an orset and a pncounter, not a gcounter"):
        cluster.update(rid, "k", "gcounter", kit.incr(rid))
    assert cluster.disk(rid).persists == before and _objects(cluster, rid) == WANT
    with pytest.raises(KindClash, match="holds an orset and a pncounter"):
        cluster.read(rid, "k")  # a read naming no kind: which one?
    for kind, value in WANT.items():
        read = cluster.read(rid, "k", kind=kind, r=len(holders))
        assert cluster.run_until(lambda read=read: read.done, max_steps=10_000)
        assert read.ok and read.state is not None and read.state.value == value
        assert read.state.kind == kind

    # A restart loads both objects from the disk and reports the clash again.
    cluster.crash(rid)
    cluster.restart(rid)
    assert _objects(cluster, rid) == WANT
    assert cluster.replica(rid).status()["kind_clashes"] == {"k": ["orset", "pncounter"]}


def test_a_new_replica_gets_both_kinds_by_state_transfer(kit: Any) -> None:
    ids = kit.ids(3)
    cluster = kit.cluster(ids, n=4, anti_entropy_interval=1.0, seed=5)
    cluster.partition([["p000"], ["p001", "p002"]])
    cluster.run_for(2.0)
    cluster.update("p000", "k", "orset", kit.add("p000", "milk"))
    cluster.update("p000", "k", "orset", kit.add("p000", "eggs"))
    cluster.update("p001", "k", "pncounter", kit.incr("p001", 5))
    cluster.heal()
    cluster.run_for(5.0)
    for rid in ids:  # compaction needs every home's summary: forget nobody, just settle
        assert _objects(cluster, rid) == WANT
    cluster.run_for(40.0)  # compaction passes: the log entries go, the checkpoints stay
    assert all(cluster.replica(r).status()["log_size"] == 0 for r in ids)
    cluster.add_replica("p003")
    cluster.run_for(10.0)
    assert cluster.protocol_errors == []
    assert cluster.stats.sent["SnapshotChunk"] > 0
    assert _objects(cluster, "p003") == WANT
    assert cluster.converged(["k"])


def _map_set(rid: str, key: str, kind: str, fn: Any) -> Any:
    """The update of the map key ``key`` as ``kind`` by ``rid``: ``fn(embedded)``."""
    return lambda m: m.update(rid, key, kind, fn)


def _put(rid: str, value: Any) -> Any:
    """An LWW register's set by ``rid``."""
    return lambda r: r.set(rid, value)


def _map_alarms(cluster: Any, rid: str) -> list[Any]:
    from sync.effects import Alarm

    return [
        e
        for r, e in cluster.other_effects
        if r == rid and isinstance(e, Alarm) and e.kind == "map_kind_clash"
    ]


def test_a_map_key_written_as_two_kinds_is_reported_and_one_kind_can_be_removed(
    kit: Any,
) -> None:
    """Inside an ORMap, one key written as two kinds across a partition: the map converges
    (its value shows the kind last in alphabetical order), every holder raises one alarm
    naming the map, the key and both kinds, updates of the key are refused on either kind,
    and removing one kind ends it everywhere, keeping the other's value."""
    ids = kit.ids(4)
    cluster = kit.cluster(ids, n=4, anti_entropy_interval=1.0, seed=11)
    cluster.partition([ids[:2], ids[2:]])
    cluster.run_for(2.0)
    cluster.update("p000", "prefs", "ormap", _map_set("p000", "theme", "lww", _put("p000", "dark")))
    cluster.update(
        "p002", "prefs", "ormap", _map_set("p002", "theme", "pncounter", kit.incr("p002", 3))
    )
    cluster.update("p001", "prefs", "ormap", _map_set("p001", "size", "gcounter", kit.incr("p001")))
    cluster.run_for(5.0)
    assert all(_map_alarms(cluster, rid) == [] for rid in ids)  # no clash within a side
    cluster.heal()
    cluster.run_for(10.0)
    assert cluster.protocol_errors == [] and cluster.anomalies == []
    assert cluster.converged(["prefs"])
    for rid in ids:
        state = cluster.value(rid, "prefs", "ormap")
        assert state.value == {"theme": 3, "size": 1}
        assert state.clashes() == {"theme": ("lww", "pncounter")}
        assert state.get("theme", "lww").value == "dark"
        alarms = _map_alarms(cluster, rid)
        assert len(alarms) == 1, alarms  # once, however many messages carried it
        assert alarms[0].peer == "prefs"
        assert "'theme' holds a lww and a pncounter" in alarms[0].message
        assert "remove('theme', kind=...)" in alarms[0].message

    # A restart loads the map and reports its clash again (the alarm's memo is in memory).
    cluster.crash("p002")
    cluster.restart("p002")
    cluster.run_for(2.0)
    assert len(_map_alarms(cluster, "p002")) == 2

    with pytest.raises(TypeError, match="holds a lww and a pncounter"):
        cluster.update(
            "p001", "prefs", "ormap", _map_set("p001", "theme", "lww", _put("p001", "x"))
        )
    cluster.update("p003", "prefs", "ormap", lambda m: m.remove("theme", kind="pncounter"))
    cluster.run_for(10.0)
    assert cluster.converged(["prefs"])
    for rid in ids:
        state = cluster.value(rid, "prefs", "ormap")
        assert state.value == {"theme": "dark", "size": 1} and state.clashes() == {}
        assert len(_map_alarms(cluster, rid)) == (2 if rid == "p002" else 1)
    cluster.update(
        "p001", "prefs", "ormap", _map_set("p001", "theme", "lww", _put("p001", "light"))
    )
    cluster.run_for(5.0)
    assert all(cluster.value(rid, "prefs", "ormap").value["theme"] == "light" for rid in ids)

    # The clash ended: the same two kinds clashing again are reported again.
    cluster.partition([ids[:2], ids[2:]])
    cluster.run_for(2.0)
    cluster.update("p002", "prefs", "ormap", lambda m: m.remove("theme"))
    cluster.update(
        "p002", "prefs", "ormap", _map_set("p002", "theme", "pncounter", kit.incr("p002"))
    )
    cluster.update("p000", "prefs", "ormap", _map_set("p000", "theme", "lww", _put("p000", "dim")))
    cluster.heal()
    cluster.run_for(10.0)
    assert cluster.converged(["prefs"])
    for rid in ids:
        assert cluster.value(rid, "prefs", "ormap").clashes() == {"theme": ("lww", "pncounter")}
        assert len(_map_alarms(cluster, rid)) == (3 if rid == "p002" else 2)


def test_a_map_kind_clash_that_arrives_by_state_transfer_is_reported(kit: Any) -> None:
    """A new replica that gets a map already holding a clash, by state transfer (a whole
    state joined, not deltas), reports it too."""
    ids = kit.ids(3)
    cluster = kit.cluster(ids, n=4, anti_entropy_interval=1.0, seed=12)
    cluster.partition([["p000"], ["p001", "p002"]])
    cluster.run_for(2.0)
    cluster.update("p000", "prefs", "ormap", _map_set("p000", "theme", "lww", _put("p000", "dark")))
    cluster.update(
        "p001", "prefs", "ormap", _map_set("p001", "theme", "orset", kit.add("p001", "x"))
    )
    cluster.heal()
    cluster.run_for(45.0)  # converged, then compaction passes: the log entries go
    assert cluster.converged(["prefs"])
    assert all(cluster.replica(r).status()["log_size"] == 0 for r in ids)
    cluster.add_replica("p003")
    cluster.run_for(10.0)
    assert cluster.protocol_errors == []
    assert cluster.stats.sent["SnapshotChunk"] > 0
    state = cluster.value("p003", "prefs", "ormap")
    assert state.clashes() == {"theme": ("lww", "orset")}
    assert len(_map_alarms(cluster, "p003")) == 1


def test_a_map_clash_ended_by_a_local_remove_is_reported_when_it_comes_back(kit: Any) -> None:
    """A replica ends a clash in a map by removing one kind itself, and the very next thing
    it receives brings the same clash back (a write made concurrently with its remove): it
    reports the clash again, and keeps nothing of an ended clash in its memory."""
    ids = kit.ids(2)
    cluster = kit.cluster(ids, n=2, anti_entropy_interval=1.0, seed=13)
    cluster.partition([["p000"], ["p001"]])
    cluster.run_for(1.0)
    cluster.update("p000", "prefs", "ormap", _map_set("p000", "theme", "lww", _put("p000", "a")))
    cluster.update(
        "p001", "prefs", "ormap", _map_set("p001", "theme", "gcounter", kit.incr("p001"))
    )
    cluster.heal()
    cluster.run_for(5.0)
    assert [len(_map_alarms(cluster, rid)) for rid in ids] == [1, 1]
    cluster.partition([["p000"], ["p001"]])
    cluster.run_for(1.0)
    # Each side keeps its own kind, concurrently: the clash ends on each, then comes back.
    cluster.update("p000", "prefs", "ormap", lambda m: m.remove("theme", kind="gcounter"))
    cluster.update("p000", "prefs", "ormap", _map_set("p000", "theme", "lww", _put("p000", "b")))
    cluster.update("p001", "prefs", "ormap", lambda m: m.remove("theme", kind="lww"))
    cluster.update(
        "p001", "prefs", "ormap", _map_set("p001", "theme", "gcounter", kit.incr("p001"))
    )
    assert cluster.value("p000", "prefs", "ormap").clashes() == {}
    assert cluster.replica("p000")._data._map_clashes.by_key == {}  # forgotten at once
    cluster.heal()
    cluster.run_for(5.0)
    assert cluster.value("p000", "prefs", "ormap").clashes() == {"theme": ("gcounter", "lww")}
    assert [len(_map_alarms(cluster, rid)) for rid in ids] == [2, 2]
