"""Links over real websockets on 127.0.0.1: handshake, duplicates, limits, heartbeats, backoff."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sync.transport.auth import (
    CLOSE_POLICY,
    PROTO_VERSION,
    AdminReply,
    AdminRequest,
    AuthFrame,
    HandshakeError,
    HelloFrame,
    Identity,
    PeerInfo,
    admin_call,
    client_handshake,
    compute_proof,
    decode_frame,
    encode_frame,
    verify_proof,
)
from sync.transport.connection import Backoff, Link, LinkState, Transport, TransportConfig

WAIT = 5.0


@dataclass
class Summary:
    n: int


@dataclass
class Push:
    n: int


class JsonCodec:
    """A stand-in for sync.messages: {"t": name, "n": int}."""

    def encode(self, message: Any) -> bytes:
        return json.dumps({"t": type(message).__name__, "n": message.n}).encode()

    def decode(self, data: bytes, max_size: int) -> Any:
        if len(data) > max_size:
            raise ValueError("too big")
        try:
            d = json.loads(data)
            cls = {"Summary": Summary, "Push": Push}[d["t"]]
            return cls(int(d["n"]))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"bad message: {exc!r}") from exc


class Recorder:
    def __init__(self) -> None:
        self.up: list[PeerInfo] = []
        self.down: list[str] = []
        self.messages: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()

    def link_up(self, info: PeerInfo) -> None:
        self.up.append(info)
        self.changed.set()

    def link_down(self, peer_id: str) -> None:
        self.down.append(peer_id)
        self.changed.set()

    def link_message(self, peer_id: str, message: Any) -> None:
        self.messages.append((peer_id, message))
        self.changed.set()

    async def admin(self, request: AdminRequest) -> AdminReply:
        return AdminReply(ok=True, detail=f"forgot {request.replica}")

    async def until(self, cond: Any, timeout: float = WAIT) -> None:
        async def loop() -> None:
            while not cond():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)


def ident(name: str, secret: bytes = b"s3cret", group: str = "g") -> Identity:
    return Identity(replica_id=name, group=group, secret=secret)


CFG = TransportConfig(backoff_base=0.02, backoff_cap=0.2, seed=7)


async def make(
    name: str, secret: bytes = b"s3cret", cfg: TransportConfig = CFG, **kw: Any
) -> tuple[Transport, Recorder]:
    rec = Recorder()
    t = Transport(ident(name, secret, **kw), rec, JsonCodec(), cfg)
    await t.listen("127.0.0.1", 0)
    return t, rec


async def test_proof_is_role_bound_covers_both_hellos_and_is_constant_time_compared() -> None:
    hello_c = encode_frame(HelloFrame(proto=PROTO_VERSION, group="g", replica="a", nonce="1" * 64))
    hello_s = encode_frame(HelloFrame(proto=PROTO_VERSION, group="g", replica="b", nonce="2" * 64))
    c = compute_proof(b"k", "client", hello_c, hello_s)
    assert c != compute_proof(b"k", "server", hello_c, hello_s)
    assert c != compute_proof(b"other", "client", hello_c, hello_s)
    assert c != compute_proof(b"k", "client", hello_s, hello_c)
    # Any change to either hello, in any field, changes the proof.
    for i in range(len(hello_c)):
        changed = hello_c[:i] + bytes([hello_c[i] ^ 1]) + hello_c[i + 1 :]
        assert compute_proof(b"k", "client", changed, hello_s) != c
    assert verify_proof(c, c) and not verify_proof(c, "0" * 64)
    with pytest.raises(ValueError, match="role"):
        compute_proof(b"k", "admin", hello_c, hello_s)


async def test_decode_frame_rejects_garbage_with_protocol_code() -> None:
    with pytest.raises(HandshakeError) as err:
        decode_frame(b"{not json")
    assert err.value.code == 1002
    with pytest.raises(HandshakeError) as err:
        decode_frame(b"x" * 9000)
    assert err.value.code == 1009


async def test_link_up_and_messages_both_ways() -> None:
    a, ra = await make("a")
    b, rb = await make("b")
    try:
        assert a.url is not None
        b.dial([a.url])
        await ra.until(lambda: ra.up)
        await rb.until(lambda: rb.up)
        assert ra.up[0].replica_id == "b" and rb.up[0].replica_id == "a"
        assert a.send("b", Push(1)) and b.send("a", Summary(2))
        await ra.until(lambda: ra.messages)
        await rb.until(lambda: rb.messages)
        assert ra.messages == [("b", Summary(2))]
        assert rb.messages == [("a", Push(1))]
        assert not a.send("nobody", Push(3))
    finally:
        await b.aclose()
        await ra.until(lambda: ra.down == ["b"])
        await a.aclose()


async def test_wrong_secret_is_refused_and_nothing_delivered() -> None:
    a, ra = await make("a")
    b, rb = await make("b", secret=b"wrong")
    try:
        assert a.url is not None
        b.dial([a.url])

        async def refused_twice() -> None:
            while a.rejected < 2:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(refused_twice(), WAIT)
        assert ra.up == [] and rb.up == [] and ra.messages == []
        assert a.links == {} and b.links == {}
    finally:
        await b.aclose()
        await a.aclose()


async def raw_hello(url: str, **fields: Any) -> tuple[int | None, str | None]:
    hello = {
        "t": "hello",
        "proto": PROTO_VERSION,
        "group": "g",
        "replica": "raw",
        "nonce": "ab" * 32,
        "address": None,
        "site": None,
        "relay": False,
        "role": "peer",
    }
    hello.update(fields)
    async with connect(url) as ws:
        await ws.send(json.dumps(hello).encode())
        with pytest.raises(ConnectionClosed):
            for _ in range(3):
                await asyncio.wait_for(ws.recv(), WAIT)
        return ws.close_code, ws.close_reason


async def test_wrong_version_group_and_garbage_get_clear_codes() -> None:
    a, ra = await make("a")
    try:
        assert a.url is not None
        code, reason = await raw_hello(a.url, proto=99)
        assert code == 1002 and reason is not None and "protocol version 99" in reason
        code, reason = await raw_hello(a.url, group="other")
        assert code == 1008 and reason is not None and "wrong group" in reason
        async with connect(a.url) as ws:
            await ws.send(b"\x00garbage")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1002
        # A forged proof is refused with a policy close.
        async with connect(a.url) as ws:
            await ws.send(
                encode_frame(
                    HelloFrame(proto=PROTO_VERSION, group="g", replica="raw", nonce="cd" * 32)
                )
            )
            hello = decode_frame(await asyncio.wait_for(ws.recv(), WAIT))
            assert isinstance(hello, HelloFrame) and hello.replica == "a"
            await ws.send(encode_frame(AuthFrame(proof="0" * 64)))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1008 and "authentication failed" in (ws.close_reason or "")
        assert ra.up == [] and a.rejected == 4
    finally:
        await a.aclose()


async def test_both_dialling_keeps_exactly_one_connection() -> None:
    a, ra = await make("a")
    b, rb = await make("b")
    try:
        assert a.url is not None and b.url is not None
        a.dial([b.url])
        b.dial([a.url])
        await ra.until(lambda: "b" in a.links)
        await rb.until(lambda: "a" in b.links)

        async def settled() -> None:
            while not (
                a.links.get("b") is not None
                and b.links.get("a") is not None
                and a.links["b"].dialled_by == "a"
                and b.links["a"].dialled_by == "a"
            ):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(settled(), WAIT)
        # Stays settled: no flapping, no repeated up/down.
        await asyncio.sleep(0.5)
        assert a.links["b"].dialled_by == "a" and b.links["a"].dialled_by == "a"
        assert len(ra.up) == 1 and len(rb.up) == 1
        assert a.send("b", Push(5))
        await rb.until(lambda: rb.messages)
    finally:
        await a.aclose()
        await b.aclose()


async def authed_raw(url: str, name: str = "raw") -> Any:
    ws = await connect(url, max_size=None)
    info = await client_handshake(ws, ident(name), timeout=WAIT)
    return ws, info


async def _link_as_run(url: str, name: str, run: str, links: list[Any]) -> Any:
    """A raw link to ``url`` authenticated as replica ``name`` in its process run ``run``
    (kept in ``links``, to be closed by the caller); its websocket and what the other side
    said of itself."""
    ws = await connect(url, max_size=None)
    links.append(ws)
    info = await client_handshake(ws, dataclasses.replace(ident(name), run=run), timeout=WAIT)
    return ws, info


async def test_a_link_from_a_new_run_of_a_peer_counts_as_it_going_down_and_up() -> None:
    """The peer's last run ended without closing its link (a machine that lost power), and
    its next run links while that link is still open here. Before, the new link took the old
    one's place unseen by the engine (no ``link_down``, no ``link_up``), so what the engine
    had begun with the ended run went on with the new one: the rest of a state transfer,
    which the new run never asked for and refuses, closing the link. Now it is the peer
    going down and coming back; a second link of the same run is a reconnection, as before."""
    a, ra = await make("a")
    links: list[Any] = []
    try:
        assert a.url is not None

        await _link_as_run(a.url, "r", "1" * 32, links)
        await ra.until(lambda: "r" in a.links)
        assert [i.run for i in ra.up] == ["1" * 32] and ra.down == []
        await _link_as_run(a.url, "r", "2" * 32, links)  # a new run; the old link still open
        await ra.until(lambda: len(ra.up) == 2)
        assert ra.down == ["r"] and ra.up[1].run == "2" * 32
        assert a.links["r"].info.run == "2" * 32
        await _link_as_run(a.url, "r", "2" * 32, links)  # the same run again: a reconnection
        await asyncio.wait_for(links[1].wait_closed(), WAIT)  # (the one it replaced)
        assert len(ra.up) == 2 and ra.down == ["r"]
    finally:
        for ws in links:
            ws.transport.abort()
        await a.aclose()


async def test_two_runs_of_a_peer_up_at_once_do_not_take_the_link_from_each_other() -> None:
    """A copy of a replica's store started beside the original: two runs of one id, each
    redialling when its link ends. The newer run's link replaces the older's once (a new
    run); before, the older run's next link replaced it back, and so on at every redial,
    the peer reported down and up each time and what was queued for it dropped. Now a run
    that a newer one replaced is refused while that one is linked (1008, saying why), and
    linked again once it is not."""
    a, ra = await make("a")
    links: list[Any] = []
    try:
        assert a.url is not None

        ws1, _ = await _link_as_run(a.url, "r", "1" * 32, links)
        await ra.until(lambda: "r" in a.links)
        # The copy: a new run, whose link replaces the original's.
        ws2, _ = await _link_as_run(a.url, "r", "2" * 32, links)
        await ra.until(lambda: len(ra.up) == 2)
        await asyncio.wait_for(ws1.wait_closed(), WAIT)
        ws3, _ = await _link_as_run(a.url, "r", "1" * 32, links)  # the original redials
        await asyncio.wait_for(ws3.wait_closed(), WAIT)
        assert ws3.close_code == CLOSE_POLICY and "another run" in ws3.close_reason
        assert a.links["r"].info.run == "2" * 32
        assert len(ra.up) == 2 and ra.down == ["r"]
        await ws2.close()  # the copy stops: the original links again
        await ra.until(lambda: ra.down == ["r", "r"])
        await _link_as_run(a.url, "r", "1" * 32, links)
        await ra.until(lambda: len(ra.up) == 3)
        assert a.links["r"].info.run == "1" * 32
    finally:
        for ws in links:
            ws.transport.abort()
        await a.aclose()


async def test_malformed_and_oversized_frames_close_only_that_link() -> None:
    small = TransportConfig(max_message_bytes=1000, seed=1)
    a, ra = await make("a", cfg=small)
    b, _rb = await make("b")
    try:
        assert a.url is not None
        b.dial([a.url])
        await ra.until(lambda: "b" in a.links)
        ws, info = await authed_raw(a.url, "evil")
        assert info.replica_id == "a"
        await ra.until(lambda: "evil" in a.links)
        await ws.send(info.session.seal(b'{"t": "Nope"}'))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
        assert ws.close_code == 1002 and "malformed" in (ws.close_reason or "")
        ws2, _ = await authed_raw(a.url, "evil2")
        await ws2.send(b"x" * 5000)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws2.recv(), WAIT)
        assert ws2.close_code == 1009
        await ra.until(lambda: "evil" in ra.down and "evil2" in ra.down)
        assert [m for p, m in ra.messages if p.startswith("evil")] == []
        # The good link is untouched.
        assert b.send("a", Push(9))
        await ra.until(lambda: ("b", Push(9)) in ra.messages)
        assert "b" in a.links
    finally:
        await b.aclose()
        await a.aclose()


async def test_silent_peer_is_reported_down_by_heartbeat() -> None:
    fast = TransportConfig(ping_interval=0.1, ping_timeout=0.3, close_timeout=0.2, seed=2)
    a, ra = await make("a", cfg=fast)
    try:
        assert a.url is not None
        ws, _ = await authed_raw(a.url, "sleepy")
        await ra.until(lambda: "sleepy" in a.links)
        ws.transport.pause_reading()  # stop answering pings
        await ra.until(lambda: "sleepy" in ra.down, timeout=WAIT)
        assert "sleepy" not in a.links
        ws.transport.abort()
    finally:
        await a.aclose()


async def test_dialler_reconnects_after_the_listener_restarts() -> None:
    a, ra = await make("a")
    assert a.url is not None
    port = int(a.url.rsplit(":", 1)[1])
    b, rb = await make("b")
    try:
        b.dial([a.url])
        await rb.until(lambda: len(rb.up) == 1)
        await a.aclose()
        await rb.until(lambda: rb.down == ["a"])
        a2 = Transport(ident("a"), ra, JsonCodec(), CFG)
        await a2.listen("127.0.0.1", port)
        try:
            await rb.until(lambda: len(rb.up) == 2)
            assert "a" in b.links
        finally:
            await a2.aclose()
    finally:
        await b.aclose()


async def test_admin_link_gets_one_sealed_reply_and_refuses_an_unsealed_request() -> None:
    asked: list[str] = []

    class Admin(Recorder):
        async def admin(self, request: AdminRequest) -> AdminReply:
            asked.append(request.replica)
            return AdminReply(ok=True, detail=f"forgot {request.replica}")

    a = Transport(ident("a"), Admin(), JsonCodec(), CFG)
    await a.listen("127.0.0.1", 0)
    try:
        assert a.url is not None
        async with connect(a.url) as ws:
            reply = await admin_call(
                ws, ident("admin-1"), AdminRequest(op="forget", replica="zed"), timeout=WAIT
            )
            assert reply.ok and "zed" in reply.detail
        # A request that is not sealed with the link's key is refused, and not carried out.
        async with connect(a.url) as ws:
            await client_handshake(ws, ident("admin-2"), role="admin", timeout=WAIT)
            await ws.send(encode_frame(AdminRequest(op="forget", replica="other")))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1008 and "failed authentication" in (ws.close_reason or "")
        assert asked == ["zed"] and a.links == {}
    finally:
        await a.aclose()


def test_backoff_is_seeded_exponential_and_capped() -> None:
    b1 = Backoff(0.1, 2.0, random.Random(3))
    b2 = Backoff(0.1, 2.0, random.Random(3))
    d1 = [b1.next() for _ in range(12)]
    assert d1 == [b2.next() for _ in range(12)]
    for i, d in enumerate(d1):
        ceiling = min(2.0, 0.1 * 2**i)
        assert ceiling / 2 <= d <= ceiling
    assert max(d1[6:]) <= 2.0 and min(d1[6:]) >= 1.0
    b1.reset()
    assert b1.next() <= 0.1
    with pytest.raises(ValueError):
        Backoff(0, 1, random.Random(0))


class _NullWS:
    pass


def test_full_queue_drops_oldest_anti_entropy_first() -> None:
    link = Link(_NullWS(), PeerInfo("p", None, None, False, "peer"), "p", JsonCodec(), 3)  # type: ignore[arg-type]
    link.state = LinkState.OPEN
    codec = JsonCodec()

    def queued() -> list[Any]:
        return [codec.decode(data, 1000) for _, data in link.queue]

    link.enqueue(Push(1))
    link.enqueue(Summary(2))
    link.enqueue(Push(3))
    link.enqueue(Push(4))  # full: Summary(2) goes
    assert queued() == [Push(1), Push(3), Push(4)]
    link.enqueue(Push(5))  # no anti-entropy left: the oldest goes
    assert queued() == [Push(3), Push(4), Push(5)]
    assert link.dropped == 2
    assert link.queued_bytes == sum(len(d) for _, d in link.queue)


def test_queue_is_bounded_in_bytes_too() -> None:
    link = Link(
        _NullWS(),  # type: ignore[arg-type]
        PeerInfo("p", None, None, False, "peer"),
        "p",
        JsonCodec(),
        queue_limit=1000,
        queue_bytes=100,
    )
    link.state = LinkState.OPEN
    for i in range(50):
        link.enqueue(Push(i))
    assert link.queued_bytes <= 100 and len(link.queue) == 100 // 21
    assert link.dropped == 50 - len(link.queue)


async def test_dialler_refuses_a_listener_that_cannot_prove_the_secret() -> None:
    from websockets.asyncio.server import serve

    async def impostor(ws: Any) -> None:
        await ws.recv()  # the dialler's hello
        hello = HelloFrame(proto=PROTO_VERSION, group="g", replica="imp", nonce="ef" * 32)
        await ws.send(encode_frame(hello))
        await ws.recv()  # the dialler's proof (useless to the impostor: bound to nonces)
        await ws.send(encode_frame(AuthFrame(proof="1" * 64)))
        await ws.wait_closed()

    async with serve(impostor, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            with pytest.raises(HandshakeError) as err:
                await client_handshake(ws, ident("b"), timeout=WAIT)
        assert err.value.code == 1008 and "listener failed authentication" in err.value.reason


def test_transition_table_is_closed_and_refuses_the_rest() -> None:
    from sync.transport.connection import TRANSITIONS, LinkEvent

    link = Link(_NullWS(), PeerInfo("p", None, None, False, "peer"), "p", JsonCodec(), 3)  # type: ignore[arg-type]
    assert set(TRANSITIONS.values()) <= set(LinkState)
    for state in LinkState:
        for event in LinkEvent:
            link.state = state
            if (state, event) in TRANSITIONS:
                assert link.event(event) is TRANSITIONS[(state, event)]
            else:
                with pytest.raises(RuntimeError, match="no transition"):
                    link.event(event)
                assert link.state is state
    # Losing the socket leads to CLOSED from every state.
    assert all(TRANSITIONS[(s, LinkEvent.LOST)] is LinkState.CLOSED for s in LinkState)


async def test_a_peer_refused_after_the_handshake_is_redialled_with_growing_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: the dialler reset its backoff on every successful handshake, so a peer that
    # refuses right after it (a forgotten replica) was redialled every few milliseconds.
    attempts: list[int] = []
    real_next = Backoff.next

    def spy(self: Backoff) -> float:
        attempts.append(self.attempt)
        return real_next(self)

    monkeypatch.setattr(Backoff, "next", spy)
    refusals = 0
    seen = asyncio.Event()

    def refuse(info: PeerInfo) -> str | None:
        nonlocal refusals
        refusals += 1
        seen.set()
        return "this replica was forgotten by the group"

    a = Transport(ident("a"), Recorder(), JsonCodec(), CFG, refuse=refuse)
    await a.listen("127.0.0.1", 0)
    assert a.url is not None
    cfg = TransportConfig(backoff_base=0.005, backoff_cap=10.0, backoff_stable=2.0, seed=3)
    b = Transport(ident("b"), Recorder(), JsonCodec(), cfg)
    try:
        b.dial([a.url])

        async def until_refused(count: int) -> None:
            while refusals < count:
                seen.clear()
                await seen.wait()

        await asyncio.wait_for(until_refused(5), WAIT)
    finally:
        await b.aclose()
        await a.aclose()
    assert len(attempts) >= 4
    assert attempts[:4] == [0, 1, 2, 3], f"backoff was reset between refusals: {attempts}"


async def test_a_tls_failure_when_dialling_is_one_warning_naming_the_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ssl

    import trustme

    attempts = 0
    real_next = Backoff.next

    def counting(self: Backoff) -> float:
        nonlocal attempts
        attempts += 1
        return real_next(self)

    monkeypatch.setattr(Backoff, "next", counting)
    server_ca, other_ca = trustme.CA(), trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    client_ssl = ssl.create_default_context()
    other_ca.configure_trust(client_ssl)  # trusts a CA that did not sign the listener's cert
    a = Transport(ident("a"), Recorder(), JsonCodec(), CFG, server_ssl=server_ssl)
    url = await a.listen("127.0.0.1", 0)
    assert url.startswith("wss://")
    b = Transport(ident("b"), Recorder(), JsonCodec(), CFG, client_ssl=client_ssl)
    caplog.set_level(logging.DEBUG, logger="shoal.transport")
    try:
        b.dial([url])

        async def retried(times: int) -> None:
            while attempts < times:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(retried(4), WAIT)
        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.name == "shoal.transport" and r.levelno == logging.WARNING
        ]
        assert len(warnings) == 1, warnings
        assert url in warnings[0] and "certificate verify failed" in warnings[0]
        assert "certificate verify failed" in b.dial_errors[url] and b.links == {}
    finally:
        await b.aclose()
        await a.aclose()
