"""A member forgotten on some replicas only (the operator forgets it on one peer, then the
next, or never on the others).

Forgetting is an operator's action on one replica (``Replica.forget``). Until every replica
forgot the member, their rings differ: the one that forgot it has become a home of
partitions whose homes, by the others' rings, are still the forgotten member and the rest.
It asks them for those partitions (its summaries are not offers), and they send it what it
lacks, though it is no home of them by their rings: else a strict read at r=1 there, which
answers from what it holds, missed writes acknowledged by every other home for good.
"""

from __future__ import annotations

from sync.config import ReplicaConfig
from sync.ring import Ring
from sync.simnet import SimCluster

IDS = ["p000", "p001", "p002", "p003"]
CFG = ReplicaConfig(n=3, anti_entropy_interval=1.0, partitions=8, vnodes=4)


def _cluster() -> tuple[SimCluster, list[str]]:
    """Four replicas, forty counters written at p002 (w=2), p001 crashed and forgotten by
    p000 only."""
    cluster = SimCluster(IDS, CFG, seed=1, detect_delay=0.5)
    keys = [f"k{i}" for i in range(40)]
    ops = [
        cluster.update("p002", k, "gcounter", lambda g: g.increment("p002", 1), w=2)
        for k in keys
    ]
    assert cluster.run_until(lambda: all(op.done for op in ops), 100_000)
    assert all(op.ok for op in ops)
    cluster.run_for(10)
    cluster.crash("p001")
    cluster.forget("p000", "p001")
    return cluster, keys


def test_a_replica_that_forgot_a_member_alone_gets_the_partitions_it_now_homes() -> None:
    cluster, keys = _cluster()
    full = Ring(IDS, n=3, partitions=CFG.partitions, vnodes=CFG.vnodes)
    new_homes = [k for k in keys if "p000" not in full.homes_of(k)]
    assert new_homes  # (the case: keys p000 homes only by its own ring)
    cluster.run_for(60, max_steps=2_000_000)
    missed = []
    for k in keys:
        op = cluster.read("p000", k, kind="gcounter", r=1, strict=True)
        assert cluster.run_until(lambda op=op: op.done, 10_000)
        assert op.ok
        if op.state is None or op.state.value != 1:
            missed.append(k)
    assert missed == [], f"{len(missed)} of {len(keys)} acknowledged writes not read at p000"
