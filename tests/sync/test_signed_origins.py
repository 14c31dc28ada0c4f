"""Members cannot forge each other's writes, and an ack means applied (issue 12 item 5).

The attack of the issue: an insider M (a member holding the group secret) sends A entries
claiming origin B (log dots B:1..50 with M's own deltas). A applied them, its summary then
held B:1..50, so when B made its next 50 writes (w=2) A acknowledged each without applying
it (the dot was "known"), and anti-entropy never repaired it (A's summary said it had them).

Here A, B and M are real engines with real Ed25519 keys (their ids derived from them),
exchanging messages through the real codec: A refuses the forged entries (the link would be
closed), changes nothing and acks nothing; B's real writes are applied and acked. A second
way to plant "known" dots, a state transfer whose summary claims B's dots, cannot be signed
(see the threat model in docs/concepts.md); A then still applies B's pushed entries before it
acks them.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import json
from typing import Any

import pytest

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.digest import ctx_model
from sync.effects import HintRecord, Loaded, LogEntry, PeerRecord, Persist, Send
from sync.errors import RemoteProtocolError
from sync.replica import Replica
from sync.ring import partition_of
from sync.signing import SEAL_MAX, Seal, Signer, Verifier, entry_digest
from tests.sync.conftest import ask_transfer

__all__: list[str] = []

PARTS = 4
CONFIG = ReplicaConfig(n=3, w=2, partitions=PARTS, vnodes=4)
KEY = "cart"
A, B, M = (Signer(bytes([i]) * 32) for i in (1, 2, 3))
WRITES = 50


def _engine(me: Signer | None, rid: str, others: list[str]) -> Replica:
    loaded = Loaded(peers={o: PeerRecord(o) for o in others})
    r = Replica(CONFIG, rid, loaded, now=10.0, signer=me)
    for o in others:
        r.peer_up(o, 10.0)
    r.effects()
    return r


def _forged_push(origin: str, seal: Seal | None = None, *, first: int = 1) -> m.Push:
    """What M sends: entries claiming ``origin`` (adds of M's choosing) under ``seal``."""
    p = partition_of(KEY, PARTS)
    entries = []
    for seq in range(first, first + WRITES):
        delta = crdt.ORSet().add(origin, f"forged {seq}")
        entries.append(LogEntry(origin, p, seq, KEY, "orset", delta.to_json(), seal))
    return m.Push.model_construct(push_id=7, entries=entries, hint_for=None)


def _through_wire(msg: m.Message) -> m.Message:
    return m.decode(m.encode(msg))


def _view(r: Replica) -> tuple[Any, ...]:
    return (
        json.dumps(r.status(), sort_keys=True, default=str),
        [r.summary(p).to_dict() for p in range(PARTS)],
        r.current_value(KEY, "orset") if r.kinds_of(KEY) else None,
    )


def _sends(effects: list[Any], to: str) -> list[m.Message]:
    return [fx.message for fx in effects if isinstance(fx, Send) and fx.peer == to]


def _b_writes(a: Replica, b: Replica) -> tuple[int, list[int]]:
    """B makes WRITES adds (w=2), each push delivered to A; returns how many of B's writes
    completed and the push ids A acked."""
    acked: list[int] = []
    done = 0
    for i in range(WRITES):
        b.local_update(100 + i, KEY, "orset", lambda s, i=i: s.add(b.replica_id, f"b{i}"), 11.0)
        for msg in _sends(b.effects(), a.replica_id):
            a.receive(b.replica_id, _through_wire(msg), 11.0)
            for reply in _sends(a.effects(), b.replica_id):
                assert isinstance(reply, m.Ack)
                acked.extend(reply.ids)
                b.receive(a.replica_id, _through_wire(reply), 11.0)
        done += sum(1 for fx in b.effects() if type(fx).__name__ == "WriteDone")
    return done, acked


def _attack(signed: bool) -> tuple[Replica, Replica, int]:
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A if signed else None, ids[0], [ids[1], ids[2]])
    b = _engine(B if signed else None, ids[1], [ids[0], ids[2]])
    before = _view(a)
    forged = _through_wire(_forged_push(ids[1]))
    refused = False
    try:
        a.receive(ids[2], forged, 10.5)
    except RemoteProtocolError:
        refused = True
    effects = a.effects()
    if refused:
        assert effects == [] and _view(a) == before
    done, _acked = _b_writes(a, b)
    return a, b, done


def test_forged_origin_is_refused_and_the_real_writes_are_applied() -> None:
    a, b, done = _attack(signed=True)
    assert done == WRITES  # B's writes reached w=2 with A's acks...
    # ...and A applied every one of them (with the forgery accepted, A held M's 50 adds and
    # none of B's, yet acked them all).
    value = a.current_value(KEY, "orset")
    assert value == frozenset(f"b{i}" for i in range(WRITES))
    assert a.summary(partition_of(KEY, PARTS)) == b.summary(partition_of(KEY, PARTS))


def test_the_attack_succeeds_against_a_replica_that_does_not_sign() -> None:
    """The same run without signing keys (as every replica was before): A acks B's writes
    and holds none of them. This is what the signed run above prevents."""
    a, _b, done = _attack(signed=False)
    assert done == WRITES
    value = a.current_value(KEY, "orset")
    assert not any(v.startswith("b") for v in value)


@pytest.mark.parametrize("how", ["unsigned", "own key", "claimed key", "extra entry"])
def test_every_forgery_is_refused_with_a_reason(how: str) -> None:
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    push = _forged_push(ids[1])
    if how == "own key":  # M seals them with its own key: the seal is not B's
        good = _forged_push(ids[2])
        seal = M.seal(good.entries)
        push = _forged_push(ids[1], seal._replace(origin=ids[1]))
    elif how == "claimed key":  # B's public key in the seal, signed by M
        seal = M.seal(_forged_push(ids[2]).entries)
        push = _forged_push(ids[1], seal._replace(origin=ids[1], key=B.public_key_text))
    elif how == "extra entry":  # a real seal of B, over other entries than these
        real = LogEntry(ids[1], partition_of(KEY, PARTS), 1, KEY, "orset", "{}")
        push = _forged_push(ids[1], B.seal([real]))
    before = _view(a)
    with pytest.raises(RemoteProtocolError) as refused:
        a.receive(ids[2], _through_wire(push), 10.5)
    reason = str(refused.value)
    assert "refused entry 0" in reason
    expected = {
        "unsigned": "not signed",
        "own key": "key is not the key of",
        "claimed key": "does not verify",
        "extra entry": "does not cover it",
    }[how]
    assert expected in reason
    assert a.effects() == [] and _view(a) == before


def test_every_entry_of_a_seal_is_checked_not_only_its_first() -> None:
    """A receiver looks a seal's digests up once for a run of entries under it, but checks
    each entry against them: an entry the seal does not cover, after one it does, under the
    very same seal, is refused (by its index), and nothing of the push is applied."""
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    p = partition_of(KEY, PARTS)
    real = LogEntry(ids[1], p, 1, KEY, "orset", crdt.ORSet().add(ids[1], "real").to_json())
    real.seal = seal = B.seal([real])
    forged = LogEntry(
        ids[1], p, 2, KEY, "orset", crdt.ORSet().add(ids[1], "forged").to_json(), seal
    )
    push = m.Push.model_construct(push_id=7, entries=[real, forged], hint_for=None)
    before = _view(a)
    with pytest.raises(RemoteProtocolError, match="does not cover it: refused entry 1"):
        a.receive(ids[2], _through_wire(push), 10.5)
    assert a.effects() == [] and _view(a) == before


def test_a_relayed_subset_of_a_seal_verifies() -> None:
    """B's seal covers all of its drain's entries; any subset of them, forwarded by someone
    else with that seal, verifies on its own."""
    ids = [s.replica_id for s in (A, B, M)]
    b = _engine(B, ids[1], [ids[0], ids[2]])
    for i in range(5):
        b.local_update(200 + i, f"k{i}", "gcounter", lambda c: c.increment(ids[1]), 11.0)
    pushes = [msg for msg in _sends(b.effects(), ids[0]) if isinstance(msg, m.Push)]
    entries = [e for msg in pushes for e in msg.entries]
    assert len(entries) == 5 and len({e.seal for e in entries}) == 1  # one seal, 5 writes
    subset = m.Push.model_construct(push_id=9, entries=entries[1:4:2], hint_for=None)
    a = _engine(A, ids[0], [ids[1], ids[2]])
    a.receive(ids[2], _through_wire(subset), 11.0)  # relayed by M: verifies, applies
    assert [type(fx).__name__ for fx in a.effects()].count("Persist") == 1
    assert a.current_value("k1", "gcounter") == 1 and a.current_value("k3", "gcounter") == 1


def test_own_entries_sent_in_the_drain_that_writes_them_are_stored_sealed() -> None:
    ids = [s.replica_id for s in (A, B, M)]
    b = _engine(B, ids[1], [ids[0], ids[2]])
    b.local_update(1, KEY, "orset", lambda s: s.add(ids[1], "x"), 11.0)
    effects = b.effects()
    persist = next(fx for fx in effects if isinstance(fx, Persist))
    (logged,) = persist.log
    assert logged.seal is not None
    assert Verifier().covers(logged.seal, logged) is None
    assert entry_digest(logged) in {entry_digest(e) for e in persist.log}


def _anti_entropy(x: Replica, y: Replica, now: float) -> list[LogEntry]:
    """Anti-entropy rounds between ``x`` and ``y`` (both up to each other) until they hold
    the same value of KEY, every message through the codec; the entries ``x`` sent."""
    sent: list[LogEntry] = []
    for _ in range(40):  # bounded: a few rounds
        now = max(now, x.next_deadline() or now, y.next_deadline() or now)
        x.tick(now)
        y.tick(now)
        for _ in range(10):
            to_y, to_x = _sends(x.effects(), y.replica_id), _sends(y.effects(), x.replica_id)
            if not to_y and not to_x:
                break
            for msg in to_y:
                sent.extend(getattr(msg, "entries", []))
                y.receive(x.replica_id, _through_wire(msg), now)
            for msg in to_x:
                x.receive(y.replica_id, _through_wire(msg), now)
        if x.current_value(KEY, "orset") == y.current_value(KEY, "orset"):
            break
    return sent


class _Counting(Signer):
    """A real signer that counts the signatures of seals it makes (its member card's aside)."""

    __slots__ = ("made",)

    def __init__(self, private: bytes) -> None:
        super().__init__(private)
        self.made = 0

    def sign(self, data: bytes) -> bytes:
        self.made += data.startswith(b"shoal-seal")
        return super().sign(data)


def test_nothing_is_signed_until_it_is_sent_then_in_a_seal_per_batch() -> None:
    """With no peer up, B's writes are persisted unsealed and cost no signature; the entries
    go out later (here: in one drain) under a seal per up to SEAL_MAX of them, and those
    seals under one signature (a group)."""
    signer = _Counting(bytes([2]) * 32)
    ids = [s.replica_id for s in (A, B, M)]
    loaded = Loaded(peers={o: PeerRecord(o) for o in (ids[0], ids[2])})
    b = Replica(CONFIG, ids[1], loaded, now=10.0, signer=signer)
    writes = 300
    persisted: list[LogEntry] = []
    for i in range(writes):
        b.local_update(i, KEY, "orset", lambda s, i=i: s.add(ids[1], f"x{i}"), 11.0)
        for fx in b.effects():
            if isinstance(fx, Persist):
                persisted.extend(fx.log)
    assert len(persisted) == writes and signer.made == 0
    assert all(e.seal is None for e in persisted)
    # A comes up; anti-entropy between the two sends it the backlog, sealed now.
    a = _engine(A, ids[0], [ids[1], ids[2]])
    b.peer_up(ids[0], 12.0)
    sent = _anti_entropy(b, a, 12.0)
    assert a.current_value(KEY, "orset") == frozenset(f"x{i}" for i in range(writes))
    assert {e.seq for e in sent} == set(range(1, writes + 1))
    seals = {e.seal for e in sent}
    assert len(seals) == -(-writes // SEAL_MAX)  # 3 seals, where each write made one
    assert signer.made == 1  # and one signature for them all
    assert len({seal.signature for seal in seals}) == 1


def test_an_own_hint_stored_unsealed_is_kept_and_sealed_when_handed_off() -> None:
    ids = [s.replica_id for s in (A, B, M)]
    delta = crdt.ORSet().add(ids[1], "offline")
    entry = LogEntry(ids[1], partition_of(KEY, PARTS), 1, KEY, "orset", delta.to_json())
    foreign = LogEntry(ids[2], partition_of(KEY, PARTS), 1, KEY, "orset", delta.to_json())
    hints = [HintRecord(ids[0], entry, 10.0), HintRecord(ids[0], foreign, 10.0)]
    loaded = Loaded(peers={o: PeerRecord(o) for o in (ids[0], ids[2])}, hints=hints)
    b = Replica(CONFIG, ids[1], loaded, now=10.0, signer=B)
    b.peer_up(ids[0], 11.0)
    pushed = [e for msg in _sends(b.effects(), ids[0]) for e in getattr(msg, "entries", [])]
    # Ours is handed off sealed; another origin's, stored unsealed, could never verify.
    assert [(e.origin, e.seq) for e in pushed] == [(ids[1], 1)]
    assert Verifier().covers(pushed[0].seal, pushed[0]) is None


def test_an_entry_sent_before_goes_again_under_the_seal_it_got_then() -> None:
    """B's entry and its hint for A are loaded unsealed (two objects of one dot); anti-entropy
    sends the entry to M, sealed; the hint handed off to A later carries that same seal."""
    signer = _Counting(bytes([2]) * 32)
    ids = [s.replica_id for s in (A, B, M)]
    delta = crdt.ORSet().add(ids[1], "offline").to_json()
    p = partition_of(KEY, PARTS)
    logged, hinted = (LogEntry(ids[1], p, 1, KEY, "orset", delta) for _ in range(2))
    loaded = Loaded(
        peers={o: PeerRecord(o) for o in (ids[0], ids[2])},
        log=[logged],
        hints=[HintRecord(ids[0], hinted, 10.0)],
    )
    b = Replica(CONFIG, ids[1], loaded, now=10.0, signer=signer)
    mallory = _engine(M, ids[2], [ids[0], ids[1]])
    b.peer_up(ids[2], 11.0)
    (to_m,) = {e.seal for e in _anti_entropy(b, mallory, 11.0)}
    assert mallory.current_value(KEY, "orset") == frozenset({"offline"})
    b.peer_up(ids[0], 20.0)
    handed = [e for msg in _sends(b.effects(), ids[0]) for e in getattr(msg, "entries", [])]
    assert [(e.seq, e.seal) for e in handed] == [(1, to_m)]
    assert signer.made == 1


def test_a_hint_loaded_unsealed_goes_under_the_seal_its_logged_entry_was_stored_with() -> None:
    """B restarts with its own entry stored sealed in its log and a hint of the same dot for
    A stored unsealed (two objects of one dot): the hint handed off to A carries the stored
    seal, and nothing is signed anew. (The engine skips looking up a seal for an entry above
    every seal of ours it logged: this fails if what it loaded does not count.) A later
    write of B's is sealed anew when sent, and logged with its seal."""
    signer = _Counting(bytes([2]) * 32)
    ids = [s.replica_id for s in (A, B, M)]
    p = partition_of(KEY, PARTS)
    delta = crdt.ORSet().add(ids[1], "offline").to_json()
    logged, hinted = (LogEntry(ids[1], p, 1, KEY, "orset", delta) for _ in range(2))
    stored = logged.seal = signer.seal([logged])
    signer.made = 0
    loaded = Loaded(
        peers={o: PeerRecord(o) for o in (ids[0], ids[2])},
        log=[logged],
        hints=[HintRecord(ids[0], hinted, 10.0)],
    )
    b = Replica(CONFIG, ids[1], loaded, now=10.0, signer=signer)
    b.peer_up(ids[0], 20.0)
    handed = [e for msg in _sends(b.effects(), ids[0]) for e in getattr(msg, "entries", [])]
    assert [(e.seq, e.seal) for e in handed] == [(1, stored)]
    assert signer.made == 0
    b.local_update(9, KEY, "orset", lambda s: s.add(ids[1], "later"), 21.0)
    pushed = [e for msg in _sends(b.effects(), ids[0]) for e in getattr(msg, "entries", [])]
    assert [e.seq for e in pushed] == [2] and pushed[0].seal not in (None, stored)
    assert signer.made == 1 and b._data.log.seal_of(p, 2) == pushed[0].seal


def test_an_ack_means_applied_even_after_a_summary_claimed_the_dots() -> None:
    """A state transfer's summary is not signed: M claims B:1..50 in one (with no state).
    A must still apply B's pushed writes before acking them."""
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    b = _engine(B, ids[1], [ids[0], ids[2]])
    p = partition_of(KEY, PARTS)
    ask_transfer(a, ids[2], [p], 10.5)
    lie = m.SnapshotChunk.model_construct(
        batch_id=3, partition=p, objects=[], summary=m.Ctx(vv={ids[1]: WRITES}), last=True
    )
    a.receive(ids[2], _through_wire(lie), 10.5)
    a.effects()
    assert a.summary(p).vv.get(ids[1]) == WRITES  # the claim is taken: a documented limit
    done, acked = _b_writes(a, b)
    assert done == WRITES and len(acked) == WRITES
    assert a.current_value(KEY, "orset") == frozenset(f"b{i}" for i in range(WRITES))


def test_anti_entropy_deltas_with_remaining_carry_seals_and_a_forged_one_is_refused() -> None:
    """The streamed anti-entropy's ``Deltas`` (which say how much of the round is left) carry
    their entries' seals over the wire like a push: A applies B's writes from them; the same
    message with entries not sealed by their origin is refused whole."""
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    b = _engine(B, ids[1], [ids[0], ids[2]])
    keys = [f"k{i}" for i in range(6)]
    for i, key in enumerate(keys):
        b.local_update(300 + i, key, "gcounter", lambda c: c.increment(ids[1], 2), 11.0)
    b.effects()  # B's pushes to A are lost
    summary = m.Summary.model_construct(
        parts={p: ctx_model(a.summary(p)) for p in range(PARTS)}, known_peers=[], reply=False
    )
    b.receive(ids[0], _through_wire(summary), 12.0)
    deltas = [msg for msg in _sends(b.effects(), ids[0]) if isinstance(msg, m.Deltas)]
    assert deltas and all(msg.remaining is not None for msg in deltas)
    wire = [w for w in map(_through_wire, deltas) if isinstance(w, m.Deltas)]
    assert [w.remaining for w in wire] == [d.remaining for d in deltas]
    assert all(e.seal is not None for w in wire for e in w.entries)

    forged = wire[0]
    unsigned = [
        LogEntry(
            e.origin,
            e.partition,
            e.seq,
            e.key,
            e.kind,
            crdt.GCounter().increment(e.origin, 99).to_json(),
        )
        for e in forged.entries
    ]
    lie = m.Deltas.model_construct(
        batch_id=forged.batch_id,
        partition=forged.partition,
        entries=unsigned,
        more=forged.more,
        remaining=forged.remaining,
    )
    before = _view(a)
    with pytest.raises(RemoteProtocolError, match="not signed"):
        a.receive(ids[2], _through_wire(lie), 12.0)
    assert a.effects() == [] and _view(a) == before

    for msg in wire:
        a.receive(ids[1], msg, 12.0)
    acks = [msg for msg in _sends(a.effects(), ids[1]) if isinstance(msg, m.Ack)]
    assert sorted(i for ack in acks for i in ack.ids) == sorted(d.batch_id for d in deltas)
    assert all(a.current_value(key, "gcounter") == 2 for key in keys)


def test_a_key_checked_once_does_not_vouch_for_another_key_of_the_same_origin() -> None:
    """The verifier remembers the keys it checked (by origin and key): after a real seal of
    B, a seal claiming B's origin under M's key is refused as before."""
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    real = _forged_push(ids[1])  # (entries of B's origin, really sealed by B below)
    sealed = [dataclasses.replace(e, seal=None) for e in real.entries]
    seal_b = B.seal(sealed)
    ok = m.Push.model_construct(
        push_id=8, entries=[dataclasses.replace(e, seal=seal_b) for e in sealed], hint_for=None
    )
    a.receive(ids[2], _through_wire(ok), 10.5)  # verifies: B's key is now remembered
    a.effects()
    before = _view(a)
    seal_m = M.seal(_forged_push(ids[2]).entries)
    forged = _forged_push(ids[1], seal_m._replace(origin=ids[1]), first=WRITES + 1)
    with pytest.raises(RemoteProtocolError, match="key is not the key of"):
        a.receive(ids[2], _through_wire(forged), 10.6)
    assert a.effects() == [] and _view(a) == before


def test_the_in_memory_log_is_invisible_to_the_garbage_collector() -> None:
    """The log holds each entry as text (strings are never tracked by the cyclic collector),
    its seal by reference: the log adds nothing to what full collections walk, nor entry by
    entry to what brings the next collection on (a tuple per entry holding a NamedTuple seal
    stayed tracked, and walking the log cost 10-20% of e2e_bench's time in collections).
    Reading an entry back gives it with its seal."""
    ids = [s.replica_id for s in (A, B, M)]
    b = _engine(B, ids[1], [ids[0], ids[2]])
    for i in range(20):
        b.local_update(300 + i, KEY, "orset", lambda s, i=i: s.add(ids[1], f"e{i}"), 11.0)
    effects = b.effects()  # the drain seals them
    sent = [e for msg in _sends(effects, ids[0]) if isinstance(msg, m.Push) for e in msg.entries]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    for msg in _sends(effects, ids[0]):
        a.receive(ids[1], _through_wire(msg), 11.0)
    a.effects()
    gc.collect()
    p = partition_of(KEY, PARTS)
    for r in (a, b):
        log = r._data.log.of(p)
        assert log is not None
        held = [t for by_seq in log.values() for t in by_seq.values()]
        assert len(held) == 20 and not any(gc.is_tracked(t) for t in held)
        back = [r._data.log.entry(p, ids[1], seq) for seq in range(1, 21)]
        assert back == sent and [e.seal for e in back] == [e.seal for e in sent]
        (held_seal,) = r._data.log.seals.held()  # one seal covers the drain's 20 entries
        assert held_seal == (sent[0].seal, 20)


def test_compaction_lets_go_of_the_seals_of_the_entries_it_drops() -> None:
    """The log's seal table holds a seal while an entry logged with it is held, no longer:
    it does not grow with the writes a replica ever saw."""
    ids = [s.replica_id for s in (A, B, M)]
    b = _engine(B, ids[1], [ids[0], ids[2]])
    for i in range(20):
        b.local_update(400 + i, KEY, "orset", lambda s, i=i: s.add(ids[1], f"e{i}"), 11.0)
        b.effects()  # a drain per write: 20 seals
    data, p = b._data, partition_of(KEY, PARTS)
    assert len(data.log.seals) == 20
    data._outbox.begin_input()
    data.compact(p, {ids[1]: 15})
    data._outbox.end_input()
    assert len(data.log.seals) == 5 and data.log.entry(p, ids[1], 15) is None
    kept = data.log.entry(p, ids[1], 16)
    assert kept is not None and Verifier().covers(kept.seal, kept) is None


def test_a_local_write_or_read_of_a_key_with_nul_is_refused_and_changes_nothing() -> None:
    """A NUL cannot be stored (nor kept in the in-memory log's text): refused at the call."""
    ids = [s.replica_id for s in (A, B, M)]
    b = _engine(B, ids[1], [ids[0], ids[2]])
    before = _view(b)
    with pytest.raises(ValueError, match="NUL"):
        b.local_update(1, "a\x00b", "gcounter", lambda c: c.increment(ids[1]), 11.0)
    with pytest.raises(ValueError, match="NUL"):
        b.local_read(2, "a\x00b", 11.0, kind="gcounter")
    assert b.effects() == [] and _view(b) == before


def test_seals_loaded_from_the_store_share_one_entry_of_the_seal_table() -> None:
    """Entries read back from the store carry equal (not identical) seals: one table entry."""
    ids = [s.replica_id for s in (A, B, M)]
    b = _engine(B, ids[1], [ids[0], ids[2]])
    for i in range(10):
        b.local_update(500 + i, KEY, "orset", lambda s, i=i: s.add(ids[1], f"e{i}"), 11.0)
    persist = next(fx for fx in b.effects() if isinstance(fx, Persist))
    again = [dataclasses.replace(e, seal=Seal(*e.seal)) for e in persist.log]  # type: ignore[misc]
    c = Replica(CONFIG, ids[1], Loaded(log=again), now=12.0, signer=B)
    assert len(c._data.log.seals) == 1


def _wire(msg: m.Message) -> tuple[dict[str, Any], bytes]:
    """The JSON object of an encoded message and its binary tail (after the first NUL)."""
    text, _, tail = m.encode(msg).partition(b"\x00")
    return json.loads(text), tail


def _bytes(raw: dict[str, Any], tail: bytes) -> bytes:
    return json.dumps(raw).encode() + (b"\x00" + tail if tail else b"")


def _lone(signer: Signer, seq: int, element: str, into: crdt.ORSet) -> LogEntry:
    """The entry of ``signer``'s write number ``seq``, an add to its copy of the set
    ``into``, sealed alone."""
    rid = signer.replica_id
    delta = into.add(rid, element)
    e = LogEntry(rid, partition_of(KEY, PARTS), seq, KEY, "orset", delta.to_json())
    e.seal = signer.seal([e])
    return e


def test_a_seal_of_one_entry_travels_without_its_digest_and_arrives_whole() -> None:
    """A lone change's seal leaves its digest out (the receiver computes it from the entry):
    24 fewer characters of random base64 per change. It arrives equal to the seal made, and
    the entry verifies and applies."""
    mine = crdt.ORSet()
    one, other = _lone(B, 1, "milk", mine), _lone(B, 2, "eggs", mine)
    push = m.Push.model_construct(push_id=7, entries=[one, other], hint_for=None)
    wire, tail = _wire(push)
    assert [s[2] for s in wire["seals"]] == ["", ""]
    assert len(tail) == 2 * 64  # the two signatures, as bytes
    back = m.decode(m.encode(push))
    assert isinstance(back, m.Push)
    assert [e.seal for e in back.entries] == [one.seal, other.seal]
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    a.receive(ids[1], back, 10.5)
    assert a.current_value(KEY, "orset") == {"milk", "eggs"}
    # A seal of several entries keeps its digests, even when one entry of it travels.
    e1, e2 = _lone(B, 3, "a", mine), _lone(B, 4, "b", mine)
    e1.seal = e2.seal = B.seal([e1, e2])
    wire, tail = _wire(m.Push.model_construct(push_id=8, entries=[e1], hint_for=None))
    assert wire["seals"][0][2] == 2  # two digests, in the tail before the signature
    assert tail == base64.b64decode(e1.seal.digests) + base64.b64decode(e1.seal.signature)


def test_a_seal_without_digests_named_twice_or_over_another_entry_is_refused() -> None:
    """Hostile forms: the bare seal named by two entries is malformed (the decoder cannot
    tell whose digest it is); a bare seal over an entry other than the one signed computes a
    digest the signature does not cover, and the push is refused with nothing applied."""
    one = _lone(B, 1, "milk", crdt.ORSet())
    assert one.seal is not None
    push = m.Push.model_construct(push_id=7, entries=[one], hint_for=None)
    wire, tail = _wire(push)
    twice = {
        **wire,
        "entries": [wire["entries"][0], [*wire["entries"][0][:2], 2, *wire["entries"][0][3:]]],
    }
    with pytest.raises(RemoteProtocolError, match="without digests is named by two entries"):
        m.decode(_bytes(twice, tail))
    swapped = json.loads(json.dumps(wire))
    swapped["entries"][0][5] = crdt.ORSet().add(B.replica_id, "forged").to_json()
    forged = m.decode(_bytes(swapped, tail))
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    before = _view(a)
    with pytest.raises(RemoteProtocolError, match="does not verify"):
        a.receive(ids[2], forged, 10.5)
    assert a.effects() == [] and _view(a) == before


def test_seals_travel_as_bytes_in_a_binary_tail_and_arrive_as_they_were_made() -> None:
    """The random parts of seals (signatures, digests) travel as bytes after the JSON, not as
    base64 inside it: no base64 signature or digests in the JSON, the tail exactly their
    bytes, and the decoded seals equal to the ones made (stored and forwarded as they are).
    A seal given as text (another encoder's) is taken too."""
    mine = crdt.ORSet()
    lone = _lone(B, 1, "milk", mine)
    e1, e2, e3 = (_lone(M, i, f"x{i}", mine) for i in (1, 2, 3))
    e1.seal = e2.seal = e3.seal = M.seal([e1, e2, e3])
    push = m.Push.model_construct(push_id=9, entries=[lone, e1, e2, e3], hint_for=None)
    data = m.encode(push)
    wire, tail = _wire(push)
    assert [s[2:] for s in wire["seals"]] == [["", ""], [3, ""]]
    assert lone.seal is not None and e1.seal is not None
    assert lone.seal.signature.encode() not in data and e1.seal.digests.encode() not in data
    assert tail == b"".join(
        base64.b64decode(x) for x in (lone.seal.signature, e1.seal.digests, e1.seal.signature)
    )
    back = m.decode(data)
    assert isinstance(back, m.Push)
    assert [e.seal for e in back.entries] == [lone.seal, e1.seal, e1.seal, e1.seal]
    as_text = {**wire, "seals": [list(lone.seal), list(e1.seal)]}
    again = m.decode(json.dumps(as_text).encode())
    assert isinstance(again, m.Push)
    assert [e.seal for e in again.entries] == [e.seal for e in back.entries]
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    a.receive(ids[2], back, 10.5)
    assert a.current_value(KEY, "orset") == {"milk", "x1", "x2", "x3"}


def _tail_cases() -> list[tuple[str, bytes, str]]:
    mine = crdt.ORSet()
    e1, e2 = (_lone(M, i, f"x{i}", mine) for i in (1, 2))
    e1.seal = e2.seal = M.seal([e1, e2])
    push = m.Push.model_construct(push_id=9, entries=[e1, e2], hint_for=None)
    wire, tail = _wire(push)
    assert wire["seals"][0][2:] == [2, ""]

    def digests(n: Any) -> dict[str, Any]:
        return {**wire, "seals": [[*wire["seals"][0][:2], n, ""]]}

    seals = "bad field 'seals'"
    return [
        ("tail one byte short", _bytes(wire, tail[:-1]), seals),
        ("tail one byte long", _bytes(wire, tail + b"\x00"), seals),
        ("no tail", json.dumps(wire).encode(), seals),
        ("a NUL and nothing after it", json.dumps(wire).encode() + b"\x00", "no binary tail"),
        ("zero digests", _bytes(digests(0), tail[32:]), seals),
        ("more digests than a seal covers", _bytes(digests(SEAL_MAX + 1), tail), seals),
        ("digests counted as true", _bytes(digests(True), tail[16:]), seals),
        ("a tail on an ack", b'{"proto":1,"t":"ack","ids":[1]}\x00' + tail, "binary tail"),
        ("a tail with no seals", _bytes({**wire, "seals": []}, tail), seals),
    ]


@pytest.mark.parametrize(("case", "data", "reason"), _tail_cases(), ids=lambda x: str(x)[:30])
def test_a_malformed_binary_tail_is_refused_with_a_reason_and_changes_nothing(
    case: str, data: bytes, reason: str
) -> None:
    ids = [s.replica_id for s in (A, B, M)]
    a = _engine(A, ids[0], [ids[1], ids[2]])
    before = _view(a)
    with pytest.raises(RemoteProtocolError, match=reason):
        a.receive(ids[2], m.decode(data), 10.5)
    assert a.effects() == [] and _view(a) == before, case
