"""Issue 12 item 5 over real websockets: an insider (a member holding the group secret, with
a key of its own) cannot forge another replica's writes nor take its id on a link.

The insider is a hand-made client on 127.0.0.1 that completes the real handshake and sends
sealed frames; A and B are real peers with their SQLite files.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import crdt
from sync.messages import Entry, Push, encode
from sync.ring import partition_of
from sync.signing import SEAL_MAX, Signer
from sync.transport.auth import HandshakeError, Identity, client_handshake
from tests.transport.conftest import (
    SECRET,
    WAIT,
    eventually,
    linked,
    local_value,
    member,
    open_peer,
)

WRITES = 50


def rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall())


def _forged(origin: str, partitions: int, seal: Any = None) -> Push:
    p = partition_of("cart", partitions)
    entries = [
        Entry(origin, p, seq, "cart", "orset", crdt.ORSet().add(origin, f"forged {seq}").to_json())
        for seq in range(1, WRITES + 1)
    ]
    for e in entries:
        e.seal = seal
    return Push.model_construct(push_id=1, entries=entries, hint_for=None)


async def _send_as(url: str, me: Identity, payload: bytes) -> tuple[int | None, str | None]:
    async with connect(url, max_size=None) as ws:
        info = await client_handshake(ws, me, timeout=WAIT)
        assert info.session is not None
        await ws.send(info.session.seal(payload))
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                await ws.recv()
        return ws.close_code, ws.close_reason


async def test_an_insider_cannot_make_a_ack_writes_of_b_it_never_applied(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        assert a.url is not None
        await linked(a, b)
        parts = a.config.partitions
        before = [rows(tmp_path / "a.db", t) for t in ("objects", "summaries", "log_segments")]
        errors = a.node.counters.remote_errors
        insider = member()
        # Unsigned entries claiming B's origin; then sealed by the insider's own key.
        code, reason = await _send_as(a.url, insider, encode(_forged(b.replica_id, parts)))
        assert code == 1002 and reason is not None and "not signed" in reason
        assert insider.signer is not None
        own = insider.signer.seal(_forged(insider.replica_id, parts).entries[:3])
        code, reason = await _send_as(
            a.url, member(), encode(_forged(b.replica_id, parts, own._replace(origin=b.replica_id)))
        )
        assert code == 1002 and reason is not None and "key is not the key of" in reason
        assert a.node.counters.remote_errors == errors + 2
        after = [rows(tmp_path / "a.db", t) for t in ("objects", "summaries", "log_segments")]
        assert after == before
        # B's next writes are acked by A (w=2) and applied there, every one.
        for i in range(WRITES):
            result = await b.orset("cart").add(f"b{i}", w=2, timeout=WAIT)
            assert a.replica_id in result.acked_by
        assert local_value(a, "cart") == frozenset(f"b{i}" for i in range(WRITES))
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_member_cannot_take_another_replicas_id(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        assert a.url is not None
        await linked(a, b)
        mine = Signer.generate()
        # B's id with the insider's own key: the id is not the key's.
        liar = Identity(b.replica_id, "default", SECRET, signer=mine)
        async with connect(a.url) as ws:
            with pytest.raises((HandshakeError, ConnectionClosed)):
                await client_handshake(ws, liar, timeout=WAIT)
        assert ws.close_code == 1008 and "not the id of its key" in (ws.close_reason or "")

        # B's id and B's public key, signed with the insider's key: no proof of B's key.
        class Claims:
            public_key_text = Signer(b.store.signing_key).public_key_text

            def sign(self, data: bytes) -> bytes:
                return mine.sign(data)

        thief = Identity(b.replica_id, "default", SECRET, signer=Claims())  # type: ignore[arg-type]
        async with connect(a.url) as ws:
            with pytest.raises((HandshakeError, ConnectionClosed)):
                await client_handshake(ws, thief, timeout=WAIT)
        assert ws.close_code == 1008 and "signature does not verify" in (ws.close_reason or "")
        # A keyless replica (an older shoal) is refused too.
        async with connect(a.url) as ws:
            with pytest.raises((HandshakeError, ConnectionClosed)):
                await client_handshake(ws, Identity("old", "default", SECRET), timeout=WAIT)
        assert ws.close_code == 1008 and "without a key" in (ws.close_reason or "")
        assert b.replica_id in a.transport.links  # the real B stays linked
    finally:
        await b.aclose()
        await a.aclose()


def _signatures(db: Path, origin: str) -> tuple[int, set[str]]:
    """The entries of ``origin`` in the log segments of ``db`` and the distinct signatures
    of the seals stored with them."""
    with sqlite3.connect(db) as conn:
        query = "SELECT entries, seals FROM log_segments WHERE origin = ?"
        segments = conn.execute(query, (origin,)).fetchall()
    count, signatures = 0, set()
    for entries, seals in segments:
        count += len(json.loads(entries))
        signatures |= {seal[3] for seal in json.loads(seals)}
    return count, signatures


async def test_an_offline_backlog_is_signed_when_sent_in_a_seal_per_batch(tmp_path: Path) -> None:
    """B writes while A, the other home it knows, is down: nothing is signed and B's entries
    are stored unsealed (its log is kept for A). Reopened (the backlog loaded from its file)
    and linked to A again, B sends them with a seal per up to SEAL_MAX entries, not one per
    write, and A verifies and applies every one."""
    backlog = 300
    # A compacts none of them, so its file keeps the seals it received: C, a third home that
    # A knows, is away and never gets them.
    a = await open_peer(tmp_path / "a.db", anti_entropy_interval=3600.0)
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    c = await open_peer(tmp_path / "c.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        await linked(a, c)
    finally:
        await c.aclose()
        await a.aclose()
    try:
        for i in range(backlog):  # one write per drain, as an app's await in a loop makes
            await b.orset("cart").add(f"b{i}")
    finally:
        await b.aclose()
    me = b.replica_id
    assert _signatures(tmp_path / "b.db", me) == (backlog, set())

    a = await open_peer(tmp_path / "a.db", anti_entropy_interval=3600.0)
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    want = frozenset(f"b{i}" for i in range(backlog))
    try:
        await eventually(lambda: local_value(a, "cart") == want, "the backlog applied at A")
    finally:
        await b.aclose()
        await a.aclose()
    count, signatures = _signatures(tmp_path / "a.db", me)
    assert count == backlog
    assert len(signatures) <= -(-backlog // SEAL_MAX)  # 3, where one per write made 300


async def test_hints_of_a_non_home_reach_the_home_after_its_id_changes(tmp_path: Path) -> None:
    """B, not a home, writes while A (the home) is down: its hints are the only copies. Its
    file is then taken for a restored copy (the id sidecar is gone), so B reopens under a new
    id and the store drops the old key. The hints were sealed when stored, so A still gets
    every write; unsealed, they could never be delivered and were lost."""
    writes = 20
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], home=False)
    try:
        await linked(a, b)
    finally:
        await a.aclose()
    try:
        for i in range(writes):
            await b.orset("cart").add(f"b{i}")
    finally:
        await b.aclose()
    old = b.replica_id
    with sqlite3.connect(tmp_path / "b.db") as conn:
        stored, sealed = conn.execute("SELECT count(*), count(seal) FROM hints").fetchone()
    assert stored == sealed == writes
    Path(f"{tmp_path / 'b.db'}.shoal-id").unlink()  # read as a restored copy at next open

    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], home=False)
    want = frozenset(f"b{i}" for i in range(writes))
    try:
        assert b.replica_id != old
        await eventually(lambda: local_value(a, "cart") == want, "B's hinted writes at A")
    finally:
        await b.aclose()
        await a.aclose()
