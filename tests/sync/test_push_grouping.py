"""One ``Push`` of several entries leaves the receiver as the same entries sent one per push.

The receiver joins the deltas of a push's entries of one key into one delta group before it
touches the state (the first decoded, the others joined into it, most straight from their
parsed JSON: ``crdt.merge_dict``), and logs each entry whose log dot it lacks. Sent one by
one, an entry whose log dot the receiver has already is known and skipped; inside one push
the same must hold, or the state holds a delta its log does not (the log keeps one text per
log dot), which it then never forwards, and which anti-entropy (comparing log dots) never
finds: the replicas stay apart for good.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sync import messages as m
from sync.config import ReplicaConfig
from sync.digest import ctx_model
from sync.effects import Alarm, Loaded, LogEntry, PeerRecord
from sync.errors import RemoteProtocolError
from sync.replica import Replica
from sync.replica.membership import ALARM_REPEAT
from sync.ring import partition_of
from tests.sync.conftest import ask_transfer

__all__: list[str] = []

PARTS = 4
CONFIG = ReplicaConfig(n=2, partitions=PARTS, vnodes=4)
ME = "A"


def _replica() -> Replica:
    r = Replica(CONFIG, ME, Loaded(peers={"B": PeerRecord("B")}), now=10.0)
    r.peer_up("B", 10.0)
    ask_transfer(r, "B", range(PARTS), 10.0)
    r.local_update(1, "k", "orset", lambda s: s.add(ME, "mine"), 10.0)
    r.local_update(
        2, "m", "ormap", lambda s: s.update(ME, "q", "lww", lambda x: x.set(ME, 1, now_ms=5)), 10.0
    )
    r.effects()
    return r


def _view(r: Replica) -> tuple[Any, ...]:
    keys = r.keys()
    objects = {(k, kind): r.value(k, kind).to_json() for k in keys for kind in r.kinds_of(k)}  # type: ignore[union-attr]
    return objects, [r.summary(p).to_dict() for p in range(PARTS)]


def _push(r: Replica, entries: list[LogEntry], push_id: int) -> bool:
    """Deliver ``entries`` in one push from B, through the codec; False if it is refused (then
    nothing changed)."""
    before = _view(r)
    copies = [LogEntry(e.origin, e.partition, e.seq, e.key, e.kind, e.delta_json) for e in entries]
    msg = m.Push.model_construct(push_id=push_id, entries=copies, hint_for=None)
    try:
        r.receive("B", m.decode(m.encode(msg)), 11.0)
    except RemoteProtocolError:
        assert _view(r) == before
        return False
    return True


def _ctx(r: str, c: int) -> dict[str, Any]:
    return {"vv": {r: 1}, "cloud": []} if c == 1 else {"vv": {}, "cloud": [[r, c]]}


def _entry(origin: str, seq: int, key: str, delta: dict[str, Any]) -> LogEntry:
    text = json.dumps(delta, separators=(",", ":"), ensure_ascii=False)
    return LogEntry(origin, partition_of(key, PARTS), seq, key, delta["type"], text)


def _add(element: Any, r: str, c: int) -> dict[str, Any]:
    return {"type": "orset", "v": 1, "entries": [[element, [[r, c]]]], "ctx": _ctx(r, c)}


def _write(key: str, value: Any, r: str, c: int) -> dict[str, Any]:
    body = [[[r, c], [5, 0, r], value]]
    return {"type": "ormap", "v": 1, "entries": [[key, "lww", body]], "ctx": _ctx(r, c)}


def _grouped_is_singly(entries: list[LogEntry]) -> None:
    """Either the receiver refuses the one push (changing nothing), or it ends as the same
    entries delivered one per push leave it."""
    grouped, singly = _replica(), _replica()
    if not _push(grouped, entries, 1):
        return
    for i, e in enumerate(entries):
        _push(singly, [e], i + 1)
    assert _view(grouped) == _view(singly)


@pytest.mark.parametrize(
    "second",
    [_add("y", "B", 2), _add("y", "B", 1), _add("x", "B", 2)],
    ids=["another-element-and-dot", "another-element-same-dot", "same-element-another-dot"],
)
def test_one_log_dot_twice_in_a_push_joins_one_delta_as_one_per_push_does(
    second: dict[str, Any],
) -> None:
    """B's log dot (B, 1) carried twice with two deltas in one push (a faulty or hostile
    origin): the receiver logs one of them; its state must not hold the other."""
    _grouped_is_singly([_entry("B", 1, "k", _add("x", "B", 1)), _entry("B", 1, "k", second)])


def test_one_log_dot_twice_in_a_push_of_a_map_joins_one_delta() -> None:
    first, second = _write("z", "one", "B", 1), _write("w", "two", "B", 2)
    _grouped_is_singly([_entry("B", 1, "m", first), _entry("B", 1, "m", second)])


def test_a_log_dot_set_aside_for_skew_leaves_its_later_copy_to_be_taken() -> None:
    """The first copy of a log dot is stamped a day ahead (set aside, not applied); the
    second is not: taken as the second push of one per push takes it, so the state holds
    its delta and the log its dot (marking the dot as seen at the first copy logged it
    with no delta joined)."""
    ahead = _write("z", "one", "B", 1)
    ahead["entries"][0][2][0][1] = [11_000 + 86_400_000, 0, "B"]
    entries = [_entry("B", 1, "m", ahead), _entry("B", 1, "m", _write("w", "two", "B", 1))]
    _grouped_is_singly(entries)
    grouped = _replica()
    assert _push(grouped, entries, 1)
    assert "w" in grouped.value("m", "ormap").value  # type: ignore[union-attr]
    assert grouped.summary(partition_of("m", PARTS)).vv.get("B") == 1


def _random_entries(rng: random.Random) -> list[LogEntry]:
    out: list[LogEntry] = []
    seqs = {"B": 0, "C": 0}
    for _ in range(rng.randint(2, 5)):
        r, c = rng.choice(["A", "B", "C", "H"]), rng.randint(1, 4)
        if rng.random() < 0.5:
            key = "k"
            delta = _add(rng.choice(["x", "y", "mine", 7]), r, c)
            if rng.random() < 0.2:
                delta["entries"] = []  # a remove of the dot
        else:
            key = "m"
            delta = _write(rng.choice(["q", "z"]), rng.choice([1, True, 1.0, "s", [1]]), r, c)
        origin = rng.choice(["B", "C"])
        if seqs[origin] and rng.random() < 0.15:
            seq = rng.randint(1, seqs[origin])  # a log dot of this push again
        else:
            seq = seqs[origin] = seqs[origin] + 1
        out.append(_entry(origin, seq, key, delta))
    return out


def test_random_pushes_leave_the_receiver_as_their_entries_one_by_one() -> None:
    """Pushes of a few one-dot deltas (adds, removes, writes of two keys, dots of the
    receiver's too, one element or key written with one dot twice, log dots again): one
    push, or one push per entry, leaves the receiver alike."""
    rng = random.Random(20240611)
    for _ in range(120):
        _grouped_is_singly(_random_entries(rng))


# -- equivocation: an origin's two different writes under one log dot, reported -----------


def _alarms(r: Replica) -> list[Alarm]:
    return [e for e in r.effects() if isinstance(e, Alarm)]


@pytest.mark.parametrize("one_push", [False, True], ids=["two-pushes", "one-push"])
def test_two_writes_under_one_log_dot_raise_an_equivocation_alarm(one_push: bool) -> None:
    """B's log dot (B, 1) names two different writes: the second is taken as known (the
    state and log as the first left them) and an alarm names B; a plain resend of the first
    raises none."""
    first, second = _entry("B", 1, "k", _add("x", "B", 1)), _entry("B", 1, "k", _add("y", "B", 2))
    r = _replica()
    if one_push:
        assert _push(r, [first, second], 1)
    else:
        assert _push(r, [first], 1)
        kept = _view(r)
        assert _alarms(r) == []
        assert _push(r, [second], 2)
        assert _view(r) == kept
    alarms = _alarms(r)
    assert [(a.kind, a.peer) for a in alarms] == [("equivocation", "B")]
    assert "(partition" in alarms[0].message and "seq 1" in alarms[0].message
    assert r.value("k", "orset").value == {"mine", "x"}  # type: ignore[union-attr]
    assert _push(r, [first], 3)  # the same write again: a duplicate, nothing to report
    assert _alarms(r) == []


def test_an_equivocation_alarm_repeats_at_most_every_alarm_repeat_seconds() -> None:
    r = _replica()
    assert _push(r, [_entry("B", 1, "k", _add("x", "B", 1))], 1)
    for i, element in enumerate(["y", "z", "w"]):
        assert _push(r, [_entry("B", 1, "k", _add(element, "B", 2))], 2 + i)
    assert len(_alarms(r)) == 1
    assert r.status()["equivocations"] == {"B": 3}
    msg = m.Push.model_construct(
        push_id=9, entries=[_entry("B", 1, "k", _add("v", "B", 3))], hint_for=None
    )
    r.receive("B", m.decode(m.encode(msg)), 11.0 + ALARM_REPEAT)
    assert [(a.kind, a.peer) for a in _alarms(r)] == [("equivocation", "B")]


def _compacted(r: Replica, entry: LogEntry) -> None:
    """``entry`` taken, then compacted away (B's summary says it holds all A holds)."""
    assert _push(r, [entry], 1)
    r.effects()
    p = entry.partition
    r.receive("B", m.Summary(parts={p: ctx_model(r.summary(p))}, reply=False), 12.0)
    r.effects()
    assert r._data.log.entry(p, entry.origin, entry.seq) is None


def test_two_writes_under_a_compacted_log_dot_in_one_push_join_one_and_report() -> None:
    """A dot known from the summary only (compacted) is joined again when it comes (an ack
    means applied); a second, different copy of it in the same push is reported and not
    joined: the first one taken counts, as for a dot still logged."""
    r = _replica()
    _compacted(r, _entry("B", 1, "k", _add("x", "B", 1)))
    again, other = _entry("B", 1, "k", _add("x", "B", 1)), _entry("B", 1, "k", _add("y", "B", 2))
    assert _push(r, [again, other], 2)
    assert r.value("k", "orset").value == {"mine", "x"}  # type: ignore[union-attr]
    assert [(a.kind, a.peer) for a in _alarms(r)] == [("equivocation", "B")]


def test_an_equivocation_over_deltas_is_reported_too() -> None:
    """Anti-entropy's ``Deltas`` carry log entries as a push does: checked alike."""
    r = _replica()
    assert _push(r, [_entry("B", 1, "k", _add("x", "B", 1))], 1)
    r.effects()
    o = _entry("B", 1, "k", _add("y", "B", 2))
    copy = LogEntry(o.origin, o.partition, o.seq, o.key, o.kind, o.delta_json)
    msg = m.Deltas.model_construct(batch_id=5, partition=o.partition, entries=[copy])
    r.receive("B", m.decode(m.encode(msg)), 11.0)
    assert [(a.kind, a.peer) for a in _alarms(r)] == [("equivocation", "B")]
    assert r.status()["equivocations"] == {"B": 1}


def test_equivocations_under_many_origins_raise_a_bounded_number_of_alarms() -> None:
    """Unsigned, a member may pose as any origin: equivocating under a new made-up origin
    each time (more than the records kept, so each comes back as new) raised an alarm each,
    as many as it sent. Past ``EQUIVOCATION_ALARMS`` origins in one ``ALARM_REPEAT`` one
    more alarm says the rest are only counted; the next window reports again."""
    from sync.replica.equivocation import EQUIVOCATION_ALARMS, MAX_EQUIVOCATORS

    r = _replica()
    origins = [f"O{i:03}" for i in range(2 * MAX_EQUIVOCATORS + 10)]
    for i, o in enumerate(origins):
        assert _push(r, [_entry(o, 1, "k", _add(f"a{i}", o, 1))], 1 + 2 * i)
        assert _push(r, [_entry(o, 1, "k", _add(f"b{i}", o, 1))], 2 + 2 * i)
    for i, o in enumerate(origins[:20]):  # (evicted from the records: new again)
        assert _push(r, [_entry(o, 1, "k", _add(f"c{i}", o, 1))], 1000 + i)
    alarms = _alarms(r)
    kinds = [a.kind for a in alarms]
    assert kinds == ["equivocation"] * EQUIVOCATION_ALARMS + ["equivocations_unreported"]
    assert alarms[-1].peer == "B" and "status" in alarms[-1].message
    assert len(r.status()["equivocations"]) == MAX_EQUIVOCATORS  # (bounded, as before)

    msg = m.Push.model_construct(
        push_id=5000, entries=[_entry(origins[-1], 1, "k", _add("d", origins[-1], 1))]
    )
    r.receive("B", m.decode(m.encode(msg)), 11.0 + ALARM_REPEAT)
    assert [(a.kind, a.peer) for a in _alarms(r)] == [("equivocation", origins[-1])]
