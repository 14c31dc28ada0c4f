"""Unit tests of sync.Replica: two to four replicas wired by hand, no simulator.

``Wire`` delivers every ``Send`` through the real codec (``encode``/``decode``), keeps a
"disk" per replica built only from ``Persist`` effects (to restart from), and lets a test
cut links or hold messages. Time only moves when a test says so.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crdt
from crdt import CausalContext
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import (
    Changed,
    Effect,
    HintId,
    HintRecord,
    IdentityConflict,
    Loaded,
    LogEntry,
    ObjectState,
    PeerRecord,
    Persist,
    ReadDone,
    ReadFailed,
    ReadPage,
    Send,
    WriteDone,
    WriteFailed,
)
from sync.errors import LocalProtocolError, RemoteProtocolError
from sync.replica import Replica
from sync.ring import Ring, partition_of
from tests.sync.conftest import ask_transfer


# -- harness -------------------------------------------------------------------------------
@dataclass
class Disk:
    """What a store would hold, built only from Persist effects (in the documented order)."""

    objects: dict[tuple[str, str], ObjectState] = field(default_factory=dict)
    log: dict[tuple[str, int, int], LogEntry] = field(default_factory=dict)
    summaries: dict[int, dict[str, Any]] = field(default_factory=dict)
    hints: dict[HintId, HintRecord] = field(default_factory=dict)
    peers: dict[str, PeerRecord] = field(default_factory=dict)

    def apply(self, p: Persist) -> None:
        for o in p.objects:
            self.objects[(o.key, o.kind)] = o
        for e in p.log:
            self.log.setdefault((e.origin, e.partition, e.seq), e)
        for part, ctx in p.summaries:
            self.summaries[part] = ctx
        for h in p.hints_add:
            self.hints[h.id] = h
        for hid in p.hints_drop:
            self.hints.pop(hid, None)
        for rec in p.peers:
            self.peers[rec.replica_id] = rec
        for part, wm in p.compact:
            for k in [k for k in self.log if k[1] == part and k[2] <= wm.get(k[0], 0)]:
                del self.log[k]

    def loaded(self) -> Loaded:
        return Loaded(
            objects=dict(self.objects),
            log=sorted(self.log.values(), key=lambda e: (e.partition, e.origin, e.seq)),
            summaries={p: CausalContext.from_dict(d) for p, d in self.summaries.items()},
            hints=list(self.hints.values()),
            peers=dict(self.peers),
        )


class Wire:
    """Replicas connected by hand; sends are delivered through the codec in rounds."""

    def __init__(
        self, ids: Iterable[str], *, sites: dict[str, str] | None = None, **config: Any
    ) -> None:
        self.config = ReplicaConfig(**config)
        self.ids = list(ids)
        self.configs = {
            i: dataclasses.replace(self.config, site=(sites or {}).get(i, self.config.site))
            for i in self.ids
        }
        self.now = 0.0
        self.r: dict[str, Replica] = {i: Replica(self.configs[i], i) for i in self.ids}
        self.disk: dict[str, Disk] = {i: Disk() for i in self.ids}
        self.done: dict[str, list[Effect]] = defaultdict(list)  # non-Send effects, in order
        self.sent: list[tuple[str, str, m.Message]] = []  # (from, to, message) delivered or not
        self.cut: set[frozenset[str]] = set()
        self.hold: Callable[[str, str, m.Message], bool] = lambda src, dst, msg: False
        self.held: list[tuple[str, str, m.Message]] = []
        self.dead: set[str] = set()

    def connect(self, pairs: Iterable[tuple[str, str]] | None = None) -> None:
        if pairs is None:
            pairs = [(a, b) for a in self.ids for b in self.ids if a < b]
        for a, b in pairs:
            self.r[a].peer_up(b, self.now)
            self.r[b].peer_up(a, self.now)
        self.run()

    def down(self, a: str, b: str) -> None:
        """The link a-b breaks: both sides notice."""
        self.cut.add(frozenset((a, b)))
        self.r[a].peer_down(b, self.now)
        self.r[b].peer_down(a, self.now)

    def up(self, a: str, b: str) -> None:
        self.cut.discard(frozenset((a, b)))
        self.r[a].peer_up(b, self.now)
        self.r[b].peer_up(a, self.now)

    def drain(self, i: str) -> list[Effect]:
        fx = self.r[i].effects()
        for e in fx:
            if isinstance(e, Persist):
                self.disk[i].apply(e)
        return fx

    def run(self, max_rounds: int = 200) -> None:
        for _ in range(max_rounds):
            moved = False
            for i in self.ids:
                if i in self.dead:
                    continue
                for e in self.drain(i):
                    if isinstance(e, ReadPage):  # a state transfer reads its disk
                        self.answer_page(i, e)
                        moved = True
                        continue
                    if not isinstance(e, Send):
                        self.done[i].append(e)
                        continue
                    msg = m.decode(m.encode(e.message))
                    self.sent.append((i, e.peer, msg))
                    if frozenset((i, e.peer)) in self.cut or e.peer in self.dead:
                        continue
                    if self.hold(i, e.peer, msg):
                        self.held.append((i, e.peer, msg))
                        continue
                    self.deliver(i, e.peer, msg)
                    moved = True
            if not moved:
                return
        raise AssertionError("the replicas did not go quiet")

    def answer_page(self, i: str, read: ReadPage) -> None:
        """The page ``read`` asks for, from the disk, as a store reads it."""
        parts = self.configs[i].partitions
        rows = [
            o
            for (key, kind), o in sorted(self.disk[i].objects.items())
            if partition_of(key, parts) == read.partition
            and (read.after is None or (key, kind) > read.after)
        ]
        page = rows[: read.limit]
        totals = None
        if read.count:
            totals = {p: (0, 0) for p in read.count}
            for (key, _), o in self.disk[i].objects.items():
                p = partition_of(key, parts)
                if p in totals:
                    totals[p] = (totals[p][0] + 1, totals[p][1] + len(o.state_json))
        end = len(page) == len(rows)
        self.r[i].snapshot_page(read, page, end, self.now, totals=totals)

    def deliver(self, src: str, dst: str, msg: m.Message) -> None:
        """``dst`` receives ``msg``, once the objects it needs are loaded from its disk."""
        keys, _ = self.r[dst].wants_message(src, msg)
        self.load(dst, keys)
        self.r[dst].receive(src, msg, self.now)

    def load(self, i: str, keys: Iterable[str]) -> None:
        """Load ``keys`` into ``i``'s memory from its disk (what an adapter does before an
        input that needs objects the replica evicted)."""
        wanted = self.r[i].wants_keys(keys)
        if wanted:
            rows = [o for (k, _), o in sorted(self.disk[i].objects.items()) if k in wanted]
            self.r[i].admit(wanted, rows)

    def release(self) -> None:
        held, self.held = self.held, []
        for src, dst, msg in held:
            self.deliver(src, dst, msg)
        self.run()

    def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.now + seconds
        for _ in range(100_000):
            deadlines = [
                d for i in self.ids if i not in self.dead for d in [self.r[i].next_deadline()] if d
            ]
            nxt = min([d for d in deadlines if d <= end], default=None)
            if nxt is None:
                break
            self.now = max(self.now, nxt)
            for i in self.ids:
                if i not in self.dead:
                    self.r[i].tick(self.now)
            self.run()
        self.now = end

    def restart(self, i: str) -> None:
        self.r[i] = Replica(self.configs[i], i, self.disk[i].loaded(), now=self.now)
        self.dead.discard(i)

    def state(self, i: str, key: str) -> Any:
        """``i``'s state of ``key``, loaded from its disk if it is not in memory (a state
        transfer passes through the cache)."""
        self.load(i, [key])
        return self.r[i].value(key)

    def value(self, i: str, key: str) -> Any:
        obj = self.state(i, key)
        return None if obj is None else obj.value

    def of(self, i: str, kind: type) -> list[Any]:
        return [e for e in self.done[i] if isinstance(e, kind)]

    def messages(self, kind: type, src: str | None = None) -> list[m.Message]:
        return [x for s, _, x in self.sent if isinstance(x, kind) and src in (None, s)]


def add(elem: str, replica: str) -> Callable[[Any], Any]:
    return lambda s: s.add(replica, elem)


def inc(replica: str, n: int = 1) -> Callable[[Any], Any]:
    return lambda c: c.increment(replica, n)


def key_homed(ring: Ring, pred: Callable[[tuple[str, ...]], bool], prefix: str = "k") -> str:
    for i in range(10_000):
        key = f"{prefix}{i}"
        if pred(ring.homes_of(key)):
            return key
    raise AssertionError("no such key")


def ring_of(w: Wire, ids: Iterable[str] | None = None) -> Ring:
    c = w.config
    return Ring(ids or w.ids, n=c.n, partitions=c.partitions, vnodes=c.vnodes)


def kinds(fx: Iterable[Effect]) -> list[str]:
    out = []
    for e in fx:
        out.append(f"Send:{type(e.message).__name__}" if isinstance(e, Send) else type(e).__name__)
    return out


# -- writes --------------------------------------------------------------------------------
def test_write_w1_is_done_locally_and_effects_come_in_order() -> None:
    w = Wire("ABC", n=3, w=1)
    w.connect()
    w.sent.clear()
    w.r["A"].local_update(1, "cart", "orset", add("milk", "A"), w.now)
    fx = w.drain("A")
    assert kinds(fx) == ["Persist", "Changed", "WriteDone", "Send:Push", "Send:Push"]
    persist = fx[0]
    assert isinstance(persist, Persist)
    p = partition_of("cart", 64)
    assert [(e.origin, e.partition, e.seq, e.key) for e in persist.log] == [("A", p, 1, "cart")]
    assert persist.summaries == ((p, {"vv": {"A": 1}, "cloud": []}),)
    done = fx[2]
    assert isinstance(done, WriteDone) and done.result.acked_by == ("A",)
    assert sorted(e.peer for e in fx if isinstance(e, Send)) == ["B", "C"]


def test_write_waits_for_w_acks_then_reports_who_acked() -> None:
    w = Wire("ABC", n=3, w=3)
    w.connect()
    w.r["A"].local_update(1, "cart", "orset", add("milk", "A"), w.now)
    w.run()
    (done,) = w.of("A", WriteDone)
    assert done.result.acks == 3 and done.result.required == 3
    assert sorted(done.result.acked_by) == ["A", "B", "C"] and done.result.hinted == ()
    assert all(w.value(i, "cart") == frozenset({"milk"}) for i in "ABC")
    # the homes persisted before they acked: their disks hold the entry
    assert all(len(w.disk[i].log) == 1 for i in "BC")


def test_receiver_persists_before_it_acks() -> None:
    w = Wire("AB", n=2)
    w.connect()
    w.r["A"].local_update(1, "c", "gcounter", inc("A"), w.now)
    push = next(e for e in w.drain("A") if isinstance(e, Send))
    w.r["B"].receive("A", m.decode(m.encode(push.message)), w.now)
    assert kinds(w.r["B"].effects()) == ["Persist", "Changed", "Send:Ack"]


def test_write_fails_at_the_deadline_with_the_acks_that_came() -> None:
    w = Wire("ABC", n=3, w=3, write_timeout=2.0)
    w.connect()
    w.hold = lambda src, dst, msg: dst == "C" and isinstance(msg, m.Push)
    w.r["A"].local_update(7, "cart", "orset", add("milk", "A"), w.now)
    w.run()
    assert w.of("A", WriteDone) == [] and w.of("A", WriteFailed) == []
    assert w.r["A"].next_deadline() == pytest.approx(2.0)
    w.advance(2.0)
    (failed,) = w.of("A", WriteFailed)
    assert failed.op_id == 7 and failed.result.acks == 2 and "timed out" in failed.reason
    assert sorted(failed.result.acked_by) == ["A", "B"]
    assert w.value("A", "cart") == frozenset({"milk"})  # durable here anyway
    w.release()  # the late ack changes nothing
    assert len(w.of("A", WriteFailed)) == 1 and w.of("A", WriteDone) == []


def test_write_fails_fast_when_no_counting_replica_is_reachable() -> None:
    w = Wire("ABC", n=3, w=2)  # never connected: offline
    w.r["A"].local_update(1, "k", "gcounter", inc("A"), 0.0)
    fx = w.drain("A")
    assert kinds(fx) == ["Persist", "Changed", "WriteFailed"]
    assert isinstance(fx[2], WriteFailed) and fx[2].result.acked_by == ("A",)
    assert w.value("A", "k") == 1


def test_pushes_to_one_peer_are_coalesced_and_one_ack_covers_every_op() -> None:
    w = Wire("AB", n=2, w=2)
    w.connect()
    w.sent.clear()
    for op in range(10):
        w.r["A"].local_update(op, f"key{op}", "gcounter", inc("A"), w.now)
    w.run()
    pushes = w.messages(m.Push, "A")
    assert len(pushes) == 1 and len(pushes[0].entries) == 10
    assert len(w.messages(m.Ack, "B")) == 1
    assert sorted(d.op_id for d in w.of("A", WriteDone)) == list(range(10))
    assert all(d.result.acked_by == ("A", "B") for d in w.of("A", WriteDone))


def test_coalesced_pushes_are_capped_at_ae_batch_entries() -> None:
    w = Wire("AB", n=2, w=1, ae_batch=4)
    w.connect()
    w.sent.clear()
    for op in range(10):
        w.r["A"].local_update(op, "k", "gcounter", inc("A"), w.now)
    w.run()
    assert [len(p.entries) for p in w.messages(m.Push, "A")] == [4, 4, 2]
    assert w.value("B", "k") == 10


def test_kind_mismatch_and_fn_errors_change_nothing() -> None:
    w = Wire("AB", n=2)
    w.connect()
    r = w.r["A"]
    r.local_update(1, "cart", "orset", add("milk", "A"), w.now)
    w.run()
    before_status = r.status()
    before_deadline = r.next_deadline()
    with pytest.raises(TypeError, match="holds an orset"):
        r.local_update(2, "cart", "gcounter", inc("A"), w.now)
    with pytest.raises(TypeError):
        r.local_update(3, "cart", "orset", lambda s: s.add("A", object()), w.now)
    with pytest.raises(ZeroDivisionError):
        r.local_update(4, "cart", "orset", lambda s: 1 / 0, w.now)
    with pytest.raises(TypeError, match="must return"):
        r.local_update(5, "cart", "orset", lambda s: None, w.now)
    with pytest.raises(ValueError, match="unknown CRDT kind"):
        r.local_update(6, "x", "nope", inc("A"), w.now)
    with pytest.raises(ValueError, match="impossible"):
        r.local_update(7, "cart", "orset", add("x", "A"), w.now, w=5)
    with pytest.raises(TypeError):
        r.local_update(8, "cart", "orset", add("x", "A"), w.now, timeout="1")
    with pytest.raises(ValueError, match="LOCAL_QUORUM needs site"):  # the caller's error
        r.local_update(9, "cart", "orset", add("x", "A"), w.now, w="LOCAL_QUORUM")
    with pytest.raises(TypeError):
        r.local_update(10, 42, "orset", add("x", "A"), w.now)  # type: ignore[arg-type]
    for bad_now in ("now", float("nan"), None):
        with pytest.raises(TypeError, match="now"):
            r.local_update(11, "cart", "orset", add("x", "A"), bad_now)  # type: ignore[arg-type]
    assert r.effects() == []
    assert r.status() == before_status
    assert w.value("A", "cart") == frozenset({"milk"})
    assert w.value("A", "x") is None and r.next_deadline() == before_deadline


def test_a_pending_op_id_cannot_be_reused() -> None:
    w = Wire("AB", n=2, w=2)
    w.connect()
    w.hold = lambda *a: True
    w.r["A"].local_update(1, "k", "gcounter", inc("A"), w.now)
    w.run()
    with pytest.raises(LocalProtocolError, match="pending"):
        w.r["A"].local_update(1, "k", "gcounter", inc("A"), w.now)


def test_duplicate_push_is_applied_once_and_acked_again() -> None:
    w = Wire("AB", n=2)
    w.connect()
    w.r["A"].local_update(1, "c", "gcounter", inc("A", 5), w.now)
    push = next(e for e in w.drain("A") if isinstance(e, Send)).message
    for _ in range(3):
        w.r["B"].receive("A", push, w.now)
    fx = w.r["B"].effects()
    assert kinds(fx) == ["Persist", "Changed", "Send:Ack", "Send:Ack", "Send:Ack"]
    assert w.value("B", "c") == 5 and w.r["B"].status()["log_size"] == 1


# -- sloppy quorum and hinted handoff -----------------------------------------------------------
def test_sloppy_write_goes_to_a_fallback_which_hands_the_hint_off() -> None:
    w = Wire("ABCD", n=3, w=3)
    w.connect()
    key = key_homed(ring_of(w), lambda h: h[0] == "A" and "D" not in h)
    home = [h for h in ring_of(w).homes_of(key) if h != "A"][-1]
    other = ({"B", "C"} - {home}).pop()
    w.dead.add(home)
    w.down("A", home)
    w.down("D", home)
    w.down(other, home)
    w.r["A"].local_update(1, key, "orset", add("x", "A"), w.now)
    w.run()
    (done,) = w.of("A", WriteDone)
    assert done.result.hinted == ("D",) and sorted(done.result.acked_by) == sorted(
        ["A", other, "D"]
    )
    assert w.r["D"].status()["hints"] == {home: 1}
    assert w.value("D", key) is None  # a hint is held, not applied
    assert len(w.disk["D"].hints) == 1
    w.restart(home)
    w.up("D", home)
    w.run()
    assert w.value(home, key) == frozenset({"x"})
    assert w.r["D"].status()["hints"] == {} and w.disk["D"].hints == {}


def test_strict_write_uses_no_fallback() -> None:
    w = Wire("ABCD", n=3, w=3, strict=True)
    w.connect()
    key = key_homed(ring_of(w), lambda h: h[0] == "A" and "D" not in h)
    home = ring_of(w).homes_of(key)[2]
    w.down("A", home)
    w.sent.clear()
    w.r["A"].local_update(1, key, "orset", add("x", "A"), w.now)
    w.run()
    (failed,) = w.of("A", WriteFailed)
    assert failed.result.acks == 2 and failed.result.hinted == ()
    assert [dst for _, dst, x in w.sent if isinstance(x, m.Push)] == [ring_of(w).homes_of(key)[1]]


def test_strict_coordinator_that_is_not_home_does_not_count_itself() -> None:
    w = Wire("ABCD", n=3, w=1, strict=True)
    w.connect()
    key = key_homed(ring_of(w), lambda h: "A" not in h)
    w.r["A"].local_update(1, key, "gcounter", inc("A"), w.now)
    fx = w.drain("A")
    assert not any(isinstance(e, WriteDone) for e in fx)
    w.done["A"].extend(e for e in fx if not isinstance(e, Send))
    for e in fx:
        if isinstance(e, Send):
            w.r[e.peer].receive("A", e.message, w.now)
    w.run()
    (done,) = w.of("A", WriteDone)
    assert "A" not in done.result.acked_by and done.result.acks == 1


def test_non_home_coordinator_keeps_hints_until_every_home_has_the_entry() -> None:
    w = Wire("ABCD", n=3, w=1)
    w.connect()
    key = key_homed(ring_of(w), lambda h: "A" not in h)
    homes = ring_of(w).homes_of(key)
    w.down("A", homes[0])
    w.r["A"].local_update(1, key, "gcounter", inc("A", 3), w.now)
    w.run()
    assert w.r["A"].status()["hints"] == {homes[0]: 1}
    w.up("A", homes[0])
    w.run()
    assert w.r["A"].status()["hints"] == {}
    assert all(w.value(h, key) == 3 for h in homes)


def test_own_hints_of_a_non_home_coordinator_never_expire() -> None:
    w = Wire("ABCD", n=3, w=1, hint_window=5.0, hint_max_per_target=1)
    w.connect()
    key = key_homed(ring_of(w), lambda h: "A" not in h)
    homes = ring_of(w).homes_of(key)
    for h in homes:
        w.down("A", h)
    for i in range(3):
        w.r["A"].local_update(i, key, "gcounter", inc("A"), w.now)
    w.run()
    assert w.r["A"].status()["hints"] == {h: 3 for h in homes}
    w.advance(60.0)
    assert w.r["A"].status()["hints"] == {h: 3 for h in homes}
    for h in homes:
        w.up("A", h)
    w.run()
    assert w.r["A"].status()["hints"] == {} and w.disk["A"].hints == {}
    assert all(w.value(h, key) == 3 for h in homes)


def test_relay_is_preferred_as_fallback() -> None:
    w = Wire("ABCDE", n=3, w=2)
    w.connect()
    ring = ring_of(w)
    key = key_homed(ring, lambda h: h[0] == "A" and "E" not in h)
    while ring.walk(partition_of(key, 64))[3] == "E":  # E must not be the ring's next choice
        key = key_homed(ring, lambda h: h[0] == "A" and "E" not in h, prefix=key + "-")
    w.r["A"].peer_down("E", w.now)
    w.r["A"].peer_up("E", w.now, relay=True)
    home = ring.homes_of(key)[1]
    w.down("A", home)
    w.sent.clear()
    w.r["A"].local_update(1, key, "gcounter", inc("A"), w.now)
    w.run()
    pushes = [(dst, x.hint_for) for s, dst, x in w.sent if isinstance(x, m.Push) and s == "A"]
    assert ("E", home) in pushes


def test_hints_expire_after_the_window_and_are_bounded_per_target() -> None:
    w = Wire("ABCD", n=3, w=1, hint_window=10.0, hint_max_per_target=3)
    w.connect()
    ring = ring_of(w)
    keys = [
        k
        for k in (f"h{i}" for i in range(5000))
        if (h := ring.homes_of(k))[0] == "A" and "C" in h and "D" not in h
    ][:5]
    for x in "ABD":
        w.down(x, "C")
    w.dead.add("C")
    for i, key in enumerate(keys):
        w.r["A"].local_update(i, key, "gcounter", inc("A"), w.now)
        w.run()
    assert w.r["D"].status()["hints"] == {"C": 3}  # the bound: the two oldest went first
    assert w.r["D"].status()["hints_dropped"] == 2
    assert sorted(h.entry.key for h in w.disk["D"].hints.values()) == sorted(keys[2:])
    w.advance(9.0)
    assert w.r["D"].status()["hints"] == {"C": 3}
    w.advance(1.5)
    assert w.r["D"].status()["hints"] == {}
    assert w.disk["D"].hints == {}


# -- reads -----------------------------------------------------------------------------------
def test_read_joins_replies_and_repairs_the_stale_replica() -> None:
    w = Wire("ABC", n=3, w=1, anti_entropy_interval=0)
    w.connect()
    w.cut.add(frozenset(("A", "C")))  # A's push to C is lost, the link stays "up"
    w.r["A"].local_update(1, "cart", "orset", add("milk", "A"), w.now)
    w.run()
    w.cut.clear()
    assert w.value("C", "cart") is None
    w.r["C"].local_update(2, "cart", "orset", add("eggs", "C"), w.now)
    w.cut.add(frozenset(("C", "A")))
    w.cut.add(frozenset(("C", "B")))
    w.run()
    w.cut.clear()
    w.r["B"].local_read(3, "cart", w.now, r=3)
    w.run()
    (done,) = w.of("B", ReadDone)
    assert done.state is not None and done.state.value == frozenset({"milk", "eggs"})
    assert done.replies == 3 and sorted(done.repaired) == ["A", "C"]
    assert all(w.value(i, "cart") == frozenset({"milk", "eggs"}) for i in "ABC")
    assert w.disk["C"].objects[("cart", "orset")].state == w.r["B"].value("cart").to_dict()  # type: ignore[union-attr]


def test_read_asks_only_the_replicas_r_needs_and_repairs_them() -> None:
    w = Wire("ABC", n=3, w=1, anti_entropy_interval=0)
    w.connect()
    key = key_homed(ring_of(w), lambda h: h == ("A", "B", "C"))
    w.cut.add(frozenset(("A", "B")))
    w.cut.add(frozenset(("A", "C")))
    w.r["A"].local_update(1, key, "gcounter", inc("A", 2), w.now)
    w.run()
    w.cut.clear()
    w.sent.clear()
    w.r["A"].local_read(2, key, w.now, r=2)
    w.run()
    (done,) = w.of("A", ReadDone)
    assert done.replies == 2 and done.state is not None and done.state.value == 2
    assert done.repaired == ("B",)  # the first other home in preference order: B
    assert {dst for _, dst, _ in w.sent} == {"A", "B"}  # C was not asked
    assert w.value("B", key) == 2 and w.value("C", key) is None


def test_a_read_replaces_a_replier_that_goes_down() -> None:
    w = Wire("ABC", n=3, w=1, anti_entropy_interval=0)
    w.connect()
    key = key_homed(ring_of(w), lambda h: h == ("A", "B", "C"))
    w.r["A"].local_update(1, key, "gcounter", inc("A", 2), w.now)
    w.run()
    w.hold = lambda src, dst, msg: dst == "B" and isinstance(msg, m.ReadDigest)
    w.r["A"].local_read(2, key, w.now, r=2)
    w.run()
    assert w.of("A", ReadDone) == [] and len(w.held) == 1
    w.down("A", "B")  # asked, then gone: C is asked instead
    w.hold = lambda *a: False
    w.run()
    (done,) = w.of("A", ReadDone)
    assert done.replies == 2 and done.state is not None and done.state.value == 2
    assert [dst for _, dst, x in w.sent if isinstance(x, m.ReadDigest)] == ["B", "C"]


def test_read_fails_at_the_deadline_with_what_came() -> None:
    w = Wire("ABC", n=3, read_timeout=1.0)
    w.connect()
    w.r["A"].local_update(1, "k", "gcounter", inc("A"), w.now)
    w.run()
    w.hold = lambda src, dst, msg: isinstance(msg, m.ReadDigestResp)
    w.r["A"].local_read(2, "k", w.now, r=3)
    w.run()
    w.advance(1.0)
    (failed,) = w.of("A", ReadFailed)
    assert failed.replies == 1 and failed.required == 3 and "timed out" in failed.reason
    assert failed.state is not None and failed.state.value == 1


def test_strict_read_with_a_home_down_fails_fast() -> None:
    w = Wire("ABCD", n=3, strict=True)
    w.connect()
    key = key_homed(ring_of(w), lambda h: h[0] == "A" and "D" not in h)
    for h in ring_of(w).homes_of(key)[1:]:
        w.down("A", h)
    w.r["A"].local_read(1, key, w.now, kind="gcounter", r=2)
    w.run()
    (failed,) = w.of("A", ReadFailed)
    assert failed.replies == 1 and failed.state is None


def test_read_of_a_missing_key_is_none() -> None:
    w = Wire("AB", n=2)
    w.connect()
    w.r["A"].local_read(1, "nothing", w.now, kind="orset", r=2)
    w.run()
    (done,) = w.of("A", ReadDone)
    assert done.state is None and done.replies == 2 and done.repaired == ()


def test_bad_read_reply_is_refused_and_changes_nothing() -> None:
    w = Wire("AB", n=2)
    w.connect()
    w.r["A"].local_update(1, "k", "gcounter", inc("A"), w.now)
    w.run()
    w.hold = lambda src, dst, msg: isinstance(msg, m.ReadDigest)
    w.r["A"].local_read(2, "k", w.now, r=2)
    w.run()
    (_, _, req) = w.held[0]
    assert isinstance(req, m.ReadDigest)
    bad_states: list[dict[str, Any]] = [
        {"type": "gcounter", "v": 1, "counts": {"A": -1}},
        crdt.new("orset").to_dict(),  # the wrong kind for k
    ]
    for state in bad_states:
        with pytest.raises(RemoteProtocolError):
            reply = m.ReadResp(req_id=req.req_id, key="k", kind="gcounter", state=state)
            w.r["A"].receive("B", reply, w.now)
    assert w.r["A"].effects() == [] and w.r["A"].status()["pending_reads"] == 1


# -- receive: validation ----------------------------------------------------------------------
def _entry(key: str, delta: dict[str, Any], *, seq: int = 1, kind: str | None = None) -> m.Entry:
    return m.Entry(
        origin="B",
        partition=partition_of(key, 64),
        seq=seq,
        key=key,
        kind=kind or delta["type"],
        delta_json=json.dumps(delta),
    )


def test_bad_push_is_refused_whole_and_changes_nothing() -> None:
    r = Replica(ReplicaConfig(n=2), "A")
    good = _entry("k", crdt.new("gcounter").increment("B", 1).to_dict())
    bad_entries = [
        _entry("k2", {"type": "gcounter", "v": 1, "counts": {"B": "x"}}, seq=2),
        _entry("k2", {"type": "teleport"}, seq=2),
        _entry("k2", crdt.new("orset").to_dict(), seq=2, kind="gcounter"),
        m.Entry(
            origin="B",
            partition=(partition_of("k2", 64) + 1) % 64,
            seq=2,
            key="k2",
            kind="gcounter",
            delta_json=good.delta_json,
        ),
        m.Entry(
            origin="B", partition=99, seq=2, key="k2", kind="gcounter", delta_json=good.delta_json
        ),
        m.Entry(  # a seq past a signed 64-bit column
            origin="B",
            partition=partition_of("k2", 64),
            seq=2**63,
            key="k2",
            kind="gcounter",
            delta_json=good.delta_json,
        ),
        m.Entry(  # an empty key
            origin="B",
            partition=partition_of("", 64),
            seq=2,
            key="",
            kind="gcounter",
            delta_json=good.delta_json,
        ),
        m.Entry(  # the delta's text is not JSON
            origin="B",
            partition=partition_of("k2", 64),
            seq=2,
            key="k2",
            kind="gcounter",
            delta_json='{"type": "gcounter", "v": 1,',
        ),
        m.Entry(  # JSON, but not an object
            origin="B",
            partition=partition_of("k2", 64),
            seq=2,
            key="k2",
            kind="gcounter",
            delta_json="[1, 2]",
        ),
    ]
    for bad in bad_entries:
        with pytest.raises(RemoteProtocolError) as info:
            r.receive("B", m.Push(push_id=1, entries=[good, bad]), 0.0)
        assert info.value.peer == "B"
        assert r.effects() == [] and r.value("k") is None and r.status()["log_size"] == 0


def test_a_delta_spelled_otherwise_is_logged_in_the_compact_form() -> None:
    r = Replica(ReplicaConfig(n=2), "A")
    delta = crdt.new("gcounter").increment("B", 3).to_dict()
    compact = json.dumps(delta, separators=(",", ":"))
    spaced = _entry("k", delta)  # json.dumps puts spaces after separators
    assert spaced.delta_json != compact
    r.receive("B", m.Push(push_id=1, entries=[spaced, _entry("k", delta, seq=2)]), 0.0)
    logged = [e.delta_json for fx in r.effects() if isinstance(fx, Persist) for e in fx.log]
    assert logged == [compact, compact]
    state = r.value("k")
    assert state is not None and state.value == 3


def test_a_batch_is_joined_per_key_and_merged_once_as_its_deltas_one_by_one() -> None:
    src = crdt.new("orset")
    d1 = src.add("B", "x").to_dict()
    d2 = src.remove("x").to_dict()
    d3 = src.add("B", "y").to_dict()
    e1, e2, e3 = (_entry("k", d, seq=i) for i, d in enumerate((d1, d2, d3), 1))
    r = Replica(ReplicaConfig(n=2), "A")
    r.receive("B", m.Push(push_id=1, entries=[e1]), 0.0)
    r.effects()
    # e1 again (known), e2 twice in the batch (a remove that must beat e1's add), then e3.
    r.receive("B", m.Push(push_id=2, entries=[e1, e2, e3, e2]), 1.0)
    fx = r.effects()
    logged = [(e.origin, e.seq) for p in fx if isinstance(p, Persist) for e in p.log]
    assert logged == [("B", 2), ("B", 3)]
    assert [e.key for e in fx if isinstance(e, Changed)] == ["k"]
    state = r.value("k")
    assert state is not None and state.value == frozenset({"y"}) == src.value
    assert r.status()["log_size"] == 3


def test_an_empty_key_is_refused_locally_before_anything_changes() -> None:
    r = Replica(ReplicaConfig(n=1), "A")
    with pytest.raises(ValueError, match="empty"):
        r.local_update(1, "", "gcounter", lambda c: c.increment("A"), 0.0)
    with pytest.raises(ValueError, match="empty"):
        r.local_read(2, "", 0.0)
    assert r.effects() == [] and r.status()["log_size"] == 0


def test_transport_messages_are_not_for_the_engine() -> None:
    r = Replica(ReplicaConfig(), "A")
    # The peer sent it on a link after its handshake: the peer broke the protocol.
    with pytest.raises(RemoteProtocolError, match="transport") as info:
        r.receive("B", m.Ping(), 0.0)
    assert info.value.peer == "B" and r.effects() == []
    with pytest.raises(LocalProtocolError):
        r.receive("A", m.Ack(ids=[1]), 0.0)
    with pytest.raises(LocalProtocolError):
        r.peer_up("A", 0.0)


def test_bad_summary_and_snapshot_are_refused() -> None:
    r = Replica(ReplicaConfig(n=2), "A")
    r.peer_up("B", 0.0)
    r.effects()
    with pytest.raises(RemoteProtocolError, match="out of range"):
        r.receive("B", m.Summary(parts={64: m.Ctx()}), 0.0)
    obj = m.SnapObject(key="k", kind="gcounter", state_json=crdt.new("orset").to_json())
    ask_transfer(r, "B", [partition_of("k", 64)], 0.0)
    with pytest.raises(RemoteProtocolError, match="is a orset"):
        r.receive(
            "B", m.SnapshotChunk(batch_id=1, partition=partition_of("k", 64), objects=[obj]), 0.0
        )
    assert r.effects() == []


# -- anti-entropy, compaction, state transfer --------------------------------------------------
def test_partitioned_writes_converge_by_anti_entropy_then_only_summaries_flow() -> None:
    w = Wire("ABC", n=3, w=1, anti_entropy_interval=5.0, ae_batch=7)
    w.connect()
    w.down("A", "B")
    w.down("A", "C")
    for i in range(30):
        w.r["A"].local_update(i, f"a{i}", "gcounter", inc("A"), w.now)
        w.r["B"].local_update(i, f"b{i}", "gcounter", inc("B"), w.now)
    w.run()
    assert w.value("B", "a0") is None
    w.up("A", "B")
    w.up("A", "C")
    w.run()
    for i in range(30):
        assert all(w.value(x, f"a{i}") == 1 and w.value(x, f"b{i}") == 1 for x in "ABC")
    deltas = w.messages(m.Deltas)
    assert deltas and all(len(d.entries) <= 7 for d in deltas)
    w.advance(5.0)  # digests reach everyone: compaction, then quiet
    w.sent.clear()
    w.advance(20.0)
    assert w.sent and {type(x) for _, _, x in w.sent} == {m.Digest}


def test_ae_flow_control_keeps_at_most_max_inflight_batches() -> None:
    w = Wire("AB", n=2, anti_entropy_interval=5.0, ae_batch=2, ae_max_inflight=2)
    w.r["A"].peer_up("B", 0.0)
    for i in range(20):
        w.r["A"].local_update(i, "k", "gcounter", inc("A"), 0.0)
    w.drain("A")
    w.r["B"].peer_up("A", 0.0)
    digest = next(e for e in w.drain("B") if isinstance(e, Send)).message
    assert isinstance(digest, m.Digest)
    w.r["A"].receive("B", digest, 0.0)  # the roots differ: A answers its partition digests
    parts = next(e for e in w.drain("A") if isinstance(e, Send)).message
    assert isinstance(parts, m.PartDigests)
    w.r["B"].receive("A", parts, 0.0)  # B: a summary of the partitions that differ
    summary = next(e for e in w.drain("B") if isinstance(e, Send)).message
    assert isinstance(summary, m.Summary) and len(summary.parts) == 1
    w.r["A"].receive("B", summary, 0.0)
    first = [e.message for e in w.drain("A") if isinstance(e, Send)]
    assert isinstance(first[-1], m.Summary)  # A's own summary, in reply
    first = first[:-1]
    assert [type(x).__name__ for x in first] == ["Deltas", "Deltas"]
    w.r["B"].receive("A", first[0], 0.0)
    ack = [e.message for e in w.drain("B") if isinstance(e, Send)][-1]
    assert isinstance(ack, m.Ack)
    w.r["A"].receive("B", ack, 0.0)
    assert [type(e.message).__name__ for e in w.drain("A") if isinstance(e, Send)] == ["Deltas"]
    w.r["B"].receive("A", first[1], 0.0)
    w.run()
    assert w.value("B", "k") == 20


def test_log_is_compacted_once_every_home_reported_and_keys_are_checkpointed() -> None:
    w = Wire("ABC", n=3, anti_entropy_interval=5.0)
    w.connect()
    for i in range(5):
        w.r["A"].local_update(i, f"k{i}", "gcounter", inc("A"), w.now)
    w.run()
    assert w.r["A"].status()["log_size"] == 5
    w.advance(5.0)
    assert all(w.r[i].status()["log_size"] == 0 for i in "ABC")
    compacts = [p for p in w.done["A"] if isinstance(p, Persist) and p.compact]
    assert compacts
    assert {o.key for p in compacts for o in p.objects} == {f"k{i}" for i in range(5)}
    assert w.disk["A"].log == {}
    w.restart("A")  # checkpoints carry what the compacted log held
    assert all(w.value("A", f"k{i}") == 1 for i in range(5))


def test_no_compaction_while_a_home_never_reported() -> None:
    w = Wire("ABC", n=3, anti_entropy_interval=5.0)
    w.connect([("A", "B")])
    w.cut.add(frozenset(("A", "C")))
    w.r["A"].peer_up("C", w.now)  # A knows C (a home of everything) but hears nothing from it
    w.r["A"].local_update(1, "k", "gcounter", inc("A"), w.now)
    w.run()
    w.advance(20.0)
    assert sorted(w.r["A"].homes("k")) == ["A", "B", "C"]
    assert w.r["A"].status()["log_size"] == 1
    w.cut.clear()
    w.r["C"].peer_up("A", w.now)
    w.run()
    w.advance(5.0)
    assert w.r["A"].status()["log_size"] == 0
    assert w.value("C", "k") == 1


def test_lost_ae_batches_time_out_and_the_next_round_resends() -> None:
    w = Wire("AB", n=2, anti_entropy_interval=5.0, write_timeout=1.0)
    w.cut.add(frozenset(("A", "B")))
    w.r["A"].peer_up("B", 0.0)
    for i in range(3):
        w.r["A"].local_update(i, "k", "gcounter", inc("A"), 0.0)
    w.run()  # the pushes and A's summary are lost
    w.cut.clear()
    w.r["B"].peer_up("A", 0.0)
    w.hold = lambda src, dst, msg: isinstance(msg, m.Deltas)
    w.run()
    assert len(w.held) == 1
    w.held.clear()  # lost
    w.hold = lambda *a: False
    w.advance(6.0)
    assert w.value("B", "k") == 3


def test_peer_down_fails_pending_writes_that_can_no_longer_reach_w() -> None:
    w = Wire("AB", n=2, w=2)
    w.connect()
    w.hold = lambda *a: True
    w.r["A"].local_update(1, "k", "gcounter", inc("A"), w.now)
    w.run()
    assert w.of("A", WriteFailed) == []
    w.down("A", "B")
    w.run()
    (failed,) = w.of("A", WriteFailed)
    assert failed.result.acked_by == ("A",) and "reachable" in failed.reason


def test_peer_behind_the_compacted_log_gets_a_state_transfer() -> None:
    w = Wire("ABC", n=3, anti_entropy_interval=5.0, snapshot_chunk=2)
    w.connect([("A", "B")])
    for i in range(5):
        w.r["A"].local_update(i, f"k{i}", "orset", add("x", "A"), w.now)
    w.run()
    w.advance(5.0)
    assert w.r["A"].status()["log_size"] == 0  # A, B: the only homes they know
    w.sent.clear()
    w.connect([("A", "C")])
    w.advance(1.0)
    chunks = [x for s, d, x in w.sent if isinstance(x, m.SnapshotChunk) and d == "C"]
    parts = {c.partition for c in chunks}
    assert parts == {partition_of(f"k{i}", 64) for i in range(5)}
    for part in parts:
        mine = [c for c in chunks if c.partition == part]
        assert mine[-1].last and mine[-1].summary is not None
        assert all(not c.last and c.summary is None for c in mine[:-1])
        assert all(len(c.objects) <= 2 for c in mine)
    assert all(w.value("C", f"k{i}") == frozenset({"x"}) for i in range(5))
    assert all(w.r["C"].summary(p) == w.r["A"].summary(p) for p in range(64))
    assert w.r["C"].status()["log_size"] == 0


def _transfer_to_c_acks_held(w: Wire, count: int) -> tuple[int, list[str]]:
    """A and B compact ``count`` gcounters of one partition, then C connects to A with its
    acks held: C gets a state transfer of that partition, chunk by chunk. The partition and
    its keys."""
    part = partition_of(key_homed(ring_of(w), lambda h: True, "s0-"), 64)
    same = [k for k in (f"x{i}" for i in range(20_000)) if partition_of(k, 64) == part][:count]
    _compact_then_c_connects(w, same)
    return part, same


def _compact_then_c_connects(w: Wire, keys: Iterable[str]) -> None:
    """A and B compact a gcounter at each of ``keys``, then C connects to A with its acks to
    A held: C gets a state transfer of their partitions."""
    w.connect([("A", "B")])
    for i, key in enumerate(keys):
        w.r["A"].local_update(i, key, "gcounter", inc("A"), w.now)
    w.run()
    w.advance(5.0)
    w.hold = lambda src, dst, msg: isinstance(msg, m.Ack) and dst == "A" and src == "C"
    w.sent.clear()
    w.connect([("A", "C")])


def test_last_snapshot_chunk_waits_for_the_others_to_be_acked() -> None:
    w = Wire("ABC", n=3, anti_entropy_interval=5.0, snapshot_chunk=1, ae_max_inflight=8)
    part, same = _transfer_to_c_acks_held(w, 3)
    chunks = [x for s, d, x in w.sent if isinstance(x, m.SnapshotChunk) and x.partition == part]
    assert len(chunks) == 2 and not any(c.last for c in chunks)  # the third waits
    w.hold = lambda *a: False
    w.release()
    chunks = [x for s, d, x in w.sent if isinstance(x, m.SnapshotChunk) and x.partition == part]
    assert len(chunks) == 3 and chunks[-1].last and len(chunks[-1].objects) == 1
    assert all(w.value("C", k) == 1 for k in same)


def test_the_transfers_of_several_partitions_fill_the_window() -> None:
    """A partition's summary-carrying chunk waits only for its own partition's chunks: with
    C's acks held, the one-chunk transfers of four partitions are all in flight at once (the
    window), where each used to wait for the one before it to be acknowledged (a round trip
    per partition: a new peer's bootstrap ran at the receiver's commit latency)."""
    w = Wire("ABC", n=3, anti_entropy_interval=5.0, ae_max_inflight=4)
    keys: dict[int, str] = {}  # one key in each of six partitions
    for k in (f"y{i}" for i in range(1000)):
        keys.setdefault(partition_of(k, 64), k)
        if len(keys) == 6:
            break
    _compact_then_c_connects(w, keys.values())
    chunks = [x for s, d, x in w.sent if isinstance(x, m.SnapshotChunk) and s == "A"]
    assert len(chunks) == 4 and all(c.last and len(c.objects) == 1 for c in chunks)
    assert len({c.partition for c in chunks}) == 4
    w.hold = lambda *a: False
    w.release()
    assert all(w.value("C", k) == 1 for k in keys.values())
    assert all(w.r["C"].summary(p) == w.r["A"].summary(p) for p in keys)


def test_a_partition_whose_last_chunk_waits_lets_the_next_partitions_fill_the_window() -> None:
    """A partition's summary-carrying chunk waiting for its own partition's acks does not
    hold back the partitions queued after it: with C's acks held and partitions of two
    chunks, the first chunks of four partitions are all in flight at once (the window),
    where the second partition used to wait until the first's last chunk had gone (a round
    trip, the receiver's commit included, per partition of a bootstrap)."""
    w = Wire("ABC", n=3, anti_entropy_interval=5.0, snapshot_chunk=1, ae_max_inflight=4)
    by_part: dict[int, list[str]] = {}  # two keys in each of six partitions
    for k in (f"y{i}" for i in range(5000)):
        got = by_part.setdefault(partition_of(k, 64), [])
        if len(got) < 2:
            got.append(k)
        full = [ks for ks in by_part.values() if len(ks) == 2]
        if len(full) == 6:
            break
    keys = [k for ks in by_part.values() if len(ks) == 2 for k in ks]
    _compact_then_c_connects(w, keys)
    chunks = [x for s, d, x in w.sent if isinstance(x, m.SnapshotChunk) and s == "A"]
    assert len(chunks) == 4 and not any(c.last for c in chunks)
    assert len({c.partition for c in chunks}) == 4
    w.hold = lambda *a: False
    w.release()
    assert all(w.value("C", k) == 1 for k in keys)
    parts = {partition_of(k, 64) for k in keys}
    assert all(w.r["C"].summary(p) == w.r["A"].summary(p) for p in parts)
    last = [x for s, d, x in w.sent if isinstance(x, m.SnapshotChunk) and x.last]
    assert {c.partition for c in last} == parts  # each partition's summary went once
    assert len(last) == len(parts)


def test_a_slow_receiver_that_still_acknowledges_keeps_its_state_transfer() -> None:
    # C acknowledges each chunk late (0.8 write_timeout after the last ack) while four are in
    # flight: the oldest chunk out is overdue, but the round makes progress, so it must not
    # be abandoned and sent again from the start (under load that restarted a big transfer
    # for ever).
    w = Wire("ABC", n=3, anti_entropy_interval=5.0, snapshot_chunk=1, ae_max_inflight=4)
    timeout = w.config.write_timeout
    part, same = _transfer_to_c_acks_held(w, 10)
    for _ in range(40):
        w.advance(0.8 * timeout, step=0.1)
        if not w.held:
            break
        src, dst, msg = w.held.pop(0)  # one ack at a time, late
        w.deliver(src, dst, msg)
        w.run()
    chunks = [x for s, d, x in w.sent if isinstance(x, m.SnapshotChunk) and x.partition == part]
    sent = [o.key for c in chunks for o in c.objects]
    assert sorted(sent) == sorted(same), "a chunk was sent again: the round was restarted"
    assert chunks[-1].last
    w.hold = lambda *a: False
    w.release()
    assert all(w.value("C", k) == 1 for k in same)


def test_converged_peers_exchange_one_digest_each_per_round_and_no_reply() -> None:
    w = Wire("AB", n=2, anti_entropy_interval=5.0)
    w.connect()
    w.sent.clear()
    w.advance(5.0)
    assert {type(x) for _, _, x in w.sent} == {m.Digest}
    assert len(w.sent) <= 2 and not any(x.reply is False for _, _, x in w.sent)  # type: ignore[union-attr]


def test_membership_is_learned_from_summaries() -> None:
    w = Wire("ABC", n=3, anti_entropy_interval=5.0)
    w.connect([("A", "B"), ("B", "C")])
    assert w.r["A"].status()["peers_known"] == ["B", "C"]
    assert w.disk["A"].peers.keys() == {"B", "C"}
    assert sorted(w.r["A"].homes("anything")) == ["A", "B", "C"]


# -- restart, identity, forget -------------------------------------------------------------------
def test_restart_from_persisted_effects_resumes_values_seq_and_hints() -> None:
    w = Wire("ABCD", n=3, w=1, checkpoint_every=3)
    w.connect()
    key = key_homed(ring_of(w), lambda h: h[0] == "A" and "D" not in h)
    target = ring_of(w).homes_of(key)[1]
    for i in range(7):
        w.r["A"].local_update(i, "c", "pncounter", inc("A"), w.now)
    w.down("A", target)
    w.down("D", target)
    w.r["A"].local_update(9, key, "gcounter", inc("A"), w.now)
    w.run()
    assert any(p.objects for p in w.done["A"] if isinstance(p, Persist))  # checkpoints
    hint_holders = {i for i in w.ids if w.r[i].status()["hints"]}
    assert hint_holders
    for i in w.ids:
        w.restart(i)
    assert w.value("A", "c") == 7
    assert {i for i in w.ids if w.r[i].status()["hints"]} == hint_holders
    p = partition_of("c", 64)
    w.r["A"].local_update(10, "c", "pncounter", inc("A"), w.now)
    (persist,) = [e for e in w.r["A"].effects() if isinstance(e, Persist)]
    assert persist.log[0].seq == 8 and persist.log[0].partition == p


def test_restored_database_is_detected_as_an_identity_conflict() -> None:
    w = Wire("AB", n=2, anti_entropy_interval=5.0)
    w.connect()
    for i in range(3):
        w.r["A"].local_update(i, "k", "gcounter", inc("A"), w.now)
    w.run()
    w.r["A"] = Replica(w.config, "A", Loaded(), now=w.now)  # wiped, same id
    w.r["A"].peer_up("B", w.now)
    w.r["B"].peer_down("A", w.now)
    w.r["B"].peer_up("A", w.now)
    w.run()
    conflicts = [e for e in w.done["A"] if isinstance(e, IdentityConflict)]
    p = partition_of("k", 64)
    assert conflicts and conflicts[0].peer == "B" and conflicts[0].partition == p
    assert conflicts[0].seen_seq == 3 and conflicts[0].our_seq == 0
    w.r["A"].local_update(9, "k", "gcounter", inc("A"), w.now)
    (persist,) = [e for e in w.r["A"].effects() if isinstance(e, Persist)]
    assert persist.log[0].seq == 4  # no log dot is reused


def test_forget_leaves_the_ring_and_drops_hints_on_this_replica_only() -> None:
    w = Wire("ABCD", n=3, w=1)
    w.connect()
    key = key_homed(ring_of(w), lambda h: h[0] == "A" and "D" not in h and "C" in h)
    w.down("A", "C")
    w.down("D", "C")
    w.down("B", "C")
    w.r["A"].local_update(1, key, "gcounter", inc("A"), w.now)
    w.run()
    assert any(w.r[i].status()["hints"].get("C") for i in "ABD")
    w.r["A"].forget("C", w.now, by="the test")
    w.run()
    status = w.r["A"].status()
    assert "C" not in status["peers_known"] and status["forgotten"] == ["C"]
    assert "C" not in status["hints"] and "C" not in w.r["A"].homes(key)
    assert w.disk["A"].peers["C"].forgotten
    # Nobody else is told: forgetting is each operator's action on each peer.
    for i in "BD":
        assert "C" in w.r[i].status()["peers_known"] and "C" in w.r[i].homes(key)
        assert not w.disk[i].peers["C"].forgotten
    with pytest.raises(ValueError, match="cannot forget itself"):
        w.r["A"].forget("A", w.now)
    with pytest.raises(ValueError, match="unknown replica id 'Z'"):
        w.r["A"].forget("Z", w.now)
    with pytest.raises(ValueError, match="forgotten already"):
        w.r["A"].forget("C", w.now)
    assert w.r["A"].effects() == []


def test_local_quorum_counts_only_same_site_acks() -> None:
    sites = {"A": "eu", "B": "eu", "C": "us"}
    w = Wire("ABC", n=3, w=1, site="eu", sites=sites)
    for x, y in [("A", "B"), ("A", "C"), ("B", "C")]:
        w.r[x].peer_up(y, 0.0, site=sites[y])
        w.r[y].peer_up(x, 0.0, site=sites[x])
    w.run()
    w.hold = lambda src, dst, msg: src == "B" and isinstance(msg, m.Ack)
    w.r["A"].local_update(1, "k", "gcounter", inc("A"), w.now, w="LOCAL_QUORUM")
    w.run()
    assert w.of("A", WriteDone) == []  # 2 local homes: quorum 2; C (us) does not count
    assert w.value("C", "k") == 1  # but it was sent to
    w.release()
    (done,) = w.of("A", WriteDone)
    assert sorted(done.result.acked_by) == ["A", "B"] and done.result.required == 2


def test_status_reports_lag_hints_and_peers() -> None:
    w = Wire("AB", n=2, anti_entropy_interval=5.0)
    w.connect()
    w.down("A", "B")
    for i in range(4):
        w.r["A"].local_update(i, "k", "gcounter", inc("A"), w.now)
    st = w.r["A"].status()
    assert st["log_size"] == 4 and st["peers_up"] == [] and st["lag"] == {"B": 4}
    w.up("A", "B")
    w.run()
    w.advance(5.0)
    assert w.r["A"].status()["lag"] == {"B": 0}


def test_value_is_a_copy() -> None:
    r = Replica(ReplicaConfig(n=1), "A")
    r.local_update(1, "k", "gcounter", inc("A"), 0.0)
    v = r.value("k")
    assert v is not None
    v.increment("A", 100)
    assert r.value("k").value == 1  # type: ignore[union-attr]


def test_changed_is_emitted_for_remote_changes() -> None:
    w = Wire("AB", n=2)
    w.connect()
    w.r["A"].local_update(1, "k", "gcounter", inc("A"), w.now)
    w.run()
    assert [e.key for e in w.done["B"] if isinstance(e, Changed)] == ["k"]


def test_status_counts_siblings_of_concurrent_register_writes() -> None:
    w = Wire("AB", n=2, anti_entropy_interval=5.0)
    w.connect()
    w.down("A", "B")
    w.r["A"].local_update(1, "note", "mvregister", lambda r: r.set("A", ["milk"]), w.now)
    w.r["B"].local_update(1, "note", "mvregister", lambda r: r.set("B", ["eggs"]), w.now)
    assert w.r["A"].status()["siblings"] == {}
    w.up("A", "B")
    w.run()
    assert w.r["A"].status()["siblings"] == {"note": 2}
    assert w.r["B"].status()["siblings"] == {"note": 2}
    w.r["A"].local_update(2, "note", "mvregister", lambda r: r.set("A", ["bread"]), w.now)
    w.run()
    assert w.r["B"].status()["siblings"] == {}
    assert w.value("B", "note") == (["bread"],)


# -- a randomized check: any history of writes, cuts and restarts converges ---------------------
_op = st.one_of(
    st.tuples(st.just("inc"), st.sampled_from("ABC"), st.integers(0, 3), st.integers(1, 5)),
    st.tuples(st.just("add"), st.sampled_from("ABC"), st.integers(0, 3), st.sampled_from("xyz")),
    st.tuples(st.just("rm"), st.sampled_from("ABC"), st.integers(0, 3), st.sampled_from("xyz")),
    st.tuples(st.just("cut"), st.sampled_from("ABC"), st.sampled_from("ABC"), st.just(0)),
    st.tuples(st.just("heal"), st.sampled_from("ABC"), st.sampled_from("ABC"), st.just(0)),
    st.tuples(st.just("advance"), st.just(""), st.integers(1, 6), st.just(0)),
    st.tuples(st.just("restart"), st.sampled_from("ABC"), st.just(0), st.just(0)),
    st.tuples(st.just("read"), st.sampled_from("ABC"), st.integers(0, 3), st.integers(1, 3)),
)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(ops=st.lists(_op, max_size=25))
def test_random_histories_converge(ops: list[tuple[str, str, int, Any]]) -> None:
    w = Wire("ABC", n=3, w=1, anti_entropy_interval=2.0, ae_batch=2, snapshot_chunk=1)
    w.connect()
    total = [0, 0, 0, 0]
    for op_id, (kind, who, a, b) in enumerate(ops, start=1):
        if kind == "inc":
            w.r[who].local_update(op_id, f"c{a}", "pncounter", inc(who, b), w.now)
            total[a] += b
        elif kind in ("add", "rm"):
            fn = add(b, who) if kind == "add" else (lambda s, e=b: s.remove(e))
            w.r[who].local_update(op_id, f"s{a}", "orset", fn, w.now)
        elif kind == "cut" and who != a and frozenset((who, a)) not in w.cut:  # type: ignore[comparison-overlap]
            w.down(who, str(a))
        elif kind == "heal" and frozenset((who, a)) in w.cut:  # type: ignore[comparison-overlap]
            w.up(who, str(a))
        elif kind == "advance":
            w.advance(float(a))
        elif kind == "restart":
            w.restart(who)
            for x in w.ids:
                if x != who:
                    w.r[x].peer_down(who, w.now)
                    if frozenset((x, who)) not in w.cut:
                        w.r[x].peer_up(who, w.now)
                        w.r[who].peer_up(x, w.now)
        elif kind == "read":
            w.r[who].local_read(op_id, f"c{a}", w.now, kind="pncounter", r=b)
        w.run()
    for pair in list(w.cut):
        x, y = sorted(pair)
        w.up(x, y)
    w.run()
    w.advance(12.0)
    for i in range(4):
        values = {x: w.value(x, f"c{i}") for x in "ABC"}
        assert set(values.values()) <= {total[i], None} and (
            total[i] == 0 or None not in values.values()
        ), values
        sets = {x: w.state(x, f"s{i}") for x in "ABC"}
        assert sets["A"] == sets["B"] == sets["C"], sets
    for x in "ABC":  # every write was durable on its coordinator: the disks agree
        restarted = Replica(w.configs[x], x, w.disk[x].loaded())
        for i in range(4):
            assert restarted.value(f"c{i}") == w.state(x, f"c{i}")


def test_fallback_that_is_itself_a_home_applies_the_hinted_entry() -> None:
    r = Replica(ReplicaConfig(n=3), "D")  # knows nobody: a home of every partition
    delta = crdt.new("gcounter").increment("A", 2).to_dict()
    r.receive("A", m.Push(push_id=5, entries=[_entry_from("A", "k", delta)], hint_for="C"), 0.0)
    fx = r.effects()
    assert kinds(fx) == ["Persist", "Changed", "Send:Ack"]
    assert isinstance(fx[0], Persist) and fx[0].hints_add == () and len(fx[0].log) == 1
    assert r.value("k").value == 2  # type: ignore[union-attr]
    assert r.status()["hints"] == {}


def test_fallback_holds_the_hint_and_persists_it_before_acking() -> None:
    r = Replica(ReplicaConfig(n=1), "D")
    r.peer_up("A", 0.0)
    r.peer_up("C", 0.0)  # a home, down when its hint comes
    r.peer_down("C", 0.0)
    r.effects()
    key = key_homed(Ring(["A", "C", "D"], n=1, partitions=64, vnodes=16), lambda h: h == ("C",))
    delta = crdt.new("gcounter").increment("A", 2).to_dict()
    r.receive("A", m.Push(push_id=5, entries=[_entry_from("A", key, delta)], hint_for="C"), 3.0)
    fx = r.effects()
    assert kinds(fx) == ["Persist", "Send:Ack"]
    assert isinstance(fx[0], Persist) and [h.target for h in fx[0].hints_add] == ["C"]
    assert fx[0].hints_add[0].stored_at == 3.0 and fx[0].log == ()
    assert r.value(key) is None and r.status()["hints"] == {"C": 1}


def _entry_from(origin: str, key: str, delta: dict[str, Any]) -> m.Entry:
    return m.Entry(
        origin=origin,
        partition=partition_of(key, 64),
        seq=1,
        key=key,
        kind=delta["type"],
        delta_json=json.dumps(delta),
    )


# -- relays ---------------------------------------------------------------------------------
def _relay_wire(relay: bool) -> Wire:
    """Devices A and B reach only R (never each other); anti-entropy is off."""
    w = Wire(["A", "B", "R"], n=3, anti_entropy_interval=0)
    w.configs["R"] = dataclasses.replace(w.configs["R"], relay=relay)
    w.r["R"] = Replica(w.configs["R"], "R")
    w.connect([("A", "R"), ("B", "R")])
    return w


@pytest.mark.parametrize("relay", [True, False])
def test_a_relay_forwards_new_entries_to_devices_that_reach_only_it(relay: bool) -> None:
    w = _relay_wire(relay)
    for i in range(5):
        w.r["A"].local_update(i, "list", "orset", add(f"item{i}", "A"), w.now)
    w.run()
    expected = frozenset(f"item{i}" for i in range(5))
    assert w.value("R", "list") == expected
    if relay:
        assert w.value("B", "list") == expected
        # Forwarded once, never back to the device it came from.
        to_a = [x for s, d, x in w.sent if s == "R" and d == "A" and isinstance(x, m.Push)]
        assert not to_a
    else:
        # Without relaying (and with anti-entropy off) B hears nothing until a later repair.
        assert w.value("B", "list") is None


def test_relay_forwarding_between_two_relays_terminates() -> None:
    w = Wire(["A", "R1", "R2", "B"], n=4, anti_entropy_interval=0)
    for rid in ("R1", "R2"):
        w.configs[rid] = dataclasses.replace(w.configs[rid], relay=True)
        w.r[rid] = Replica(w.configs[rid], rid)
    w.connect([("A", "R1"), ("R1", "R2"), ("R2", "B"), ("A", "R2"), ("R1", "B")])
    w.r["A"].local_update(1, "hits", "gcounter", inc("A", 3), w.now)
    w.run()  # raises if forwarding ping-pongs forever
    assert {w.value(i, "hits") for i in w.ids} == {3}


def test_a_write_done_at_once_equals_the_one_built_with_its_result() -> None:
    """A write completed by this replica's own ack builds its result when first read: the
    effect equals, hashes, prints and matches as the one built with that result does."""
    import copy
    import pickle

    from sync.effects import LogDot, LogEntry, WriteDone, WriteResult

    entry = LogEntry("A", 3, 7, "cart", "orset", '{"type":"orset"}')
    lazy = WriteDone.acked_here(5, entry, 1, ("A",))
    eager = WriteDone(5, WriteResult("cart", 1, 1, ("A",), (), LogDot("A", 3, 7)))
    assert hash(lazy) == hash(eager) and lazy == eager and repr(lazy) == repr(eager)
    assert lazy.result == eager.result and lazy.result is lazy.result  # built once
    fresh = WriteDone.acked_here(5, entry, 1, ("A",))
    for twin in (copy.copy(fresh), copy.deepcopy(fresh), pickle.loads(pickle.dumps(fresh))):
        assert twin == eager
    match fresh:
        case WriteDone(op_id, WriteResult(key=key, dot=dot)):
            assert (op_id, key, dot) == (5, "cart", LogDot("A", 3, 7))
        case _:
            pytest.fail("WriteDone no longer matches by position")
    assert lazy != WriteDone(6, eager.result) and lazy != eager.result
