"""Issue 11 in the simulator: objects on demand, memory bounded by ``cache_bytes``.

Every replica holds at most its budget of objects in memory (checked after every step);
every write, read, merge, crash and state transfer still gives the right values, loading
evicted objects from the simulated disk before the inputs that need them.
"""

from __future__ import annotations

from typing import Any

from sync.replica.local_data import OBJECT_OVERHEAD

BUDGET = 40 * OBJECT_OVERHEAD  # a few dozen small objects
KEYS = [f"k{i:03d}" for i in range(240)]


def _resident(cluster: Any, rid: str) -> int:
    status = cluster.replica(rid).status()
    assert status["cache_bytes"] <= BUDGET * 2, "the cache grew past its budget"
    return int(status["objects"])


def test_a_small_cache_keeps_every_value_through_writes_merges_and_a_crash(kit: Any) -> None:
    ids = kit.ids(3)
    cluster = kit.cluster(
        ids, n=3, anti_entropy_interval=1.0, checkpoint_every=50, cache_bytes=BUDGET, seed=7
    )
    peak = 0
    for i, key in enumerate(KEYS):
        cluster.update(ids[i % 3], key, "gcounter", kit.incr(ids[i % 3], i + 1))
        if i % 20 == 0:
            cluster.run_for(0.5)
            peak = max(peak, *(_resident(cluster, r) for r in ids))
    assert cluster.run_until_quiet(200_000)
    # Concurrent writes to the same keys on both sides of a partition, then a merge.
    cluster.partition([ids[:1], ids[1:]])
    cluster.run_for(2.0)
    for key in KEYS[:60]:
        cluster.update("p000", key, "gcounter", kit.incr("p000", 1000))
        cluster.update("p002", key, "gcounter", kit.incr("p002", 10_000))
    cluster.heal()
    cluster.run_for(10.0)
    assert cluster.protocol_errors == [] and cluster.anomalies == []
    assert cluster.stats.loads > 0, "nothing was ever loaded: the cache was not exercised"
    peak = max(peak, *(_resident(cluster, r) for r in ids))
    assert peak < 80 < len(KEYS), f"{peak} objects resident"

    def expected(i: int) -> int:
        return i + 1 + (11_000 if i < 60 else 0)

    assert cluster.converged(KEYS)
    for rid in ids:
        for i in range(0, len(KEYS), 7):  # a local read of an evicted key loads it
            read = cluster.read(rid, KEYS[i], kind="gcounter")
            assert read.ok and read.state is not None and read.state.value == expected(i)
        assert _resident(cluster, rid) < 80

    # A crash with objects changed since their checkpoint in memory: nothing acknowledged
    # is lost (the log is folded into the objects at restart, then loaded on demand).
    for key in KEYS[-30:]:
        cluster.update("p001", key, "gcounter", kit.incr("p001", 5))
    cluster.crash("p001")
    cluster.restart("p001")
    assert cluster.replica("p001").status()["objects"] == 0, "the restart loaded everything"
    for i in range(len(KEYS) - 30, len(KEYS)):
        read = cluster.read("p001", KEYS[i], kind="gcounter")
        assert read.ok and read.state is not None and read.state.value == expected(i) + 5
    assert cluster.run_until_quiet(200_000)
    cluster.run_for(10.0)
    assert cluster.converged(KEYS)


def test_a_new_replica_gets_every_object_by_state_transfer_under_a_small_cache(kit: Any) -> None:
    ids = kit.ids(2)
    cluster = kit.cluster(ids, n=3, anti_entropy_interval=1.0, cache_bytes=BUDGET, seed=3)
    for i, key in enumerate(KEYS):
        cluster.update(ids[i % 2], key, "orset", kit.add(ids[i % 2], i))
    cluster.run_for(60.0)  # replicated, then compacted: only a state transfer carries it now
    assert all(cluster.replica(r).status()["log_size"] == 0 for r in ids)
    cluster.add_replica("p002")
    cluster.run_for(30.0)
    assert cluster.protocol_errors == [] and cluster.anomalies == []
    assert cluster.stats.sent["SnapshotChunk"] > 0
    assert _resident(cluster, "p002") < 80
    assert cluster.converged(KEYS)
    for i in range(0, len(KEYS), 11):
        assert cluster.value("p002", KEYS[i], "orset").value == frozenset({i})  # type: ignore[union-attr]


def test_a_new_replica_under_a_small_cache_loads_nothing_for_its_state_transfer(kit: Any) -> None:
    """A new replica's cache evicts the keys a state transfer brings as it goes; a key of a
    later chunk is new all the same (it lies past the keys evicted of its partition), so the
    replica asks its disk for nothing: it used to load every later chunk's keys, one load
    per chunk, to find none of them. (One sender: the transfers of two senders overlap,
    and the second one's keys are rightly loaded, the first one's being on the disk.)"""
    ids = kit.ids(1)
    cluster = kit.cluster(
        ids, n=3, anti_entropy_interval=1.0, cache_bytes=BUDGET, snapshot_chunk=8, seed=3
    )
    for i, key in enumerate(KEYS):
        cluster.update(ids[0], key, "orset", kit.add(ids[0], i))
    cluster.run_for(60.0)  # compacted: only a state transfer carries it now
    assert cluster.replica(ids[0]).status()["log_size"] == 0
    loads = cluster.stats.loads
    cluster.add_replica("p001")
    cluster.run_for(30.0)
    assert cluster.protocol_errors == [] and cluster.anomalies == []
    assert cluster.stats.sent["SnapshotChunk"] > len(KEYS) // 8
    assert cluster.converged(KEYS)
    assert cluster.stats.loads == loads
    assert _resident(cluster, "p001") < 80
    for i in range(0, len(KEYS), 11):  # (read from its disk: evicted, then loaded)
        assert cluster.value("p001", KEYS[i], "orset").value == frozenset({i})  # type: ignore[union-attr]
