"""The client API's websockets before and after their token: sockets that never send one
take no subscription slot and are bounded on their own (the oldest waiting one makes room),
pings do not stretch their deadline, a token that is not UTF-8 text is a wrong token, and a
subscriber gone while a send waits is an ordinary goodbye, not an error in the log."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import shoal.web.app as web_app
from shoal import Peer
from shoal.web import ClientAPI, make_client_app, start_client_app
from tests.shoal.test_client_api import TOKEN, Client, _next, _ws, client, peer
from tests.transport.conftest import WAIT, eventually

__all__ = ["client", "peer"]

CLOSE_UNAUTHORIZED = 4401
TRY_AGAIN_LATER = 1013


@pytest.fixture
async def small(peer: Peer) -> AsyncIterator[Client]:
    """A client of an API that takes two subscriptions at once."""
    api: ClientAPI = await start_client_app(
        make_client_app(peer, TOKEN, max_subscriptions=2), "127.0.0.1", 0
    )
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=WAIT)
        ) as s:
            yield Client(api, s)
    finally:
        await api.aclose()


def _url(client: Client, query: str) -> str:
    return client.api.url.replace("http", "ws") + f"/v1/subscribe?{query}"


async def _closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    msg = await ws.receive(timeout=WAIT)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    return ws.close_code


async def test_sockets_without_a_token_take_no_subscription_slot(small: Client) -> None:
    waiting = web_app.MAX_WAITING
    quiet = [await small.session.ws_connect(_url(small, "key=cart")) for _ in range(waiting + 3)]
    # The three oldest made room for the others, told to come back (not "unauthorized").
    assert [await _closed_with(ws) for ws in quiet[:3]] == [TRY_AGAIN_LATER] * 3
    first = await _ws(small, "key=cart")
    assert await _next(first) == {"type": "ready"}
    second = await _ws(small, "prefix=")
    assert await _next(second) == {"type": "ready"}
    status, reply = await small.call("GET", "/v1/subscribe?key=cart")
    assert (status, reply["error"]["code"]) == (503, "too_many_subscriptions")
    await first.close()
    third = await _ws(small, "key=cart")
    assert await _next(third) == {"type": "ready"}
    for ws in [second, third, *quiet]:
        await ws.close()


async def test_a_token_accepted_when_the_slots_filled_meanwhile_is_told_to_retry(
    small: Client,
) -> None:
    late = await small.session.ws_connect(_url(small, "key=cart"))  # admitted, no token yet
    ready = [await _ws(small, "key=cart"), await _ws(small, "key=cart")]
    assert [await _next(ws) for ws in ready] == [{"type": "ready"}] * 2
    await late.send_json({"token": TOKEN})
    assert await _closed_with(late) == TRY_AGAIN_LATER
    for ws in ready:
        await ws.close()


async def test_pings_do_not_stretch_the_token_deadline(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_app, "AUTH_TIMEOUT", 0.5)
    ws = await client.session.ws_connect(_url(client, "key=cart"), autoping=False)
    for _ in range(100):  # bounded: 10 s of pings, where 0.5 s is the deadline
        await ws.ping()
        msg = await ws.receive(timeout=WAIT)
        if msg.type != aiohttp.WSMsgType.PONG:
            break
        await asyncio.sleep(0.1)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == CLOSE_UNAUTHORIZED


async def test_a_token_that_is_not_utf8_text_is_a_wrong_token(client: Client) -> None:
    ws = await client.session.ws_connect(_url(client, "key=cart"))
    await ws.send_str('{"token": "\\ud800"}')  # valid JSON: a lone surrogate
    assert await _closed_with(ws) == CLOSE_UNAUTHORIZED


def _frame(text: str) -> bytes:
    """A masked text frame, as a client sends it."""
    data, mask = text.encode(), os.urandom(4)
    head = bytes([0x81]) + (
        bytes([0x80 | len(data)])
        if len(data) < 126
        else bytes([0x80 | 126]) + struct.pack(">H", len(data))
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def test_a_subscriber_gone_while_a_send_waits_is_no_error(
    client: Client, peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tab that reads nothing
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", client.api.port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                "GET /v1/subscribe?prefix=p: HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        await loop.sock_sendall(sock, _frame(json.dumps({"token": TOKEN})))
        await eventually(lambda: len(peer._prefix_subs) == 1, "the subscription")
        big = "v" * 100_000
        for i in range(60):  # far more than the socket buffers take
            await peer.lww(f"p:{i}").set(big)
        await asyncio.sleep(0)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # the tab closes: a reset
    await eventually(lambda: not peer._prefix_subs, "the subscription to end")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_closing_the_api_closes_sockets_still_waiting_for_their_token(
    peer: Peer,
) -> None:
    api = await start_client_app(make_client_app(peer, TOKEN), "127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(api.url.replace("http", "ws") + "/v1/subscribe?key=a")
        await api.aclose()
        msg: Any = await ws.receive(timeout=WAIT)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
