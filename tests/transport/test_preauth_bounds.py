"""Before authentication, bounds: small frames, capped connections, timeouts, quiet EMFILE.

Real listeners on 127.0.0.1 (port 0); the misbehaving clients speak raw TCP or plain
websockets, without the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sync.transport import connection
from sync.transport.admission import Throttle
from sync.transport.auth import HANDSHAKE_MAX_BYTES, PROTO_VERSION
from sync.transport.connection import Transport, TransportConfig
from tests.transport.conftest import eventually
from tests.transport.test_connection import WAIT, JsonCodec, Push, Recorder, ident

ROOT = Path(__file__).resolve().parents[2]


async def listener(**config: Any) -> tuple[Transport, Recorder, str]:
    rec = Recorder()
    t = Transport(ident("a"), rec, JsonCodec(), TransportConfig(seed=1, **config))
    return t, rec, await t.listen("127.0.0.1", 0)


async def raw_upgrade(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A websocket opened by hand, so that a frame can be sent in part."""
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: {where.netloc}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def frame_header(length: int) -> bytes:
    """A masked binary frame header (client to server) announcing ``length`` bytes."""
    if length < 126:
        size = bytes([0x80 | length])
    elif length < 2**16:
        size = bytes([0x80 | 126]) + length.to_bytes(2, "big")
    else:
        size = bytes([0x80 | 127]) + length.to_bytes(8, "big")
    return bytes([0x82]) + size + b"\x00\x00\x00\x00"  # a zero mask: the payload goes as is


async def read_close(reader: asyncio.StreamReader) -> tuple[int, str]:
    """Skip the server's frames up to its close frame; return its code and reason."""
    for _ in range(100):
        b0, b1 = await reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if b0 & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big"), payload[2:].decode()
    raise AssertionError("no close frame")


async def half_send_a_big_frame(url: str, announced: int, sent: int) -> tuple[int, str]:
    reader, writer = await raw_upgrade(url)
    try:
        writer.write(frame_header(announced) + b"x" * sent)
        await writer.drain()
        return await asyncio.wait_for(read_close(reader), WAIT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_big_frames_before_authentication_are_refused_from_their_header() -> None:
    # 4 MiB is the message limit after the handshake; before it, a few KiB.
    a, ra, url = await listener()
    b = Transport(ident("b"), Recorder(), JsonCodec(), TransportConfig(seed=2))
    try:
        announced, sent = 4 * 2**20, 64 * 1024  # half-sent: the rest never comes
        results = await asyncio.gather(
            *(half_send_a_big_frame(url, announced, sent) for _ in range(40))
        )
        for code, reason in results:
            assert code == 1009, reason
            assert str(announced) in reason and str(HANDSHAKE_MAX_BYTES) in reason
        # Refused at the header: none of them was read up to the limit, and all are gone.
        await eventually(lambda: not a.admission.inbound, "refused connections gone")
        assert ra.up == []
        # Still serving.
        b.dial([url])
        await ra.until(lambda: bool(ra.up))
        await eventually(lambda: "a" in b.links, "b linked")
        assert b.send("a", Push(1))
        await ra.until(lambda: ("b", Push(1)) in ra.messages)
    finally:
        await b.aclose()
        await a.aclose()


@pytest.mark.parametrize(
    ("caps", "reason"),
    [
        (
            {"max_handshakes": 2, "max_connections": 10},
            "too many connections in handshake (limit 2)",
        ),
        ({"max_handshakes": 5, "max_connections": 3}, "too many connections (limit 3)"),
    ],
)
async def test_a_connection_past_a_cap_gets_503_and_is_counted(
    caps: dict[str, int], reason: str
) -> None:
    a, ra, url = await listener(handshake_timeout=30.0, **caps)
    b = Transport(ident("b"), Recorder(), JsonCodec(), TransportConfig(seed=2))
    c = Transport(ident("c"), Recorder(), JsonCodec(), TransportConfig(seed=3))
    stalled = []
    try:
        b.dial([url])
        await ra.until(lambda: bool(ra.up))  # one authenticated connection
        for _ in range(2):  # two that never say hello
            stalled.append(await connect(url))
        await eventually(lambda: len(a.admission.inbound) == 3, "three connections")
        with pytest.raises(InvalidStatus) as err:
            await connect(url)
        assert err.value.response.status_code == 503
        assert reason in err.value.response.body.decode()
        assert a.refused_busy == 1
        # Room again once the stalled ones are gone; the listener was serving all along.
        for ws in stalled:
            await ws.close()
        await eventually(lambda: a.admission.handshaking == 0, "stalled connections gone")
        c.dial([url])
        await ra.until(lambda: {i.replica_id for i in ra.up} == {"b", "c"})
        assert a.refused_busy == 1
    finally:
        for ws in stalled:
            await ws.close()
        await c.aclose()
        await b.aclose()
        await a.aclose()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


async def test_a_stalled_handshake_is_closed_after_the_timeout() -> None:
    a, ra, url = await listener(handshake_timeout=0.3)
    try:
        # Stalled before the HTTP upgrade: the connection is dropped.
        where = urlsplit(url)
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        assert await asyncio.wait_for(closed_by_server(reader), WAIT)
        writer.close()
        # Upgraded, then silent; or a hello, then silent: closed with the reason.
        hello = {
            "t": "hello",
            "proto": PROTO_VERSION,
            "group": "g",
            "replica": "slow",
            "nonce": "ab" * 32,
        }
        for first in (None, json.dumps(hello).encode()):
            async with connect(url) as ws:
                if first is not None:
                    await ws.send(first)
                    await asyncio.wait_for(ws.recv(), WAIT)  # the listener's hello
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), WAIT)
                assert ws.close_code == 1008 and ws.close_reason == "handshake timed out"
        assert a.rejected == 2 and ra.up == []
        await eventually(lambda: not a.admission.inbound, "stalled connections gone")
    finally:
        await a.aclose()


def test_limits_are_checked() -> None:
    for bad in ({"max_handshakes": 0}, {"max_connections": -1}, {"handshake_timeout": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TransportConfig(**bad)  # type: ignore[arg-type]


# -- out of file descriptors -----------------------------------------------------------------

# What both children run before their main(): a transport with no peer behind it.
_PRELUDE = textwrap.dedent(
    """
    import asyncio, logging, os, resource, sys
    sys.path.insert(0, sys.argv[1])
    from sync.transport.auth import Identity
    from sync.transport.connection import Transport, TransportConfig

    class Owner:
        def link_up(self, info): pass
        def link_down(self, peer_id): pass
        def link_message(self, peer_id, message): pass
        async def admin(self, request): raise NotImplementedError

    class Codec:
        def encode(self, message): return b""
        def decode(self, data, max_size): return data
    """
)

CHILD = _PRELUDE + textwrap.dedent(
    """

    async def main():
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
        config = TransportConfig(handshake_timeout=60.0, max_handshakes=1000, max_connections=1000)
        t = Transport(Identity("emfile", "g", b"s"), Owner(), Codec(), config)
        url = await t.listen("127.0.0.1", 0)
        used = len(os.listdir("/proc/self/fd"))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, hard))
        print(url, flush=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30  # bounded: asyncio retries accept() once a second
        while t.accept_errors < 3 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        print(f"accept_errors={t.accept_errors}", flush=True)
        await t.aclose()

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_running_out_of_file_descriptors_is_logged_once(tmp_path: Path) -> None:
    script, log_file = tmp_path / "child.py", tmp_path / "child.log"
    script.write_text(CHILD)
    with log_file.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=err
        )
    assert proc.stdout is not None
    writers = []
    try:
        url = (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode().strip()
        where = urlsplit(url)
        for _ in range(20):  # more than the child has descriptors for; the rest wait in backlog
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(where.hostname, where.port), WAIT
            )
            writers.append(writer)
        report = (await asyncio.wait_for(proc.stdout.readline(), 40)).decode().strip()
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    finally:
        for writer in writers:
            writer.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = log_file.read_text()
    assert report.startswith("accept_errors=") and int(report.split("=")[1]) >= 3, text
    lines = [line for line in text.splitlines() if "cannot accept connections" in line]
    assert len(lines) == 1, text
    assert "Too many open files" in lines[0] and where.netloc in lines[0]
    assert "Traceback" not in text and "out of system resource" not in text


BUDGET_CHILD = _PRELUDE + textwrap.dedent(
    """

    async def main():
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
        # A hard limit too: nothing can raise it (a container's, a shared host's).
        used = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 60, used + 60))
        config = TransportConfig(handshake_timeout=60.0, max_handshakes=1000, max_connections=1000)
        t = Transport(Identity("budget", "g", b"s"), Owner(), Codec(), config)
        print(await t.listen("127.0.0.1", 0), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print(f"accept_errors={t.accept_errors} refused_busy={t.refused_busy}", flush=True)
        await t.aclose()

    asyncio.run(main())
    """
)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
async def test_connections_past_the_open_file_limit_get_503_not_a_dead_backlog(
    tmp_path: Path,
) -> None:
    """A listener whose process is near its open file limit answers HTTP 503 naming the
    limit, and keeps descriptors for that answer (and for ``/status``): it used to accept
    until ``accept()`` failed, and every connection past that point waited in the backlog
    until it timed out, with no reason given to the dialler (a relay under ``ulimit -n 128``
    left 90 of 200 devices so, for good)."""
    script, log_file = tmp_path / "child.py", tmp_path / "child.log"
    script.write_text(BUDGET_CHILD)
    with log_file.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(ROOT),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    held, outcomes = [], []
    try:
        url = (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode().strip()
        for _ in range(80):  # more than the child has descriptors for
            try:
                held.append(await connect(url, open_timeout=2.0))  # then silent: handshaking
                outcomes.append("open")
            except InvalidStatus as exc:
                outcomes.append(f"{exc.response.status_code} {exc.response.body.decode()}")
            except TimeoutError:
                outcomes.append("timed out")
                break
        proc.stdin.write(b"report\n")
        await proc.stdin.drain()
        report = (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode().split()
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    finally:
        for ws in held:
            await ws.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = log_file.read_text()
    assert "timed out" not in outcomes, (outcomes, text)
    opened = outcomes.count("open")
    assert 0 < opened < 60 and len(outcomes) == 80, outcomes
    refusals = set(outcomes[opened:])
    assert len(refusals) == 1 and outcomes[:opened] == ["open"] * opened, outcomes
    (refusal,) = refusals
    assert refusal.startswith("503 too many open files (") and "limit" in refusal, refusal
    assert report == ["accept_errors=0", f"refused_busy={80 - opened}"], text
    assert "max_connections" in text and "open file limit" in text, text
    assert "Traceback" not in text


def test_a_recurring_condition_is_reported_once_then_once_per_interval() -> None:
    throttle = Throttle(60.0)
    assert throttle.due(0.0) == 0
    assert [throttle.due(t) for t in (1.0, 30.0, 59.9)] == [None, None, None]
    assert throttle.due(60.0) == 3  # the three muted since the last line
    assert throttle.due(61.0) is None and throttle.due(120.0) == 1


async def test_a_deeply_nested_hello_is_refused_and_counted_like_any_malformed_one() -> None:
    """Before authentication, a hello of a few KiB of ``[`` (past the recursion limit of a
    JSON parser) is a malformed frame: closed with 1002 and counted as a refusal."""
    a, ra, url = await listener()
    try:
        async with connect(url) as ws:
            await ws.send(b"[" * (HANDSHAKE_MAX_BYTES - 100))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1002
        await eventually(lambda: a.rejected == 1, "the refusal counted")
        assert ra.up == []
    finally:
        await a.aclose()


async def test_a_listener_answering_with_a_deeply_nested_hello_is_dialled_again() -> None:
    """Whatever answers at a dialled address (a stale host, a hostile listener) may send a
    hello nested past the recursion limit: the dialler refuses it as malformed and dials
    again with its backoff; its dial task does not die."""
    answered = 0

    async def hostile(ws: ServerConnection) -> None:
        nonlocal answered
        answered += 1
        await ws.recv()  # the dialler's hello
        await ws.send(b"[" * (HANDSHAKE_MAX_BYTES - 100))
        await ws.wait_closed()

    async with serve(hostile, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        url = f"ws://127.0.0.1:{port}"
        b = Transport(
            ident("b"),
            Recorder(),
            JsonCodec(),
            TransportConfig(backoff_base=0.02, backoff_cap=0.05, seed=3),
        )
        try:
            b.dial([url])
            await eventually(lambda: answered >= 3, "dialled again after the refusal")
            assert b.dialling == [url] and b._diallers.running() == 1  # its task did not die
            assert "not JSON" in str(b.dials.snapshot()[url])
        finally:
            await b.aclose()


async def test_a_dial_that_fails_unexpectedly_is_logged_and_dialled_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception the dial loop does not expect (here the handshake raising a bug's
    RuntimeError once) is logged with its traceback and the address is dialled again: it
    links, instead of never being dialled for the rest of the process's life."""
    real = connection.client_handshake
    raised: list[str] = []

    async def once_broken(*args: Any, **kwargs: Any) -> Any:
        if not raised:
            raised.append("boom")
            raise RuntimeError("a bug in the handshake")
        return await real(*args, **kwargs)

    monkeypatch.setattr(connection, "client_handshake", once_broken)
    a, ra, url = await listener()
    b = Transport(
        ident("b"), Recorder(), JsonCodec(), TransportConfig(backoff_base=0.02, backoff_cap=0.05)
    )
    try:
        with caplog.at_level(logging.ERROR, logger="shoal.transport"):
            b.dial([url])
            await eventually(lambda: [i.replica_id for i in ra.up] == ["b"], "linked after all")
        assert raised == ["boom"]
        assert any("failed unexpectedly" in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        await b.aclose()
        await a.aclose()
