"""Why a configured peer is offline: one state per dialled URL, its last error, one WARNING
per change of state (not per retry), and ``await peer.connected()``.

Every failure is real: a closed port, a listener with another secret, a certificate from a
CA the dialler does not trust, a listener speaking link protocol 1, a listener that forgot
the dialler, a listener over its connection cap. Retries run on a short backoff, so each
test sees several attempts with the same outcome.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from sync.transport.connection import TransportConfig
from sync.transport.dialstate import DialState, PeerLink
from sync.transport.peer import Peer

from .conftest import FAST_TRANSPORT, eventually, linked, open_peer

RETRIES = 4


def closed_port() -> int:
    """A port nobody listens on (bound, then closed, so nothing else got it meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def warnings_about(caplog: pytest.LogCaptureFixture, url: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "shoal.transport" and r.levelno == logging.WARNING and url in r.getMessage()
    ]


async def retried(peer: Peer, url: str, state: DialState, times: int = RETRIES) -> PeerLink:
    """Wait until ``url`` is in ``state`` and has failed ``times`` times in a row."""

    def done() -> bool:
        link = peer.links().get(url)
        return link is not None and link.state is state and link.failures >= times

    await eventually(done, f"{url} {state.value} after {times} attempts")
    return peer.links()[url]


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="shoal.transport")
    return caplog


async def test_a_closed_port_is_unreachable_with_one_warning(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[url])
    try:
        link = await retried(b, url, DialState.UNREACHABLE)
        assert link.error == "connection refused" and link.replica_id is None
        assert str(link) == f"unreachable for {url}: connection refused"
        assert len(warnings_about(warnings, url)) == 1
        status = await b.status()
        assert status["links"][url]["state"] == "unreachable"
        assert status["links"][url]["error"] == "connection refused"
        assert status["transport"]["dial_failures"]["unreachable"] >= RETRIES
    finally:
        await b.aclose()


async def test_a_wrong_secret_is_named_on_both_sides_once(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    a = await open_peer(tmp_path / "a.db")
    assert a.url is not None
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], secret=b"not the secret")
    try:
        link = await retried(b, a.url, DialState.WRONG_SECRET)
        assert "authentication failed" in (link.error or "")
        assert len(warnings_about(warnings, a.url)) == 1
        # The listener saw every attempt, and said so once.
        assert a.transport.rejected >= RETRIES
        refusals = [
            r
            for r in warnings.records
            if r.levelno == logging.WARNING and r.getMessage().startswith("refused ")
        ]
        assert len(refusals) == 1, [r.getMessage() for r in refusals]
        assert a.transport.links == {} and b.transport.links == {}
    finally:
        await b.aclose()
        await a.aclose()


async def test_another_group_is_a_wrong_group(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db", group="kitchen")
    assert a.url is not None
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], group="garage")
    try:
        link = await retried(b, a.url, DialState.WRONG_GROUP)
        assert "wrong group 'garage'" in (link.error or "")
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_certificate_from_another_ca_is_tls_failed(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    ca, other = trustme.CA(), trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    other_file = tmp_path / "other-ca.pem"
    other.cert_pem.write_to_path(str(other_file))
    a = await open_peer(tmp_path / "a.db", tls_cert=str(cert_file), tls_key=str(key_file))
    assert a.url is not None and a.url.startswith("wss://")
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], tls_ca=str(other_file))
    try:
        link = await retried(b, a.url, DialState.TLS_FAILED)
        assert "certificate verify failed" in (link.error or "")
        assert str(link).startswith(f"TLS verification failed for {a.url}: ")
        assert len(warnings_about(warnings, a.url)) == 1
    finally:
        await b.aclose()
        await a.aclose()


V1_HELLO = {
    "t": "hello",
    "proto": 1,
    "group": "default",
    "replica": "old-listener",
    "nonce": "ab" * 32,
    "address": None,
    "site": None,
    "relay": False,
    "role": "peer",
}


async def test_a_listener_of_link_protocol_1_is_a_version_mismatch(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    async def old_listener(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps(V1_HELLO).encode())
        await ws.wait_closed()

    async with serve(old_listener, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[url])
        try:
            link = await retried(b, url, DialState.VERSION_MISMATCH)
            assert "protocol version 1 is not supported" in (link.error or "")
            assert len(warnings_about(warnings, url)) == 1
        finally:
            await b.aclose()


async def test_a_listener_refusing_our_version_is_a_version_mismatch(tmp_path: Path) -> None:
    async def newer_listener(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(1002, "protocol version 3 is not supported; this peer speaks 4")

    async with serve(newer_listener, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[url])
        try:
            link = await retried(b, url, DialState.VERSION_MISMATCH)
            assert "this peer speaks 4" in (link.error or "")
        finally:
            await b.aclose()


async def test_a_forgotten_dialler_is_refused_in_the_handshake_without_flapping(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    a = await open_peer(tmp_path / "a.db")
    assert a.url is not None
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        rejected = a.transport.rejected
        await a.forget(b.replica_id)
        link = await retried(b, a.url, DialState.FORGOTTEN)
        assert "this replica was forgotten by the group" in (link.error or "")
        # Every redial is refused inside the handshake: no link comes up and goes down.
        assert a.transport.rejected - rejected >= RETRIES - 1
        connected = [
            r for r in warnings.records if r.getMessage().startswith(f"connected to {a.url}")
        ]
        assert len(connected) == 1  # the first link only
        assert len(warnings_about(warnings, a.url)) == 1
        assert b.replica_id not in a.transport.links
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_busy_listener_is_refused_with_its_reason(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    busy = TransportConfig(
        backoff_base=0.02, backoff_cap=0.3, seed=3, max_handshakes=1, handshake_timeout=30.0
    )
    a = await open_peer(tmp_path / "a.db", transport=busy)
    assert a.url is not None
    stalled = await connect(a.url)  # never says hello: holds the one handshake slot
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        link = await retried(b, a.url, DialState.REFUSED)
        assert link.error is not None and link.error.startswith("busy: HTTP 503")
        assert "too many connections in handshake (limit 1)" in link.error
        assert len(warnings_about(warnings, a.url)) == 1
        assert a.transport.refused_busy >= RETRIES
        # Room again: the dialler gets in by itself.
        await stalled.close()
        await linked(a, b)
        assert b.links()[a.url].state is DialState.CONNECTED
        assert b.links()[a.url].error is None
    finally:
        await stalled.close()
        await b.aclose()
        await a.aclose()


async def _b_linked_to_a(tmp_path: Path) -> tuple[Peer, Peer, str, int]:
    """A listening and B dialling it, linked: (a, b, a's URL, its port)."""
    a = await open_peer(tmp_path / "a.db")
    assert a.url is not None
    url, port = a.url, int(a.url.rsplit(":", 1)[1])
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[url])
    try:
        await linked(a, b)
    except BaseException:
        await b.aclose()
        await a.aclose()
        raise
    return a, b, url, port


async def test_one_warning_per_change_of_state_not_per_retry(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    a, b, url, port = await _b_linked_to_a(tmp_path)
    try:
        assert b.links()[url].state is DialState.CONNECTED
        await a.aclose()  # gone: connecting, then unreachable (retried)
        await retried(b, url, DialState.UNREACHABLE)
        # Back on the same port with another secret: wrong secret (retried).
        a = await open_peer(tmp_path / "a.db", listen=f"127.0.0.1:{port}", secret=b"other")
        await retried(b, url, DialState.WRONG_SECRET)
        await a.aclose()
        await retried(b, url, DialState.UNREACHABLE)
        a = await open_peer(tmp_path / "a.db", listen=f"127.0.0.1:{port}")
        await linked(a, b)
        await a.aclose()
        await retried(b, url, DialState.UNREACHABLE)
        changes = [m.split(": ")[1] for m in warnings_about(warnings, url)]
        # One line per change, whatever the retries; after a link, a failure is news again,
        # except the refused dials after a peer shut down (its link closed with 1001: the
        # first and the last aclose above), which its operator did.
        assert changes == ["wrong secret", "unreachable"], changes
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_peer_that_shut_down_is_logged_at_info_and_a_cut_link_warns(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    a, b, url, port = await _b_linked_to_a(tmp_path)
    try:
        await a.aclose()  # closes its links with 1001: the operator stopped it
        await retried(b, url, DialState.UNREACHABLE)
        assert warnings_about(warnings, url) == []
        said = [r for r in warnings.records if r.levelno == logging.INFO and url in r.getMessage()]
        assert any("shut down" in r.getMessage() for r in said), [r.getMessage() for r in said]
        # Back, then gone without a close frame (its listener and links cut): news again.
        a = await open_peer(tmp_path / "a.db", listen=f"127.0.0.1:{port}")
        await linked(a, b)
        for link in list(a.transport.links.values()):
            link.ws.transport.abort()
        for server in a.transport._servers:  # stops listening (a's aclose below ends it)
            server.close()
        await retried(b, url, DialState.UNREACHABLE)
        assert [m.split(": ")[1] for m in warnings_about(warnings, url)] == ["unreachable"]
    finally:
        await b.aclose()
        await a.aclose()


async def test_connected_waits_for_each_peer_and_says_why_the_others_are_not(
    tmp_path: Path,
) -> None:
    a = await open_peer(tmp_path / "a.db")
    c = await open_peer(tmp_path / "c.db", secret=b"another group's secret")
    assert a.url is not None and c.url is not None
    dead = f"ws://127.0.0.1:{closed_port()}"
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url, dead, c.url])
    try:
        result = await b.connected(timeout=None)
        assert result.up == (a.url,)
        assert {u: link.state for u, link in result.down.items()} == {
            dead: DialState.UNREACHABLE,
            c.url: DialState.WRONG_SECRET,
        }
        assert not result.all_up
        assert result.reasons()[0] == f"unreachable for {dead}: connection refused"
        assert result.reasons()[1].startswith(f"wrong secret for {c.url}: ")
        # "all" gives up at the timeout and still says where each one stands.
        result = await b.connected(timeout=0.3, until="all")
        assert result.up == (a.url,) and set(result.down) == {dead, c.url}
        assert list(b.links()) == [a.url, dead, c.url]
    finally:
        await b.aclose()
        await c.aclose()
        await a.aclose()


async def test_connected_without_configured_peers_returns_at_once(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    try:
        result = await a.connected(timeout=None, until="all")
        assert result.up == () and result.all_up and a.links() == {}
        with pytest.raises(ValueError, match="until"):
            await a.connected(until="some")  # type: ignore[arg-type]
    finally:
        await a.aclose()


async def test_a_known_peer_reports_the_state_of_its_url(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    assert a.url is not None
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        peers = (await b.status())["peers"]
        assert peers[a.replica_id]["state"] == "connected"
        url, a_id = a.url, a.replica_id
        await a.aclose()
        await retried(b, url, DialState.UNREACHABLE, times=1)
        entry = (await b.status())["peers"][a_id]
        assert (entry["connected"], entry["state"]) == (False, "unreachable")
        assert entry["error"] == "connection refused"
    finally:
        await b.aclose()
        await a.aclose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peers": ["ws://h:notaport"]}, "'ws://h:notaport': the port is not a number"),
        ({"peers": ["localhost:1234"]}, "'localhost:1234' must start with ws:// or wss://"),
        ({"peers": ["ws://h:70000"]}, "'ws://h:70000': the port is not a number in 1..65535"),
        ({"listen": "localhost:99999"}, "'localhost:99999': port '99999' is not a number"),
        ({"listen": "8765"}, "'8765' is not HOST:PORT"),
        ({"advertise": "ws://h:x"}, "advertise URL 'ws://h:x'"),
        ({"peers": "ws://h:1"}, "a list of URLs"),
        ({"http": ""}, "http token must not be empty"),
    ],
)
async def test_bad_addresses_are_refused_at_open_naming_the_value(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    db = tmp_path / "never.db"
    opts: dict[str, Any] = {"listen": "127.0.0.1:0", **kwargs}
    with pytest.raises(ValueError) as raised:
        await Peer.open(str(db), secret=b"s", transport=FAST_TRANSPORT, **opts)
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


async def test_dial_errors_still_name_the_cause(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[url])
    try:
        await retried(b, url, DialState.UNREACHABLE, times=1)
        assert b.transport.dial_errors == {url: "connection refused"}
    finally:
        await b.aclose()


def test_dial_states_are_strings_for_json() -> None:
    assert [s.value for s in DialState] == [
        "connecting",
        "connected",
        "unreachable",
        "tls_failed",
        "wrong_secret",
        "wrong_group",
        "version_mismatch",
        "forgotten",
        "refused",
        "failed",
    ]
    assert {s for s in DialState if not s.failed} == {DialState.CONNECTING, DialState.CONNECTED}
