"""/status and /metrics: open, off or behind a token; and what they export about why peers
are not linked (per dialled URL) and the transport's counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sync.transport.dialstate import DialState

from .conftest import WAIT, eventually, linked, open_peer


def get(url: str, token: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_status_and_metrics_can_be_turned_off(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db", http=False)
    try:
        assert a.url is not None
        base = a.url.replace("ws://", "http://")
        for path in ("/status", "/metrics"):
            code, _, body = await asyncio.to_thread(get, base + path)
            assert code == 404 and body == f"GET {path} is turned off on this peer\n"
            assert a.replica_id not in body
        # The port still serves peers.
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
        try:
            await linked(a, b)
        finally:
            await b.aclose()
    finally:
        await a.aclose()


async def test_status_and_metrics_behind_a_token(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db", http="s3cret-token")
    try:
        assert a.url is not None
        base = a.url.replace("ws://", "http://")
        for path in ("/status", "/metrics"):
            for token in (None, "wrong", "s3cret-token2", ""):
                code, headers, body = await asyncio.to_thread(get, base + path, token)
                assert code == 401, (path, token)
                assert headers["WWW-Authenticate"] == 'Bearer realm="shoal"'
                assert a.replica_id not in body
        code, _, body = await asyncio.to_thread(get, base + "/status", "s3cret-token")
        assert code == 200 and json.loads(body)["replica_id"] == a.replica_id
        code, _, body = await asyncio.to_thread(get, base + "/metrics", "s3cret-token")
        assert code == 200 and "shoal_keys 0.0" in body
    finally:
        await a.aclose()


async def test_status_and_metrics_show_each_dialled_url_and_the_transport_counters(
    tmp_path: Path,
) -> None:
    a = await open_peer(tmp_path / "a.db")
    assert a.url is not None
    dead = f"ws://127.0.0.1:{closed_port()}"
    b = await open_peer(tmp_path / "b.db", peers=[a.url, dead])
    try:
        await linked(a, b)
        await eventually(
            lambda: b.links()[dead].state is DialState.UNREACHABLE, "the dead URL unreachable"
        )
        assert b.url is not None
        base = b.url.replace("ws://", "http://")
        code, _, body = await asyncio.to_thread(get, base + "/status")
        status = json.loads(body)
        assert code == 200
        assert status["links"][a.url]["state"] == "connected"
        assert status["links"][a.url]["replica_id"] == a.replica_id
        assert status["links"][dead] | {"since": 0, "failures": 0} == {
            "state": "unreachable",
            "error": "connection refused",
            "replica_id": None,
            "since": 0,
            "failures": 0,
        }
        assert set(status["transport"]) == {
            "rejected_handshakes",
            "refused_busy",
            "accept_errors",
            "frame_failures",
            "dial_failures",
            "departed_non_homes",
        }
        assert status["transport"]["dial_failures"]["unreachable"] >= 1
        assert status["failed"] is None
        code, _, text = await asyncio.to_thread(get, base + "/metrics")
        assert code == 200
        assert f'shoal_link_state{{state="connected",url="{a.url}"}} 1.0' in text
        assert f'shoal_link_state{{state="unreachable",url="{dead}"}} 1.0' in text
        assert f'shoal_link_state{{state="connected",url="{dead}"}} 0.0' in text
        assert 'shoal_dial_failures_total{state="unreachable"}' in text
        for name in (
            "shoal_connections_refused_busy_total 0.0",
            "shoal_accept_errors_total 0.0",
            "shoal_frame_failures_total 0.0",
            "shoal_non_homes_departed_total 0.0",
            "shoal_fail_stopped 0.0",
            # The names that were there before stay as they were.
            "shoal_handshakes_rejected_total 0.0",
            "shoal_peers_connected 1.0",
        ):
            assert name in text, name
    finally:
        await b.aclose()
        await a.aclose()


@pytest.mark.parametrize("http", [True, False, "token"])
async def test_the_http_option_is_checked(tmp_path: Path, http: object) -> None:
    a = await open_peer(tmp_path / f"a{http}.db", http=http)
    await a.aclose()
    with pytest.raises(TypeError, match="http must be True, False or a token"):
        await open_peer(tmp_path / "b.db", http=3)
    assert not (tmp_path / "b.db").exists()


async def _raw_http(url: str, request: bytes) -> bytes:
    """``request`` sent as it is to the peer's port; the status line and headers it gets."""
    host, port = url.split("//", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    finally:
        writer.close()


async def test_only_get_is_answered_and_two_authorization_headers_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A method other than GET gets 405 (it got the page); two Authorization headers get 401
    (they raised in the handler: 500 and a traceback logged for each request)."""
    a = await open_peer(tmp_path / "a.db", http="s3cret-token")
    try:
        assert a.url is not None
        for method in ("POST", "HEAD", "DELETE"):
            head = await _raw_http(a.url, f"{method} /status HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert head.startswith(b"HTTP/1.1 405 "), head
            assert b"\r\nAllow: GET\r\n" in head
        twice = (
            b"GET /status HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer s3cret-token\r\nAuthorization: Bearer s3cret-token\r\n\r\n"
        )
        head = await _raw_http(a.url, twice)
        assert head.startswith(b"HTTP/1.1 401 "), head
        code, _, _ = await asyncio.to_thread(
            get, a.url.replace("ws://", "http://") + "/status", "s3cret-token"
        )
        assert code == 200
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
    finally:
        await a.aclose()


async def test_a_refused_handshake_cannot_forge_lines_of_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unauthenticated hello naming a field with a newline in it: the refusal is logged on
    one line, the control characters escaped."""
    from websockets.asyncio.client import connect

    from sync.transport.auth import PROTO_VERSION

    a = await open_peer(tmp_path / "a.db")
    try:
        assert a.url is not None
        forged = "x\n2026-12-06 00:00:00 CRITICAL shoal: forged"
        hello = {"t": "hello", "proto": PROTO_VERSION, "group": "g", "replica": "r",
                 "nonce": "ab" * 32, forged: 1}  # fmt: skip
        with caplog.at_level("WARNING", logger="shoal.transport"):
            async with connect(a.url) as ws:
                await ws.send(json.dumps(hello).encode())
                with contextlib.suppress(Exception):
                    for _ in range(10):
                        await asyncio.wait_for(ws.recv(), WAIT)
            await eventually(lambda: a.transport.rejected == 1, "the refusal")
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert refusals and all("\n" not in m for m in refusals), refusals
        assert any("x\\x0a2026-12-06" in m for m in refusals), refusals
    finally:
        await a.aclose()


async def test_hellos_varied_by_one_host_are_logged_once_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unauthenticated client that varies its hello (each refusal's reason quotes what it
    sent, so each reads differently) gets one WARNING line per interval for its host, not
    one per variant: the next line says how many refusals it stood for."""
    from websockets.asyncio.client import connect

    from sync.transport.auth import PROTO_VERSION

    a = await open_peer(tmp_path / "a.db")
    try:
        assert a.url is not None
        with caplog.at_level("WARNING", logger="shoal.transport"):
            for i in range(12):
                hello = {"t": "hello", "proto": PROTO_VERSION, "group": "g", "replica": "r",
                         "nonce": "ab" * 32, f"field-{i}": 1}  # fmt: skip
                async with connect(a.url) as ws:
                    await ws.send(json.dumps(hello).encode())
                    with contextlib.suppress(Exception):
                        for _ in range(10):
                            await asyncio.wait_for(ws.recv(), WAIT)
                await eventually(lambda i=i: a.transport.rejected == i + 1, "the refusal")
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    finally:
        await a.aclose()
    assert len(refusals) == 1, refusals
    assert "field-0" in refusals[0]


async def _warned_hosts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, refuse: Callable[[Any], Awaitable[None]]
) -> list[str]:
    """The hosts named by the refusal WARNINGs that ``refuse(transport)`` makes a peer log."""
    a = await open_peer(tmp_path / "a.db")
    try:
        with caplog.at_level("WARNING", logger="shoal.transport"):
            await refuse(a.transport)
        warned = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    finally:
        await a.aclose()
    return [m.split("'")[1] for m in warned]


async def test_refusals_from_more_hosts_than_the_bound_share_one_throttle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refusals from more hosts at once than MAX_REFUSAL_HOSTS: each host within the bound
    gets its line, the hosts past it share one throttle (one line between them), and no
    throttle whose interval is still running is dropped to make room (which would let its
    host log again at once)."""
    from sync.transport import connection

    monkeypatch.setattr(connection, "MAX_REFUSAL_HOSTS", 3)

    async def refuse(transport: Any) -> None:
        for round_ in range(2):
            for i in range(6):
                transport._log_refusal((f"192.0.2.{i}", 4000 + round_), "no")

    hosts = await _warned_hosts(tmp_path, caplog, refuse)
    assert hosts == ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"]


async def test_an_ipv6_client_changing_its_address_within_its_64_is_one_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A machine has a /64 of IPv6 addresses to pick from: refusals from any of them count
    as one host (one WARNING a minute, and one entry of the table, not 2**64); another /64
    and an IPv4 client mapped into IPv6 are hosts of their own."""

    async def refuse(transport: Any) -> None:
        for i in range(50):
            transport._log_refusal((f"2001:db8:1:2::{i:x}", 4000, 0, 0), "no")
        transport._log_refusal(("2001:db8:1:3::1", 4000, 0, 0), "no")
        transport._log_refusal(("::ffff:192.0.2.7", 4000, 0, 0), "no")
        assert len(transport._refusal_logs) == 3

    hosts = await _warned_hosts(tmp_path, caplog, refuse)
    assert hosts == ["2001:db8:1:2::0", "2001:db8:1:3::1", "::ffff:192.0.2.7"]


async def test_hosts_whose_interval_is_over_make_room_even_with_refusals_muted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full table of hosts, each refused twice (its second refusal muted): once their
    interval is over they make room, so that a new host gets its own line rather than the
    shared throttle of the hosts past the bound (which one host just used)."""
    from sync.transport import connection

    monkeypatch.setattr(connection, "MAX_REFUSAL_HOSTS", 3)
    monkeypatch.setattr(connection, "REPORT_INTERVAL", 0.05)

    async def refuse(transport: Any) -> None:
        for _ in range(2):
            for i in range(3):
                transport._log_refusal((f"192.0.2.{i}", 4000), "no")
        await asyncio.sleep(0.1)  # the interval is over for every host of the table
        transport._log_refusal(("198.51.100.1", 4000), "no")
        transport._log_refusal(("198.51.100.2", 4000), "no")

    hosts = await _warned_hosts(tmp_path, caplog, refuse)
    assert hosts == ["192.0.2.0", "192.0.2.1", "192.0.2.2", "198.51.100.1", "198.51.100.2"]


async def test_a_page_asked_for_in_a_loop_is_made_again_only_when_its_cost_allows() -> None:
    """Making /status walks the engine's objects on the event loop: a client asking in a
    loop is served the page made for an earlier request until that copy is PAGE_COST_RATIO
    times as old as making it took (here 50 ms, so half a second)."""
    from http import HTTPStatus

    from websockets.datastructures import Headers
    from websockets.http11 import Request, Response

    from sync.transport.http import PAGE_COST_RATIO, make_http_hook

    class _Conn:
        def respond(self, status: HTTPStatus, text: str) -> Response:
            headers = Headers({"Content-Type": "text/plain"})
            return Response(status.value, status.phrase, headers, text.encode())

    made: list[int] = []

    def status_body() -> str:
        made.append(len(made) + 1)
        now[0] += 0.05  # what making it takes
        return json.dumps({"made": len(made)})

    now = [100.0]
    hook = make_http_hook(status_body, lambda: ("m 1\n", "text/plain"), clock=lambda: now[0])
    conn: Any = _Conn()

    async def fetch() -> str:
        response = await hook(conn, Request("/status", Headers()))
        assert response is not None and response.status_code == 200
        return response.body.decode()

    assert {await fetch() for _ in range(50)} == {'{"made": 1}'}
    now[0] += 0.05 * PAGE_COST_RATIO * 0.99
    assert await fetch() == '{"made": 1}' and made == [1]
    now[0] += 0.05 * PAGE_COST_RATIO * 0.02
    assert await fetch() == '{"made": 2}' and made == [1, 2]


async def test_a_token_that_could_never_match_is_refused_and_a_utf8_one_matches(
    tmp_path: Path,
) -> None:
    """A token with surrounding spaces or control characters is refused at open (the header
    received is stripped, and cannot carry them: it could never match); one beyond ASCII
    matches when the client sends it as UTF-8 (it was compared with the header decoded as
    Latin-1 and encoded again as UTF-8)."""
    for bad in (" token", "token ", "tok\x01en", "tok\nen"):
        with pytest.raises(ValueError, match="control characters or surrounding spaces"):
            await open_peer(tmp_path / "bad.db", http=bad)
    a = await open_peer(tmp_path / "a.db", http="tök-en")
    try:
        assert a.url is not None
        ok = b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\xc3\xb6k-en\r\n\r\n"
        assert (await _raw_http(a.url, ok)).startswith(b"HTTP/1.1 200 ")
        wrong = b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\xf6k-en\r\n\r\n"
        assert (await _raw_http(a.url, wrong)).startswith(b"HTTP/1.1 401 ")
    finally:
        await a.aclose()


async def test_debug_logs_never_show_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, websockets logs every request header of a connection: the peer's own
    loggers for its connections redact the credentials (the Authorization header), so
    ``shoal serve --log-level DEBUG`` does not write the /status token to its log; the
    other headers are still logged."""
    token = "d3bug-t0ken-never-logged"
    a = await open_peer(tmp_path / "a.db", http=token)
    try:
        assert a.url is not None
        base = a.url.replace("ws://", "http://")
        with caplog.at_level("DEBUG"):
            code, _, _ = await asyncio.to_thread(get, base + "/status", token)
            code_bad, _, _ = await asyncio.to_thread(get, base + "/metrics", token + "x")
        lines = [r.getMessage() for r in caplog.records]
    finally:
        await a.aclose()
    assert code == 200 and code_bad == 401
    assert any(line.startswith("< Host: ") for line in lines)  # headers are logged...
    assert lines.count("< Authorization: [redacted]") == 2  # ...but not that one's value
    assert not [line for line in lines if token in line]
