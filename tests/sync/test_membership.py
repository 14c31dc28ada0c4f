"""Membership is hard to change by accident: forgetting is an operator's action on one
replica, undoable, never a message; short-lived replicas are never homes.

The engine driven by hand (``now`` is its clock): replicas wired through the real codec by a
small helper, messages delivered one round at a time.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Alarm, Persist, Send, WriteDone
from sync.errors import RemoteProtocolError
from sync.replica import Replica
from sync.ring import partition_of

__all__: list[str] = []

PARTS = 16


def _config(**kw: Any) -> ReplicaConfig:
    return ReplicaConfig(n=3, partitions=PARTS, vnodes=4, anti_entropy_interval=5.0, **kw)


class Net:
    """Replicas that exchange every Send through the codec, in rounds."""

    def __init__(self, configs: dict[str, ReplicaConfig]) -> None:
        self.r = {rid: Replica(cfg, rid, now=0.0) for rid, cfg in configs.items()}
        self.now = 0.0
        self.done: dict[str, list[Any]] = {rid: [] for rid in configs}
        self.persisted: dict[str, list[Persist]] = {rid: [] for rid in configs}
        self.cut: set[frozenset[str]] = set()
        self.sent: list[tuple[str, Send]] = []  # every Send delivered, with its sender

    def up(self, a: str, b: str) -> None:
        """a and b connect: each is told what the other says of itself (home or not)."""
        self.cut.discard(frozenset((a, b)))
        self.r[a].peer_up(b, self.now, home=self.r[b].config.home)
        self.r[b].peer_up(a, self.now, home=self.r[a].config.home)

    def down(self, a: str, b: str) -> None:
        self.cut.add(frozenset((a, b)))
        self.r[a].peer_down(b, self.now)
        self.r[b].peer_down(a, self.now)

    def run(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            sends: list[tuple[str, Send]] = []
            for rid, rep in self.r.items():
                for fx in rep.effects():
                    if isinstance(fx, Send):
                        sends.append((rid, fx))
                    else:
                        self.done[rid].append(fx)
                        if isinstance(fx, Persist):
                            self.persisted[rid].append(fx)
            if not sends:
                return
            for src, fx in sends:
                if frozenset((src, fx.peer)) not in self.cut and fx.peer in self.r:
                    self.sent.append((src, fx))
                    msg = m.decode(m.encode(fx.message))
                    self.r[fx.peer].receive(src, msg, self.now)
        raise AssertionError("no quiet after the rounds")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for rep in self.r.values():
            rep.tick(self.now)
        self.run()

    def alarms(self, rid: str) -> list[Alarm]:
        return [fx for fx in self.done[rid] if isinstance(fx, Alarm)]


def _keys_where(rep: Replica, ok: Any, count: int = 1) -> list[str]:
    found = [k for k in (f"k{i}" for i in range(2000)) if ok(rep.homes(k))]
    assert len(found) >= count
    return found[:count]


def _incr(rid: str) -> Any:
    return lambda c: c.increment(rid)


def _persisted_peers(net: Net, rid: str) -> set[str]:
    return {rec.replica_id for p in net.persisted[rid] for rec in p.peers}


# -- forgetting -------------------------------------------------------------------------------


def test_a_forget_message_from_a_member_is_refused_and_forgets_nothing() -> None:
    """It used to exile its subject group-wide for good: now there is no such message."""
    net = Net({"A": _config(), "B": _config(), "C": _config()})
    net.up("A", "B")
    net.up("A", "C")
    net.run()
    raw = json.dumps({"proto": 1, "t": "forget", "replica_id": "C"}).encode()
    with pytest.raises(RemoteProtocolError, match="unknown message type 'forget'"):
        net.r["A"].receive("B", m.decode(raw), net.now)
    assert net.r["A"].status()["forgotten"] == [] and "C" in net.r["A"].status()["peers_known"]


def test_forgetting_is_logged_with_who_asked_and_can_be_undone() -> None:
    net = Net({"A": _config(), "B": _config(), "C": _config()})
    net.up("A", "B")
    net.up("A", "C")
    net.run()
    a = net.r["A"]
    (key,) = _keys_where(a, lambda h: "C" in h)
    net.r["A"].forget("C", net.now, by="operator ann@ops over an admin link")
    net.run()
    (alarm,) = net.alarms("A")
    assert alarm.kind == "forgotten" and alarm.peer == "C"
    assert "asked by operator ann@ops over an admin link" in alarm.message
    assert "shoal forget --undo" in alarm.message
    assert "C" not in a.homes(key) and a.status()["forgotten"] == ["C"]
    assert "C" not in a.peers_up  # its link is gone from the engine's view
    a.unforget("C", net.now, by="operator ann@ops")
    net.run()
    assert "C" in a.homes(key) and a.status()["forgotten"] == []
    assert net.alarms("A")[-1].kind == "unforgotten"
    last = [rec for p in net.persisted["A"] for rec in p.peers if rec.replica_id == "C"][-1]
    assert last.forgotten is False
    with pytest.raises(ValueError, match="not forgotten"):
        a.unforget("C", net.now)


# -- homes and non-homes -------------------------------------------------------------------------


def test_a_short_lived_replica_is_never_a_home_and_never_blocks_compaction() -> None:
    """A client that connected for a second used to become a home of most keys: writes
    kept hints for it and compaction waited for it for ever."""
    net = Net({"A": _config(), "B": _config(), "T": _config(home=False)})
    net.up("A", "B")
    net.up("A", "T")
    net.run()
    a = net.r["A"]
    assert a.status()["non_homes"] == ["T"]
    assert all("T" not in a.homes(f"k{i}") for i in range(200))
    net.down("A", "T")  # gone after a second, for good
    keys = _keys_where(a, lambda h: set(h) == {"A", "B"}, 5)
    for i, key in enumerate(keys):
        a.local_update(i, key, "gcounter", _incr("A"), net.now)
    net.run()
    net.advance(10.0)  # anti-entropy rounds: summaries reported, compaction
    assert a.status()["hints"] == {} and a.status()["log_size"] == 0
    assert "T" not in _persisted_peers(net, "A")  # a restart never takes it for a home


def test_the_home_flag_travels_with_gossip() -> None:
    net = Net({"A": _config(), "B": _config(), "T": _config(home=False)})
    net.up("A", "B")
    net.run()
    b = net.r["B"]
    # B took T for a home (say T was one, and restarted as a short-lived replica).
    b.receive("A", m.Summary(known_peers=[m.PeerInfo(replica_id="T", home=True)]), net.now)
    assert any("T" in b.homes(f"k{i}") for i in range(200))
    net.up("A", "T")  # A gossips T, up there, as a non-home: B takes it off its ring
    net.advance(10.0)
    assert "T" in b.status()["peers_known"] and b.status()["non_homes"] == ["T"]
    assert all("T" not in b.homes(f"k{i}") for i in range(200))
    # What a peer says of itself in its handshake wins over what others gossip about it.
    net.up("B", "T")
    gossip = m.Summary(known_peers=[m.PeerInfo(replica_id="T", home=True)])
    b.receive("A", gossip, net.now)
    assert b.status()["non_homes"] == ["T"]


def test_short_lived_replicas_that_left_are_neither_kept_nor_gossiped() -> None:
    """Every short-lived replica that ever connected (a command-line session, a test client)
    stayed in every peer's membership for good and was listed to every newcomer: a group
    that served a few thousand sessions gossiped a few thousand dead clients on every
    connect. A non-home is known while it is up, by the peers it is linked to."""
    sessions = [f"T{i}" for i in range(40)]
    configs = {"A": _config(), "B": _config(), "Z": _config(home=False)}
    configs.update({t: _config(home=False) for t in sessions})
    net = Net(configs)
    net.up("A", "B")
    net.run()
    (key,) = _keys_where(net.r["A"], lambda h: {"A", "B"} <= set(h))
    for t in sessions:  # one session at a time: connect, write, leave
        net.up("A", t)
        net.r[t].local_update(1, key, "gcounter", _incr(t), net.now)
        net.run()
        net.down("A", t)
        net.advance(1.0)
    a, b = net.r["A"], net.r["B"]
    assert a.status()["non_homes"] == [] and a.status()["peers_known"] == ["B"]
    assert b.status()["non_homes"] == [] and b.status()["peers_known"] == ["A"]
    assert a.current_value(key) == b.current_value(key) == len(sessions)  # nothing lost
    net.sent.clear()
    net.up("A", "Z")  # a newcomer is told the members: the homes, and who is up
    net.advance(10.0)
    assert net.r["Z"].status()["peers_known"] == ["A", "B"]
    listed = {
        info.replica_id
        for src, fx in net.sent
        if src == "A" and fx.peer == "Z" and isinstance(fx.message, m.Summary)
        for info in fx.message.known_peers
    }
    assert listed == {"A", "B", "Z"}, sorted(listed)


def test_a_lone_non_home_keeps_its_writes_until_it_meets_a_home_then_hands_them_off() -> None:
    net = Net({"A": _config(), "T": _config(home=False)})
    t = net.r["T"]
    for i in range(3):
        t.local_update(i, f"k{i}", "gcounter", _incr("T"), net.now)
    net.run()
    net.advance(60.0)  # compaction passes: nobody else has these writes, they stay
    assert t.status()["log_size"] == 3
    net.up("A", "T")
    net.run()
    net.advance(10.0)
    assert [net.r["A"].current_value(f"k{i}") for i in range(3)] == [1, 1, 1]
    assert t.status()["hints"] == {} and t.status()["log_size"] == 0


# -- homes down for long ------------------------------------------------------------------------


def test_a_home_down_past_the_window_is_reported_once_and_our_hints_for_it_go() -> None:
    window = 100.0
    cfg = _config(home_down_window=window)
    net = Net({"A": cfg, "B": cfg, "C": cfg, "T": _config(home=False, home_down_window=window)})
    for x, y in (("A", "B"), ("A", "C"), ("B", "C"), ("T", "A"), ("T", "B"), ("T", "C")):
        net.up(x, y)
    net.run()
    net.down("T", "C")
    for x in "AB":
        net.down(x, "C")
    t = net.r["T"]
    keys = _keys_where(t, lambda h: set(h) == {"A", "B", "C"}, 3)
    for i, key in enumerate(keys):
        t.local_update(i, key, "gcounter", _incr("T"), net.now)
    net.run()
    assert t.status()["hints"] == {"C": 3}  # our only copy for C: kept, however long
    net.advance(window / 2)
    assert t.status()["hints"] == {"C": 3} and net.r["A"].status()["homes_down"] == {}
    net.advance(window)
    for rid in "AT":
        assert list(net.r[rid].status()["homes_down"]) == ["C"]
        assert [(a.kind, a.peer) for a in net.alarms(rid)] == [("home_down", "C")]
    # A and B have the writes: the hints for C go, and compaction goes on.
    assert t.status()["hints"] == {} and t.status()["log_size"] == 0
    net.advance(window)
    assert len(net.alarms("A")) == 1  # reported once per absence
    net.up("A", "C")
    net.run()
    assert net.r["A"].status()["homes_down"] == {}


def test_our_hints_for_a_gone_home_stay_while_no_live_home_has_the_write() -> None:
    window = 100.0
    net = Net(
        {
            "A": ReplicaConfig(n=1, partitions=PARTS, vnodes=4, home_down_window=window),
            "T": ReplicaConfig(
                n=1, partitions=PARTS, vnodes=4, home_down_window=window, home=False
            ),
        }
    )
    net.up("A", "T")
    net.run()
    net.down("A", "T")
    t = net.r["T"]
    t.local_update(1, "k0", "gcounter", _incr("T"), net.now)
    net.run()
    net.advance(3 * window)
    assert list(t.status()["homes_down"]) == ["A"]
    assert t.status()["hints"] == {"A": 1} and t.status()["log_size"] == 1  # the only copy


@pytest.mark.parametrize("seed", range(40))
def test_the_first_fallback_is_what_pick_fallback_says_after_any_change(seed: int) -> None:
    """``first_fallback`` (remembered per partition) equals ``pick_fallback`` over the
    partition's homes and this replica, whatever came before: peers up and down, relays or
    not, homes or not, learnt, forgotten and taken back."""
    from sync.replica.membership import Membership
    from sync.replica.outbox import Outbox

    rng = random.Random(seed)
    parts = 8
    config = ReplicaConfig(n=2, partitions=parts, home=rng.random() < 0.8)
    outbox = Outbox(1)
    outbox.begin_input()
    mem = Membership(config, "ME", outbox)
    peers = [f"P{i}" for i in range(6)]
    for step in range(60):
        now = float(step)
        op, peer = rng.choice(("up", "down", "learn", "forget", "unforget")), rng.choice(peers)
        if op == "up" and not mem.is_forgotten(peer):
            mem.connect(peer, now, None, None, relay=rng.random() < 0.3, home=rng.random() < 0.7)
        elif op == "down":
            mem.disconnect(peer, now)
        elif op == "learn":
            mem.learn(peer, None, None, now, rng.choice([None, True, False]))
        elif op == "forget" and mem.knows(peer) and not mem.is_forgotten(peer):
            mem.forget(peer)
        elif op == "unforget" and mem.is_forgotten(peer):
            mem.unforget(peer, now, "operator")
        for p in range(parts):
            chosen = {*mem.ring().preference_list(p), "ME"}
            assert mem.first_fallback(p) == mem.pick_fallback(p, chosen), (step, op, peer, p)


def test_a_non_home_that_is_up_can_be_forgotten_and_stays_forgotten() -> None:
    """Forgetting a non-home while it is linked took it down first, which (since a non-home
    is known only while up) dropped its record, then marked the record gone: KeyError, half
    done (the link down, nothing forgotten, no alarm)."""
    net = Net({"A": _config(), "T": _config(home=False)})
    net.up("A", "T")
    net.run()
    a = net.r["A"]
    assert a.status()["non_homes"] == ["T"]
    a.forget("T", net.now, by="a test")
    net.run()
    assert a.status()["forgotten"] == ["T"] and a.status()["non_homes"] == []
    assert [x.kind for x in net.alarms("A")] == ["forgotten"]
    assert "T" in _persisted_peers(net, "A")  # forgotten: kept (persisted) so it stays so
    a.unforget("T", net.now, by="a test")
    net.run()
    assert a.status()["forgotten"] == []


def test_a_fallback_that_holds_no_hint_for_the_home_does_not_count_for_the_write() -> None:
    """A hint is held only for a home of its partition in the fallback's ring. A fallback
    whose ring differs (it learned of a new home, Z, before the coordinator did: gossip
    lags) left the entry unheld but acked it, so the coordinator's write completed at w=2
    with the fallback counted as holding a hint for the home, while only the coordinator
    held the write. A push's ack leaves out what is not held (``AckExcept``): the write does
    not count it, the coordinator keeps it."""
    cfg = {"n": 2, "partitions": PARTS, "vnodes": 4, "anti_entropy_interval": 5.0}
    net = Net({r: ReplicaConfig(**cfg) for r in "AFGHZ"})  # type: ignore[arg-type]
    for x, y in (("A", "F"), ("A", "G"), ("F", "G"), ("A", "H")):
        net.up(x, y)
    net.run()
    net.down("A", "H")
    net.up("F", "Z")  # F and G learn of Z, a new home; A not yet (no gossip round)
    net.up("G", "Z")
    net.run()
    a = net.r["A"]
    assert "Z" not in a.status()["peers_known"]

    def unheld(k: str) -> bool:  # A's homes {A, H}; its fallback neither home nor holder
        fb = a._membership.first_fallback(partition_of(k, PARTS))
        return (
            set(a.homes(k)) == {"A", "H"}
            and fb is not None
            and not {fb, "H"} & set(net.r[fb].homes(k))
        )

    key = next(k for k in (f"k{i}" for i in range(4000)) if unheld(k))
    fallback = a._membership.first_fallback(partition_of(key, PARTS))
    assert fallback is not None
    a.local_update(1, key, "gcounter", _incr("A"), net.now, w=2, timeout=30.0)
    net.run()
    done = [fx for fx in net.done["A"] if isinstance(fx, WriteDone) and fx.op_id == 1]
    held = net.r[fallback].status()["hints"]
    assert not done, (done, held)
