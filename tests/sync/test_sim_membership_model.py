"""Membership changes made one replica at a time, under random schedules.

Forgetting is an operator's action on one replica (``Replica.forget``/``unforget``); the
operator goes from peer to peer, so for a while the replicas' rings differ. Seeded,
bounded, deterministic schedules (``random.Random(seed)``) over four to six replicas mix
writes (gcounter increments and OR-set adds at random coordinators, ``w=2``), crashes and
restarts, partitions and heals, the forgetting of a crashed member on a random subset of
the replicas, later taken back there or made on the rest, and a replica joining. Then:

* while a member is still forgotten on some replicas only, everything else up and healed,
  idle rounds stay within a few times the cost of a group that agrees (they cost 1,268
  messages in 120 s among three replicas before the futile-digest memo; see
  ``test_sim_partial_forget.py``: 30 at most there), and every replica up holds and
  reads at ``r=1`` the acknowledged writes of the keys it homes by its own ring;
* once the forgetting is made consistent (forgotten everywhere, or taken back everywhere,
  the member restarted), every replica not forgotten restarted and the network healed:
  every acknowledged write is held, and read by a strict ``r=1`` read, at every home of its
  key by the (now common) ring, and nothing never written is; the homes of each key
  converge; and idle rounds cost ``Digest`` messages only.

The last tests are minimal repros of holes found in review (their docstrings say what
was wrong).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from sync.config import ReplicaConfig
from sync.replica import Replica
from sync.ring import Ring, partition_of
from sync.simnet import SimCluster, SimOp

__all__: list[str] = []

IDS = ["p000", "p001", "p002", "p003", "p004"]
JOINER = "p005"
CFG = ReplicaConfig(n=3, anti_entropy_interval=1.0, partitions=8, vnodes=4)
COUNTERS = [f"c{i}" for i in range(8)]
SETS = [f"s{i}" for i in range(6)]
STEPS = 45
SEEDS = list(range(1, 13))


def _engine(cluster: SimCluster, rid: str) -> Replica:
    """The engine of ``rid`` (up), for what only it answers (its ring, its members)."""
    replica = cluster.replica(rid)
    assert isinstance(replica, Replica)
    return replica


@dataclass
class Model:
    """What the schedule did: every write issued (its handle), and the forgetting."""

    cluster: SimCluster
    rng: random.Random
    ids: list[str]
    increments: dict[str, list[SimOp]] = field(default_factory=dict)  # counter -> its +1s
    adds: dict[str, dict[str, SimOp]] = field(default_factory=dict)  # set -> element -> add
    victim: str | None = None  # the member forgotten on some replicas (kept down meanwhile)
    forgot: set[str] = field(default_factory=set)  # the replicas that forgot it
    retired: set[str] = field(default_factory=set)  # forgotten on every replica, for good
    next_element: int = 0
    log: list[str] = field(default_factory=list)  # what was done, for a failure's message

    def alive(self) -> list[str]:
        return [r for r in self.ids if self.cluster.alive(r)]

    def knows_unforgotten(self, rid: str, peer: str) -> bool:
        """``rid`` (up) counts ``peer`` as a member."""
        return peer in _engine(self.cluster, rid)._membership.members()

    # -- actions ---------------------------------------------------------------------------
    def write(self) -> None:
        for _ in range(self.rng.randint(1, 4)):
            self.write_one(self.rng.choice(self.alive()))

    def write_one(self, rid: str) -> None:
        if self.rng.random() < 0.5:
            key = self.rng.choice(COUNTERS)
            op = self.cluster.update(rid, key, "gcounter", lambda g: g.increment(rid, 1), w=2)
            self.increments.setdefault(key, []).append(op)
        else:
            key = self.rng.choice(SETS)
            element = f"e{self.next_element}"
            self.next_element += 1
            op = self.cluster.update(rid, key, "orset", lambda s: s.add(rid, element), w=2)
            self.adds.setdefault(key, {})[element] = op
        self.log.append(f"write {key} at {rid}")

    def crash(self) -> None:
        alive = self.alive()
        if len(alive) > 3:
            rid = self.rng.choice(alive)
            self.cluster.crash(rid)
            self.log.append(f"crash {rid}")

    def restart(self) -> None:
        down = [r for r in self.ids if not self.cluster.alive(r) and r not in self.retired]
        down = [r for r in down if not (r == self.victim and self.forgot)]
        if down:
            rid = self.rng.choice(down)
            self.cluster.restart(rid)
            self.log.append(f"restart {rid}")

    def partition(self) -> None:
        side = [r for r in self.ids if self.rng.random() < 0.5]
        self.cluster.partition([side, [r for r in self.ids if r not in side]])
        self.log.append(f"partition {side}")

    def heal(self) -> None:
        self.cluster.heal()
        self.log.append("heal")

    def forget_some(self, *, one: bool = False) -> None:
        """Forget a crashed member on a random subset of the replicas up that count it one
        (a first victim, or the current one on more replicas; ``one``: on one at least)."""
        if self.victim is None:
            down = [r for r in self.ids if not self.cluster.alive(r) and r not in self.retired]
            if not down:
                return
            self.victim = self.rng.choice(down)
        victim = self.victim
        can = [r for r in self.alive() if self.knows_unforgotten(r, victim)]
        chosen = [r for r in can if self.rng.random() < 0.5]
        if one and not chosen and can:
            chosen = [self.rng.choice(can)]
        if not chosen and not self.forgot:
            self.victim = None
        for rid in chosen:
            self.cluster.forget(rid, victim)
            self.forgot.add(rid)
        self.log.append(f"forget {victim} on {chosen}")

    def take_back_or_finish(self) -> None:
        """Unforget the victim on every replica up that forgot it, or forget it on every
        replica up that still counts it (a replica down is left as it is)."""
        if self.victim is None or not self.forgot:
            return
        victim = self.victim
        if self.rng.random() < 0.5:
            done = [r for r in self.alive() if r in self.forgot]
            for rid in done:
                self.cluster.unforget(rid, victim)
                self.forgot.discard(rid)
            self.log.append(f"unforget {victim} on {done}")
        else:
            done = [r for r in self.alive() if self.knows_unforgotten(r, victim)]
            for rid in done:
                self.cluster.forget(rid, victim)
                self.forgot.add(rid)
            self.log.append(f"forget {victim} on the rest {done}")
        if not self.forgot:
            self.victim = None

    def add_replica(self) -> None:
        if JOINER not in self.ids:
            self.cluster.add_replica(JOINER)
            self.ids.append(JOINER)
            self.log.append(f"add {JOINER}")

    # -- the end ---------------------------------------------------------------------------
    def up_and_healed(self) -> None:
        """Heal; restart every replica but the victim while it is forgotten anywhere."""
        self.cluster.heal()
        for rid in self.ids:
            kept_down = rid in self.retired or (rid == self.victim and bool(self.forgot))
            if not kept_down and not self.cluster.alive(rid):
                self.cluster.restart(rid)

    def partial(self) -> bool:
        """The victim is forgotten on some replicas up and counted a member on others."""
        if self.victim is None or not self.forgot:
            return False
        return any(self.knows_unforgotten(r, self.victim) for r in self.alive())

    def make_consistent(self) -> None:
        """Forget the victim everywhere (it stays down for good) or take it back everywhere
        (and restart it); every replica up then agrees on the members."""
        victim = self.victim
        if victim is None:
            return
        if self.rng.random() < 0.5:
            self.log.append(f"end: forget {victim} everywhere")
            for rid in self.alive():
                if self.knows_unforgotten(rid, victim):
                    self.cluster.forget(rid, victim)
            self.retired.add(victim)
        else:
            self.log.append(f"end: unforget {victim} everywhere")
            for rid in self.alive():
                if rid in self.forgot:
                    self.cluster.unforget(rid, victim)
            if not self.cluster.alive(victim):
                self.cluster.restart(victim)
        self.forgot.clear()
        self.victim = None


ACTIONS = [
    (Model.write, 8),
    (Model.crash, 2),
    (Model.restart, 2),
    (Model.partition, 1),
    (Model.heal, 2),
    (Model.forget_some, 2),
    (Model.take_back_or_finish, 1),
    (Model.add_replica, 1),
]


def _schedule(seed: int) -> Model:
    rng = random.Random(seed)
    cluster = SimCluster(IDS, CFG, seed=seed, detect_delay=0.5)
    model = Model(cluster, rng, list(IDS))
    actions = [a for a, _ in ACTIONS]
    weights = [w for _, w in ACTIONS]
    for _ in range(STEPS):
        rng.choices(actions, weights)[0](model)
        cluster.run_for(rng.uniform(0.2, 4.0), max_steps=2_000_000)
    # A member forgotten on some replicas only for the idle phase below (if none yet).
    if model.victim is None:
        down = [r for r in model.ids if not cluster.alive(r) and r not in model.retired]
        if not down:
            alive = model.alive()
            cluster.crash(rng.choice(alive))
        model.forget_some(one=True)
    assert cluster.run_until(lambda: all(op.done for op in cluster.ops), 1_000_000)
    return model


def _ring_of(model: Model) -> dict[str, tuple[str, ...]]:
    """Each key's homes by the ring every replica up agrees on."""
    alive = model.alive()
    homes: dict[str, tuple[str, ...]] = {}
    for key in COUNTERS + SETS:
        views = {_engine(model.cluster, r).homes(key) for r in alive}
        assert len(views) == 1, (key, views, model.log)
        homes[key] = views.pop()
    return homes


def _check_state(model: Model, key: str, state: object, where: str) -> None:
    """``state`` (a gcounter's or an OR-set's) holds every acknowledged write of ``key``
    and nothing never written."""
    value = getattr(state, "value", None)
    if key in model.increments:
        ops = model.increments[key]
        acked = sum(op.ok for op in ops)
        count = 0 if value is None else value
        assert acked <= count <= len(ops), (where, key, value, acked)
    if key in model.adds:
        adds = model.adds[key]
        acked_set = {e for e, op in adds.items() if op.ok}
        got = set(value) if value is not None else set()
        assert acked_set <= got, (where, key, sorted(acked_set - got))
        assert got <= set(adds), (where, key, sorted(got - set(adds)))


def _check_read(model: Model, rid: str, key: str, when: str) -> None:
    """``rid`` holds every acknowledged write of ``key``, and a strict read at ``r=1``
    there returns them (and nothing never written)."""
    cluster = model.cluster
    _check_state(model, key, cluster.value(rid, key), f"held at {rid} {when}")
    kind = "gcounter" if key in model.increments else "orset"
    op = cluster.read(rid, key, kind=kind, r=1, strict=True)
    assert cluster.run_until(lambda: op.done, 10_000)
    assert op.ok, (key, rid, op.outcome, when)
    _check_state(model, key, op.state, f"read at {rid} (r=1) {when}")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_membership_schedules_keep_every_acknowledged_write(seed: int) -> None:
    model = _schedule(seed)
    cluster = model.cluster
    written = sorted(set(model.increments) | set(model.adds))
    assert any(op.ok for op in cluster.ops), model.log  # (the schedule did write)

    # -- a member forgotten on some replicas only: idle rounds stay bounded ---------------
    model.up_and_healed()
    if not model.partial():  # (every replica up forgot it: one takes it back)
        assert model.victim is not None
        back = model.rng.choice(sorted(model.forgot & set(model.alive())))
        cluster.unforget(back, model.victim)
        model.forgot.discard(back)
        model.log.append(f"unforget {model.victim} on {back}")
    assert model.partial(), model.log
    cluster.run_for(300, max_steps=5_000_000)
    # Every replica up holds, and reads at r=1, the acknowledged writes of each key it is
    # a home of by its own ring (1f0e4f6: also those it homes only since it forgot).
    for rid in model.alive():
        for key in written:
            if rid in _engine(cluster, rid).homes(key):
                _check_read(model, rid, key, "while the rings differ")
    cluster.reset_stats()
    cluster.run_for(120, max_steps=5_000_000)
    sent = dict(cluster.stats.sent)
    up = len(model.alive())
    # Rounds backed off to the idle interval (60 s, less a tenth of jitter: three rounds at
    # most in 120 s), each a digest to gossip_fanout (3) peers at most; a digest between a
    # replica that forgot the member and one that lists it costs part digests and a list
    # of the members each way, no partition summary. About 12 messages per replica at
    # most, like the 30 among three of test_sim_partial_forget; at 1f0e4f6, with every
    # round at anti_entropy_interval, 2,300 to 4,000.
    assert sent.get("Digest", 0) <= 9 * up, (sent, model.log)
    assert sum(sent.values()) <= 15 * up, (sent, model.log)
    assert sent.get("Summary", 0) <= 6 * up, (sent, model.log)

    # -- consistent again ------------------------------------------------------------------
    model.make_consistent()
    model.up_and_healed()
    cluster.run_for(400, max_steps=10_000_000)
    assert cluster.run_until(cluster.quiet, 1_000_000)
    homes = _ring_of(model)
    for rid in model.alive():  # (no replica up counts a member forgotten for good)
        assert not model.retired & set(_engine(cluster, rid)._membership.members())

    # (a) every acknowledged write at every home of its key, and read there at r=1
    for key in written:
        for home in homes[key]:
            assert cluster.alive(home), (key, home, model.log)
            _check_read(model, home, key, "once consistent")

    # (b) the homes of each key hold the same state
    assert cluster.divergent(written, holders=lambda k: homes[k]) == {}, model.log

    # (c) converged and agreeing on the members: a round is a digest, nothing else
    cluster.run_for(300, max_steps=5_000_000)
    cluster.reset_stats()
    cluster.run_for(120, max_steps=5_000_000)
    assert set(cluster.stats.sent) == {"Digest"}, (dict(cluster.stats.sent), model.log)
    assert not cluster.anomalies and not cluster.protocol_errors


# -- holes found in review -------------------------------------------------------------------


def _forgotten_while_up() -> tuple[SimCluster, list[str]]:
    """Four replicas; p000's operator forgets p001, which is still up (decommissioned on
    p000 first: p000 refuses its links, the others still count it). p000's ring is p000,
    p002, p003: it homes every partition, some of them by its own ring only. Returns the
    keys p000 homes by its ring only."""
    cluster = SimCluster(IDS[:4], CFG, seed=1, detect_delay=0.5)
    cluster.run_for(10)
    cluster.cut("p000", "p001")  # (what a real transport does: forgotten links are refused)
    cluster.forget("p000", "p001")
    full = Ring(IDS[:4], n=3, partitions=CFG.partitions, vnodes=CFG.vnodes)
    lone = [k for k in (f"k{i}" for i in range(40)) if "p000" not in full.homes_of(k)]
    assert lone and all("p000" in _engine(cluster, "p000").homes(k) for k in lone)
    return cluster, lone


def test_a_write_after_the_rings_settled_reaches_the_replica_that_forgot_a_member_alone() -> None:
    """A review found: the partial-forget fix (1f0e4f6) sends p000 what it lacks of the
    partitions it homes by its own ring when it asks; 79e1faf stopped it asking once one
    exchange found the summaries equal, for as long as the part digests both sides exchange
    stay the same. Those of p002 and p003 covered only the partitions they count p000 a
    home of, so a write to a partition p000 homes by its ring only changed none of them:
    p000 never asked again. Now p002 and p003 take p000's claims of those partitions into
    their digests for it (and a memo of an exchange that moved nothing lasts an idle
    interval)."""
    cluster, lone = _forgotten_while_up()
    cluster.run_for(300, max_steps=5_000_000)  # each pair's exchange finds equal summaries
    key = lone[0]
    op = cluster.update("p002", key, "gcounter", lambda g: g.increment("p002", 1), w=2)
    assert cluster.run_until(lambda: op.done, 100_000) and op.ok
    cluster.run_for(600, max_steps=5_000_000)  # ten idle intervals
    read = cluster.read("p000", key, kind="gcounter", r=1, strict=True)
    assert cluster.run_until(lambda: read.done, 10_000) and read.ok
    assert read.state is not None and read.state.value == 1, cluster.values(key)


def test_a_member_asking_for_every_partition_gets_only_those_it_may_home() -> None:
    """A member (p007 of sixteen, holding the group secret) sends p000 one summary of every
    partition, each empty, not an offer. Before 1f0e4f6 p000 sent it what it lacks of the partitions
    p007 homes; 1f0e4f6 made p000 send it every partition it holds, whoever homes it (a
    review found): N/n times the data for one message. A claim is now taken only within
    ``claim_depth`` of the partition's walk: ``n`` places, one more for each home p007's
    list of members lacks, ``2n`` at most. So with no list, p007 gets what it homes; after
    a list naming no one, what it would home had it forgotten up to ``n`` members, no more."""
    from sync import messages as m

    ids = [f"p{i:03d}" for i in range(16)]
    cfg = ReplicaConfig(n=3, anti_entropy_interval=1.0, partitions=32, vnodes=4)
    cluster = SimCluster(ids, cfg, seed=2, detect_delay=0.5)
    ring = Ring(ids, n=3, partitions=cfg.partitions, vnodes=cfg.vnodes)
    keys = [f"x{i}" for i in range(128)]
    ops = [
        cluster.update("p000", k, "gcounter", lambda g: g.increment("p000", 1), w=2) for k in keys
    ]
    assert cluster.run_until(lambda: all(op.done for op in ops), 100_000)
    cluster.run_for(30)
    # the keys p000 holds as a home, p007 homes none of
    foreign = [k for k in keys if "p000" in ring.homes_of(k) and "p007" not in ring.homes_of(k)]
    assert foreign and all(cluster.value("p007", k) is None for k in foreign)

    # (p007, a modified peer, takes the state transfers of any partition it asked for)
    hostile = _engine(cluster, "p007")._anti_entropy
    hostile._asked.setdefault("p000", set()).update(range(cfg.partitions))
    ask = m.Summary(parts={p: m.Ctx() for p in range(cfg.partitions)})
    cluster._input("p000", lambda r: r.receive("p007", ask, cluster.now))
    cluster.run_for(30)
    pulled = [k for k in foreign if cluster.value("p007", k) is not None]
    assert pulled == [], f"p007 pulled {len(pulled)} of {len(foreign)} keys it homes none of"

    # A list of members naming only itself: as if it forgot every other member.
    alone = m.Summary(known_peers=[m.PeerInfo(replica_id="p007")])
    cluster._input("p000", lambda r: r.receive("p007", alone, cluster.now))
    cluster._input("p000", lambda r: r.receive("p007", ask, cluster.now))
    cluster.run_for(30)
    pulled = [k for k in foreign if cluster.value("p007", k) is not None]
    reach = {k for k in foreign if "p007" in ring.walk(partition_of(k, cfg.partitions))[:6]}
    assert set(pulled) <= reach, "p007 pulled keys past twice its share's reach"
    assert reach < set(foreign)  # (the case: some keys are out of its reach)
    assert pulled, "the list lacking every member let p007 claim nothing"
