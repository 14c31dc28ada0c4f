"""Authentication beyond the handshake: every hello field in the proof, every frame sealed.

A small websocket proxy without the secret sits between two peers (a relay in the middle, as
on a network without TLS) and rewrites, injects, replays, reorders, drops, reflects or
splices frames. Whatever it does, the handshake fails or the link closes with 1008 and the
receiving side's owner (the engine, or its stand-in) gets nothing from the tampered frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import sqlite3
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from crdt import ORSet
from sync.messages import Entry, Push, encode
from sync.ring import partition_of
from sync.transport.auth import (
    DEFLATE_WBITS,
    HANDSHAKE_MAX_BYTES,
    PROTO_VERSION,
    TAG_BYTES,
    FrameAuthError,
    FrameFormatError,
    HandshakeError,
    HelloFrame,
    Identity,
    LinkKeys,
    PeerInfo,
    Session,
    client_handshake,
    decode_frame,
    derive_keys,
    encode_frame,
)
from sync.transport.connection import Transport, TransportConfig
from tests.transport.conftest import eventually, linked, local_value, open_peer
from tests.transport.test_connection import WAIT, JsonCodec, Recorder, Summary
from tests.transport.test_connection import Push as TPush

CFG = TransportConfig(backoff_base=0.02, backoff_cap=0.2, seed=5)


# -- a relay in the middle, without the secret -------------------------------------------------


# What each frame the proxy saw carries, read as a party in the middle can (compression is
# not secrecy): by the frame's bytes, filled in by the proxy's pumps.
_READ: dict[bytes, dict[str, Any]] = {}


def _json_object(data: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        value = json.loads(data)
        if isinstance(value, dict):
            return value
    return None


class FrameReader:
    """Reads one direction of a link as it crosses the proxy: handshake frames are JSON;
    after them, ``flag || body || tag``, the compressed ones on one stream per direction."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(DEFLATE_WBITS)

    def read(self, frame: bytes) -> dict[str, Any] | None:
        hello = _json_object(frame)
        if hello is not None or len(frame) < 1 + TAG_BYTES:
            return hello
        body = frame[1:-TAG_BYTES]
        if frame[0] == 1:
            body = self._inflate.decompress(body + b"\x00\x00\xff\xff")
        return _json_object(body)


def payload_of(frame: bytes) -> dict[str, Any] | None:
    """The JSON object a frame carries: one the proxy read, or a handshake frame."""
    return _READ.get(frame) or _json_object(frame)


@dataclass
class Hop:
    """One proxied connection: the dialler's side, the listener's side, who dialled."""

    index: int
    client: ServerConnection
    server: ClientConnection
    dialler: str | None = None
    seen: dict[str, list[bytes]] = field(default_factory=lambda: {"c2s": [], "s2c": []})
    readers: dict[str, FrameReader] = field(
        default_factory=lambda: {"c2s": FrameReader(), "s2c": FrameReader()}
    )

    def sink(self, direction: str) -> ServerConnection | ClientConnection:
        return self.server if direction == "c2s" else self.client


# tamper(hop, direction, frame) -> the frames to forward instead (none: drop it)
Tamper = Callable[[Hop, str, bytes], list[bytes]]


@dataclass
class Proxy:
    upstream: str
    tamper: Tamper | None = None
    hops: list[Hop] = field(default_factory=list)
    # (direction the close came from, code, reason): "s2c" is the listener closing.
    closes: list[tuple[str, int | None, str | None]] = field(default_factory=list)
    url: str = ""

    async def handle(self, client: ServerConnection) -> None:
        async with connect(self.upstream, max_size=None, compression=None) as server:
            hop = Hop(len(self.hops), client, server)
            self.hops.append(hop)
            pumps = [
                asyncio.ensure_future(self.pump(hop, "c2s", client, server)),
                asyncio.ensure_future(self.pump(hop, "s2c", server, client)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pumps:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def pump(self, hop: Hop, direction: str, src: Any, dst: Any) -> None:
        try:
            async for frame in src:
                body = hop.readers[direction].read(frame)
                if body is not None:
                    _READ[frame] = body
                if direction == "c2s" and hop.dialler is None:
                    hop.dialler = (payload_of(frame) or {}).get("replica")
                hop.seen[direction].append(frame)
                out = [frame] if self.tamper is None else self.tamper(hop, direction, frame)
                for item in out:
                    await dst.send(item)
        except ConnectionClosed:
            pass
        code, reason = src.close_code, src.close_reason
        self.closes.append((direction, code, reason))
        with contextlib.suppress(ConnectionClosed, OSError):
            await dst.close(code if code not in (None, 1005, 1006) else 1001, reason or "")

    async def inject(self, hop: Hop, direction: str, frame: bytes) -> None:
        await hop.sink(direction).send(frame)

    async def until(self, cond: Callable[[], bool], what: str = "the proxy") -> None:
        await eventually(cond, what, timeout=WAIT)

    def listener_closed(self, code: int) -> list[str]:
        return [r or "" for d, c, r in self.closes if d == "s2c" and c == code]


@contextlib.asynccontextmanager
async def proxy_to(upstream: str, tamper: Tamper | None = None) -> Any:
    proxy = Proxy(upstream, tamper)
    async with serve(proxy.handle, "127.0.0.1", 0, max_size=None, compression=None) as server:
        proxy.url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        yield proxy


def ident(name: str, **kw: Any) -> Identity:
    return Identity(replica_id=name, group="g", secret=b"s3cret", **kw)


async def transport(name: str, **kw: Any) -> tuple[Transport, Recorder]:
    rec = Recorder()
    t = Transport(ident(name, **kw), rec, JsonCodec(), CFG)
    await t.listen("127.0.0.1", 0)
    return t, rec


# -- the handshake covers every hello field ----------------------------------------------------


def rewrite(direction: str, name: str) -> Tamper:
    def tamper(hop: Hop, way: str, frame: bytes) -> list[bytes]:
        hello = payload_of(frame)
        if way == direction and hello is not None and hello.get("t") == "hello":
            hello[name] = (not hello[name]) if name == "relay" else f"evil-{hello[name]}"
            return [json.dumps(hello).encode()]
        return [frame]

    return tamper


@pytest.mark.parametrize("direction", ["c2s", "s2c"])
@pytest.mark.parametrize("name", ["site", "address", "relay"])
async def test_a_rewritten_hello_field_fails_the_handshake(direction: str, name: str) -> None:
    a, ra = await transport("a", address="ws://a.example", site="home", relay=True)
    b, rb = await transport("b", address="ws://b.example", site="away")
    assert a.url is not None
    try:
        async with proxy_to(a.url, rewrite(direction, name)) as proxy:
            b.dial([proxy.url])
            # Until a link comes up (the bug) or the handshake is refused (the fix).
            await proxy.until(lambda: bool(ra.up or rb.up or proxy.closes))
            assert ra.up == [] and rb.up == []
            await proxy.until(lambda: len(proxy.closes) >= 2)
            assert a.links == {} and b.links == {}
            refusals = [r for _d, c, r in proxy.closes if c == 1008]
            assert refusals and all("authentication" in (r or "") for r in refusals)
            # The dialler proves first, so the listener is the one that sees it, either way.
            assert a.rejected >= 1 and proxy.listener_closed(1008)
            assert "altered on the way" in b.dial_errors[proxy.url]
    finally:
        await b.aclose()
        await a.aclose()


# -- every frame after it is sealed -----------------------------------------------------------


def matches(frame: bytes, t: str, n: int) -> bool:
    body = payload_of(frame)
    return body is not None and body.get("t") == t and body.get("n") == n


def tamper_for(kind: str) -> Tamper:
    held: list[bytes] = []

    def tamper(hop: Hop, direction: str, frame: bytes) -> list[bytes]:
        if direction != "c2s" or hop.index != 0:
            return [frame]
        if kind == "replay" and matches(frame, "Push", 1):
            return [frame, frame]
        if kind == "drop" and matches(frame, "Push", 1):
            return []
        if kind == "reorder" and matches(frame, "Push", 1):
            held.append(frame)
            return []
        if kind == "reorder" and matches(frame, "Push", 2):
            return [frame, *held]
        return [frame]

    return tamper


@pytest.mark.parametrize("kind", ["inject", "replay", "reorder", "drop", "reflect"])
async def test_a_tampered_frame_closes_the_link_and_reaches_nothing(kind: str) -> None:
    a, ra = await transport("a")
    b, rb = await transport("b")
    assert a.url is not None
    try:
        async with proxy_to(a.url, tamper_for(kind)) as proxy:
            b.dial([proxy.url])
            await ra.until(lambda: bool(ra.up))
            await rb.until(lambda: bool(rb.up))
            hop = proxy.hops[0]
            if kind == "inject":
                forged = {"t": "Push", "n": 666, "padding": "x" * 64}  # longer than a tag
                await proxy.inject(hop, "c2s", json.dumps(forged).encode())
            elif kind == "reflect":
                # a frame the listener sent, sent back to it as if from the dialler
                assert a.send("b", Summary(5))
                await rb.until(lambda: ("a", Summary(5)) in rb.messages)
                sent = [f for f in hop.seen["s2c"] if matches(f, "Summary", 5)]
                await proxy.inject(hop, "c2s", sent[0])
            else:
                assert b.send("a", TPush(1)) and b.send("a", TPush(2))
            expected = {"replay": [TPush(1)]}.get(kind, [])

            def got() -> list[Any]:
                return [m for p, m in ra.messages if p == "b"]

            # Until the link closes (the fix) or more than the genuine frames arrive (the bug).
            await proxy.until(
                lambda: bool(proxy.listener_closed(1008)) or len(got()) > len(expected)
            )
            assert got() == expected, f"{kind}: the owner got {got()}"
            reason = proxy.listener_closed(1008)[0]
            assert "failed authentication" in reason
            assert a.frame_failures == 1
            await ra.until(lambda: "b" in ra.down)
            assert got() == expected
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_member_sending_a_deflate_bomb_is_closed_and_the_listener_serves_on() -> None:
    """A member holding the secret tags a compressed frame that inflates to twice the message
    limit: the listener refuses it by its size (1002) before anything reaches its owner, and
    takes the dialler back on a new link."""
    a, ra = await transport("a")
    b, _ = await transport("b")
    assert a.url is not None
    try:
        async with proxy_to(a.url) as proxy:
            b.dial([proxy.url])
            await ra.until(lambda: bool(ra.up))
            await eventually(lambda: "a" in b.links, "b linked")
            assert b.send("a", TPush(1))
            await ra.until(lambda: ("b", TPush(1)) in ra.messages)
            hop = proxy.hops[0]
            # What the member knows: the secret and both hellos; the client's next seq is the
            # number of frames it sent after its hello and its proof.
            keys = derive_keys(b"s3cret", hop.seen["c2s"][0], hop.seen["s2c"][0])
            seq = len(hop.seen["c2s"]) - 2
            bomb = deflated(bytes(2 * CFG.max_message_bytes))  # zeros: a few KiB of frame
            await proxy.inject(hop, "c2s", tagged(keys, seq, 1, bomb))
            await proxy.until(lambda: bool(proxy.listener_closed(1009)))
            limit = CFG.max_message_bytes
            assert f"inflates to more than {limit} bytes" in proxy.listener_closed(1009)[0]
            assert [m for p, m in ra.messages if p == "b"] == [TPush(1)]
            assert a.frame_failures == 1
            # The dialler comes back on a new link, and what it sends arrives.
            await eventually(lambda: len(proxy.hops) >= 2 and "a" in b.links, "relink")
            assert b.send("a", TPush(2))
            await ra.until(lambda: ("b", TPush(2)) in ra.messages)
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_frame_spliced_in_from_another_link_closes_that_link() -> None:
    a, ra = await transport("a")
    b, _ = await transport("b")
    c, _ = await transport("c")
    assert a.url is not None
    spliced: list[bytes] = []
    try:

        def tamper(hop: Hop, direction: str, frame: bytes) -> list[bytes]:
            if hop.dialler == "b" and direction == "c2s" and matches(frame, "Push", 7):
                spliced.append(frame)
            return [frame]

        async with proxy_to(a.url, tamper) as proxy:
            b.dial([proxy.url])
            c.dial([proxy.url])
            await ra.until(lambda: {i.replica_id for i in ra.up} == {"b", "c"})
            await eventually(lambda: "a" in b.links and "a" in c.links, "links up")
            assert b.send("a", TPush(7))
            await ra.until(lambda: ("b", TPush(7)) in ra.messages)
            hop_c = next(h for h in proxy.hops if h.dialler == "c")
            await proxy.inject(hop_c, "c2s", spliced[0])
            await ra.until(lambda: "c" in ra.down or ("c", TPush(7)) in ra.messages)
            assert ("c", TPush(7)) not in ra.messages
            assert any("failed authentication" in r for r in proxy.listener_closed(1008))
            assert "b" in a.links  # the link the frame came from is untouched
    finally:
        await c.aclose()
        await b.aclose()
        await a.aclose()


def rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall())


async def test_a_write_injected_by_a_relay_in_the_middle_is_never_applied(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    assert a.url is not None
    async with proxy_to(a.url) as proxy:
        b = await open_peer(tmp_path / "b.db", peers=[proxy.url])
        try:
            await linked(a, b)
            await b.orset("cart").add("milk", w=2, timeout=WAIT)
            delta = ORSet().add("mallory", "stolen")
            forged = Push(
                push_id=99,
                entries=[
                    Entry(
                        origin=b.replica_id,
                        partition=partition_of("evil", a.config.partitions),
                        seq=10**6,
                        key="evil",
                        kind="orset",
                        delta_json=delta.to_json(),
                    )
                ],
            )
            await proxy.inject(proxy.hops[0], "c2s", encode(forged))
            await eventually(
                lambda: bool(proxy.listener_closed(1008)) or local_value(a, "evil") is not None,
                "the forged frame refused or applied",
            )
            assert local_value(a, "evil") is None
            assert a.transport.frame_failures == 1
            # The dialler comes back on a new link; replication goes on, the forgery never lands.
            await eventually(
                lambda: len(proxy.hops) >= 2 and b.replica_id in a.transport.links, "relink"
            )
            await linked(a, b)
            await b.orset("cart").add("eggs", w=2, timeout=WAIT)
            assert local_value(a, "cart") == frozenset({"milk", "eggs"})
            assert local_value(a, "evil") is None
            assert all(row[0] != "evil" for row in rows(tmp_path / "a.db", "objects"))
        finally:
            await b.aclose()
            await a.aclose()


# -- versions ----------------------------------------------------------------------------------


# A hello of link protocol 6 (before seals of a group).
OLD_HELLO = {
    "t": "hello",
    "proto": 6,
    "group": "g",
    "replica": "old",
    "nonce": "ab" * 32,
    "address": None,
    "site": None,
    "relay": False,
    "role": "peer",
}


async def test_a_peer_of_the_old_version_gets_a_clear_refusal() -> None:
    a, ra = await transport("a")
    assert a.url is not None
    try:
        async with connect(a.url) as ws:
            await ws.send(json.dumps(OLD_HELLO).encode())
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)  # no hello back: a close
            assert ws.close_code == 1002
            assert ws.close_reason == "protocol version 6 is not supported; this peer speaks 7"
        assert ra.up == [] and a.rejected == 1
    finally:
        await a.aclose()


async def test_a_dialler_refuses_a_listener_of_the_old_version_clearly() -> None:
    async def old_listener(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({**OLD_HELLO, "replica": "old-listener"}).encode())
        await ws.wait_closed()

    async with serve(old_listener, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            with pytest.raises(HandshakeError) as err:
                await client_handshake(ws, ident("b"), timeout=WAIT)
    assert err.value.code == 1002
    assert err.value.reason == "protocol version 6 is not supported; this peer speaks 7"
    assert PROTO_VERSION == 7


# -- the session and the keys, without sockets -------------------------------------------------


def pair(server_nonce: str = "2" * 64) -> tuple[Session, Session]:
    hello_c = encode_frame(HelloFrame(proto=2, group="g", replica="c", nonce="1" * 64))
    hello_s = encode_frame(HelloFrame(proto=2, group="g", replica="s", nonce=server_nonce))
    keys = derive_keys(b"s3cret", hello_c, hello_s)
    return Session.for_client(keys), Session.for_server(keys)


def test_sealed_frames_open_in_order_on_the_other_side_only() -> None:
    client, server = pair()
    frames = [client.seal(f"m{i}".encode()) for i in range(3)]
    assert all(f[0] == 1 for f in frames)  # deflated
    assert [server.unseal(f) for f in frames] == [b"m0", b"m1", b"m2"]
    back = server.seal(b"reply")
    assert client.unseal(back) == b"reply"


def change(i: int) -> bytes:
    """About what one change to a set is on the wire: the same ids and key, a new element."""
    rid = "un2ei3nmleagpx2mcmxn"
    return json.dumps(
        {
            "t": "push",
            "push_id": 100 + i,
            "entries": [[rid, 7, 100 + i, "cart", "orset", f'{{"e":"item-{i}","r":"{rid}"}}']],
            "seals": [[rid, "/XVyKLlqDQ7kC7mcWK05ip6OhO7ZgWsN2b898nX/mPE=", "sig"]],
        }
    ).encode()


def test_frames_share_one_deflate_stream_and_a_plain_frame_is_taken_too() -> None:
    hello_c = encode_frame(HelloFrame(proto=2, group="g", replica="c", nonce="1" * 64))
    hello_s = encode_frame(HelloFrame(proto=2, group="g", replica="s", nonce="2" * 64))
    keys = derive_keys(b"s3cret", hello_c, hello_s)
    client, server = Session.for_client(keys), Session.for_server(keys)
    lone = [client.seal(change(i)) for i in range(4)]
    # What a frame repeats of the frames before it costs a few bytes.
    assert lone[0][0] == 1 and len(lone[0]) < len(change(0))
    assert all(len(f) < len(change(i)) // 3 for i, f in enumerate(lone) if i > 0)
    # A batch of a thousand changes: what it repeats of itself costs a few bytes too.
    batch = b"[" + b",".join(change(i) for i in range(10, 1010)) + b"]"
    big = client.seal(batch)
    assert big[0] == 1 and len(big) < len(batch) // 5
    # A plain frame (flag 0) with the right tag: its payload as it is; the stream goes on.
    plain = tagged(keys, 5, 0, b"as it is")
    client.sent += 1  # (the next seq: the frame above took seq 5)
    after = client.seal(change(9))
    assert [server.unseal(f) for f in (*lone, big, plain, after)] == [
        *(change(i) for i in range(4)),
        batch,
        b"as it is",
        change(9),
    ]


def tagged(keys: LinkKeys, seq: int, flag: int, body: bytes) -> bytes:
    """A frame from the client with a right tag, as a member holding the secret can make."""
    signed = bytes([flag]) + body
    mac = hmac.new(keys.client_to_server, seq.to_bytes(8, "big") + signed, hashlib.sha256)
    return signed + mac.digest()[:TAG_BYTES]


def deflated(data: bytes) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, DEFLATE_WBITS, 4)
    return (z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]


@pytest.mark.parametrize("kind", ["bomb", "not deflate", "flag"])
def test_an_authentic_frame_that_does_not_decode_is_a_protocol_error(kind: str) -> None:
    hello_c = encode_frame(HelloFrame(proto=2, group="g", replica="c", nonce="1" * 64))
    hello_s = encode_frame(HelloFrame(proto=2, group="g", replica="s", nonce="2" * 64))
    keys = derive_keys(b"s3cret", hello_c, hello_s)
    client, server = Session.for_client(keys), Session.for_server(keys, max_payload=65536)
    assert server.unseal(client.seal(change(0))) == change(0)
    if kind == "bomb":  # 1 MiB of zeros in about a kilobyte, to a peer taking 64 KiB
        bad = tagged(keys, 1, 1, deflated(bytes(1 << 20)))
        assert len(bad) < 2048
    elif kind == "not deflate":
        bad = tagged(keys, 1, 1, b"\xff" * 40)
    else:
        bad = tagged(keys, 1, 2, change(1))
    with pytest.raises(FrameFormatError) as err:
        server.unseal(bad)
    assert err.value.code == (1009 if kind == "bomb" else 1002)
    why = {"bomb": "inflates to more than", "not deflate": "does not inflate", "flag": "flag 2"}
    assert why[kind] in err.value.reason


def test_an_authentic_frame_that_ends_the_deflate_stream_is_a_protocol_error() -> None:
    """A sender flushes its stream and never ends it; a frame that ends it (anything after
    the final block would be kept aside, and every later frame inflate to nothing) closes
    the link."""
    client, server = pair()
    assert server.unseal(client.seal(change(0))) == change(0)
    z = zlib.compressobj(6, zlib.DEFLATED, DEFLATE_WBITS, 4)
    ended = z.compress(change(1)) + z.flush(zlib.Z_FINISH) + b"more after the end"
    keys = derive_keys(
        b"s3cret",
        encode_frame(HelloFrame(proto=2, group="g", replica="c", nonce="1" * 64)),
        encode_frame(HelloFrame(proto=2, group="g", replica="s", nonce="2" * 64)),
    )
    with pytest.raises(FrameFormatError) as err:
        server.unseal(tagged(keys, 1, 1, ended))
    assert err.value.code == 1002 and "deflate stream ended" in err.value.reason


def test_a_deeply_nested_handshake_frame_is_refused_as_malformed() -> None:
    """A few KiB of ``[`` nest past the interpreter's recursion limit: the frame is refused
    as any malformed one (1002), never with another exception."""
    for data in (b"[" * (HANDSHAKE_MAX_BYTES - 1), b"{" + b'"a":{' * 1500):
        with pytest.raises(HandshakeError) as err:
            decode_frame(data)
        assert err.value.code == 1002 and "not JSON" in err.value.reason


@pytest.mark.parametrize(
    "kind",
    ["altered", "replayed", "reordered", "dropped", "reflected", "other link", "short", "text"],
)
def test_a_frame_that_is_not_the_next_one_sealed_for_us_fails(kind: str) -> None:
    client, server = pair()
    first, second = client.seal(b"one"), client.seal(b"two")
    if kind == "altered":
        bad: bytes | str = b"ONE" + first[3:]
    elif kind == "replayed":
        assert server.unseal(first) == b"one"
        bad = first
    elif kind in ("reordered", "dropped"):
        bad = second
    elif kind == "reflected":
        bad = server.seal(b"one")  # sealed in the other direction
    elif kind == "other link":
        other_client, _ = pair(server_nonce="3" * 64)  # same peers and secret, new nonces
        bad = other_client.seal(b"one")
    elif kind == "short":
        bad = b"x" * (TAG_BYTES - 1)
    else:
        bad = "one"
    with pytest.raises(FrameAuthError) as err:
        server.unseal(bad)
    assert err.value.code == 1008


def test_keys_are_hkdf_sha256_over_the_transcript_of_both_hellos() -> None:
    # An independent HKDF (the cryptography package) over the documented transcript.
    hello_c = encode_frame(HelloFrame(proto=2, group="g", replica="c", nonce="1" * 64))
    hello_s = encode_frame(HelloFrame(proto=2, group="g", replica="s", nonce="2" * 64))
    h = hashlib.sha256(b"shoal-link/5\x00")
    for part in (hello_c, hello_s):
        h.update(len(part).to_bytes(4, "big") + part)
    transcript = h.digest()

    def hkdf(label: bytes) -> bytes:
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=transcript, info=label)
        return kdf.derive(b"s3cret")

    keys = derive_keys(b"s3cret", hello_c, hello_s)
    assert keys.proof_client == hkdf(b"shoal-link/5 proof client")
    assert keys.proof_server == hkdf(b"shoal-link/5 proof server")
    assert keys.client_to_server == hkdf(b"shoal-link/5 frames client->server")
    assert keys.server_to_client == hkdf(b"shoal-link/5 frames server->client")
    assert (
        len({keys.proof_client, keys.proof_server, keys.client_to_server, keys.server_to_client})
        == 4
    )
    # Another nonce, another link: other keys.
    other_s = hello_s.replace(b"2" * 64, b"3" * 64)
    assert derive_keys(b"s3cret", hello_c, other_s).client_to_server != keys.client_to_server


# -- the frame limit moves at the right moment -------------------------------------------------


@dataclass
class Blob:
    text: str


class BlobCodec(JsonCodec):
    def encode(self, message: Any) -> bytes:
        if isinstance(message, Blob):
            return json.dumps({"t": "Blob", "text": message.text}).encode()
        return super().encode(message)

    def decode(self, data: bytes, max_size: int) -> Any:
        d = json.loads(data)
        if d.get("t") == "Blob":
            return Blob(d["text"])
        return super().decode(data, max_size)


class Eager(Recorder):
    """Sends a big message the moment a link comes up: the first frame after the handshake."""

    transport: Transport | None = None

    def link_up(self, info: PeerInfo) -> None:
        super().link_up(info)
        assert self.transport is not None
        self.transport.send(info.replica_id, Blob("x" * 200_000))


async def test_the_first_frames_after_the_handshake_may_be_big_both_ways() -> None:
    cfg = TransportConfig(max_message_bytes=256 * 1024, seed=9)
    ra, rb = Eager(), Eager()
    a = Transport(ident("a"), ra, BlobCodec(), cfg)
    b = Transport(ident("b"), rb, BlobCodec(), cfg)
    ra.transport, rb.transport = a, b
    url = await a.listen("127.0.0.1", 0)
    try:
        b.dial([url])
        await ra.until(lambda: bool(ra.messages))
        await rb.until(lambda: bool(rb.messages))
        assert ra.messages == [("b", Blob("x" * 200_000))]
        assert rb.messages == [("a", Blob("x" * 200_000))]
        assert a.links["b"].ws.close_code is None
    finally:
        await b.aclose()
        await a.aclose()


def test_the_biggest_valid_hello_fits_the_handshake_limit() -> None:
    escaped = "\x00"  # JSON spells it in six bytes
    hello = HelloFrame(
        proto=PROTO_VERSION,
        group=escaped * 256,
        replica=escaped * 128,
        key=escaped * 64,
        nonce="a" * 64,
        address=escaped * 512,
        site=escaped * 128,
        relay=True,
        role="admin",
        home=False,
        run="f" * 32,
    )
    data = encode_frame(hello)
    assert len(data) == 6764 and len(data) <= HANDSHAKE_MAX_BYTES
    assert decode_frame(data) == hello


def test_a_link_holds_a_bounded_amount_of_memory_for_its_compression_streams() -> None:
    """Each side of a link holds one deflate and one inflate stream for as long as the link
    lives: at most 40 KiB with a 2 KiB window (a relay with 1,000 links: at most 40 MB). A wider
    window or a higher memory level would multiply it; this keeps it in view."""
    hello_c = encode_frame(HelloFrame(proto=2, group="g", replica="c", nonce="1" * 64))
    hello_s = encode_frame(HelloFrame(proto=2, group="g", replica="s", nonce="2" * 64))
    keys = derive_keys(b"s3cret", hello_c, hello_s)
    batch = b"[" + b",".join(change(i) for i in range(50)) + b"]"
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        sides = []
        for _ in range(50):
            client, server = Session.for_client(keys), Session.for_server(keys)
            assert server.unseal(client.seal(batch)) == batch
            assert client.unseal(server.seal(change(1))) == change(1)
            sides += [client, server]
        gc.collect()
        per_side = (tracemalloc.get_traced_memory()[0] - before) / len(sides)
    finally:
        tracemalloc.stop()
    assert 16 * 1024 < per_side <= 40 * 1024, per_side
