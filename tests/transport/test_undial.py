"""A URL no longer dialled: ``Transport.undial``.

Before, the dial loop of an address ran for the process's life.

Real transports, websockets on 127.0.0.1 (ports from the OS).
"""

from __future__ import annotations

import asyncio
import socket

from websockets.asyncio.server import ServerConnection, serve

from sync.transport.connection import Transport, TransportConfig
from tests.transport.conftest import eventually
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
