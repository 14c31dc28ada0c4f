"""The node: persist before acknowledge, one transaction per drained batch, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sync.config import ReplicaConfig
from sync.effects import HintId, HintRecord, LogEntry, ObjectState, PeerRecord, Persist
from sync.errors import PeerFailed, QuorumNotReached
from sync.replica import Replica
from sync.transport.node import Node, merge_persists
from sync.transport.storage import on_wall_clock

WAIT = 5.0


class GatedStore:
    """A store whose commits wait for the test to open the gate; records every batch."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.batches: list[Any] = []
        self.fail: Exception | None = None
        self.events: list[str] = []
        self.lone: list[bool] = []

    async def apply(self, batch: Any, *, grouped: bool = True, lone: bool = False) -> None:
        assert not grouped  # the executor groups its rounds itself
        self.lone.append(lone)
        self.events.append("apply-start")
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.batches.append(batch)
        self.events.append("apply-done")


def make_node(store: GatedStore, sent: list[tuple[str, Any]], n: int = 1) -> Node:
    replica = Replica(ReplicaConfig(n=n, anti_entropy_interval=None, write_timeout=0.5), "A")

    def send(peer: str, msg: Any) -> bool:
        store.events.append(f"send:{type(msg).__name__}")
        sent.append((peer, msg))
        return True

    node = Node(replica, store, send)
    node.start()
    return node


async def test_write_is_acknowledged_only_after_its_commit() -> None:
    store = GatedStore()
    node = make_node(store, [])
    try:
        store.gate.clear()
        task = asyncio.ensure_future(node.write("k", "gcounter", lambda c: c.increment("A", 1)))
        await asyncio.sleep(0.05)
        assert not task.done() and store.events == ["apply-start"]
        store.gate.set()
        result = await asyncio.wait_for(task, WAIT)
        assert result.acks == 1 and store.events == ["apply-start", "apply-done"]
        assert [e.key for e in store.batches[0].log] == ["k"]
    finally:
        await node.aclose()


async def test_concurrent_writes_share_a_transaction() -> None:
    store = GatedStore()
    node = make_node(store, [])
    try:
        store.gate.clear()
        first = asyncio.ensure_future(node.write("k", "gcounter", lambda c: c.increment("A")))
        await asyncio.sleep(0.05)  # the first batch is now committing, held at the gate
        rest = [
            asyncio.ensure_future(node.write(f"k{i}", "gcounter", lambda c: c.increment("A")))
            for i in range(50)
        ]
        await asyncio.sleep(0.05)
        store.gate.set()
        await asyncio.wait_for(asyncio.gather(first, *rest), WAIT)
        # One commit for the first write, one for the 50 queued while it committed.
        assert [len(b.log) for b in store.batches] == [1, 50]
    finally:
        await node.aclose()


async def test_a_commit_is_lone_only_while_no_input_waits_for_the_engine() -> None:
    """The executor tells the store that a commit is lone (it may sync on the loop, see
    ``store.writer``) only when no input waits behind it: one write in flight."""
    store = GatedStore()
    node = make_node(store, [])
    try:
        await asyncio.wait_for(node.write("k", "gcounter", lambda c: c.increment("A")), WAIT)
        assert store.lone == [True]
        node.max_inputs = 1  # three writes at once: three rounds, the first two with more behind
        store.lone.clear()
        await asyncio.wait_for(
            asyncio.gather(
                *(node.write(f"k{i}", "gcounter", lambda c: c.increment("A")) for i in range(3))
            ),
            WAIT,
        )
        assert store.lone == [False, False, True]
    finally:
        await node.aclose()


async def test_sends_wait_for_the_persist_before_them() -> None:
    store = GatedStore()
    sent: list[tuple[str, Any]] = []
    node = make_node(store, sent, n=2)
    try:
        node.peer_up("B", "ws://b", None)
        await node.drain(WAIT)
        store.events.clear()
        store.gate.clear()
        task = asyncio.ensure_future(
            node.write("k", "orset", lambda s: s.add("A", "x"), w=1, timeout=1.0)
        )
        await asyncio.sleep(0.05)
        assert not any(e.startswith("send:Push") for e in store.events)
        store.gate.set()
        await asyncio.wait_for(task, WAIT)
        await node.drain(WAIT)
        assert store.events.index("apply-done") < store.events.index("send:Push")
    finally:
        await node.aclose()


async def test_quorum_not_reached_carries_the_result() -> None:
    store = GatedStore()
    node = make_node(store, [], n=2)
    try:
        node.peer_up("B", None, None)
        with pytest.raises(QuorumNotReached) as err:
            await asyncio.wait_for(
                node.write("k", "gcounter", lambda c: c.increment("A"), w=2, timeout=0.2), WAIT
            )
        assert err.value.result is not None and err.value.result.acks == 1
        assert err.value.result.acked_by == ("A",)
        assert [e.key for b in store.batches for e in b.log] == ["k"]  # durable anyway
    finally:
        await node.aclose()


async def test_a_failed_commit_stops_the_node_sends_nothing_and_fails_later_ops() -> None:
    # Fail-stop: the engine applied the batch in memory before the store refused it, so a
    # node that went on would serve and replicate state that is not on disk (found in review).
    store = GatedStore()
    sent: list[tuple[str, Any]] = []
    fatal: list[PeerFailed] = []
    replica = Replica(ReplicaConfig(n=2, anti_entropy_interval=None, write_timeout=0.5), "A")
    node = Node(replica, store, lambda p, m: sent.append((p, m)) or True, on_fatal=fatal.append)
    node.start()
    try:
        node.peer_up("B", None, None)
        await node.drain(WAIT)
        sent.clear()
        store.fail = OSError("disk full")
        with pytest.raises(PeerFailed, match="disk full") as info:
            await asyncio.wait_for(
                node.write("k", "gcounter", lambda c: c.increment("A"), timeout=1.0), WAIT
            )
        assert isinstance(info.value.__cause__, OSError)
        assert [m for _, m in sent if type(m).__name__ == "Push"] == []
        assert node.counters.store_errors == 1
        assert fatal == [node.failed]
        store.fail = None  # even once the disk is back, this node serves no more
        with pytest.raises(PeerFailed):
            await asyncio.wait_for(node.write("k2", "gcounter", lambda c: c.increment("A")), WAIT)
        committed = {e.key for b in store.batches for e in b.log}
        assert not committed & {"k", "k2"}, committed  # neither write reached the disk
    finally:
        await node.aclose()


async def test_bad_local_input_raises_to_the_caller_and_the_node_lives_on() -> None:
    store = GatedStore()
    node = make_node(store, [])
    try:
        with pytest.raises(ValueError, match="unknown CRDT kind"):
            await asyncio.wait_for(node.write("k", "nope", lambda c: c), WAIT)
        await node.write("k", "gcounter", lambda c: c.increment("A"))
        with pytest.raises(TypeError):
            await node.write("k", "orset", lambda s: s.add("A", 1))
        assert node.replica.value("k") is not None
        assert node.replica.value("k").value == 1  # type: ignore[union-attr]
    finally:
        await node.aclose()


def _entry(seq: int, key: str = "k") -> LogEntry:
    return LogEntry.of("A", 0, seq, key, "gcounter", {"type": "gcounter", "v": 1, "n": {"A": seq}})


def test_merge_persists_keeps_the_store_semantics() -> None:
    h1 = HintRecord("B", _entry(1), 1.0)
    h2 = HintRecord("C", _entry(2), 1.0)
    p1 = Persist(
        objects=(ObjectState("k", "gcounter", {"n": 1}),),
        log=(_entry(1),),
        summaries=((0, {"vv": {"A": 1}}),),
        hints_add=(h1,),
        hints_drop=(h2.id,),
        peers=(PeerRecord("B", address="x"),),
        compact=((0, {"A": 3, "B": 1}),),
    )
    p2 = Persist(
        objects=(ObjectState("k", "gcounter", {"n": 2}),),
        log=(_entry(1), _entry(2)),
        summaries=((0, {"vv": {"A": 2}}),),
        hints_add=(h2,),  # dropped in p1, re-added: stays
        hints_drop=(h1.id,),  # added in p1, dropped: goes
        peers=(PeerRecord("B", address="y"),),
        compact=((0, {"A": 2, "C": 4}),),
    )
    m = merge_persists([p1, p2])
    assert m.objects == (ObjectState("k", "gcounter", {"n": 2}),)
    assert [e.seq for e in m.log] == [1, 2]
    assert m.summaries == ((0, {"vv": {"A": 2}}),)
    assert m.hints_add == (h2,)
    assert m.hints_drop == (HintId("B", "A", 0, 1),)
    assert m.peers == (PeerRecord("B", address="y"),)
    assert m.compact == ((0, {"A": 3, "B": 1, "C": 4}),)
    assert merge_persists([]).is_empty()


async def test_room_blocks_readers_while_inputs_pile_up() -> None:
    store = GatedStore()
    replica = Replica(ReplicaConfig(n=1, anti_entropy_interval=None), "A")
    node = Node(replica, store, lambda peer, msg: True, max_pending=5)  # not started yet
    try:
        for _ in range(10):
            node.submit(lambda r, now: None)
        waiter = asyncio.ensure_future(node.room())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        node.start()
        await asyncio.wait_for(waiter, WAIT)
        assert node.counters.inputs == 10
    finally:
        await node.aclose()


async def test_a_load_waits_only_for_the_commits_that_write_its_keys() -> None:
    """Before loading keys from the store the node waits for the rounds handed so far that
    write those keys, not for unrelated ones (a state transfer's next chunk is loaded while
    the last one commits); with no keys named (a whole partition) it waits for every round."""
    from sync.transport.executor import Executor, NodeCounters

    store = GatedStore()
    idle = asyncio.Event()
    executor = Executor(
        store,  # type: ignore[arg-type]
        lambda peer, msg: True,
        NodeCounters(),
        {},
        {},
        idle,
        read_page=lambda effect: None,
        fail_stop=lambda effects, exc: None,
    )
    task = asyncio.ensure_future(executor.run())
    try:
        store.gate.clear()
        a = ObjectState("a", "gcounter", '{"type":"gcounter","v":1,"counts":{}}', False)
        executor.hand([Persist(objects=(a,))])
        executor.hand([Persist(log=(LogEntry("r", 0, 1, "b", "gcounter", "{}"),))])
        await asyncio.sleep(0.05)  # the executor took both rounds: committing, at the gate
        assert store.events == ["apply-start"]
        await asyncio.wait_for(executor.caught_up(["c", "d"]), WAIT)  # nothing writes them
        waiting = {
            name: asyncio.ensure_future(executor.caught_up(keys))
            for name, keys in (("a", ["a"]), ("b", ["x", "b"]), ("all", None))
        }
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiting.values())
        store.gate.set()
        await asyncio.wait_for(asyncio.gather(*waiting.values()), WAIT)
        assert len(store.batches) == 1  # (both rounds in one commit)
        store.gate.clear()
        executor.hand([Persist(objects=(a,))])  # a third round, queued behind a new commit
        await asyncio.sleep(0.05)
        assert store.events.count("apply-start") == 2
        await asyncio.wait_for(executor.caught_up(["b"]), WAIT)  # b's round ran already
        late = asyncio.ensure_future(executor.caught_up(["a"]))
        await asyncio.sleep(0.05)
        assert not late.done()
        store.gate.set()
        await asyncio.wait_for(late, WAIT)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_on_wall_clock_moves_the_persisted_times_and_nothing_else() -> None:
    hint = HintRecord("B", _entry(1), 100.0)
    p = Persist(
        log=(_entry(1),),
        hints_add=(hint,),
        peers=(PeerRecord("B", last_seen=90.0), PeerRecord("C")),  # C: never seen (0.0)
    )
    moved = on_wall_clock(p, 86_400.0)
    assert [h.stored_at for h in moved.hints_add] == [86_500.0]
    assert [(q.replica_id, q.last_seen) for q in moved.peers] == [("B", 86_490.0), ("C", 0.0)]
    assert moved.log == p.log and moved.hints_add[0].id == hint.id
    nothing = Persist(log=(_entry(2),))
    assert on_wall_clock(nothing, 86_400.0) is nothing
