"""One message from a member holding the secret used to stop a peer: now it closes that link.

A real peer (SQLite, websockets on 127.0.0.1) gets, from an authenticated link, each message
that used to make its store refuse a commit (the peer then stopped serving: fail-stop, and
for a poisoned log-dot counter, again after every restart). Now the peer closes that link
with 1002 and a reason naming what is wrong, its database is unchanged, and it goes on
serving, also after a restart.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import crdt
from sync import messages as m
from sync.ring import partition_of
from sync.transport.auth import client_handshake
from tests.transport.conftest import WAIT, linked, local_value, member, open_peer

__all__: list[str] = []


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT key, kind, state FROM objects ORDER BY key").fetchall()


async def _send_as_member(url: str, payload: bytes, name: str = "member-1") -> tuple[int, str]:
    """Authenticate as a member with the group secret, send ``payload`` sealed, return how
    the peer closed the link."""
    async with connect(url, max_size=None) as ws:
        del name  # a member's id is its key's
        info = await client_handshake(ws, member(), timeout=WAIT)
        assert info.session is not None
        await ws.send(info.session.seal(payload))
        with pytest.raises(ConnectionClosed):
            for _ in range(1000):  # the peer's summary and acks, then its close
                await asyncio.wait_for(ws.recv(), WAIT)
        assert ws.close_code is not None
        return ws.close_code, ws.close_reason or ""


def _raw(**fields: Any) -> bytes:
    return json.dumps({"proto": 1, **fields}).encode()


def _gcounter() -> dict[str, Any]:
    return crdt.new("gcounter").increment("member-1").to_dict()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            _raw(
                t="push",
                push_id=1,
                entries=[
                    ["member-1", partition_of("x", 64), 1, "x", "gcounter", json.dumps(_gcounter())]
                ],
                hint_for="",
            ),
            "hint_for",
        ),
        (_raw(t="repair", key="", kind="gcounter", state=_gcounter()), "key"),
        (
            _raw(
                t="snapshot",
                batch_id=1,
                partition=partition_of("", 64),
                objects=[{"key": "", "kind": "gcounter", "state": _gcounter()}],
            ),
            "key",
        ),
        (  # a seal whose signature is in the binary tail, and a tail one byte short
            _raw(
                t="push",
                push_id=1,
                entries=[
                    [
                        "member-1",
                        partition_of("x", 64),
                        1,
                        "x",
                        "gcounter",
                        json.dumps(_gcounter()),
                        0,
                    ]
                ],
                seals=[["member-1", "", "", ""]],
            )
            + b"\x00"
            + bytes(63),
            "seals",
        ),
        (_raw(t="ack", ids=[1]) + b"\x00" + bytes(64), "binary tail"),
    ],
    ids=[
        "push-hint-for-empty",
        "repair-empty-key",
        "snapshot-empty-key",
        "push-tail-short",
        "ack-with-tail",
    ],
)
async def test_a_message_the_store_would_refuse_closes_the_link_and_the_peer_serves_on(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    a = await open_peer(tmp_path / "a.db")
    try:
        await a.gcounter("visits").increment(2)
        before = _rows(tmp_path / "a.db")
        assert a.url is not None
        code, why = await _send_as_member(a.url, payload)
        assert code == 1002 and reason in why, why
        assert a.node.failed is None and _rows(tmp_path / "a.db") == before
        await a.gcounter("visits").increment(1)
        assert local_value(a, "visits") == 3
    finally:
        await a.aclose()


async def test_an_entry_in_our_name_with_seq_2_63_minus_1_does_not_stop_us_now_or_later(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.db"
    a = await open_peer(db)
    try:
        await a.gcounter("visits").increment(2)
        me, url = a.replica_id, a.url
        assert url is not None
        delta = crdt.new("gcounter").increment(me, 99).to_dict()
        push = m.Push(
            push_id=1,
            entries=[
                m.Entry.of(me, partition_of("visits", 64), 2**63 - 1, "visits", "gcounter", delta)
            ],
        )
        code, why = await _send_as_member(url, m.encode(push))
        assert code == 1002 and "2**62" in why, why
        # It is refused whatever the seq: only this peer mints its own log dots.
        push2 = m.Push(
            push_id=2,
            entries=[m.Entry.of(me, partition_of("visits", 64), 7, "visits", "gcounter", delta)],
        )
        code, why = await _send_as_member(url, m.encode(push2))
        # (Unsigned, so refused as a forgery first; a replica that does not sign refuses it
        # as a dot it never issued: tests/sync/test_hostile_messages.py.)
        assert code == 1002 and "not signed" in why, why
        await a.gcounter("visits").increment(1)
        assert a.node.failed is None and local_value(a, "visits") == 3
    finally:
        await a.aclose()
    a = await open_peer(db)  # and after a restart
    try:
        await a.gcounter("visits").increment(1)
        assert local_value(a, "visits") == 4
    finally:
        await a.aclose()


async def test_a_forget_message_from_a_member_closes_its_link_and_forgets_nobody(
    tmp_path: Path,
) -> None:
    """It used to exile its subject group-wide, for good (issue 12 item 6)."""
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        assert a.url is not None
        code, why = await _send_as_member(a.url, _raw(t="forget", replica_id=b.replica_id))
        assert code == 1002 and "unknown message type 'forget'" in why, why
        assert a.status_now()["engine"]["forgotten"] == []
        assert b.replica_id in a.transport.links
        await b.orset("cart").add("milk", w=2, timeout=WAIT)
    finally:
        await b.aclose()
        await a.aclose()
