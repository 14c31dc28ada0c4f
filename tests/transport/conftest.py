"""Helpers for the transport tests: peers on 127.0.0.1 (port 0) with fast timers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sync.signing import Signer
from sync.transport.auth import Identity
from sync.transport.connection import TransportConfig
from sync.transport.peer import Peer

SECRET = b"transport test secret"
WAIT = 10.0

# Fast timers so that the tests converge in well under a second per step.
FAST: dict[str, Any] = {
    "anti_entropy_interval": 0.2,
    "write_timeout": 2.0,
    "read_timeout": 2.0,
}
FAST_TRANSPORT = TransportConfig(backoff_base=0.02, backoff_cap=0.3, seed=11)


async def open_peer(path: Path | str, *, listen: str | None = "127.0.0.1:0", **kw: Any) -> Peer:
    opts: dict[str, Any] = {"secret": SECRET, "transport": FAST_TRANSPORT, **FAST}
    opts.update(kw)
    return await Peer.open(str(path), listen=listen, **opts)


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = WAIT
) -> None:
    """Poll ``check`` (every 20 ms) until true; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def linked(*peers: Peer) -> None:
    """Wait until every peer has an open link to every other one, and its engine has taken
    each of them as up (a quorum write right after counts them)."""
    for p in peers:
        others = {q.replica_id for q in peers if q is not p}
        await eventually(lambda p=p, o=others: o <= set(p.transport.links), "links")
        await eventually(lambda p=p, o=others: o <= set(p.replica.status()["peers_up"]), "peers up")


def local_value(peer: Peer, key: str) -> Any:
    state = peer.replica.value(key)
    return None if state is None else state.value


def member(group: str = "default", secret: bytes = SECRET) -> Identity:
    """A member of the group (it holds the secret) with a key of its own, as a hand-made
    client: its replica id is its key's."""
    signer = Signer.generate()
    return Identity(signer.replica_id, group, secret, signer=signer)
