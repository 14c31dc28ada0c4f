"""Signed replicas under crashes and partitions, in the simulator.

A replica that signs seals its own entries in place when it first sends them, which may be
in a later drain than the one whose ``Persist`` stored them (a write waiting for a peer holds
its entry, and pushes it when the peer comes up). A store has committed the entry by then,
so after a crash the replica reloads it unsealed and seals it again, under a new seal, when
it next sends it; its peers must take such entries as they take any other.

* A replica writes while its peer is down (its entries are stored unsealed), then crashes
  right before the first push that carries them, sealed in memory by then: its disk still
  holds them unsealed; after the restart the peer verifies every one and the values agree.
* A seeded fuzz of four signed replicas (n=2, w=1): random increments, crashes (also between
  the effects of one drain, at a ``Persist`` or a ``Send``), restarts, partitions and heals,
  then everyone up and healed. No replica ever refuses a peer's input
  (``RemoteProtocolError``), the homes of each key agree, and each holds every increment not
  lost with its coordinator, and none that was not made. In three shapes: all plain homes,
  one of them a relay, and one replica not a home.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import pytest

from sync.config import ReplicaConfig
from sync.effects import Loaded, LogEntry, Persist, Send
from sync.replica import Replica
from sync.ring import Ring
from sync.signing import Signer, Verifier
from sync.simnet import SimCluster, SimOp, SimReplica

__all__: list[str] = []

SIGNERS = {s.replica_id: s for s in (Signer(bytes([0x40 + i]) * 32) for i in range(4))}
IDS = sorted(SIGNERS)
BASE = ReplicaConfig(n=2, w=1, partitions=4, vnodes=4, anti_entropy_interval=1.0, write_timeout=1.0)
SEEDS = 50  # per shape: about 2.5 s each
STEPS = 80  # write and fault steps per seed

Shape = Literal["plain", "relay", "non-home"]


def _signed(config: ReplicaConfig, rid: str, loaded: Loaded | None, now: float) -> SimReplica:
    """The cluster's factory: each replica signs with its own key (its id derives from it)."""
    return Replica(config, rid, loaded, now=now, signer=SIGNERS[rid])


def _cluster(configs: dict[str, ReplicaConfig], seed: int) -> SimCluster:
    # Refusals are recorded, not raised: a test asserts there are none, after the run.
    return SimCluster(
        list(configs),
        configs,
        seed=seed,
        factory=_signed,
        known_peers=True,
        raise_protocol_errors=False,
    )


def _incr(rid: str) -> Callable[[Any], Any]:
    return lambda c: c.increment(rid, 1)


def _own_unsealed(cluster: SimCluster, rid: str) -> list[LogEntry]:
    """The entries ``rid`` originated that its disk holds without a seal."""
    return [e for e in cluster.disk(rid).log.values() if e.origin == rid and e.seal is None]


def _carries_own(rid: str) -> Callable[[Any], bool]:
    """Whether an effect is a send carrying an entry ``rid`` originated."""

    def pred(effect: Any) -> bool:
        entries = getattr(effect.message, "entries", ()) if isinstance(effect, Send) else ()
        return any(e.origin == rid for e in entries)

    return pred


def _settle(cluster: SimCluster, holders: Callable[[str], Any] | None = None) -> bool:
    """Run to quiescence until the replicas (``holders`` of each key) agree, an
    anti-entropy period at a time; whether they do (within 40 periods)."""
    for _ in range(40):
        if cluster.run_until_quiet(200_000) and cluster.converged(holders=holders):
            return True
        cluster.run_for(1.0)
    return False


def test_entries_stored_unsealed_are_sealed_again_after_a_crash_and_verify() -> None:
    a, b = IDS[:2]
    cluster = _cluster(dict.fromkeys([a, b], replace(BASE, write_timeout=30.0)), seed=1)
    cluster.crash(b)
    assert cluster.run_until(lambda: not cluster.believes_up(a, b), max_steps=1_000)
    # a is offline, dialling b: its writes (w=2) wait for b, each holding its entry, the
    # very object its Persist stored.
    cluster.links_connecting(a, 1)
    writes = [cluster.update(a, f"k{i % 3}", "gcounter", _incr(a), w=2) for i in range(6)]
    assert not any(op.done for op in writes)
    assert len(_own_unsealed(cluster, a)) == len(writes), "no peer up: nothing sealed yet"
    # b returns: the drain that pushes it the waiting writes seals those objects in place
    # before running any of its effects; a crashes right before that push leaves.
    cluster.crash_when(a, _carries_own(a), before=True)
    cluster.restart(b)
    assert cluster.run_until(lambda: not cluster.alive(a), max_steps=10_000)
    assert cluster.stats.sent["Push"] + cluster.stats.sent["Deltas"] == 0
    assert all(op.status == "lost" for op in writes)
    stored = _own_unsealed(cluster, a)
    assert len(stored) == len(writes), "the disk holds a seal made after its entry's commit"
    # What b logs from now on (its log may be compacted once both hold a's writes).
    logged: list[LogEntry] = []
    disk_b = cluster.disk(b)
    apply = disk_b.apply

    def recording(persist: Persist) -> None:
        logged.extend(persist.log)
        apply(persist)

    disk_b.apply = recording  # type: ignore[method-assign]
    cluster.restart(a)
    assert _settle(cluster), cluster.divergent()
    assert cluster.protocol_errors == []
    assert all(cluster.values(f"k{i}") == {a: 2, b: 2} for i in range(3))
    # b took each entry of a's as an entry, under a valid seal (one made after the restart:
    # the one made before it never left a).
    received = [e for e in logged if e.origin == a]
    assert sorted(e.seq for e in received) == sorted(e.seq for e in stored)
    assert all(Verifier().covers(e.seal, e) is None for e in received)


def _configs(shape: Shape, special: str) -> dict[str, ReplicaConfig]:
    """Every replica's config: ``special`` is the relay or the non-home of the shape."""
    configs = dict.fromkeys(IDS, BASE)
    if shape == "relay":
        configs[special] = replace(BASE, relay=True)
    elif shape == "non-home":
        configs[special] = replace(BASE, home=False)
    return configs


def _fuzz(seed: int, shape: Shape) -> int:
    """One seeded run, its outcome asserted; returns the restarts that found own entries
    stored unsealed (how often the run reloaded entries to seal again)."""
    rng = random.Random(seed)
    configs = _configs(shape, IDS[seed % len(IDS)])
    cluster = _cluster(configs, seed)
    traps: list[Callable[[Any], bool]] = [
        lambda e: isinstance(e, Persist),
        lambda e: isinstance(e, Send),
    ]
    ops: list[SimOp] = []
    reloads = 0

    def restart(rid: str) -> None:
        nonlocal reloads
        reloads += bool(_own_unsealed(cluster, rid))
        cluster.restart(rid)

    for _ in range(STEPS):
        alive = [r for r in IDS if cluster.alive(r)]
        down = [r for r in IDS if not cluster.alive(r)]
        roll = rng.random()
        if roll < 0.55 and alive:
            who, key = rng.choice(alive), f"k{rng.randrange(6)}"
            # Some writes wait for a second ack: such a write holds its entry and pushes it
            # when a peer comes up, in a later drain than the one that stored it.
            ops.append(cluster.update(who, key, "gcounter", _incr(who), w=rng.choice((1, 1, 2))))
        elif roll < 0.65 and alive:
            cluster.crash(rng.choice(alive))
        elif roll < 0.70 and alive:
            cluster.crash_when(rng.choice(alive), rng.choice(traps), before=rng.random() < 0.5)
        elif roll < 0.80 and down:
            restart(rng.choice(down))
        elif roll < 0.85:
            order = rng.sample(IDS, len(IDS))
            cut = rng.randrange(1, len(IDS))
            cluster.partition([order[:cut], order[cut:]])
        elif roll < 0.90:
            cluster.heal()
        cluster.run_for(rng.uniform(0.05, 2.0))
    cluster.heal()
    for rid in IDS:
        cluster.disarm(rid)
        if not cluster.alive(rid):
            restart(rid)
    ring = Ring([r for r in IDS if configs[r].home], n=2, partitions=4, vnodes=4)
    settled = _settle(cluster, ring.homes_of)

    where = f"seed {seed}, {shape}"
    assert cluster.protocol_errors == [], f"{where}: {cluster.protocol_errors[:3]}"
    assert settled, f"{where}: homes disagree: {cluster.divergent(holders=ring.homes_of)}"
    made = Counter(op.key for op in ops)
    # Not lost: answered, so durable at its coordinator (whether acknowledged or failed).
    kept = Counter(op.key for op in ops if op.status != "lost")
    for key in sorted(made):
        values = cluster.values(key)
        for rid in ring.homes_of(key):
            assert (values[rid] or 0) >= kept[key], f"{where}: {rid} lacks writes of {key}"
        assert all((v or 0) <= made[key] for v in values.values()), f"{where}: {values}"
    assert cluster.anomalies == [], f"{where}: {cluster.anomalies[:3]}"
    return reloads


@pytest.mark.parametrize("shape", ["plain", "relay", "non-home"])
def test_signed_replicas_under_random_crashes_and_partitions(shape: Shape) -> None:
    reloads = sum(_fuzz(seed, shape) for seed in range(SEEDS))
    assert reloads > 0, "no replica ever restarted with own entries stored unsealed"
