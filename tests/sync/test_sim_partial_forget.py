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
        cluster.update("p002", k, "gcounter", lambda g: g.increment("p002", 1), w=2) for k in keys
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


def test_while_the_rings_differ_idle_rounds_back_off_and_an_alarm_names_the_lister() -> None:
    """Their digests keep differing (each covers partitions the other's does not): each
    such pair compares partition summaries once, finds them equal, and from then on the
    same digests start nothing more than the part digests, and do not speed the rounds up:
    the idle cost stays within a few times that of a group that agrees (it was 1,268
    messages in 120 s, about 200 times, with every round at ``anti_entropy_interval``)."""
    from sync.effects import Alarm

    cluster, _ = _cluster()
    cluster.run_for(300, max_steps=5_000_000)
    cluster.reset_stats()
    cluster.run_for(120, max_steps=5_000_000)
    sent = dict(cluster.stats.sent)
    # Three replicas up, rounds backed off to anti_entropy_idle_interval (60 s): a digest
    # per peer a round, answered by part digests (and a list of the members) at most.
    assert sum(sent.values()) <= 30, sent
    assert sent.get("Summary", 0) <= 8, sent

    alarms = [(rid, fx) for rid, fx in cluster.other_effects if isinstance(fx, Alarm)]
    listed = [(rid, a.peer) for rid, a in alarms if a.kind == "forgotten_listed"]
    # One per forgotten member (every ALARM_REPEAT), on the replica that forgot it, naming
    # a peer that lists it.
    assert len(listed) == 1 and listed[0][0] == "p000" and listed[0][1] in {"p002", "p003"}
    message = next(a.message for _, a in alarms if a.kind == "forgotten_listed")
    assert "p001" in message and "shoal forget" in message


def test_once_every_replica_forgot_it_the_rounds_are_one_digest() -> None:
    cluster, keys = _cluster()
    cluster.run_for(60, max_steps=2_000_000)
    for rid in ("p002", "p003"):
        cluster.forget(rid, "p001")
    cluster.run_for(300, max_steps=5_000_000)
    cluster.reset_stats()
    cluster.run_for(120, max_steps=5_000_000)
    assert set(cluster.stats.sent) == {"Digest"}, dict(cluster.stats.sent)
    for k in keys:
        assert cluster.values(k, ["p000", "p002", "p003"]) == dict.fromkeys(
            ["p000", "p002", "p003"], 1
        )
