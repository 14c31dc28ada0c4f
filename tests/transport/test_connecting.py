"""Writes and reads right after ``Peer.open``, while its links are still being dialled.

``Peer.open(..., peers=[url])`` returns before the link is up. A write with ``w=2`` made at
once used to fail at once ("no other replica that counts is reachable"); it now waits for
the link within its timeout, and the peer behind it, unknown until its handshake, acks it.
When the dial fails (nothing listens there) the write fails as soon as the dial did, its
error naming the URL and why, without waiting for its timeout.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sync.errors import QuorumNotReached, ReadQuorumNotReached
from tests.transport.conftest import WAIT, eventually, local_value, open_peer

__all__: list[str] = []


def _dead_url() -> str:
    """A ws:// URL on 127.0.0.1 where nothing listens (a port the OS just gave back)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


async def test_a_write_right_after_open_waits_for_the_link_being_dialled(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url], listen=None)
    try:
        assert a.replica_id not in b.transport.links  # not linked yet: still dialling
        result = await b.orset("cart").add("milk", w=2, timeout=WAIT)
        assert set(result.acked_by) == {a.replica_id, b.replica_id}
        assert local_value(a, "cart") == frozenset({"milk"})
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_read_right_after_open_waits_for_the_link_being_dialled(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    await a.orset("cart").add("milk")
    b = await open_peer(tmp_path / "b.db", peers=[a.url], listen=None)
    try:
        assert await b.orset("cart").value(r=2, timeout=WAIT) == frozenset({"milk"})
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_write_to_a_peer_that_is_not_running_fails_once_the_dial_is_refused(
    tmp_path: Path,
) -> None:
    url = _dead_url()
    b = await open_peer(tmp_path / "b.db", peers=[url], listen=None)
    try:
        with pytest.raises(QuorumNotReached) as failed:
            await b.orset("cart").add("milk", w=2, timeout=WAIT)
        reason = str(failed.value)
        # Failed because the dial did (the reason names it), not because 10 s went by.
        assert f"the link to {url} failed" in reason and "timed out" not in reason
        assert "durable here" in reason
        assert failed.value.result is not None and failed.value.result.acked_by == (b.replica_id,)
        assert local_value(b, "cart") == frozenset({"milk"})
        with pytest.raises(ReadQuorumNotReached) as unread:
            await b.orset("cart").value(r=2, timeout=WAIT)
        assert f"the link to {url} failed" in str(unread.value)
    finally:
        await b.aclose()


async def test_a_peer_dialling_its_own_url_is_not_left_connecting(tmp_path: Path) -> None:
    # A group's list of URLs often includes each peer's own: the dialler gives up on it at
    # the handshake, and it must not count as a link still being dialled (or every write
    # short of acks would wait for its whole timeout instead of failing fast).
    a = await open_peer(tmp_path / "a.db")
    try:
        assert a.url is not None
        a.transport.dial([a.url])
        assert a._dial_state()[0] == 1  # dialling
        await eventually(lambda: a._dial_state() == (0, {}), "the dial of itself to end")
    finally:
        await a.aclose()
