"""Only a replica raises its own counters: a message that raises them is refused (issue 12).

The attack (a review of hostile messages): a member H sends a push of its own entry, validly
sealed by H, whose delta names the *receiver's* counter at 2**63-1 (a context's dot of A, a
counter's count for A). A took it; A's next write to the key then minted the dot (A, 2**63)
(or overflowed its count), which every other peer refused, closing the link with the whole
push and every other write in it, and which A's own store could no longer load once
reopened. Now A refuses the message (the link would be closed), changes nothing, and its
next write replicates. Messages that name our counters no higher than we hold them (another
peer's remove of what we added, a state transfer of our own writes) are taken as before.

Real engines with real Ed25519 keys, messages through the real codec.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Loaded, LogEntry, PeerRecord, Send
from sync.errors import RemoteProtocolError
from sync.replica import Replica
from sync.ring import partition_of
from sync.signing import Signer
from tests.sync.conftest import ask_transfer

__all__: list[str] = []

PARTS = 4
CONFIG = ReplicaConfig(n=3, w=1, partitions=PARTS, vnodes=4)
SA, SB, SH = (Signer(bytes([i]) * 32) for i in (1, 2, 3))
A, B, H = SA.replica_id, SB.replica_id, SH.replica_id
MAX = 2**63 - 1
KEY = "cart"

# Per kind: a write by ``r`` (what the delta of the attack is made from, then raised), and a
# write of A's own to the key afterwards.
WRITES: dict[str, Callable[[str], Callable[[Any], Any]]] = {
    "orset": lambda r: lambda s: s.add(r, "milk"),
    "mvregister": lambda r: lambda s: s.set(r, "v"),
    "ormap": lambda r: lambda s: s.update(r, "k", "orset", lambda x: x.add(r, "milk")),
    "gcounter": lambda r: lambda s: s.increment(r, 1),
    "pncounter": lambda r: lambda s: s.increment(r, 1),
}


def _engine(signer: Signer, others: list[str]) -> Replica:
    r = Replica(
        CONFIG,
        signer.replica_id,
        Loaded(peers={o: PeerRecord(o) for o in others}),
        now=10.0,
        signer=signer,
    )
    for o in others:
        r.peer_up(o, 10.0)
    r.effects()
    return r


def _raised(kind: str) -> str:
    """A delta of ``kind`` made as A's first write, with every counter of A's at 2**63-1."""
    delta = crdt.new(kind)
    WRITES[kind](A)(delta)
    text = json.dumps(delta.to_dict())
    text = text.replace(f'["{A}", 1]', f'["{A}", {MAX}]').replace(f'"{A}": 1', f'"{A}": {MAX}')
    assert str(MAX) in text
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


def _push_of_h(kind: str, delta_json: str, seq: int = 1) -> m.Message:
    """H's own entry (origin H), sealed by H: its signature is good."""
    e = LogEntry(H, partition_of(KEY, PARTS), seq, KEY, kind, delta_json)
    e.seal = SH.seal([e])
    return m.decode(m.encode(m.Push.model_construct(push_id=seq, entries=[e], hint_for=None)))


def _view(r: Replica) -> tuple[Any, ...]:
    return (
        json.dumps(r.status(), sort_keys=True, default=str),
        [r.summary(p).to_dict() for p in range(PARTS)],
        {k: r.value(KEY, k).to_dict() for k in r.kinds_of(KEY)},  # type: ignore[union-attr]
    )


def _deliver(src: Replica, dst: Replica, now: float) -> int:
    """Every message ``src`` has for ``dst``, through the codec; how many."""
    to = dst.replica_id
    sent = [fx.message for fx in src.effects() if isinstance(fx, Send) and fx.peer == to]
    for msg in sent:
        dst.receive(src.replica_id, m.decode(m.encode(msg)), now)
    return len(sent)


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_a_delta_raising_our_counter_is_refused_and_our_next_write_replicates(kind: str) -> None:
    a, b = _engine(SA, [B, H]), _engine(SB, [A, H])
    before = _view(a)
    with pytest.raises(RemoteProtocolError, match="raises our own counter"):
        a.receive(H, _push_of_h(kind, _raised(kind)), 11.0)
    assert a.effects() == [] and _view(a) == before  # nothing applied, logged or acked

    a.local_update(1, KEY, kind, WRITES[kind](A), 12.0, w=1)
    assert _deliver(a, b, 12.0) >= 1  # B takes A's write (it refused the minted 2**63)
    assert b.value(KEY, kind).to_dict() == a.value(KEY, kind).to_dict()  # type: ignore[union-attr]
    assert a.value(KEY, kind).max_counter(A) == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_the_same_counter_in_a_state_transfer_is_refused(kind: str) -> None:
    a = _engine(SA, [B, H])
    ask_transfer(a, H, [partition_of(KEY, PARTS)], 10.5)
    before = _view(a)
    chunk = m.SnapshotChunk.model_construct(
        batch_id=1,
        partition=partition_of(KEY, PARTS),
        objects=[m.SnapObject(key=KEY, kind=kind, state_json=_raised(kind))],
        summary=None,
        last=False,
    )
    with pytest.raises(RemoteProtocolError, match="raises our own counter"):
        a.receive(H, m.decode(m.encode(chunk)), 11.0)
    assert a.effects() == [] and _view(a) == before


def test_a_repair_raising_our_counter_is_refused() -> None:
    a = _engine(SA, [B, H])
    before = _view(a)
    repair = m.Repair(key=KEY, kind="orset", state=json.loads(_raised("orset")))
    with pytest.raises(RemoteProtocolError, match="raises our own counter"):
        a.receive(H, m.decode(m.encode(repair)), 11.0)
    assert a.effects() == [] and _view(a) == before


def test_our_counters_as_high_as_we_hold_them_are_taken() -> None:
    """B removes what A added (its delta's context holds A's dot) and counts where A has:
    A takes both, and a repair of that state."""
    a, b = _engine(SA, [B, H]), _engine(SB, [A, H])
    a.local_update(1, KEY, "orset", lambda s: s.add(A, "milk"), 11.0, w=1)
    assert _deliver(a, b, 11.0)
    b.local_update(2, KEY, "orset", lambda s: s.remove("milk"), 12.0, w=1)
    assert _deliver(b, a, 12.0)
    assert a.current_value(KEY, "orset") == frozenset()
    assert a.value(KEY, "orset").max_counter(A) == 1  # type: ignore[union-attr]

    # A counter's count for A, as high as A has it, in B's state: taken.
    a.local_update(3, "hits", "gcounter", lambda c: c.increment(A, 5), 13.0, w=1)
    _deliver(a, b, 13.0)
    state = b.value("hits", "gcounter")
    assert state is not None and state.max_counter(A) == 5
    a.receive(B, m.Repair(key="hits", kind="gcounter", state=state.to_dict()), 14.0)
    assert a.current_value("hits", "gcounter") == 5


def test_a_remove_of_a_write_of_ours_we_lost_is_taken() -> None:
    """A restored from a backup lacks its last writes, which B holds, until its id rotates:
    B's remove of one of them (a context with a dot of A's past what A holds) is taken, in
    OWN_COUNTER_SLACK (it was refused, closing the link to a correct peer)."""
    a, b = _engine(SA, [B, H]), _engine(SB, [A, H])
    a.local_update(1, KEY, "orset", lambda s: s.add(A, "milk"), 11.0, w=1)
    a.local_update(2, KEY, "orset", lambda s: s.add(A, "eggs"), 11.0, w=1)
    assert _deliver(a, b, 11.0)
    restored = _engine(SA, [B, H])  # A's database from before both writes
    b.local_update(3, KEY, "orset", lambda s: s.remove("eggs"), 12.0, w=1)
    state = b.value(KEY, "orset")
    assert state is not None and state.max_counter(A) == 2
    assert _deliver(b, restored, 12.0)
    assert restored.value(KEY, "orset").max_counter(A) == 2  # type: ignore[union-attr]
    assert restored.current_value(KEY, "orset") == frozenset()


def test_states_raising_our_counter_in_read_replies_are_refused() -> None:
    a = _engine(SA, [B, H])
    a.local_update(1, KEY, "orset", lambda s: s.add(A, "milk"), 11.0, w=1)
    a.effects()
    before = _view(a)
    raised = json.loads(_raised("orset"))
    a.local_read(7, KEY, 11.0, r=3, kind="orset")
    asked = {fx.peer: fx.message for fx in a.effects() if isinstance(fx, Send)}
    req = asked[H]
    reply: m.Message
    if isinstance(req, m.ReadDigest):
        reply = m.ReadDigestResp(req_id=req.req_id, key=KEY, kind="orset", same=False, state=raised)
    else:
        reply = m.ReadResp(req_id=req.req_id, key=KEY, kind="orset", state=raised)
    with pytest.raises(RemoteProtocolError, match="raises our own counter"):
        a.receive(H, m.decode(m.encode(reply)), 11.5)
    assert a.effects() == [] and _view(a)[1:] == before[1:]


def test_an_entry_of_a_key_over_the_byte_bound_is_refused_before_anything_changes() -> None:
    """A peer's entry for a key longer than MAX_KEY_BYTES (taken by an older peer, or sent
    by a hostile one) is refused with its message: a store that cannot hold it would refuse
    the commit, and a refused commit stops a peer."""
    from sync.config import MAX_KEY_BYTES

    a = _engine(SA, [B, H])
    before = _view(a)
    key = "k" * (MAX_KEY_BYTES + 1)
    delta = crdt.ORSet().add(H, "milk").to_json()
    e = LogEntry(H, partition_of(key, PARTS), 1, key, "orset", delta)
    e.seal = SH.seal([e])
    push = m.decode(m.encode(m.Push.model_construct(push_id=1, entries=[e], hint_for=None)))
    with pytest.raises(RemoteProtocolError, match=f"over {MAX_KEY_BYTES} bytes"):
        a.receive(H, push, 11.0)
    assert a.effects() == [] and _view(a) == before


@pytest.mark.parametrize("kind", ["orset", "ormap"])
def test_our_counter_raised_behind_another_entry_of_the_same_key_is_refused(kind: str) -> None:
    """The second entry of a key in a push is joined into the first's delta straight from
    its dict when it is one new dot (``crdt.merge_dict``): a dot of ours at 2**63-1 there
    must still be refused."""
    a = _engine(SA, [B, H])
    before = _view(a)
    first = crdt.new(kind)
    WRITES[kind](H)(first)
    p = partition_of(KEY, PARTS)
    raised = json.loads(_raised(kind))
    raised["ctx"] = {"vv": {}, "cloud": [[A, MAX]]}  # one dot: as a new write's delta
    raised["entries"][0][0] = "other"  # another element, or key, than the first entry's
    entries = [
        LogEntry(H, p, 1, KEY, kind, first.to_json()),
        LogEntry(H, p, 2, KEY, kind, json.dumps(raised, separators=(",", ":"))),
    ]
    assert crdt.merge_dict(crdt.from_dict(json.loads(entries[0].delta_json)), raised)
    seal = SH.seal(entries)
    for e in entries:
        e.seal = seal
    push = m.decode(m.encode(m.Push.model_construct(push_id=1, entries=entries, hint_for=None)))
    with pytest.raises(RemoteProtocolError, match="raises our own counter"):
        a.receive(H, push, 11.0)
    assert a.effects() == [] and _view(a) == before
