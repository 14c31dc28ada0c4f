"""Seal groups: the seals of one drain share one signature (sync.signing, link protocol 7).

A busy replica's drain carries hundreds or thousands of its entries; they go out in seals of
``SEAL_MAX`` entries, and up to ``GROUP_MAX`` seals share one Ed25519 signature over the
hashes of their digests. Each seal still verifies alone, a receiver verifies a group's
signature once, and no seal can be moved into a group it was not signed in.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crdt
import sync.signing
from crdt import Dot
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Loaded, LogEntry, PeerRecord, Persist, Send
from sync.errors import RemoteProtocolError
from sync.replica import Replica
from sync.ring import partition_of
from sync.signing import (
    DIGEST_BYTES,
    GROUP_MAX,
    SEAL_MAX,
    SIGNATURE_BYTES,
    Seal,
    Signer,
    Verifier,
    check_seal,
)

__all__: list[str] = []

B, M = Signer(bytes([2]) * 32), Signer(bytes([3]) * 32)
KEY = "cart"


def _entries(signer: Signer, count: int, first: int = 1) -> list[LogEntry]:
    p = partition_of(KEY, 64)
    out = []
    for seq in range(first, first + count):
        delta = crdt.ORSet().add(signer.replica_id, f"x{seq}")
        out.append(LogEntry(signer.replica_id, p, seq, KEY, "orset", delta.to_json()))
    return out


def _sealed(signer: Signer, count: int) -> list[LogEntry]:
    """``count`` entries of ``signer``, sealed as its drain seals them."""
    entries = _entries(signer, count)
    for i, seal in enumerate(signer.seal_all(entries)):
        for e in entries[i * SEAL_MAX : (i + 1) * SEAL_MAX]:
            e.seal = seal
    return entries


def _signature_bytes(seal: Seal) -> bytes:
    return base64.b64decode(seal.signature)


def _with_signature(seal: Seal, raw: bytes) -> Seal:
    return seal._replace(signature=base64.b64encode(raw).decode())


class _CountingKey:
    """An Ed25519 public key that counts its verifications (what a receiver spends)."""

    calls = 0

    def __init__(self, key: Any) -> None:
        self._key = key

    def verify(self, signature: bytes, data: bytes) -> None:
        _CountingKey.calls += 1
        self._key.verify(signature, data)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> type[_CountingKey]:
    real = sync.signing.Ed25519PublicKey.from_public_bytes
    monkeypatch.setattr(
        sync.signing.Ed25519PublicKey,
        "from_public_bytes",
        staticmethod(lambda raw: _CountingKey(real(raw))),
    )
    _CountingKey.calls = 0
    return _CountingKey


def test_a_drain_of_many_entries_is_signed_once_per_group() -> None:
    entries = _entries(B, SEAL_MAX * GROUP_MAX + SEAL_MAX + 1)  # 10 seals: a group of 8, 2
    seals = B.seal_all(entries)
    assert len(seals) == GROUP_MAX + 2
    first, rest = seals[:GROUP_MAX], seals[GROUP_MAX:]
    assert len({s.signature for s in first}) == 1 and len({s.signature for s in rest}) == 1
    assert len(_signature_bytes(first[0])) == SIGNATURE_BYTES + GROUP_MAX * DIGEST_BYTES
    assert len(_signature_bytes(rest[0])) == SIGNATURE_BYTES + 2 * DIGEST_BYTES
    verifier = Verifier()
    for i, e in enumerate(entries):
        assert verifier.covers(seals[i // SEAL_MAX], e) is None
    # A lone seal (one drain of few entries) is signed alone: 64 bytes, as before groups.
    (lone,) = B.seal_all(_entries(B, 3))
    assert len(_signature_bytes(lone)) == SIGNATURE_BYTES
    assert Verifier().covers(lone, _entries(B, 3)[0]) is None


def test_a_receiver_verifies_a_groups_signature_once(verifications: type[_CountingKey]) -> None:
    entries = _entries(B, SEAL_MAX * GROUP_MAX)
    seals = B.seal_all(entries)
    verifier = Verifier()
    for i, e in enumerate(entries):
        assert verifier.covers(seals[i // SEAL_MAX], e) is None
    assert verifications.calls == 1  # one for 1,024 entries in 8 seals (8 before groups)


def test_a_seal_moved_into_another_group_is_refused() -> None:
    one, other = B.seal_all(_entries(B, 2 * SEAL_MAX)), B.seal_all(_entries(B, 2 * SEAL_MAX, 1000))
    moved = one[0]._replace(signature=other[0].signature)  # valid digests, a valid group
    assert check_seal(moved) == "the seal's digests are not in its group"
    # Its hash put in the other group's list: the signature no longer verifies.
    raw = _signature_bytes(other[0])
    mine = _signature_bytes(one[0])[SIGNATURE_BYTES : SIGNATURE_BYTES + DIGEST_BYTES]
    spliced = raw[: SIGNATURE_BYTES + DIGEST_BYTES] + mine
    assert check_seal(_with_signature(one[0], spliced)) == (
        f"the signature of {B.replica_id!r} does not verify"
    )


def test_a_group_signed_by_another_replica_does_not_cover_our_entries() -> None:
    ours, theirs = B.seal_all(_entries(B, 2 * SEAL_MAX)), M.seal_all(_entries(M, 2 * SEAL_MAX))
    claimed = theirs[0]._replace(origin=B.replica_id)
    assert check_seal(claimed) == f"the seal's key is not the key of {B.replica_id!r}"
    keyed = theirs[0]._replace(origin=B.replica_id, key=ours[0].key)
    assert check_seal(keyed) == f"the signature of {B.replica_id!r} does not verify"


@pytest.mark.parametrize("hashes", [1, GROUP_MAX + 1])
def test_a_group_of_a_size_never_signed_is_malformed(hashes: int) -> None:
    (seal, _) = B.seal_all(_entries(B, 2 * SEAL_MAX))
    raw = _signature_bytes(seal)
    own = raw[SIGNATURE_BYTES : SIGNATURE_BYTES + DIGEST_BYTES]
    bad = raw[:SIGNATURE_BYTES] + own * hashes
    assert check_seal(_with_signature(seal, bad)) == (
        "malformed seal: wrong length of digests or signature"
    )
    assert check_seal(_with_signature(seal, raw + b"x")) == (
        "malformed seal: wrong length of digests or signature"
    )


def test_seals_of_a_group_cross_the_wire_as_bytes_and_verify() -> None:
    entries = _sealed(B, 3 * SEAL_MAX)
    # A message carrying part of each of the three seals (as a relay forwards a split batch).
    carried = entries[100:300]
    data = m.encode(m.Push(push_id=1, entries=carried))
    head, tail = data.split(b"\x00", 1)
    seals = json.loads(head)["seals"]
    assert [seal[2:] for seal in seals] == [[SEAL_MAX, 3]] * 3  # all their bytes in the tail
    assert len(tail) == 3 * (SEAL_MAX * DIGEST_BYTES + SIGNATURE_BYTES + 3 * DIGEST_BYTES)
    wire = m.decode(data)
    assert isinstance(wire, m.Push)
    assert [e.seal for e in wire.entries] == [e.seal for e in carried]
    verifier = Verifier()
    assert all(verifier.covers(e.seal, e) is None for e in wire.entries)


@pytest.mark.parametrize("field", [1, GROUP_MAX + 1, 0, True])
def test_a_message_naming_a_group_of_a_bad_size_is_refused(field: object) -> None:
    entries = _sealed(B, 2 * SEAL_MAX)
    data = m.encode(m.Push(push_id=1, entries=entries[:3]))
    head, tail = data.split(b"\x00", 1)
    assert head.count(b",2]") == 1  # the seal's signature field: a group of 2 in the tail
    bad = head.replace(b",2]", b"," + str(field).lower().encode() + b"]") + b"\x00" + tail
    with pytest.raises(RemoteProtocolError, match="seals"):
        m.decode(bad)
    with pytest.raises(RemoteProtocolError, match="seals"):
        m.decode(data[:-1])  # the tail a byte short


def test_a_replica_sends_a_busy_drain_under_one_signature_and_the_receiver_applies_it() -> None:
    def engine(me: Signer, other: Signer) -> Replica:
        loaded = Loaded(peers={other.replica_id: PeerRecord(other.replica_id)})
        r = Replica(ReplicaConfig(n=2, w=1), me.replica_id, loaded, now=10.0, signer=me)
        r.peer_up(other.replica_id, 10.0)
        r.effects()
        return r

    b, a = engine(B, M), engine(M, B)
    writes = 3 * SEAL_MAX
    for i in range(writes):  # one drain: the node batches many inputs per drain
        b.local_update(i, KEY, "orset", lambda s, i=i: s.add(B.replica_id, f"w{i}"), 11.0)
    pushed = [
        fx.message for fx in b.effects() if isinstance(fx, Send) and isinstance(fx.message, m.Push)
    ]
    seals = {e.seal for msg in pushed for e in msg.entries}
    assert len(seals) == 3 and len({s.signature for s in seals if s}) == 1
    for msg in pushed:
        a.receive(B.replica_id, m.decode(m.encode(msg)), 11.0)
    assert a.current_value(KEY, "orset") == frozenset(f"w{i}" for i in range(writes))
    assert any(isinstance(fx, Persist) for fx in a.effects())


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.data())
def test_any_byte_of_a_groups_seals_changed_is_refused_and_changes_nothing(
    data: st.DataObject,
) -> None:
    """A member relays B's sealed entries with one byte of the seals' bytes (digests,
    signature, the group's hashes) changed: the receiver refuses the whole push, nothing
    applied, whatever the byte."""
    entries = _sealed(B, 2 * SEAL_MAX)
    carried = entries[SEAL_MAX - 3 : SEAL_MAX + 3]  # three of each seal of the group
    wire = m.encode(m.Push(push_id=1, entries=carried))
    head, tail = wire.split(b"\x00", 1)
    at = data.draw(st.integers(0, len(tail) - 1), label="byte")
    flip = data.draw(st.integers(1, 255), label="xor")
    spoilt = head + b"\x00" + tail[:at] + bytes([tail[at] ^ flip]) + tail[at + 1 :]
    receiver = _receiver()
    before = (receiver.summary(entries[0].partition).to_dict(), receiver.status())
    with pytest.raises(RemoteProtocolError):
        receiver.receive(B.replica_id, m.decode(spoilt), 11.0)
    assert (receiver.summary(entries[0].partition).to_dict(), receiver.status()) == before
    assert receiver.effects() == []
    # The same push unspoilt is taken (the refusal is the byte's).
    receiver.receive(B.replica_id, m.decode(wire), 11.0)
    summary = receiver.summary(entries[0].partition)
    assert all(
        summary.contains(Dot(B.replica_id, e.seq)) for e in entries[SEAL_MAX - 3 : SEAL_MAX + 3]
    )


def _receiver() -> Replica:
    loaded = Loaded(peers={B.replica_id: PeerRecord(B.replica_id)})
    r = Replica(ReplicaConfig(n=2, w=1), M.replica_id, loaded, now=10.0, signer=M)
    r.peer_up(B.replica_id, 10.0)
    r.effects()
    return r
