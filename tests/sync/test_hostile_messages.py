"""Single messages that used to stop a peer, each refused now with a reason, changing nothing.

Each of these came from a member holding the group secret: the engine took it, and the
``Persist`` it then emitted (at once, or at the next local write) was one the store refuses,
which stops the peer (fail-stop), again at every restart for a poisoned log-dot counter.
Each test sends the message through the real decoder and engine, checks that it is refused
and that nothing changed, then commits what the replica persists next to a real SQLite
store and reopens it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import crdt
from store import Store
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Alarm, Loaded, PeerRecord, Persist, Send
from sync.errors import RemoteProtocolError
from sync.replica import Replica
from sync.ring import partition_of
from sync.transport.node import loaded_from_store
from tests.sync.conftest import ask_transfer

__all__: list[str] = []

PARTS = 8
CONFIG = ReplicaConfig(n=2, partitions=PARTS, vnodes=4)
ME = "A"
MAX_SEQ = 2**63 - 1


def _partition(key: str) -> int:
    return partition_of(key, PARTS)


def _replica() -> Replica:
    r = Replica(CONFIG, ME, Loaded(peers={"B": PeerRecord("B")}), now=10.0)
    r.peer_up("B", 10.0)
    ask_transfer(r, "B", range(PARTS), 10.0)  # (what B's state transfers answer)
    r.local_update(1, "k", "gcounter", lambda c: c.increment(ME), 10.0)
    return r


def _wire(raw: dict[str, Any]) -> bytes:
    return json.dumps({"proto": 1, **raw}).encode()


def _gcounter(replica: str = "B") -> dict[str, Any]:
    return crdt.new("gcounter").increment(replica).to_dict()


def _view(r: Replica) -> tuple[Any, ...]:
    keys = r.keys()
    return (
        json.dumps(r.status(), sort_keys=True),
        [r.summary(p).to_dict() for p in range(PARTS)],
        {(k, kind): r.value(k, kind) for k in keys for kind in r.kinds_of(k)},
    )


async def _commit_and_reopen(path: Path, persists: list[Persist]) -> Replica:
    """Commit ``persists`` to a SQLite store (raises what the store refuses), then build a
    replica from what the store loads back."""
    store = await Store.open(path, partitions=PARTS, partition_of=_partition)
    try:
        for p in persists:
            await store.apply(p)
        loaded = loaded_from_store(await store.load())
    finally:
        await store.aclose()
    return Replica(CONFIG, ME, loaded, now=20.0)


def _persists(r: Replica) -> list[Persist]:
    return [fx for fx in r.effects() if isinstance(fx, Persist)]


def _refused(r: Replica, data: bytes, field: str) -> None:
    """``data`` is refused by the decoder or by the engine, naming ``field``; nothing
    changes. A message built in Python (without the decoder) is refused by the engine."""
    before = _view(r)
    with pytest.raises(RemoteProtocolError, match=field):
        r.receive("B", m.decode(data), 11.0)
    assert r.effects() == [] and _view(r) == before


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # Push(hint_for=""): held as a hint for the replica "", a row the store refuses.
        (
            {
                "t": "push",
                "push_id": 1,
                "entries": [["B", _partition("x"), 1, "x", "gcounter", json.dumps(_gcounter())]],
                "hint_for": "",
            },
            "hint_for",
        ),
        # Repair(key=""): a checkpoint of the key "".
        ({"t": "repair", "key": "", "kind": "gcounter", "state": _gcounter()}, "key"),
        # A snapshot object with the key "" (in the partition of "").
        (
            {
                "t": "snapshot",
                "batch_id": 1,
                "partition": _partition(""),
                "objects": [{"key": "", "kind": "gcounter", "state_json": json.dumps(_gcounter())}],
            },
            "key",
        ),
        # A key with a NUL: PostgreSQL cannot store it in a text column.
        ({"t": "repair", "key": "a\x00b", "kind": "gcounter", "state": _gcounter()}, "key"),
    ],
    ids=["push-hint-for-empty", "repair-empty-key", "snapshot-empty-key", "repair-nul-key"],
)
async def test_a_message_the_store_would_refuse_is_refused_first(
    tmp_path: Path, raw: dict[str, Any], field: str
) -> None:
    r = _replica()
    persists = _persists(r)
    _refused(r, _wire(raw), field)
    r.local_update(2, "k", "gcounter", lambda c: c.increment(ME), 12.0)
    persists += _persists(r)
    again = await _commit_and_reopen(tmp_path / "a.db", persists)
    assert again.current_value("k") == 2 and again.keys() == ["k"]


def test_the_engine_refuses_them_too_when_built_without_the_decoder() -> None:
    r = _replica()
    r.effects()
    entry = m.Entry.of("B", _partition("x"), 1, "x", "gcounter", _gcounter())
    chunk = m.SnapshotChunk.model_construct(
        batch_id=1,
        partition=_partition(""),
        objects=[
            m.SnapObject.model_construct(
                key="", kind="gcounter", state_json=json.dumps(_gcounter()), piece=False
            )
        ],
        summary=None,
        last=False,
    )
    for msg, field in (
        (m.Push.model_construct(push_id=1, entries=[entry], hint_for=""), "push for ''"),
        (m.Repair.model_construct(key="", kind="gcounter", state=_gcounter()), "not a key"),
        (chunk, "not a key"),
        (m.ReadReq.model_construct(req_id=1, key="a\x00", kind="gcounter"), "not a key"),
    ):
        before = _view(r)
        with pytest.raises(RemoteProtocolError, match=field):
            r.receive("B", msg, 11.0)
        assert r.effects() == [] and _view(r) == before


def _own(seq: int, partition_key: str = "k", origin: str = ME) -> m.Push:
    delta = crdt.new("gcounter").increment(origin, 5).to_dict()
    entry = m.Entry.of(origin, _partition(partition_key), seq, partition_key, "gcounter", delta)
    return m.Push(push_id=7, entries=[entry])


async def test_an_entry_claiming_our_origin_and_a_seq_we_never_issued_is_refused(
    tmp_path: Path,
) -> None:
    """``Push(origin=<receiver>, seq=2**63-1)`` used to raise our numbering to 2**63-1, so
    every later local write (and every restart's) was a row the store refuses."""
    r = _replica()
    persists = _persists(r)
    for seq, why in (
        (MAX_SEQ, r"seq not in 1\.\.2\*\*62"),
        (2**62, "never issued"),
        (2, "never issued"),
    ):
        before = _view(r)  # we issued seq 1 only
        with pytest.raises(RemoteProtocolError, match=why) as info:
            r.receive("B", _own(seq), 11.0)
        assert info.value.peer == "B" and r.effects() == [] and _view(r) == before
    r.local_update(2, "k", "gcounter", lambda c: c.increment(ME), 12.0)
    persists += _persists(r)
    again = await _commit_and_reopen(tmp_path / "a.db", persists)
    assert again.current_value("k") == 2
    again.local_update(3, "k", "gcounter", lambda c: c.increment(ME), 21.0)
    logged = [e.seq for p in _persists(again) for e in p.log]
    assert logged == [3]


def test_our_own_entry_that_we_hold_is_a_no_op_and_one_we_lost_is_taken_back() -> None:
    r = _replica()
    r.effects()
    # A dot we issued and hold: known, acked, nothing else (its delta is not the one we
    # made, which is reported: see tests/sync/test_push_grouping.py).
    r.receive("B", _own(1), 11.0)
    fx = r.effects()
    assert not [p for p in fx if isinstance(p, Persist)]
    assert [type(e.message).__name__ for e in fx if isinstance(e, Send)] == ["Ack"]
    assert [(a.kind, a.peer) for a in fx if isinstance(a, Alarm)] == [("equivocation", ME)]
    # A restored database learns from a summary that peers hold its dots up to 3 (an
    # identity conflict): those are the writes of its previous incarnation, taken back.
    summary = m.Summary(parts={_partition("k"): m.Ctx(vv={ME: 3})})
    r.receive("B", summary, 11.0)
    r.effects()
    r.receive("B", _own(3), 11.0)
    logged = [(e.origin, e.seq) for p in _persists(r) for e in p.log]
    assert logged == [(ME, 3)] and r.current_value("k") == 5  # our count, as B had it


def test_a_hint_of_our_own_origin_is_refused() -> None:
    """A fallback never holds a hint of its own entries for someone else: forwarding one
    would spread a dot in our name that we never issued."""
    cfg = ReplicaConfig(n=1, partitions=PARTS, vnodes=4)
    r = Replica(cfg, ME, Loaded(peers={"B": PeerRecord("B")}), now=10.0)
    r.peer_up("B", 10.0)
    r.effects()
    key = next(k for k in (f"h{i}" for i in range(100)) if r.homes(k) == ("B",))
    entry = m.Entry.of(ME, _partition(key), 1, key, "gcounter", _gcounter(ME))
    with pytest.raises(RemoteProtocolError, match="hint of our own entry"):
        r.receive("B", m.Push(push_id=1, entries=[entry], hint_for="B"), 11.0)
    assert r.effects() == [] and r.status()["hints"] == {}


@pytest.mark.parametrize(
    "msg",
    [
        # A summary claiming our dot 2**63-1 made us number from there (identity conflict).
        {"t": "summary", "parts": {"0": {"vv": {ME: MAX_SEQ}, "cloud": []}}},
        {"t": "summary", "parts": {"0": {"vv": {}, "cloud": [[ME, 2**62 + 1]]}}},
        # A state transfer's summary raised our numbering the same way, silently.
        {
            "t": "snapshot",
            "batch_id": 1,
            "partition": 0,
            "objects": [],
            "summary": {"vv": {ME: MAX_SEQ}, "cloud": []},
            "last": True,
        },
        # Another origin's dot past the limit, which we would spread in our summary.
        {
            "t": "push",
            "push_id": 1,
            "entries": [
                ["B", _partition("k"), 2**62 + 1, "k", "gcounter", json.dumps(_gcounter())]
            ],
        },
    ],
    ids=["summary-vv", "summary-cloud", "snapshot-summary", "entry-past-the-limit"],
)
def test_log_dots_past_the_limit_are_refused(msg: dict[str, Any]) -> None:
    r = _replica()
    r.effects()
    before = _view(r)
    with pytest.raises(RemoteProtocolError):
        r.receive("B", m.decode(_wire(msg)), 11.0)
    assert r.effects() == [] and _view(r) == before


async def test_a_summary_at_the_limit_leaves_room_for_our_writes(tmp_path: Path) -> None:
    """The most a peer can make us skip to is 2**62: 2**62 more writes of ours fit."""
    r = _replica()
    persists = _persists(r)
    p = _partition("k")
    r.receive("B", m.Summary(parts={p: m.Ctx(vv={ME: m.SEQ_LIMIT})}), 11.0)
    persists += _persists(r)
    r.local_update(2, "k", "gcounter", lambda c: c.increment(ME), 12.0)
    fx = _persists(r)
    assert [e.seq for x in fx for e in x.log] == [m.SEQ_LIMIT + 1]
    again = await _commit_and_reopen(tmp_path / "a.db", persists + fx)
    assert again.current_value("k") == 2


def _chunk(obj: dict[str, Any], **extra: Any) -> bytes:
    key = obj.get("key", "x")
    raw = {"t": "snapshot", "batch_id": 1, "partition": _partition(key), "objects": [obj]}
    return _wire({**raw, **extra})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        # A state transfer's object is its state's JSON text: not JSON, not an object, not
        # a CRDT, another kind than it says, or a piece flag that is not a bool.
        (_chunk({"key": "x", "kind": "gcounter", "state_json": '{"type": "gcou'}), "bad CRDT"),
        (_chunk({"key": "x", "kind": "gcounter", "state_json": "[1, 2]"}), "not a JSON object"),
        (_chunk({"key": "x", "kind": "gcounter", "state_json": '{"type": "x"}'}), "bad CRDT"),
        (
            _chunk({"key": "x", "kind": "orset", "state_json": json.dumps(_gcounter())}),
            "is a gcounter",
        ),
        (
            _chunk(
                {"key": "x", "kind": "gcounter", "state_json": json.dumps(_gcounter()), "piece": 1}
            ),
            "piece",
        ),
        (_chunk({"key": "x", "kind": "gcounter", "state": _gcounter()}), "state_json"),
        # ``remaining`` is [entries, bytes], each in 0..2**62.
        (
            _chunk(
                {"key": "x", "kind": "gcounter", "state_json": json.dumps(_gcounter())},
                remaining=[-1, 0],
            ),
            "remaining",
        ),
        (
            _wire(
                {
                    "t": "deltas",
                    "batch_id": 1,
                    "partition": _partition("x"),
                    "entries": [],
                    "remaining": [0, 2**62 + 1],
                }
            ),
            "remaining",
        ),
        (
            _wire(
                {
                    "t": "deltas",
                    "batch_id": 1,
                    "partition": _partition("x"),
                    "entries": [],
                    "remaining": [1],
                }
            ),
            "remaining",
        ),
    ],
    ids=[
        "state-json-not-json",
        "state-json-not-an-object",
        "state-json-not-a-crdt",
        "state-json-other-kind",
        "piece-not-a-bool",
        "no-state-json",
        "snapshot-remaining-negative",
        "deltas-remaining-past-the-limit",
        "deltas-remaining-not-a-pair",
    ],
)
async def test_a_bad_state_transfer_object_or_progress_is_refused(
    tmp_path: Path, data: bytes, field: str
) -> None:
    r = _replica()
    persists = _persists(r)
    _refused(r, data, field)
    r.local_update(2, "k", "gcounter", lambda c: c.increment(ME), 12.0)
    persists += _persists(r)
    again = await _commit_and_reopen(tmp_path / "a.db", persists)
    assert again.current_value("k") == 2 and again.keys() == ["k"]


def test_a_piece_is_checked_as_any_state_and_one_too_far_ahead_is_set_aside() -> None:
    """A piece of a split map carrying a timestamp a day ahead: neither merged nor acked."""
    r = _replica()
    r.effects()
    ahead = int((11.0 + 86_400) * 1000)
    piece = crdt.new("ormap")
    piece.update("B", "f", "lww", lambda reg: reg.set("B", 1, now_ms=ahead))
    obj = {"key": "x", "kind": "ormap", "state_json": piece.to_json(), "piece": True}
    r.receive("B", m.decode(_chunk(obj)), 11.0)
    fx = r.effects()
    assert r.value("x", "ormap") is None
    assert not [e for e in fx if isinstance(getattr(e, "message", None), m.Ack)]


def test_a_state_transfer_answers_a_summary_of_ours_and_no_other_is_taken() -> None:
    """A ``SnapshotChunk`` of a partition we sent the peer no summary of is refused, changing
    nothing (its summary would be merged into ours, and sent on); one we did is taken, and
    still is once the member's link goes down and comes back (a transfer may outlive the
    link it began on); a peer that is no member loses it when it goes down."""
    r = Replica(CONFIG, ME, Loaded(peers={"B": PeerRecord("B")}), now=10.0)
    r.peer_up("B", 10.0)
    r.effects()
    chunk = m.SnapshotChunk.model_construct(
        batch_id=1, partition=3, objects=[], summary=m.Ctx(vv={"B": 4}), last=True
    )
    before = _view(r)
    with pytest.raises(RemoteProtocolError, match="snapshot of partition 3 not asked for"):
        r.receive("B", chunk, 11.0)
    assert r.effects() == [] and _view(r) == before
    ask_transfer(r, "B", [2], 11.0)  # another partition asks for no transfer of 3
    with pytest.raises(RemoteProtocolError, match="not asked for"):
        r.receive("B", chunk, 11.0)
    ask_transfer(r, "B", [3], 11.0)
    r.peer_down("B", 12.0)
    r.peer_up("B", 12.0)
    r.effects()
    r.receive("B", chunk, 12.0)
    assert r.summary(3).vv == {"B": 4}
    assert [fx.message for fx in r.effects() if isinstance(fx, Send)] == [m.Ack(ids=[1])]

    r.peer_up("C", 13.0, home=False)  # a device: no member
    ask_transfer(r, "C", [3], 13.0)
    r.receive("C", chunk, 13.0)
    r.peer_down("C", 14.0)
    r.peer_up("C", 14.0, home=False)
    with pytest.raises(RemoteProtocolError, match="not asked for"):
        r.receive("C", chunk, 14.0)


def test_made_up_writers_stop_at_the_bound_of_a_partitions_summary() -> None:
    """A member asked again round after round sends each time a transfer naming 1,024 new
    made-up writers (``TAKEN_ORIGINS_MAX``, what one transfer adds): before, they added up
    without end, until the partition's summary outgrew any message (a summary too big is
    refused whole, so no peer took this replica's summaries of it). Now the summary stops at
    ``SUMMARY_ORIGINS_MAX`` origins, and an alarm names the member."""
    from sync.effects import Alarm
    from sync.replica.anti_entropy import SUMMARY_ORIGINS_MAX, TAKEN_ORIGINS_MAX

    r = Replica(CONFIG, ME, Loaded(peers={"B": PeerRecord("B")}), now=10.0)
    r.peer_up("B", 10.0)
    r.effects()
    rounds = SUMMARY_ORIGINS_MAX // TAKEN_ORIGINS_MAX + 3
    made_up = [f"w{i:06d}" for i in range(rounds * TAKEN_ORIGINS_MAX)]
    alarms: list[Alarm] = []
    for i in range(rounds):
        ask_transfer(r, "B", [3], 11.0 + i)
        named = made_up[i * TAKEN_ORIGINS_MAX : (i + 1) * TAKEN_ORIGINS_MAX]
        chunk = m.SnapshotChunk.model_construct(
            batch_id=i,
            partition=3,
            objects=[],
            summary=m.Ctx(vv=dict.fromkeys(named, 1)),
            last=True,
        )
        r.receive("B", chunk, 11.0 + i)
        alarms += [fx for fx in r.effects() if isinstance(fx, Alarm)]
    assert len(r.summary(3).vv) == SUMMARY_ORIGINS_MAX
    assert [(a.kind, a.peer) for a in alarms] == [("summary_full", "B")]  # (one per ALARM_REPEAT)


def test_made_up_writers_named_first_in_a_transfers_cloud_stop_at_the_bound_too() -> None:
    """The made-up writers named first as cloud dots ``(w, 2)`` (which stay in the cloud),
    then, in the next transfer, in the vector (where an origin our summary has, cloud
    included, is taken whole): before, 1,024 more origins got in every two transfers past
    ``SUMMARY_ORIGINS_MAX``, without end; now a cloud's new origins share the vector's room."""
    from sync.effects import Alarm
    from sync.replica.anti_entropy import SUMMARY_ORIGINS_MAX, TAKEN_ORIGINS_MAX

    r = Replica(CONFIG, ME, Loaded(peers={"B": PeerRecord("B")}), now=10.0)
    r.peer_up("B", 10.0)
    r.effects()
    alarms: list[Alarm] = []
    now = 11.0

    def transfer(summary: m.Ctx) -> None:
        nonlocal now
        ask_transfer(r, "B", [3], now)
        chunk = m.SnapshotChunk.model_construct(
            batch_id=int(now), partition=3, objects=[], summary=summary, last=True
        )
        r.receive("B", chunk, now)
        alarms.extend(fx for fx in r.effects() if isinstance(fx, Alarm))
        now += 1.0

    for i in range(SUMMARY_ORIGINS_MAX // TAKEN_ORIGINS_MAX + 3):
        named = [f"w{i:02d}{j:05d}" for j in range(TAKEN_ORIGINS_MAX)]
        transfer(m.Ctx(cloud=[(w, 2) for w in named]))
        transfer(m.Ctx(vv=dict.fromkeys(named, 2)))
    held = r.summary(3)
    assert len(set(held.vv).union(o for o, _ in held.cloud)) == SUMMARY_ORIGINS_MAX
    assert [(a.kind, a.peer) for a in alarms] == [("summary_full", "B")]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _map(entries: Any) -> dict[str, Any]:
    return {"type": "ormap", "v": 1, "entries": entries, "ctx": {"vv": {"B": 1}, "cloud": []}}


@pytest.mark.parametrize(
    "delta",
    [
        {"type": "lww", "v": 1, "ts": 5, "value": 1},  # a timestamp that is not one
        {"type": "lww", "v": 1, "ts": ["x", 0, "B"], "value": 1},
        _map([["k", "lww"]]),
        _map([["k", "lww", [[["B", 1], 7, 0]]]]),
        _map(3),
        # stamped far ahead (set aside if it were a state), with a field no state has
        {"type": "lww", "v": 1, "ts": [2**50, 0, "B"], "value": 1, "x": 1},
        _map([["k", "lww", [[["B", 9], [2**50, 0, "B"], 0]]]]),
    ],
    ids=[
        "lww-ts-int", "lww-ts-text-wall", "ormap-entry-short", "ormap-ts-int", "ormap-entries-int",
        "lww-ahead-extra-field", "ormap-ahead-dot-not-in-ctx",
    ],
)  # fmt: skip
def test_a_malformed_delta_of_a_stamped_kind_is_refused_as_a_bad_state(
    delta: dict[str, Any],
) -> None:
    """Deltas that carry timestamps (LWW registers, maps) are checked for clock skew; one that
    is not a state at all is refused as such, as any kind's is, and changes nothing."""
    key = "stamped"
    raw = {
        "t": "push",
        "push_id": 1,
        # (in the compact form, as our peers send: else it is decoded at once, to re-encode)
        "entries": [["B", _partition(key), 1, key, delta["type"], _compact(delta)]],
    }
    r = _replica()
    r.effects()
    _refused(r, _wire(raw), "bad CRDT state")


def test_a_bad_delta_behind_a_good_one_of_the_same_key_is_refused_naming_it() -> None:
    """The second delta of a key in a push is joined into the first's group from its JSON
    when it is one new dot (crdt.merge_dict); one that only looks so is refused, named."""
    key = "cart"
    good = crdt.ORSet().add("B", "milk").to_dict()
    bad = {**good, "entries": [["eggs", [["B", True]]]]}  # a dot's counter as a bool
    raw = {
        "t": "push",
        "push_id": 1,
        "entries": [
            ["B", _partition(key), 1, key, "orset", _compact(good)],
            ["B", _partition(key), 2, key, "orset", _compact(bad)],
        ],
    }
    r = _replica()
    r.effects()
    _refused(r, _wire(raw), r"entry 1 \(B, \d+, 2\): bad CRDT state")
