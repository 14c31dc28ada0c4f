"""Every fault at once, on every kind of object, under a small cache, in the simulator.

The other simulation tests each stress a few things; this one combines them in one seeded
run of four replicas (n=3, so writes also go through a non-home coordinator and hints):

* a cache of a few objects (evicted, then loaded on demand; restarts load nothing whole);
* checkpoints every few entries, compaction, and a short ``home_down_window``, so that a
  replica down a while catches up by state transfer, in chunks of a few objects;
* objects bigger than one message (an OR-set of long elements, an OR-map of long
  multi-value registers), which a state transfer carries in pieces;
* crashes, also between two effects of one drain (a ``Persist``, a ``Send``, a
  ``SnapshotChunk`` or an ``Ack``, a ``WriteDone``), and restarts;
* partitions and heals, dropped, duplicated and reordered messages;
* each replica's clock offset from the others (its engine's ``now``, with ``wall_offset``
  saying how it maps to the wall clock), and LWW timestamps up to 12 s ahead (over the
  5 s ``max_clock_skew``: set aside, then applied once the clocks catch up);
* counters (grow-only and PN), OR-sets with removes and deletes, LWW and multi-value
  registers, an OR-map of counters and registers with field removes; signed replicas too.

Then every replica is restarted, the network healed, and the homes of each key must agree
(equal canonical states); no acknowledged write is lost and nothing is invented; every
replica reloads from its disk the very state it held; and once converged, a quiet cluster
sends nothing but digests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from sync.config import MIN_MESSAGE_BYTES, ReplicaConfig
from sync.effects import Loaded, Persist, Send, WriteDone
from sync.replica import Replica
from sync.replica.local_data import OBJECT_OVERHEAD
from sync.ring import Ring
from sync.signing import Signer
from sync.simnet import SimCluster, SimOp
from sync.simnet.states import canonical_held

__all__: list[str] = []

SIGNERS = {s.replica_id: s for s in (Signer(bytes([0x60 + i]) * 32) for i in range(4))}
STEPS = 200
IDLE = {"Digest", "PartDigests", "Summary"}  # what a converged, quiet cluster may send

TRAPS: list[Callable[[Any], bool]] = [
    lambda e: isinstance(e, Persist),
    lambda e: isinstance(e, Send),
    lambda e: isinstance(e, Send) and type(e.message).__name__ in ("Ack", "SnapshotChunk"),
    lambda e: isinstance(e, WriteDone),
]


class Skewed:
    """A replica whose own clock reads ``offset`` seconds more than the simulator's: every
    ``now`` it is handed is shifted, and so is the deadline it asks for. Its ``wall_offset``
    maps its clock back to the wall clock, which every replica shares."""

    def __init__(self, inner: Replica, offset: float) -> None:
        self._r = inner
        self._off = offset
        inner.wall_offset = -offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._r, name)

    def local_update(self, op_id: int, key: str, kind: str, fn: Any, now: float, **kw: Any) -> Any:
        return self._r.local_update(op_id, key, kind, fn, now + self._off, **kw)

    def local_read(self, op_id: int, key: str, now: float, **kw: Any) -> Any:
        return self._r.local_read(op_id, key, now + self._off, **kw)

    def receive(self, peer: str, message: Any, now: float) -> Any:
        return self._r.receive(peer, message, now + self._off)

    def peer_up(self, peer: str, now: float, **kw: Any) -> Any:
        return self._r.peer_up(peer, now + self._off, **kw)

    def peer_down(self, peer: str, now: float) -> Any:
        return self._r.peer_down(peer, now + self._off)

    def tick(self, now: float) -> Any:
        return self._r.tick(now + self._off)

    def snapshot_page(self, read: Any, rows: Any, end: bool, now: float, **kw: Any) -> Any:
        return self._r.snapshot_page(read, rows, end, now + self._off, **kw)

    def next_deadline(self) -> float | None:
        deadline = self._r.next_deadline()
        return None if deadline is None else deadline - self._off


@dataclass
class Model:
    """What was written, and how each write ended (its handle)."""

    counts: dict[str, list[tuple[int, SimOp]]] = field(default_factory=dict)  # key -> +/- n
    adds: dict[str, dict[str, SimOp]] = field(default_factory=dict)  # key -> element -> add
    removes: dict[str, dict[str, list[SimOp]]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)  # keys deleted (cleared) at least once
    stamps: list[tuple[int, SimOp]] = field(default_factory=list)  # LWW "l": wall ms
    registers: set[str] = field(default_factory=set)  # every value set in the MV register


def _cluster(seed: int, signed: bool, rng: random.Random) -> tuple[SimCluster, list[str]]:
    ids = sorted(SIGNERS) if signed else [f"p{i:03d}" for i in range(4)]
    config = ReplicaConfig(
        n=3,
        partitions=8,
        vnodes=4,
        anti_entropy_interval=1.0,
        write_timeout=1.0,
        read_timeout=1.0,
        checkpoint_every=rng.choice([2, 4, 16]),
        cache_bytes=rng.choice([8, 16, 40]) * OBJECT_OVERHEAD,
        max_message_bytes=MIN_MESSAGE_BYTES,
        ae_batch=rng.choice([3, 8, 50]),
        snapshot_chunk=rng.choice([2, 5, 50]),
        max_clock_skew=5.0,
        home_down_window=rng.choice([20.0, 1e6]),
    )
    offsets = {rid: rng.choice([0.0, 7.0, 1000.0, 3 * 86_400.0]) for rid in ids}

    def factory(cfg: ReplicaConfig, rid: str, loaded: Loaded | None, now: float) -> Any:
        signer = SIGNERS[rid] if signed else None
        replica = Replica(cfg, rid, loaded, now=now + offsets[rid], signer=signer)
        return Skewed(replica, offsets[rid])

    cluster = SimCluster(
        ids, config, seed=seed, factory=factory, detect_delay=0.5, raise_protocol_errors=False
    )
    return cluster, ids


def _write(cluster: SimCluster, model: Model, rng: random.Random, who: str, n: int) -> None:
    """One random write of ``who``; ``n`` makes its elements and values unique."""
    w = rng.choice([1, 1, 2, 3])
    ahead = {"p000": 12.0, sorted(SIGNERS)[0]: 12.0}.get(who, rng.choice([0.0, -3.0]))
    wall_ms = int((cluster.now + ahead) * 1000) + 1
    what = rng.randrange(10)
    if what == 0:
        key, amount = f"g{rng.randrange(3)}", rng.randint(1, 5)
        op = cluster.update(who, key, "gcounter", lambda c: c.increment(who, amount), w=w)
        model.counts.setdefault(key, []).append((amount, op))
    elif what == 1:
        amount = rng.choice([-3, -1, 2, 5])

        def count(c: Any) -> Any:
            return c.increment(who, amount) if amount > 0 else c.decrement(who, -amount)

        model.counts.setdefault("pn", []).append(
            (amount, cluster.update(who, "pn", "pncounter", count, w=w))
        )
    elif what in (2, 3, 4):
        key = rng.choice(["s", "big", "big"])
        element = f"e{n}" + ("x" * rng.randint(2000, 6000) if key == "big" else "")
        op = cluster.update(who, key, "orset", lambda s: s.add(who, element), w=w)
        model.adds.setdefault(key, {})[element] = op
    elif what == 5:
        key = rng.choice(["s", "big", "gone"])
        if key == "gone":
            element = f"e{n}"
            op = cluster.update(who, key, "orset", lambda s: s.add(who, element), w=w)
            model.adds.setdefault(key, {})[element] = op
            if rng.random() < 0.3:
                cluster.update(who, key, "orset", lambda s: s.clear(), w=w)
                model.deleted.add(key)
            return
        state = cluster.value(who, key, "orset")
        if state is not None and state.value:
            element = rng.choice(sorted(state.value))
            op = cluster.update(who, key, "orset", lambda s: s.remove(element), w=w)
            model.removes.setdefault(key, {}).setdefault(element, []).append(op)
    elif what == 6:
        op = cluster.update(who, "l", "lww", lambda r: r.set(who, f"v{n}", now_ms=wall_ms), w=w)
        model.stamps.append((wall_ms, op))
    elif what == 7:
        if rng.random() < 0.15:
            cluster.update(who, "mv", "mvregister", lambda r: r.clear(), w=w)
        else:
            cluster.update(who, "mv", "mvregister", lambda r: r.set(who, f"v{n}"), w=w)
            model.registers.add(f"v{n}")
    elif what == 8:
        amount = rng.randint(1, 3)

        def bump(m: Any) -> Any:
            return m.update(who, "count", "pncounter", lambda c: c.increment(who, amount))

        model.counts.setdefault("m.count", []).append(
            (amount, cluster.update(who, "m", "ormap", bump, w=w))
        )
    else:
        state = cluster.value(who, "m", "ormap")
        fields = sorted(k for k in (state.keys() if state is not None else ()) if k != "count")
        if fields and rng.random() < 0.3:
            gone = rng.choice(fields)
            cluster.update(who, "m", "ormap", lambda m: m.remove(gone), w=w)
        else:
            name, text = f"f{n}", "y" * rng.randint(1000, 7000)

            def put(m: Any) -> Any:
                return m.update(who, name, "mvregister", lambda r: r.set(who, text))

            cluster.update(who, "m", "ormap", put, w=w)


def _faults(cluster: SimCluster, ids: list[str], rng: random.Random, roll: float) -> None:
    alive = [r for r in ids if cluster.alive(r)]
    down = [r for r in ids if not cluster.alive(r)]
    if roll < 0.66 and alive:
        cluster.crash(rng.choice(alive))
    elif roll < 0.70 and alive:
        cluster.crash_when(rng.choice(alive), rng.choice(TRAPS), before=rng.random() < 0.5)
    elif roll < 0.78 and down:
        cluster.restart(rng.choice(down))
    elif roll < 0.83:
        order = rng.sample(ids, len(ids))
        cut = rng.randrange(1, len(ids))
        cluster.partition([order[:cut], order[cut:]])
    elif roll < 0.87:
        cluster.heal()
    elif roll < 0.92:
        cluster.drop(None, None, rng.choice([0.0, 0.1, 0.3]))
        cluster.duplicate(rng.choice([0.0, 0.2]))
        cluster.reorder(rng.random() < 0.5)
    elif alive:
        key, kind = rng.choice([("g0", "gcounter"), ("big", "orset"), ("m", "ormap"), ("l", "lww")])
        cluster.read(rng.choice(alive), key, kind=kind, r=rng.choice([1, 2, 3]))


def _settle(cluster: SimCluster, holders: Callable[[str], Any]) -> bool:
    for _ in range(60):
        if cluster.run_until_quiet(300_000) and cluster.converged(holders=holders):
            return True
        cluster.run_for(1.0)
    return False


def _check(cluster: SimCluster, ring: Ring, model: Model, where: str) -> None:
    def value(key: str, kind: str) -> Any:
        state = cluster.value(ring.homes_of(key)[0], key, kind)
        return None if state is None else state.value

    for key, counts in model.counts.items():
        got = (
            value(key, "gcounter" if key.startswith("g") else "pncounter")
            if key != "m.count"
            else (value("m", "ormap") or {}).get("count")
        )
        got = got or 0
        acked_up = sum(n for n, op in counts if op.ok and n > 0)
        acked_down = sum(-n for n, op in counts if op.ok and n < 0)
        all_up = sum(n for n, _ in counts if n > 0)
        all_down = sum(-n for n, _ in counts if n < 0)
        assert acked_up - all_down <= got <= all_up - acked_down, f"{where}: {key} = {got}"
    for key, adds in model.adds.items():
        present = value(key, "orset") or frozenset()
        assert present <= set(adds), f"{where}: {key} holds elements never added"
        removes = model.removes.get(key, {})
        for element, add in adds.items():
            if any(op.ok for op in removes.get(element, [])):
                assert element not in present, f"{where}: {key}: acked remove undone"
            elif add.ok and element not in removes and key not in model.deleted:
                assert element in present, f"{where}: {key}: acked add of {element[:8]} lost"
    acked = [ms for ms, op in model.stamps if op.ok]
    if acked:
        state = cluster.value(ring.homes_of("l")[0], "l", "lww")
        stamp = getattr(state, "timestamp", None)
        assert stamp is not None and stamp[0] >= max(acked), f"{where}: an acked LWW write lost"
    assert set(value("mv", "mvregister") or ()) <= model.registers, f"{where}: mv invented"


def _run(seed: int, signed: bool) -> None:
    rng = random.Random(seed)
    cluster, ids = _cluster(seed, signed, rng)
    model = Model()
    for n in range(STEPS):
        alive = [r for r in ids if cluster.alive(r)]
        roll = rng.random()
        if roll < 0.6 and alive:
            _write(cluster, model, rng, rng.choice(alive), n)
        else:
            _faults(cluster, ids, rng, roll)
        cluster.run_for(rng.choice([0.01, 0.1, 0.5, 1.0, 3.0, 8.0]), max_steps=200_000)
        assert cluster.anomalies == [], cluster.anomalies[:3]

    cluster.heal()
    for rid in ids:
        cluster.disarm(rid)
    for rid in ids:
        if not cluster.alive(rid):
            cluster.restart(rid)
    cluster.run_for(20.0)  # past the writes stamped ahead
    ring = Ring(ids, n=3, partitions=8, vnodes=4)
    where = f"seed {seed}, {'signed' if signed else 'unsigned'}"
    assert _settle(cluster, ring.homes_of), (
        f"{where}: {sorted(cluster.divergent(holders=ring.homes_of))}"
    )
    assert cluster.protocol_errors == [], f"{where}: {cluster.protocol_errors[:3]}"
    assert cluster.stats.loads > 0 and cluster.stats.sent["SnapshotChunk"] > 0, where
    _check(cluster, ring, model, where)

    # Converged and quiet: nothing but digests (at a backed-off pace).
    cluster.reset_stats()
    cluster.run_for(120.0)
    assert set(cluster.stats.sent) <= IDLE, f"{where}: {dict(cluster.stats.sent)}"
    assert cluster.stats.total_sent() < 200, f"{where}: {dict(cluster.stats.sent)}"

    # Each replica reloads from its disk what it held in memory.
    held = {
        r: {k: canonical_held(cluster.replica(r), cluster.disk(r), k) for k in sorted(cluster.keys)}
        for r in ids
    }
    for rid in ids:
        cluster.crash(rid)
    for rid in ids:
        cluster.restart(rid)
    for rid in ids:
        for key in sorted(cluster.keys):
            reloaded = canonical_held(cluster.replica(rid), cluster.disk(rid), key)
            assert reloaded == held[rid][key], f"{where}: {rid} reloaded another {key}"
    assert _settle(cluster, ring.homes_of), where
    assert cluster.anomalies == [] and cluster.protocol_errors == [], where


@pytest.mark.parametrize(("seed", "signed"), [(1, False), (2, False), (5, True), (6, True)])
def test_every_fault_on_every_kind_under_a_small_cache(seed: int, signed: bool) -> None:
    _run(seed, signed)
