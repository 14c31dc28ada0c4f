"""Writes stamped too far ahead of the receiver's clock are set aside at receipt, one path at a
time (the engine driven by hand; ``now`` is its clock, in seconds).

Set aside means: not applied, not logged, not in the summary; counted per writer in
``status()["clock_skew"]``; an ``Alarm`` effect. The message itself is not refused: the rest
of it is applied and the link stays. What is set aside comes again (anti-entropy, hint
hand-off, the sender's retries) and is taken once the clock is within the bound.
"""

from __future__ import annotations

import json
from typing import Any

import crdt
from crdt import Timestamp
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Alarm, Loaded, LogDot, PeerRecord, Persist, Send
from sync.replica import Replica
from sync.replica.membership import MAX_SKEWED_WRITERS
from sync.ring import partition_of
from tests.sync.conftest import ask_transfer

__all__: list[str] = []

PARTS = 8
CONFIG = ReplicaConfig(n=2, partitions=PARTS, vnodes=4, max_clock_skew=60.0)
NOW = 1_000_000.0  # seconds
DAY = 86_400.0


def _replica() -> Replica:
    r = Replica(CONFIG, "A", Loaded(peers={"B": PeerRecord("B")}), now=NOW)
    r.peer_up("B", NOW)
    r.effects()
    return r


def _lww(value: Any, ahead: float, replica: str = "B") -> dict[str, Any]:
    ts = Timestamp(int((NOW + ahead) * 1000), 0, replica)
    return crdt.new("lww").set(replica, value, timestamp=ts).to_dict()


def _entry(key: str, delta: dict[str, Any], seq: int = 1, origin: str = "B") -> m.Entry:
    return m.Entry.of(origin, partition_of(key, PARTS), seq, key, delta["type"], delta)


def _sent(fx: list[Any]) -> list[str]:
    return [type(e.message).__name__ for e in fx if isinstance(e, Send)]


def _alarms(fx: list[Any]) -> list[Alarm]:
    return [e for e in fx if isinstance(e, Alarm)]


def test_a_push_applies_its_good_entries_and_acks_all_but_the_skewed_one() -> None:
    r = _replica()
    good = _entry("g", crdt.new("gcounter").increment("B").to_dict())
    skewed = _entry("title", _lww("ahead", DAY), seq=2)
    r.receive("B", m.Push(push_id=5, entries=[good, skewed]), NOW)
    fx = r.effects()
    logged = [(e.key, e.seq) for p in fx if isinstance(p, Persist) for e in p.log]
    assert logged == [("g", 1)] and r.value("title") is None and r.current_value("g") == 1
    # A plain ack would say the skewed entry is durable here: the ack leaves it out.
    assert "Ack" not in _sent(fx)
    (ack,) = [e.message for e in fx if isinstance(e, Send) and isinstance(e.message, m.AckExcept)]
    assert (ack.push_id, ack.skipped) == (5, [1])
    (alarm,) = _alarms(fx)
    assert alarm.kind == "clock_skew" and alarm.peer == "B"
    assert "86400.0 s ahead" in alarm.message and "allowed 60 s" in alarm.message
    assert r.status()["clock_skew"]["B"]["set_aside"] == 1
    assert r.status()["clock_skew"]["B"]["ahead_ms"] == 86_400_000
    # Offered again while the clock is still behind: set aside again, no second alarm yet.
    r.receive("B", m.Push(push_id=6, entries=[skewed]), NOW + 10)
    fx = r.effects()
    assert _alarms(fx) == [] and "Ack" not in _sent(fx) and "AckExcept" in _sent(fx)
    assert r.status()["clock_skew"]["B"]["set_aside"] == 2
    # Once our clock is within the bound of the timestamp, it is taken.
    r.receive("B", m.Push(push_id=7, entries=[skewed]), NOW + DAY - 60)
    fx = r.effects()
    assert "Ack" in _sent(fx) and r.current_value("title") == "ahead"


def test_within_the_bound_is_taken_at_once() -> None:
    r = _replica()
    r.receive("B", m.Push(push_id=1, entries=[_entry("title", _lww("soon", 59.0))]), NOW)
    fx = r.effects()
    assert r.current_value("title") == "soon" and "Ack" in _sent(fx) and not _alarms(fx)
    assert r.status()["clock_skew"] == {}


def test_a_map_embedding_a_register_ahead_is_set_aside_too() -> None:
    m_ = crdt.new("ormap")
    ts = Timestamp(int((NOW + DAY) * 1000), 0, "B")
    delta = m_.update(
        "B",
        "prefs",
        "ormap",
        lambda inner: inner.update("B", "theme", "lww", lambda v: v.set("B", "dark", timestamp=ts)),
    )
    r = _replica()
    r.receive(
        "B",
        m.Deltas(
            batch_id=3, partition=partition_of("m", PARTS), entries=[_entry("m", delta.to_dict())]
        ),
        NOW,
    )
    fx = r.effects()
    assert r.value("m") is None and len(_alarms(fx)) == 1
    assert "Ack" in _sent(fx)  # a Deltas ack is flow control: our next summary lacks it


def test_a_snapshot_chunk_with_a_state_ahead_is_neither_applied_nor_acked() -> None:
    r = _replica()
    p = partition_of("title", PARTS)
    good = next(k for k in (f"k{i}" for i in range(200)) if partition_of(k, PARTS) == p)
    objects = [
        m.SnapObject(
            key=good, kind="gcounter", state_json=crdt.new("gcounter").increment("B").to_json()
        ),
        m.SnapObject(key="title", kind="lww", state_json=json.dumps(_lww("ahead", DAY))),
    ]
    summary = m.Ctx(vv={"B": 2})
    ask_transfer(r, "B", [p], NOW)
    r.receive(
        "B",
        m.SnapshotChunk(batch_id=9, partition=p, objects=objects, summary=summary, last=True),
        NOW,
    )
    fx = r.effects()
    # Applying the rest with the summary would claim dots whose writes we set aside.
    assert r.keys() == [] and r.summary(p).to_dict() == {"vv": {}, "cloud": []}
    assert _sent(fx) == [] and len(_alarms(fx)) == 1


def test_a_repair_ahead_is_dropped_and_a_read_reply_ahead_counts_without_its_state() -> None:
    r = _replica()
    r.receive("B", m.Repair(key="title", kind="lww", state=_lww("ahead", DAY)), NOW)
    fx = r.effects()
    assert r.value("title") is None and len(_alarms(fx)) == 1
    r.local_update(1, "title", "lww", lambda v: v.set("A", "mine", now_ms=int(NOW * 1000)), NOW)
    r.local_read(2, "title", NOW, r=2)
    (req,) = [
        e.message
        for e in r.effects()
        if isinstance(e, Send) and isinstance(e.message, m.ReadDigest)
    ]
    # A register has no causal context: a replier that differs answers with its whole state.
    ahead = _lww("ahead", DAY)
    reply = m.ReadDigestResp(req_id=req.req_id, key="title", kind="lww", same=False, state=ahead)
    r.receive("B", reply, NOW)
    fx = r.effects()
    (done,) = [e for e in fx if type(e).__name__ == "ReadDone"]
    assert done.replies == 2 and done.state.value == "mine"
    assert r.current_value("title") == "mine"
    assert r.status()["clock_skew"]["B"]["set_aside"] == 2


def test_a_hint_ahead_is_not_held() -> None:
    cfg = ReplicaConfig(n=1, partitions=PARTS, vnodes=4)
    r = Replica(cfg, "A", Loaded(peers={"B": PeerRecord("B"), "C": PeerRecord("C")}), now=NOW)
    r.peer_up("B", NOW)
    r.effects()
    key = next(k for k in (f"h{i}" for i in range(500)) if r.homes(k) == ("C",))
    r.receive("B", m.Push(push_id=1, entries=[_entry(key, _lww("ahead", DAY))], hint_for="C"), NOW)
    fx = r.effects()
    assert r.status()["hints"] == {} and "Ack" not in _sent(fx) and len(_alarms(fx)) == 1


def test_the_writer_named_is_the_timestamps_not_the_relay() -> None:
    r = _replica()
    relayed = _entry("title", _lww("ahead", DAY, replica="C"), origin="C")
    r.receive("B", m.Push(push_id=1, entries=[relayed]), NOW)
    (alarm,) = _alarms(r.effects())
    assert alarm.peer == "C" and "received from B" in alarm.message
    assert list(r.status()["clock_skew"]) == ["C"]


def test_a_dot_we_know_of_but_do_not_log_is_checked_as_a_new_one() -> None:
    """A push of a log dot our summary has but our log lacks (compacted, or told of by a
    state transfer) is joined all the same (so that its ack means applied): it was joined
    without the skew check, so a writer could re-send one of its compacted dots with another
    delta stamped years ahead and pin the register there (our later writes then lost to it,
    and every correct peer set them aside as skewed)."""
    r = _replica()
    key = "title"
    p = partition_of(key, PARTS)
    r.receive("B", m.Push(push_id=1, entries=[_entry(key, _lww("v1", 0.0))]), NOW)
    r.effects()
    r.receive("B", m.Summary(parts={p: m.Ctx(vv={"B": 1})}), NOW)
    r.tick(NOW + 100)  # (compaction: B's dot is in both summaries)
    r.effects()
    assert r.summary(p).to_dict()["vv"] == {"B": 1}
    assert r._data.log.entry(p, "B", 1) is None  # compacted: known, not in the log
    r.receive("B", m.Push(push_id=2, entries=[_entry(key, _lww("pinned", 10 * 365 * DAY))]), NOW)
    fx = r.effects()
    assert r.current_value(key) == "v1" and "Ack" not in _sent(fx)
    (alarm,) = _alarms(fx)
    assert alarm.kind == "clock_skew"
    r.local_update(9, key, "lww", lambda x: x.set("A", "ours", now_ms=int(NOW * 1000) + 1), NOW)
    r.effects()
    assert r.current_value(key) == "ours"


def test_the_writes_beside_a_skewed_one_in_a_push_complete() -> None:
    """B's clock is a day ahead: in one drain it sets a register (w=1) and adds to a set
    (w=2). A sets the register aside and applies the add: B's add completes with A's ack
    (before, the whole push went unacked and the add failed, QuorumNotReached, for a
    register it had nothing to do with), and A is not counted as holding the register."""
    a = _replica()
    b = Replica(CONFIG, "B", Loaded(peers={"A": PeerRecord("A")}), now=NOW)
    b.peer_up("A", NOW)
    b.effects()
    ahead_ms = int((NOW + DAY) * 1000)
    b.local_update(1, "title", "lww", lambda v: v.set("B", "ahead", now_ms=ahead_ms), NOW, w=1)
    b.local_update(2, "cart", "orset", lambda s: s.add("B", "milk"), NOW, w=2)
    pushes = [e.message for e in b.effects() if isinstance(e, Send) and e.peer == "A"]
    assert len(pushes) == 1 and len(pushes[0].entries) == 2  # one push carries both
    a.receive("B", m.decode(m.encode(pushes[0])), NOW)
    replies = [e.message for e in a.effects() if isinstance(e, Send) and e.peer == "B"]
    assert a.current_value("cart") == frozenset({"milk"}) and a.value("title") is None
    for reply in replies:
        b.receive("A", m.decode(m.encode(reply)), NOW)
    done = {e.op_id: e.result for e in b.effects() if type(e).__name__ == "WriteDone"}
    assert set(done) == {2} and done[2].acks == 2
    title = next(e for e in pushes[0].entries if e.key == "title")
    where = b.whereabouts("title", LogDot(title.origin, title.partition, title.seq))
    assert "A" not in where.at_homes
    cart = next(e for e in pushes[0].entries if e.key == "cart")
    assert "A" in b.whereabouts("cart", LogDot(cart.origin, cart.partition, cart.seq)).at_homes


def test_a_non_home_that_left_leaves_no_clock_skew_record_behind() -> None:
    """A short-lived session (a non-home) with its clock ahead, linked, pushes a write that
    is set aside, then leaves: the engine forgets it, but its clock-skew record stayed, so
    every such session stayed in ``status()["clock_skew"]`` and in the adapter's per-peer
    status (listed as a home) for as long as the peer ran."""
    r = Replica(CONFIG, "A", now=NOW)
    r.peer_up("T", NOW, home=False)
    r.effects()
    r.receive(
        "T", m.Push(push_id=1, entries=[_entry("title", _lww("x", DAY, "T"), origin="T")]), NOW
    )
    assert list(r.status()["clock_skew"]) == ["T"]
    r.effects()
    r.peer_down("T", NOW + 1)
    r.effects()
    assert r.status()["non_homes"] == [] and r.status()["peers_known"] == []
    assert r.status()["clock_skew"] == {}


def test_the_writers_with_writes_set_aside_are_remembered_up_to_a_bound() -> None:
    """One record per writer whose write was set aside, for as long as the peer ran: a member
    relaying writes of ever new writers stamped ahead (ids are free to make) grew the table,
    ``status()["clock_skew"]`` and the per-peer status without bound. The most recent are
    kept."""
    r = _replica()
    writers = [f"W{i:04d}" for i in range(MAX_SKEWED_WRITERS + 200)]
    for n, w in enumerate(writers):
        entry = _entry(f"t{n}", _lww("x", DAY, w), origin=w)
        r.receive("B", m.Push(push_id=n + 1, entries=[entry]), NOW + n)
        r.effects()
    skews = r.status()["clock_skew"]
    assert len(skews) == MAX_SKEWED_WRITERS
    assert set(skews) == set(writers[-MAX_SKEWED_WRITERS:])
