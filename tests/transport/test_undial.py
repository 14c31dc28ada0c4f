"""A URL no longer dialled: ``Transport.undial``, and a peer that moved no longer dialled at
its old address (``Dialling.learned`` with ``dial_learned``).

Before, the dial loop of an address ran for the process's life: a peer whose port or IP
changed left every peer that had dialled it redialling a dead address with backoff, counted
as connecting and shown with its error in the status.

Real transports and peers, websockets on 127.0.0.1 (ports from the OS).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from sync.transport.connection import Transport, TransportConfig
from sync.transport.dialling import Dialling
from tests.transport.conftest import eventually, linked, open_peer
from tests.transport.test_connection import WAIT, JsonCodec, Push, Recorder, ident, make

__all__: list[str] = []

FAST = TransportConfig(backoff_base=0.02, backoff_cap=0.05, seed=5)


def refused_url() -> str:
    """A URL on 127.0.0.1 where nobody listens (a port the OS gave, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


async def test_undial_cancels_dials_in_progress_and_is_idempotent() -> None:
    """Three dials in progress (a refused URL waiting to redial, a TCP listener that never
    answers the HTTP upgrade, a websocket listener that never answers the hello): undial
    stops each, leaves no task running and no connection open, and takes the URL out of
    the dial state. Undialling again, or a URL never dialled, does nothing."""
    closed: list[str] = []
    upgraded = asyncio.Event()

    async def mute_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # b"" once the dialler went away
        closed.append("tcp")
        writer.close()

    async def mute_ws(ws: ServerConnection) -> None:
        upgraded.set()
        await ws.wait_closed()
        closed.append("ws")

    tcp = await asyncio.start_server(mute_tcp, "127.0.0.1", 0)
    async with tcp, serve(mute_ws, "127.0.0.1", 0, compression=None) as ws_server:
        dead = refused_url()
        silent = f"ws://127.0.0.1:{tcp.sockets[0].getsockname()[1]}"
        hello_less = f"ws://127.0.0.1:{next(iter(ws_server.sockets)).getsockname()[1]}"
        t = Transport(ident("a"), Recorder(), JsonCodec(), FAST)
        try:
            t.dial([dead, silent, hello_less])
            await eventually(lambda: dead in t.dial_errors, "the refused dial to fail")
            await asyncio.wait_for(upgraded.wait(), WAIT)
            assert t.dials.pending() == (2, {dead: t.dial_errors[dead]})

            for url in (dead, silent, hello_less):
                t.undial(url)
            assert t.dialling == []
            assert t.dials.snapshot() == {} and t.dial_errors == {}
            assert t.dials.pending() == (0, {})
            await eventually(lambda: t._diallers.running() == 0, "the diallers to return")
            await eventually(lambda: sorted(closed) == ["tcp", "ws"], "their connections closed")

            t.undial(dead)  # again: nothing
            t.undial("ws://127.0.0.1:1/never-dialled")
            assert t.dialling == [] and t.dials.snapshot() == {}

            t.dial([dead])  # dialled anew: a new dialler
            await eventually(lambda: dead in t.dial_errors, "the new dial to fail")
            assert t.dialling == [dead]
        finally:
            await t.aclose()
        assert t._diallers.running() == 0


async def test_undial_leaves_an_open_link_and_does_not_redial_it() -> None:
    """A link dialled over the URL stays open (the replica at the other end authenticated);
    once it ends, its dialler returns instead of dialling again."""
    a, _ = await make("a", cfg=FAST)
    b, b_heard = await make("b", cfg=FAST)
    assert b.url is not None
    try:
        a.dial([b.url])
        await eventually(lambda: "b" in a.links and "a" in b.links, "the link")
        a.undial(b.url)
        assert a.dialling == [] and b.url not in a.dials.snapshot()
        assert a.send("b", Push(1))  # the link still carries messages
        await eventually(lambda: ("a", Push(1)) in b_heard.messages, "the message")
        assert a._diallers.running() == 1  # the dialler runs its link

        b.close_peer("a", 1000, "bye")
        await eventually(lambda: a._diallers.running() == 0, "the dialler to return")
        assert "b" not in a.links and a.dialling == []
        assert len(b_heard.up) == 1  # never dialled again
    finally:
        await a.aclose()
        await b.aclose()


class _Node:
    """What the engine is told of the dials (``links_connecting``)."""

    def __init__(self) -> None:
        self.told: list[tuple[int, dict[str, str]]] = []

    def links_connecting(self, connecting: int, failed: dict[str, str]) -> None:
        self.told.append((connecting, failed))


class _Owner:
    def __init__(self, transport: Transport) -> None:
        self.replica_id = "me"
        self.url: str | None = None
        self.transport = transport
        self.node: Any = _Node()
        self.dial_learned = True


async def test_an_old_address_is_kept_while_configured_or_another_replica_has_it() -> None:
    """A replica's old address is undialled when it moves, listens nowhere, or is forgotten;
    but not while it is a configured URL, or the address of another replica."""
    t = Transport(ident("me"), Recorder(), JsonCodec(), FAST)
    owner = _Owner(t)
    d = Dialling(owner, lambda: False)
    u = [refused_url() for _ in range(6)]
    try:
        d.dial([u[0]])  # configured
        d.learned("b", u[1], False)
        d.learned("c", u[0], False)  # at the configured URL
        d.learned("x", u[2], False)
        d.learned("y", u[2], False)  # two replicas, one address
        assert set(t.dialling) == {u[0], u[1], u[2]}

        d.learned("b", u[3], False)  # b moved: u1 is dead
        d.learned("c", u[4], False)  # c moved: u0 stays, the operator asked for it
        d.learned("x", None, False)  # x listens nowhere: y is still at u2
        assert set(t.dialling) == {u[0], u[2], u[3], u[4]}
        assert u[1] not in t.dials.snapshot()
        d.learned("y", u[2], True)  # y forgotten: nobody left at u2
        assert set(t.dialling) == {u[0], u[3], u[4]}

        d.learned("b", u[3], True)  # b forgotten, then taken back
        assert set(t.dialling) == {u[0], u[4]}
        d.unforgotten("b")
        assert set(t.dialling) == {u[0], u[3], u[4]}

        d.learned("c", "not a URL", False)  # as good as none
        assert set(t.dialling) == {u[0], u[3]}
        await eventually(lambda: set(t.dial_errors) == {u[0], u[3]}, "the dials to fail")
        d.watch()
        connecting, failed = owner.node.told[-1]
        assert connecting == 0 and set(failed) == {u[0], u[3]}  # (the engine hears no more)
    finally:
        await d.aclose()
        await t.aclose()


@pytest.mark.parametrize("route", ["b dials a", "through c"])
async def test_a_peer_that_moved_is_no_longer_dialled_at_its_old_address(
    tmp_path: Path, route: str
) -> None:
    """``a`` learns ``b``'s address from ``c``, which both dial, and dials it; ``b`` comes
    back on another port (its newer card says where it listens now) and dials ``a``, or
    only ``c``, which passes the card on: ``a`` links to ``b`` at its new address and no
    longer dials the old one (before: for the process's life, ``unreachable``). Through
    ``c`` the card never reached ``a`` before ``Cards.behind``: ``c`` found nothing missing
    in ``a``'s list of members, which showed ``b``'s older card, and sent none back."""
    c = await open_peer(tmp_path / "c.db")
    b = await open_peer(tmp_path / "b.db", peers=[c.url])
    a = await open_peer(tmp_path / "a.db", peers=[c.url], dial_learned=True)
    try:
        old = b.url
        assert old is not None

        def at(url: str) -> bool:
            link = a.transport.dials.snapshot().get(url)
            return link is not None and link.connected

        await eventually(lambda: at(old), "a to link to b at the address it learned")
        await b.aclose()
        dials = [c.url, a.url] if route == "b dials a" else [c.url]
        b = await open_peer(tmp_path / "b.db", peers=dials)  # another port
        new = b.url
        assert new is not None and new != old

        await eventually(lambda: at(new), "a to link to b at its new address")
        assert old not in a.transport.dials.snapshot()
        assert old not in a.transport.dialling and old not in a.transport.dial_errors
        assert old not in a.status_now()["links"]
        await linked(a, b)
        assert a.status_now()["peers"][b.replica_id]["state"] == "connected"
    finally:
        for p in (a, b, c):
            await p.aclose()
