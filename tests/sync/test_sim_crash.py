"""Persist before acknowledge, tested by crashing replicas between their effects.

* The coordinator crashes right after persisting a write, before any send or ``WriteDone``:
  the caller never hears back, but the write survives the restart and replicates.
* A replica crashes after persisting a pushed delta but before sending its ``Ack``: it still
  holds the delta after the restart.
* Many writes with crashes armed at random effects of random replicas (anti-entropy off, so
  nothing can paper over a loss): for every acknowledged write, the coordinator and every
  replica that acknowledged it (not as a hint) hold it after restarting.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from sync.effects import IdentityConflict, Persist, Send, WriteDone
from sync.simnet import SimOp

__all__: list[str] = []


def _is(kind: str) -> Any:
    return lambda e: isinstance(e, Send) and type(e.message).__name__ == kind


def test_coordinator_crash_between_persist_and_send_keeps_the_write(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, w=2, anti_entropy_interval=2.0)
    cluster.crash_when("p000", lambda e: isinstance(e, Persist))
    op = cluster.update("p000", "k", "gcounter", kit.incr("p000", 7))
    assert op.status == "lost" and not cluster.alive("p000")
    assert cluster.stats.sent["Push"] == 0, "a send ran after the crash point"
    cluster.restart("p000")
    assert cluster.values("k", ["p000"]) == {"p000": 7}, "the persisted write was lost"
    kit.settle(cluster)
    assert cluster.values("k") == dict.fromkeys(cluster.ids, 7)


@pytest.mark.parametrize("effect", ["Push", "WriteDone"])
def test_crash_right_before_the_first_send_or_ack_keeps_the_write(kit: Any, effect: str) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, w=1, anti_entropy_interval=2.0)
    predicate = _is(effect) if effect == "Push" else (lambda e: isinstance(e, WriteDone))
    cluster.crash_when("p000", predicate, before=True)
    op = cluster.update("p000", "k", "orset", kit.add("p000", "x"))
    assert not cluster.alive("p000"), "the crash point was never reached"
    # The engine may acknowledge a w=1 write before its first Push (the local ack suffices);
    # either way the write was persisted before anything depending on it ran.
    if effect == "WriteDone":
        assert op.status == "lost"
    assert cluster.stats.sent["Push"] == 0
    cluster.restart("p000")
    assert cluster.values("k", ["p000"]) == {"p000": frozenset({"x"})}
    kit.settle(cluster)
    assert cluster.values("k") == dict.fromkeys(cluster.ids, frozenset({"x"}))


def test_replica_crash_between_persist_and_ack_keeps_the_delta(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, w=2, anti_entropy_interval=0, write_timeout=2.0)
    cluster.crash_when("p001", _is("Ack"), before=True)
    op = cluster.update("p000", "k", "gcounter", kit.incr("p000", 5))
    assert cluster.run_until(lambda: op.done, max_steps=10_000)
    assert op.ok and op.result is not None and "p001" not in op.result.acked_by
    assert not cluster.alive("p001")
    cluster.restart("p001")
    assert cluster.values("k", ["p001"]) == {"p001": 5}, "p001 lost a delta it had persisted"


def _holds(cluster: Any, rid: str, op: SimOp) -> bool:
    state = cluster.value(rid, op.key)
    return state is not None and state.value >= 1


@pytest.mark.parametrize("seed", range(4))
def test_no_acknowledged_write_is_lost_across_random_crashes(kit: Any, seed: int) -> None:
    rng = random.Random(seed)
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=0, write_timeout=1.0, seed=seed)
    effect_kinds = [
        lambda e: isinstance(e, Persist),
        _is("Push"),
        _is("Ack"),
        lambda e: isinstance(e, WriteDone),
        lambda e: isinstance(e, Send),
    ]
    ops: list[SimOp] = []
    for i in range(60):
        for rid in cluster.ids:
            if not cluster.alive(rid) and rng.random() < 0.5:
                cluster.restart(rid)
        if rng.random() < 0.3:
            victim = rng.choice([r for r in cluster.ids if cluster.alive(r)])
            cluster.crash_when(victim, rng.choice(effect_kinds), before=rng.random() < 0.5)
        alive = [r for r in cluster.ids if cluster.alive(r)]
        if alive:
            coord = rng.choice(alive)
            # One key per write, so "holds it" is simply "has a value >= 1".
            ops.append(
                cluster.update(coord, f"w{i}", "gcounter", kit.incr(coord), w=rng.randint(1, 3))
            )
        cluster.run_for(rng.uniform(0.0, 1.5))
    for rid in cluster.ids:
        if not cluster.alive(rid):
            cluster.restart(rid)
    assert cluster.run_until_quiet(100_000)

    acked = [op for op in ops if op.ok]
    assert acked, "the scenario acknowledged nothing: it tests nothing"
    lost = []
    for op in acked:
        assert op.result is not None
        hinted = set(op.result.hinted)
        for rid in sorted({op.replica, *op.result.acked_by} - hinted):
            if not _holds(cluster, rid, op):
                lost.append(f"{op.key} acked by {rid} ({op.result}) is gone")
    assert not lost, "\n".join(lost)
    assert cluster.anomalies == []


def test_a_replica_restored_from_a_backup_is_told_of_its_identity_conflict(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, w=3, anti_entropy_interval=1.0)
    first = cluster.update("p000", "k", "gcounter", kit.incr("p000"))
    assert cluster.run_until(lambda: first.done, max_steps=10_000) and first.ok
    backup = cluster.disk("p000").copy()
    later = [cluster.update("p000", "k", "gcounter", kit.incr("p000")) for _ in range(5)]
    assert cluster.run_until(lambda: all(op.done for op in later), max_steps=10_000)
    assert all(op.ok for op in later)
    cluster.crash("p000")
    cluster.restart("p000", disk=backup)
    assert cluster.values("k", ["p000"]) == {"p000": 1}  # the restored state
    assert cluster.run_until(
        lambda: any(isinstance(e, IdentityConflict) for _, e in cluster.other_effects),
        max_steps=50_000,
    ), "the restored replica was never told that others saw dots it does not have"
    rid, conflict = cluster.other_effects[0]
    assert rid == "p000" and isinstance(conflict, IdentityConflict)
    assert conflict.seen_seq > conflict.our_seq
    kit.settle(cluster)
    assert cluster.values("k") == dict.fromkeys(cluster.ids, 6), "acknowledged writes lost"
