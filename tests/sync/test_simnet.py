"""Tests of the simulator itself (sync/simnet/), driven by a toy replica.

The toy replica (``Toy``) answers ``Ping`` with ``Pong``, records every input it gets, keeps
objects in memory and persists them, and can be given a timer. It lets these tests check the
simulator's own promises (ordering, faults, failure detection, crash and restart, the disk
model, bounds, determinism) independently of the real engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crdt import GCounter, new
from sync.config import MIN_MESSAGE_BYTES, ReplicaConfig
from sync.effects import (
    HintId,
    HintRecord,
    Loaded,
    LogEntry,
    ObjectState,
    PeerRecord,
    Persist,
    ReadDone,
    Send,
    WriteDone,
    WriteResult,
)
from sync.messages import Ack, Ping, Pong
from sync.ring import Ring
from sync.simnet import SimCluster, SimDisk, SimulationError

__all__: list[str] = []


class Toy:
    """A minimal replica: enough behaviour to observe what the simulator does."""

    def __init__(self, config: ReplicaConfig, rid: str, loaded: Loaded | None, now: float):
        self.rid = rid
        self.config = config
        self.loaded = loaded
        self.objects: dict[str, Any] = {}
        if loaded is not None:
            for obj in loaded.objects.values():
                self.objects[obj.key] = GCounter.from_dict(obj.state)
        self.up: set[str] = set()
        self.events: list[tuple[float, str, Any]] = []
        self.out: list[Any] = []
        self.deadline: float | None = None
        self.ticks: list[float] = []
        self.born = now

    # inputs
    def local_update(
        self,
        op_id: int,
        key: str,
        kind: str,
        fn: Callable[[Any], Any],
        now: float,
        *,
        w: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        obj = self.objects.setdefault(key, new(kind))
        fn(obj)
        self.out.append(Persist(objects=(ObjectState.of(key, kind, obj.to_dict()),)))
        for peer in sorted(self.up):
            self.out.append(Send(peer, Ping(nonce=op_id)))
        self.out.append(WriteDone(op_id, WriteResult(key, 1, 1, (self.rid,))))

    def local_read(
        self,
        op_id: int,
        key: str,
        now: float,
        *,
        kind: str | None = None,
        r: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        self.out.append(ReadDone(op_id, key, self.objects.get(key), 1))

    def receive(self, peer_id: str, message: Any, now: float) -> None:
        self.events.append((now, peer_id, message))
        if isinstance(message, Ping):
            self.out.append(Send(peer_id, Pong(nonce=message.nonce)))

    def peer_up(
        self, peer_id: str, now: float, *, address: str | None = None, site: str | None = None
    ) -> None:
        self.up.add(peer_id)
        self.events.append((now, peer_id, ("up", address, site)))

    def peer_down(self, peer_id: str, now: float) -> None:
        self.up.discard(peer_id)
        self.events.append((now, peer_id, "down"))

    def forget(self, peer_id: str, now: float) -> None:
        self.events.append((now, peer_id, "forget"))

    def tick(self, now: float) -> None:
        self.ticks.append(now)
        self.deadline = None

    # outputs
    def effects(self) -> list[Any]:
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> float | None:
        return self.deadline

    def value(self, key: str, kind: str | None = None) -> Any:
        return self.objects.get(key)

    def kinds_of(self, key: str) -> tuple[str, ...]:
        obj = self.objects.get(key)
        return () if obj is None else (obj.kind,)

    def wants_keys(self, keys: Any) -> list[str]:
        return []

    def wants_message(self, peer_id: str, message: Any) -> tuple[list[str], list[int]]:
        return [], []

    def admit(self, keys: Any, rows: Any, partitions: Any = ()) -> None:
        raise AssertionError("a toy holds everything")

    def checkpoint_all(self, now: float) -> None:
        pass

    def unsaved_keys(self) -> set[str]:
        return set(self.objects)

    def status(self) -> dict[str, Any]:
        return {"replica_id": self.rid}

    # test helpers
    def ping(self, peer: str, nonce: int) -> None:
        self.out.append(Send(peer, Ping(nonce=nonce)))

    def received(self, kind: type) -> list[tuple[str, int]]:
        return [(p, m.nonce) for _, p, m in self.events if isinstance(m, kind)]

    def liveness(self) -> list[tuple[float, str, str]]:
        return [
            (t, p, m if isinstance(m, str) else m[0])
            for t, p, m in self.events
            if m == "down" or (isinstance(m, tuple) and m[0] == "up")
        ]


def toy_cluster(ids: list[str] | None = None, **kw: Any) -> SimCluster:
    return SimCluster(ids or ["a", "b", "c"], ReplicaConfig(), factory=Toy, **kw)


def toy(cluster: SimCluster, rid: str) -> Toy:
    replica = cluster.replica(rid)
    assert isinstance(replica, Toy)
    return replica


def send_pings(cluster: SimCluster, src: str, dst: str, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        cluster._input(src, lambda r, i=i: r.ping(dst, i))


def incr(rid: str, n: int = 1) -> Callable[[Any], Any]:
    return lambda c: c.increment(rid, n)


# --- start-up, delivery, order --------------------------------------------------------------


def test_everyone_is_told_everyone_is_up_at_start_with_address_and_site() -> None:
    cluster = toy_cluster(sites={"a": "eu", "b": "us"})
    events = toy(cluster, "a").events
    assert [(p, m) for _, p, m in events] == [
        ("b", ("up", "sim://b", "us")),
        ("c", ("up", "sim://c", None)),
    ]
    assert cluster.config("a").site == "eu" and cluster.config("c").site is None


def test_messages_travel_as_bytes_with_latency_and_are_counted() -> None:
    cluster = toy_cluster(latency=(0.5, 0.5))
    op = cluster.update("a", "k", "gcounter", incr("a"))
    assert op.ok  # the toy acknowledges at once
    assert cluster.stats.sent["Ping"] == 2 and cluster.stats.bytes_sent > 0
    assert toy(cluster, "b").received(Ping) == []
    cluster.run_for(0.49)
    assert toy(cluster, "b").received(Ping) == []
    cluster.run_for(0.02)
    assert toy(cluster, "b").received(Ping) == [("a", op.op_id)]
    assert cluster.run_until_quiet(100)
    assert toy(cluster, "a").received(Pong) == [("b", op.op_id), ("c", op.op_id)]
    assert cluster.stats.delivered == {"Ping": 2, "Pong": 2}
    assert cluster.now == pytest.approx(1.0)  # the pongs left at 0.5


def test_links_are_fifo_unless_reorder() -> None:
    cluster = toy_cluster(seed=3)
    cluster.delay("a", "b", 0.0, 1.0)
    send_pings(cluster, "a", "b", 40)
    assert cluster.run_until_quiet(1_000)
    nonces = [n for _, n in toy(cluster, "b").received(Ping)]
    assert nonces == list(range(40))

    cluster.reorder()
    send_pings(cluster, "a", "b", 40, start=100)
    assert cluster.run_until_quiet(1_000)
    later = [n for _, n in toy(cluster, "b").received(Ping)][40:]
    assert sorted(later) == list(range(100, 140)) and later != sorted(later)


def test_drop_one_way_and_duplicate() -> None:
    cluster = toy_cluster(seed=1)
    cluster.drop("a", "b", 1.0, one_way=True)
    send_pings(cluster, "a", "b", 5)
    send_pings(cluster, "b", "a", 5)
    assert cluster.run_until_quiet(1_000)
    assert toy(cluster, "b").received(Ping) == []
    assert len(toy(cluster, "a").received(Ping)) == 5
    assert toy(cluster, "b").received(Pong) == []  # a's pongs to b are dropped too
    assert cluster.stats.dropped["Ping"] == 5 and cluster.stats.dropped["Pong"] == 5

    cluster.heal()
    cluster.duplicate(1.0)
    send_pings(cluster, "a", "c", 3)
    assert cluster.run_until_quiet(1_000)
    assert [n for _, n in toy(cluster, "c").received(Ping)] == [0, 0, 1, 1, 2, 2]
    assert cluster.stats.duplicated["Ping"] == 3


def test_drop_probability_is_roughly_honoured_and_seeded() -> None:
    def run(seed: int) -> list[int]:
        cluster = toy_cluster(seed=seed)
        cluster.drop("a", "b", 0.5)
        send_pings(cluster, "a", "b", 200)
        assert cluster.run_until_quiet(10_000)
        return [n for _, n in toy(cluster, "b").received(Ping)]

    first = run(11)
    assert 60 < len(first) < 140
    assert run(11) == first
    assert run(12) != first


# --- partitions and failure detection -------------------------------------------------------


def test_partition_cuts_links_and_peers_learn_after_the_detect_delay() -> None:
    cluster = toy_cluster(detect_delay=2.0, latency=(1.0, 1.0))
    send_pings(cluster, "a", "c", 1)  # in flight when the partition comes
    cluster.partition([["a", "b"]])  # c is alone
    assert cluster.believes_up("a", "c")
    send_pings(cluster, "a", "c", 1, start=1)  # sent across the cut
    send_pings(cluster, "a", "b", 1, start=2)
    cluster.run_for(1.99)
    assert cluster.believes_up("a", "c")
    cluster.run_for(0.02)
    assert not cluster.believes_up("a", "c") and not cluster.believes_up("c", "b")
    assert cluster.believes_up("a", "b")
    assert toy(cluster, "c").received(Ping) == []
    assert toy(cluster, "b").received(Ping) == [("a", 2)]
    assert toy(cluster, "a").liveness()[-1] == (pytest.approx(2.0), "c", "down")

    cluster.heal()
    assert cluster.run_until_quiet(1_000)
    assert cluster.believes_up("a", "c") and cluster.believes_up("c", "a")
    assert toy(cluster, "c").liveness()[-2:] == [
        (pytest.approx(4.01), "a", "up"),
        (pytest.approx(4.01), "b", "up"),
    ]


def test_a_partition_healed_before_detection_is_never_noticed() -> None:
    cluster = toy_cluster(detect_delay=1.0)
    cluster.partition([["a"], ["b", "c"]])
    cluster.run_for(0.5)
    cluster.heal()
    assert cluster.run_until_quiet(1_000)
    assert [e for e in toy(cluster, "a").liveness() if e[2] == "down"] == []


# --- crash and restart ----------------------------------------------------------------------


def test_crash_loses_memory_and_restart_loads_the_disk() -> None:
    cluster = toy_cluster(detect_delay=1.0)
    cluster.update("b", "k", "gcounter", incr("b", 5))
    assert cluster.run_until_quiet(1_000)
    cluster.crash("b")
    assert not cluster.alive("b")
    with pytest.raises(SimulationError, match="down"):
        cluster.update("b", "k", "gcounter", incr("b"))
    cluster.run_for(1.5)
    assert not cluster.believes_up("a", "b")
    cluster.restart("b")
    fresh = toy(cluster, "b")
    assert fresh.loaded is not None and fresh.value("k").value == 5
    assert fresh.events == []  # no memory, and peers come back after the detect delay
    assert cluster.run_until_quiet(1_000)
    assert sorted(p for _, p, m in fresh.events if m[0] == "up") == ["a", "c"]
    assert cluster.believes_up("a", "b")


def test_restart_before_detection_resets_the_connection() -> None:
    cluster = toy_cluster(detect_delay=5.0)
    cluster.crash("b")
    cluster.run_for(0.1)
    assert cluster.believes_up("a", "b")  # not noticed yet
    cluster.restart("b")
    assert not cluster.believes_up("a", "b")
    assert toy(cluster, "a").liveness()[-1][1:] == ("b", "down")
    assert cluster.run_until_quiet(1_000)
    assert toy(cluster, "a").liveness()[-1][1:] == ("b", "up")


def test_messages_to_or_from_a_past_life_are_lost() -> None:
    cluster = toy_cluster(latency=(1.0, 1.0), detect_delay=0.1)
    send_pings(cluster, "a", "b", 1)
    send_pings(cluster, "b", "c", 1)
    cluster.crash("b")
    cluster.restart("b")
    assert cluster.run_until_quiet(1_000)
    assert toy(cluster, "b").received(Ping) == []
    assert toy(cluster, "c").received(Ping) == []
    assert cluster.stats.dropped["Ping"] == 2


def test_crash_after_persist_loses_the_sends_and_the_ack() -> None:
    cluster = toy_cluster()
    cluster.crash_when("a", lambda e: isinstance(e, Persist))
    op = cluster.update("a", "k", "gcounter", incr("a", 2))
    assert op.status == "lost" and not op.ok and op.result is None
    assert not cluster.alive("a")
    assert cluster.stats.sent["Ping"] == 0 and cluster.stats.effects_lost == 3
    assert set(cluster.disk("a").objects) == {("k", "gcounter")}
    cluster.restart("a")
    assert cluster.value("a", "k").value == 2


def test_crashing_a_crashed_replica_is_refused() -> None:
    cluster = toy_cluster()
    cluster.crash("a")
    with pytest.raises(SimulationError, match="already down"):
        cluster.crash("a")
    with pytest.raises(SimulationError, match="down"):
        cluster.crash_when("a", lambda e: True)
    cluster.restart("a")
    assert cluster.alive("a")


def test_crash_before_persist_loses_the_write() -> None:
    cluster = toy_cluster()
    cluster.crash_when("a", lambda e: isinstance(e, Persist), before=True)
    op = cluster.update("a", "k", "gcounter", incr("a", 2))
    assert op.status == "lost"
    assert cluster.disk("a").is_empty()
    cluster.restart("a")
    assert cluster.value("a", "k") is None


# --- timers, bounds, quiet ------------------------------------------------------------------


def test_timers_fire_at_the_deadline() -> None:
    cluster = toy_cluster()
    toy(cluster, "a").deadline = 3.0
    cluster._input("a", lambda r: None)  # any input makes the cluster ask next_deadline()
    cluster.run_for(2.999)
    assert toy(cluster, "a").ticks == []
    cluster.run_for(0.002)
    assert toy(cluster, "a").ticks == [3.0]


def test_run_until_is_bounded_and_run_for_refuses_to_spin() -> None:
    cluster = toy_cluster()
    send_pings(cluster, "a", "b", 10)
    assert cluster.run_until(lambda: False, max_steps=5) is False
    assert cluster.run_until(lambda: False, max_steps=10_000) is False  # events ran out
    assert cluster.quiet()
    send_pings(cluster, "a", "b", 10)
    with pytest.raises(SimulationError, match="more than 3 steps"):
        cluster.run_for(10.0, max_steps=3)


def test_quiet_waits_for_pending_operations() -> None:
    class Slow(Toy):
        def local_update(
            self, op_id: int, key: str, kind: str, fn: Callable[[Any], Any], now: float, **kw: Any
        ) -> None:
            self.pending = op_id
            self.deadline = now + 2.0

        def tick(self, now: float) -> None:
            self.out.append(WriteDone(self.pending, WriteResult("k", 1, 1, (self.rid,))))
            self.deadline = None

    cluster = SimCluster(["a", "b"], factory=Slow)
    op = cluster.update("a", "k", "gcounter", incr("a"))
    assert not cluster.quiet()
    assert cluster.run_until_quiet(100)
    assert op.ok and op.completed_at == 2.0 and cluster.now == 2.0


def test_reads_complete_with_the_state() -> None:
    cluster = toy_cluster()
    cluster.update("a", "k", "gcounter", incr("a", 4))
    op = cluster.read("a", "k")
    assert op.ok and op.kind == "read" and op.state is not None and op.state.value == 4


def test_an_exception_from_the_engine_propagates_and_leaves_no_handle() -> None:
    cluster = toy_cluster()
    with pytest.raises(ValueError, match="unknown CRDT kind"):
        cluster.update("a", "k", "no-such-kind", incr("a"))
    assert cluster.ops == [] and cluster.quiet() and "k" not in cluster.keys


# --- the codec ------------------------------------------------------------------------------


def test_oversized_messages_are_protocol_errors() -> None:
    config = {"a": ReplicaConfig(), "b": ReplicaConfig(max_message_bytes=MIN_MESSAGE_BYTES)}
    # An Ack of that many ids takes two bytes per id: twice b's limit.
    big = Ack(ids=[0] * MIN_MESSAGE_BYTES)

    def send_big(cluster: SimCluster) -> None:
        cluster._input("a", lambda r: r.out.append(Send("b", big)))

    cluster = SimCluster(["a", "b"], config, factory=Toy)
    send_big(cluster)
    with pytest.raises(SimulationError, match="exceeds the limit"):
        cluster.run_until_quiet(100)

    lenient = SimCluster(["a", "b"], config, factory=Toy, raise_protocol_errors=False)
    send_big(lenient)
    send_pings(lenient, "a", "b", 1)  # (a message under the limit still arrives)
    assert lenient.run_until_quiet(100)
    assert [(s, d) for s, d, _ in lenient.protocol_errors] == [("a", "b")]
    assert not [m for _, _, m in toy(lenient, "b").events if isinstance(m, Ack)]
    assert toy(lenient, "b").received(Ping) == [("a", 0)]


# --- determinism ----------------------------------------------------------------------------


def _trace(seed: int) -> list[tuple[float, str, str, int]]:
    cluster = toy_cluster(["a", "b", "c", "d"], seed=seed)
    cluster.drop(None, None, 0.2)
    cluster.duplicate(0.3)
    cluster.reorder()
    cluster.delay("a", None, 0.0, 0.3)
    for i in range(30):
        src, dst = sorted(cluster.ids)[i % 4], sorted(cluster.ids)[(i * 7 + 1) % 4]
        if src != dst:
            send_pings(cluster, src, dst, 1, start=i)
    cluster.partition([["a", "b"], ["c", "d"]])
    assert cluster.run_until_quiet(10_000)
    out = []
    for rid in cluster.ids:
        for t, p, m in toy(cluster, rid).events:
            if isinstance(m, Ping | Pong):
                out.append((t, rid, p, m.nonce))
    return out


def test_same_seed_same_run() -> None:
    assert _trace(5) == _trace(5)
    assert _trace(5) != _trace(6)


# --- bad input to the simulator changes nothing ---------------------------------------------


def test_bad_calls_raise_and_change_nothing() -> None:
    cluster = toy_cluster()
    with pytest.raises(SimulationError, match="unknown replica"):
        cluster.update("zz", "k", "gcounter", incr("zz"))
    with pytest.raises(SimulationError, match="two groups"):
        cluster.partition([["a", "b"], ["b", "c"]])
    with pytest.raises(SimulationError, match="unknown replica"):
        cluster.partition([["a", "zz"]])
    with pytest.raises(SimulationError, match="probability"):
        cluster.drop("a", "b", 1.5)
    with pytest.raises(SimulationError, match="delay"):
        cluster.delay("a", "b", 2.0, 1.0)
    with pytest.raises(SimulationError, match="is up"):
        cluster.restart("a")
    with pytest.raises(SimulationError, match="negative"):
        cluster.run_for(-1)
    with pytest.raises(SimulationError, match="distinct"):
        toy_cluster(["a", "a"])
    with pytest.raises(SimulationError, match="already exists"):
        cluster.add_replica("a")
    with pytest.raises(SimulationError, match="unknown replica"):
        cluster.forget("a", "zz")
    with pytest.raises(SimulationError, match="every"):
        cluster.run_until(lambda: True, every=0)
    with pytest.raises(SimulationError, match="per-replica configs"):
        SimCluster(["a", "b"], {"a": ReplicaConfig()}, factory=Toy)
    # Nothing happened: no partition, no fault, everyone up, nothing scheduled.
    assert cluster.quiet() and cluster.stats.total_sent() == 0
    send_pings(cluster, "a", "b", 1)
    assert cluster.run_until_quiet(100)
    assert toy(cluster, "b").received(Ping) == [("a", 0)]
    assert all(cluster.believes_up(a, b) for a in cluster.ids for b in cluster.ids if a != b)


def test_add_replica_joins_after_the_detect_delay() -> None:
    cluster = toy_cluster(detect_delay=1.0)
    cluster.add_replica("d", site="mars")
    assert not cluster.believes_up("a", "d")
    assert cluster.run_until_quiet(100)
    assert cluster.believes_up("a", "d") and cluster.believes_up("d", "c")
    assert ("d", ("up", "sim://d", "mars")) in [(p, m) for _, p, m in toy(cluster, "a").events]


def test_converged_compares_full_states() -> None:
    cluster = toy_cluster()
    cluster.update("a", "k", "gcounter", incr("a", 1))
    assert not cluster.converged()
    assert cluster.divergent() == {
        "k": {"a": '{"counts": {"a": 1}, "type": "gcounter", "v": 1}', "b": None, "c": None}
    }
    assert cluster.converged(replicas=["b", "c"])
    assert cluster.converged(holders=lambda key: ["a"])


# --- the disk model -------------------------------------------------------------------------


def _entry(origin: str, seq: int, key: str = "k", n: int = 1, partition: int = 0) -> LogEntry:
    delta = GCounter()
    delta.increment(origin, n)
    return LogEntry.of(origin, partition, seq, key, "gcounter", delta.to_dict())


def test_disk_applies_each_part_of_persist() -> None:
    disk = SimDisk()
    state = GCounter()
    state.increment("a", 2)
    hint = HintRecord("c", _entry("a", 2), stored_at=1.5)
    disk.apply(
        Persist(
            objects=(ObjectState.of("k", "gcounter", state.to_dict()),),
            log=(_entry("a", 1), _entry("a", 2)),
            summaries=((0, {"vv": {"a": 2}, "cloud": []}),),
            hints_add=(hint,),
            peers=(PeerRecord("b", address="sim://b"),),
        )
    )
    disk.apply(
        Persist(
            summaries=((0, {"vv": {"a": 2}, "cloud": [["b", 4]]}),),
            hints_drop=(hint.id, HintId("x", "a", 0, 9)),  # dropping an unknown hint is fine
            peers=(PeerRecord("b", address="sim://b2"),),
        )
    )
    loaded = disk.load()
    assert loaded.objects[("k", "gcounter")].state == state.to_dict()
    assert [(e.origin, e.seq) for e in loaded.log] == [("a", 1), ("a", 2)]
    assert loaded.summaries[0].to_dict() == {"vv": {"a": 2}, "cloud": [["b", 4]]}
    assert loaded.hints == [] and loaded.peers["b"].address == "sim://b2"
    assert disk.persists == 2


def test_disk_compaction_drops_checkpointed_entries_only() -> None:
    disk = SimDisk()
    state = GCounter()
    state.increment("a", 2)
    disk.apply(Persist(log=(_entry("a", 1), _entry("a", 2), _entry("b", 1, key="j"))))
    disk.apply(
        Persist(
            objects=(ObjectState.of("k", "gcounter", state.to_dict()),),
            compact=((0, {"a": 2}),),
        )
    )
    assert sorted(disk.log) == [("b", 0, 1)] and disk.compacted == 2


def test_disk_refuses_compaction_that_would_lose_data() -> None:
    disk = SimDisk()
    disk.apply(Persist(log=(_entry("a", 1, n=3),)))
    stale = GCounter()
    stale.increment("a", 1)  # the checkpoint does not contain the delta (3)
    bad = Persist(
        objects=(ObjectState.of("k", "gcounter", stale.to_dict()),), compact=((0, {"a": 1}),)
    )
    with pytest.raises(SimulationError, match="not contained"):
        disk.apply(bad)
    with pytest.raises(SimulationError, match="no checkpoint"):
        disk.apply(Persist(compact=((0, {"a": 1}),)))
    assert list(disk.log) == [("a", 0, 1)] and disk.objects == {}  # unchanged


def test_disk_refuses_a_blob_that_is_not_json_and_changes_nothing() -> None:
    disk = SimDisk()
    bad = Persist(
        log=(_entry("a", 1),),
        objects=(ObjectState("k", "gcounter", '{"type":"gcounter","x":'),),  # cut short
    )
    with pytest.raises(SimulationError, match="not JSON"):
        disk.apply(bad)
    assert disk.is_empty() and disk.persists == 0


def test_disk_blobs_are_text_so_the_engine_cannot_alias_them() -> None:
    disk = SimDisk()
    state = {"type": "gcounter", "v": 1, "counts": {"a": 1}}
    disk.apply(Persist(objects=(ObjectState.of("k", "gcounter", state),)))
    state["counts"]["a"] = 99
    loaded = disk.load()
    assert disk.objects[("k", "gcounter")].state["counts"] == {"a": 1}
    loaded.objects[("k", "gcounter")].state["counts"]["a"] = 7
    assert disk.objects[("k", "gcounter")].state["counts"] == {"a": 1}


# --- determinism with the real engine -------------------------------------------------------


def _engine_run(seed: int) -> tuple[Any, ...]:
    cluster = SimCluster(
        ["a", "b", "c", "d"], ReplicaConfig(n=3, w=2, anti_entropy_interval=1.0), seed=seed
    )
    cluster.drop(None, None, 0.1)
    cluster.duplicate(0.1)
    cluster.reorder()
    for i in range(40):
        rid = cluster.ids[i % 4]
        if cluster.alive(rid):
            cluster.update(rid, f"k{i % 7}", "gcounter", incr(rid, i + 1))
        if i == 10:
            cluster.partition([["a", "b"], ["c", "d"]])
        if i == 20:
            cluster.crash("c")
        if i == 30:
            cluster.restart("c")
            cluster.heal()
        cluster.run_for(0.3)
    homes = Ring(cluster.ids, n=3, partitions=64, vnodes=16).homes_of
    assert cluster.run_until(lambda: cluster.quiet() and cluster.converged(holders=homes), 50_000)
    states = {k: cluster.values(k, homes(k)) for k in sorted(cluster.keys)}
    outcomes = [(op.op_id, op.status, op.completed_at) for op in cluster.ops]
    return (cluster.now, dict(cluster.stats.sent), cluster.stats.bytes_sent, outcomes, states)


def test_the_engine_on_the_simulator_is_deterministic_under_the_seed() -> None:
    first = _engine_run(21)
    assert _engine_run(21) == first
    assert _engine_run(22) != first


def test_restart_from_a_backup_disk() -> None:
    cluster = toy_cluster()
    cluster.update("a", "k", "gcounter", incr("a", 1))
    backup = cluster.disk("a").copy()
    cluster.update("a", "k", "gcounter", incr("a", 1))
    assert cluster.value("a", "k").value == 2
    cluster.crash("a")
    cluster.restart("a", disk=backup)
    assert cluster.value("a", "k").value == 1
    cluster.update("a", "k", "gcounter", incr("a", 5))
    assert backup.objects[("k", "gcounter")].state["counts"] == {"a": 1}, "the backup was aliased"


def test_the_module_docstring_example_runs() -> None:
    import doctest

    import sync.simnet

    result = doctest.testmod(sync.simnet)
    assert result.attempted > 0 and result.failed == 0
