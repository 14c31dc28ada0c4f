"""Links between peers: one authenticated websocket per pair, heartbeats, backoff, flow control.

Theory of operation.

* A :class:`Transport` listens (optional) and dials a set of URLs, forever, with exponential
  backoff and equal jitter (:class:`Backoff`, seeded for tests, capped delay; reset only
  after a link stayed up for ``backoff_stable`` seconds, so a peer that refuses us right
  after the handshake is not redialled in a tight loop). Every
  websocket first runs the handshake of :mod:`sync.transport.auth`; nothing else is read or
  written before it succeeds.
* Each authenticated websocket is a :class:`Link` with an explicit session state machine
  (:class:`LinkState`, one transition table :data:`TRANSITIONS`).
* **One link per pair.** When two peers dial each other, both sides keep the connection
  *dialled by the smaller replica id* and close the other with code 1000 and the reason
  ``"duplicate connection"``; both sides apply the same rule to the same pair of
  connections, so they agree without talking. A dialler whose target is already linked waits
  for that link to end before dialling again (no redial storm).
* **Heartbeats** are websockets' own keepalive pings (``ping_interval``/``ping_timeout``): a
  peer that stops answering is closed (1011) and reported down (``link_down``).
* **Flow control.** Each link has a bounded outgoing queue (``queue_limit`` frames and
  ``queue_bytes`` bytes; messages are encoded when queued) drained by one writer task; the
  writer awaits the socket's own write buffer, so a slow reader backs up into the queue.
  When the queue is full the **oldest anti-entropy message**
  (``Summary``/``Deltas``/``SnapshotChunk``; the engine re-sends those anyway) is dropped, or,
  if there is none, the oldest message of any kind. The sender (the node) never blocks, so a
  slow peer cannot stall the others or make this process buffer without bound. Drops are
  counted per link (``dropped``) and exported.
* **Backpressure in.** After each message the reader awaits ``room()`` (the node's input
  queue below its bound), so a peer sending faster than this one can apply stops being
  read and fills its *own* bounded queue (TCP flow control does the rest).
* **Limits.** Incoming frames bigger than ``max_message_bytes`` are refused by websockets
  (close 1009); frames the codec cannot decode close the link with 1002 and a reason; text
  frames are refused (1003). All of these are logged, change nothing, and leave every other
  link alone.

The transport knows nothing of the engine: it hands decoded messages to a
:class:`LinkHandler` (the node) and takes messages to send by peer id.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.http11 import Request, Response

from sync.config import MAX_MESSAGE_BYTES
from sync.errors import RemoteProtocolError

from .auth import (
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    AdminReply,
    AdminRequest,
    HandshakeError,
    Identity,
    PeerInfo,
    client_handshake,
    decode_frame,
    encode_frame,
    server_handshake,
)

__all__ = [
    "ANTI_ENTROPY_MESSAGES",
    "TRANSITIONS",
    "Backoff",
    "Codec",
    "Link",
    "LinkEvent",
    "LinkHandler",
    "LinkState",
    "Transport",
    "TransportConfig",
]

log = logging.getLogger("shoal.transport")

#: Message class names that may be dropped first when a link's queue is full.
ANTI_ENTROPY_MESSAGES = frozenset({"Summary", "Deltas", "SnapshotChunk"})
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003


class LinkState(enum.Enum):
    """Session states of one link."""

    HANDSHAKING = "handshaking"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class LinkEvent(enum.Enum):
    """What can happen to a link."""

    AUTHENTICATED = "authenticated"
    REJECTED = "rejected"  # handshake failed
    DUPLICATE = "duplicate"  # another link to the same peer wins
    CLOSE = "close"  # we close it (shutdown, protocol error)
    LOST = "lost"  # the socket ended


#: The one transition table. A pair that is missing is a bug (``LocalProtocolError``-like).
TRANSITIONS: dict[tuple[LinkState, LinkEvent], LinkState] = {
    (LinkState.HANDSHAKING, LinkEvent.AUTHENTICATED): LinkState.OPEN,
    (LinkState.HANDSHAKING, LinkEvent.REJECTED): LinkState.CLOSING,
    (LinkState.HANDSHAKING, LinkEvent.CLOSE): LinkState.CLOSING,
    (LinkState.HANDSHAKING, LinkEvent.LOST): LinkState.CLOSED,
    (LinkState.OPEN, LinkEvent.DUPLICATE): LinkState.CLOSING,
    (LinkState.OPEN, LinkEvent.CLOSE): LinkState.CLOSING,
    (LinkState.OPEN, LinkEvent.LOST): LinkState.CLOSED,
    (LinkState.CLOSING, LinkEvent.CLOSE): LinkState.CLOSING,
    (LinkState.CLOSING, LinkEvent.DUPLICATE): LinkState.CLOSING,
    (LinkState.CLOSING, LinkEvent.LOST): LinkState.CLOSED,
    (LinkState.CLOSED, LinkEvent.LOST): LinkState.CLOSED,
    (LinkState.CLOSED, LinkEvent.CLOSE): LinkState.CLOSED,
    (LinkState.CLOSED, LinkEvent.DUPLICATE): LinkState.CLOSED,
}


class Codec(Protocol):
    """How replication messages become frames (``sync.messages`` in production)."""

    def encode(self, message: Any) -> bytes: ...

    def decode(self, data: bytes, max_size: int) -> Any: ...


class LinkHandler(Protocol):
    """What the transport tells its owner (the node)."""

    def link_up(self, info: PeerInfo) -> None: ...

    def link_down(self, peer_id: str) -> None: ...

    def link_message(self, peer_id: str, message: Any) -> None: ...

    async def admin(self, request: AdminRequest) -> AdminReply: ...


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Limits and timers of the transport."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    queue_limit: int = 1024
    queue_bytes: int = 64 * 2**20
    ping_interval: float | None = 5.0
    ping_timeout: float | None = 10.0
    handshake_timeout: float = 10.0
    close_timeout: float = 2.0
    backoff_base: float = 0.05
    backoff_cap: float = 5.0
    backoff_stable: float = 2.0
    seed: int | None = None


class Backoff:
    """Exponential backoff with equal jitter: ``uniform(c / 2, c)``, ``c = min(cap, base * 2**n)``.

    Half the delay is kept so that a refusing peer is never redialled in a burst; the other
    half is random so that many peers do not redial in step.

    Deterministic for a given ``rng``; :meth:`reset` after a success.
    """

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.rng = rng
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def _truncate(reason: str) -> str:
    raw = reason.encode()[:120]
    return raw.decode(errors="ignore")


@dataclass(eq=False)
class Link:
    """One authenticated websocket to one peer, with its bounded outgoing queue."""

    ws: ClientConnection | ServerConnection
    info: PeerInfo
    dialled_by: str
    codec: Codec
    queue_limit: int
    queue_bytes: int = 64 * 2**20
    state: LinkState = LinkState.HANDSHAKING
    queue: deque[tuple[bool, bytes]] = field(default_factory=deque)
    queued_bytes: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    dropped: int = 0
    superseded: bool = False
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _writer: asyncio.Task[None] | None = None

    @property
    def peer_id(self) -> str:
        return self.info.replica_id

    def event(self, ev: LinkEvent) -> LinkState:
        """Apply one event through :data:`TRANSITIONS`."""
        nxt = TRANSITIONS.get((self.state, ev))
        if nxt is None:
            raise RuntimeError(f"link to {self.peer_id}: no transition {self.state} --{ev}-->")
        self.state = nxt
        return nxt

    def enqueue(self, message: Any) -> None:
        """Encode and queue ``message``; never blocks; drops per the flow-control policy.

        The queue holds at most ``queue_limit`` frames and ``queue_bytes`` bytes.
        """
        if self.state is not LinkState.OPEN:
            self.dropped += 1
            return
        data = self.codec.encode(message)
        droppable = type(message).__name__ in ANTI_ENTROPY_MESSAGES
        while self.queue and (
            len(self.queue) >= self.queue_limit or self.queued_bytes + len(data) > self.queue_bytes
        ):
            victim = next((item for item in self.queue if item[0]), None)
            if victim is not None:
                self.queue.remove(victim)
            else:
                victim = self.queue.popleft()
            self.queued_bytes -= len(victim[1])
            self.dropped += 1
        self.queue.append((droppable, data))
        self.queued_bytes += len(data)
        self._wakeup.set()

    def start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        try:
            while self.state is LinkState.OPEN:
                if not self.queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                _droppable, data = self.queue.popleft()
                self.queued_bytes -= len(data)
                await self.ws.send(data)
                self.bytes_out += len(data)
                self.messages_out += 1
        except ConnectionClosed:
            pass

    async def close(self, code: int, reason: str) -> None:
        """Close the websocket with ``code``/``reason`` (idempotent)."""
        self.event(LinkEvent.CLOSE)
        self._wakeup.set()
        await self.ws.close(code, _truncate(reason))

    async def stop_writer(self) -> None:
        self._wakeup.set()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer


_TRAFFIC = ("bytes_in", "bytes_out", "messages_in", "messages_out", "dropped")

HttpHook = Callable[[ServerConnection, Request], Awaitable[Response | None]]


class Transport:
    """Listener, diallers and the set of open links of one peer."""

    def __init__(
        self,
        me: Identity,
        handler: LinkHandler,
        codec: Codec,
        config: TransportConfig | None = None,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        http: HttpHook | None = None,
        refuse: Callable[[PeerInfo], str | None] | None = None,
        room: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.me = me
        self.handler = handler
        self.codec = codec
        self.config = config or TransportConfig()
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl  # None: the system's default, made at the first wss:// dial
        self.http = http
        self.refuse = refuse
        self.room = room
        self.links: dict[str, Link] = {}
        self.rng = random.Random(self.config.seed)
        self.url: str | None = None
        self.rejected = 0  # handshakes refused (wrong secret, group, version, garbage)
        self._server: Server | None = None
        self._diallers: dict[str, asyncio.Task[None]] = {}
        self._url_peer: dict[str, str] = {}
        self._link_gone: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed_totals: dict[str, dict[str, int]] = {}
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------

    def _client_ssl(self) -> ssl.SSLContext:
        if self.client_ssl is None:
            self.client_ssl = ssl.create_default_context()
        return self.client_ssl

    async def listen(self, host: str, port: int) -> str:
        """Start accepting peers on ``host:port`` (port 0: the OS picks); return the URL."""
        self._server = await serve(
            self._serve,
            host,
            port,
            ssl=self.server_ssl,
            max_size=self.config.max_message_bytes,
            ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            close_timeout=self.config.close_timeout,
            process_request=self.http,
            compression=None,
            server_header=None,
        )
        sock = next(iter(self._server.sockets))
        bound_host, bound_port = sock.getsockname()[:2]
        scheme = "wss" if self.server_ssl else "ws"
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"{scheme}://{shown}:{bound_port}"
        return self.url

    def dial(self, urls: Iterable[str]) -> None:
        """Keep a link to each URL, redialling with backoff, until :meth:`aclose`."""
        for url in urls:
            if url not in self._diallers and not self._closing:
                task = asyncio.get_running_loop().create_task(self._dial_loop(url))
                self._diallers[url] = task

    @property
    def dialling(self) -> list[str]:
        """The URLs this transport keeps dialling."""
        return list(self._diallers)

    async def aclose(self) -> None:
        """Stop listening and dialling, close every link with 1001 (going away)."""
        self._closing = True
        if self._server is not None:
            self._server.close(close_connections=False)
        links = list(self.links.values())
        await asyncio.gather(
            *(self._close_quietly(link, CLOSE_GOING_AWAY, "peer shutting down") for link in links)
        )
        diallers = list(self._diallers.values())
        self._diallers.clear()
        if diallers:
            # They return on their own once their link ended; a dial in progress is cancelled.
            _done, pending = await asyncio.wait(diallers, timeout=self.config.close_timeout)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- sending -----------------------------------------------------------------------------

    def send(self, peer_id: str, message: Any) -> bool:
        """Queue ``message`` for ``peer_id``; False (dropped) if no link is open to it."""
        link = self.links.get(peer_id)
        if link is None or link.state is not LinkState.OPEN:
            return False
        link.enqueue(message)
        return True

    def traffic(self) -> dict[str, dict[str, int]]:
        """Per peer, cumulative over its links: bytes and messages in and out, drops."""
        out = {p: dict(t) for p, t in self._closed_totals.items()}
        for peer_id, link in self.links.items():
            t = out.setdefault(peer_id, dict.fromkeys(_TRAFFIC, 0))
            for name in _TRAFFIC:
                t[name] += getattr(link, name)
        return out

    def _retire(self, link: Link) -> None:
        t = self._closed_totals.setdefault(link.peer_id, dict.fromkeys(_TRAFFIC, 0))
        for name in _TRAFFIC:
            t[name] += getattr(link, name)

    def close_peer(self, peer_id: str, code: int, reason: str) -> None:
        """Close the link to ``peer_id`` (e.g. after it sent a bad message)."""
        link = self.links.get(peer_id)
        if link is not None:
            self._spawn(self._close_quietly(link, code, reason))

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_quietly(self, link: Link, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await link.close(code, reason)

    async def _serve(self, ws: ServerConnection) -> None:
        try:
            info = await server_handshake(ws, self.me, timeout=self.config.handshake_timeout)
        except HandshakeError as exc:
            self.rejected += 1
            log.warning("refused %s: %s", ws.remote_address, exc)
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close(exc.code, _truncate(exc.reason))
            return
        except ConnectionClosed as exc:
            log.info("handshake from %s ended: %s", ws.remote_address, exc)
            return
        if info.role == "admin":
            await self._serve_admin(ws, info)
            return
        await self._run_link(ws, info, dialled_by=info.replica_id)

    async def _serve_admin(self, ws: ServerConnection, info: PeerInfo) -> None:
        try:
            frame = decode_frame(await asyncio.wait_for(ws.recv(), self.config.handshake_timeout))
            if not isinstance(frame, AdminRequest):
                raise HandshakeError(CLOSE_PROTOCOL, f"expected admin request, got {frame.t}")
            log.warning("admin %s asks: %s %s", info.replica_id, frame.op, frame.replica)
            reply = await self.handler.admin(frame)
            await ws.send(encode_frame(reply))
            await ws.close(CLOSE_NORMAL, "done")
        except HandshakeError as exc:
            log.warning("admin link from %s: %s", ws.remote_address, exc)
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close(exc.code, _truncate(exc.reason))
        except (ConnectionClosed, TimeoutError) as exc:
            log.info("admin link from %s ended: %s", ws.remote_address, exc)

    async def _dial_loop(self, url: str) -> None:
        backoff = Backoff(self.config.backoff_base, self.config.backoff_cap, self.rng)
        while not self._closing:
            known = self._url_peer.get(url)
            if known is not None and known in self.links:
                gone = self._link_gone.setdefault(known, asyncio.Event())
                await gone.wait()
                continue
            try:
                ws = await connect(
                    url,
                    ssl=self._client_ssl() if url.startswith("wss://") else None,
                    max_size=self.config.max_message_bytes,
                    ping_interval=self.config.ping_interval,
                    ping_timeout=self.config.ping_timeout,
                    close_timeout=self.config.close_timeout,
                    open_timeout=self.config.handshake_timeout,
                    compression=None,
                )
            except InvalidURI:
                log.error("cannot dial %r: not a ws:// or wss:// URL; giving up on it", url)
                return
            except (OSError, InvalidHandshake, TimeoutError, ssl.SSLError) as exc:
                delay = backoff.next()
                log.debug("dial %s failed (%s); retry in %.2fs", url, exc, delay)
                await asyncio.sleep(delay)
                continue
            try:
                info = await client_handshake(ws, self.me, timeout=self.config.handshake_timeout)
            except HandshakeError as exc:
                log.warning("handshake with %s failed: %s", url, exc)
                with contextlib.suppress(ConnectionClosed, OSError):
                    await ws.close(exc.code, _truncate(exc.reason))
                await asyncio.sleep(backoff.next())
                continue
            except ConnectionClosed as exc:
                log.warning("%s refused us: %s", url, exc)
                await asyncio.sleep(backoff.next())
                continue
            if info.replica_id == self.me.replica_id:
                log.warning("%s is this peer itself; not dialling it", url)
                with contextlib.suppress(ConnectionClosed, OSError):
                    await ws.close(CLOSE_POLICY, "connected to self")
                return
            self._url_peer[url] = info.replica_id
            started = asyncio.get_running_loop().time()
            await self._run_link(ws, info, dialled_by=self.me.replica_id)
            # A link that ended at once (refused after the handshake: forgotten, protocol
            # error) must not reset the backoff, or the peer is redialled every few ms.
            if asyncio.get_running_loop().time() - started >= self.config.backoff_stable:
                backoff.reset()
            if not self._closing:
                await asyncio.sleep(backoff.next())

    def _install(self, link: Link) -> bool:
        """Make ``link`` the peer's link, or refuse it as a duplicate. True if installed."""
        existing = self.links.get(link.peer_id)
        if existing is None:
            self.links[link.peer_id] = link
            return True
        preferred = min(self.me.replica_id, link.peer_id)
        # Same dialler twice: it redials only after its old link ended, so the newer one is
        # live and the old one is a half-open leftover. Different diallers: the smaller wins.
        wins = link.dialled_by == existing.dialled_by or (
            link.dialled_by == preferred and existing.dialled_by != preferred
        )
        if wins:
            existing.superseded = True
            existing.event(LinkEvent.DUPLICATE)
            # What the old link had not sent yet goes out on the new one, in order.
            link.queue.extendleft(reversed(existing.queue))
            link.queued_bytes += existing.queued_bytes
            existing.queue.clear()
            existing.queued_bytes = 0
            self._spawn(self._close_quietly_ws(existing, "duplicate connection"))
            self.links[link.peer_id] = link
            return True
        return False

    async def _close_quietly_ws(self, link: Link, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await link.ws.close(CLOSE_NORMAL, reason)

    async def _run_link(
        self, ws: ClientConnection | ServerConnection, info: PeerInfo, dialled_by: str
    ) -> None:
        link = Link(
            ws, info, dialled_by, self.codec, self.config.queue_limit, self.config.queue_bytes
        )
        link.event(LinkEvent.AUTHENTICATED)
        if self._closing:
            await self._close_quietly(link, CLOSE_GOING_AWAY, "peer shutting down")
            return
        refused = self.refuse(info) if self.refuse is not None else None
        if refused is not None:
            log.warning("refused link with %s: %s", info.replica_id, refused)
            await self._close_quietly(link, CLOSE_POLICY, refused)
            return
        replaced = info.replica_id in self.links
        if not self._install(link):
            link.event(LinkEvent.DUPLICATE)
            log.info("duplicate connection with %s closed", info.replica_id)
            await self._close_quietly_ws(link, "duplicate connection")
            return
        self._link_gone.setdefault(info.replica_id, asyncio.Event()).clear()
        link.start_writer()
        if not replaced:
            log.info("link up: %s (%s)", info.replica_id, info.address or "no address")
            self.handler.link_up(info)
        try:
            await self._read_loop(link)
        finally:
            # No await until the link is out of the table: another link to the same peer
            # may be installed as soon as we yield.
            link.event(LinkEvent.LOST)
            if link._writer is not None:
                link._writer.cancel()
            self._retire(link)
            current = self.links.get(info.replica_id) is link
            if current:
                del self.links[info.replica_id]
                self._link_gone.setdefault(info.replica_id, asyncio.Event()).set()
                log.info(
                    "link down: %s (code %s %s)", info.replica_id, ws.close_code, ws.close_reason
                )
                self.handler.link_down(info.replica_id)
            if link.ws.close_code is None:  # cancelled while open: do not leave it half-open
                self._spawn(self._close_quietly_ws(link, "peer shutting down"))
            await link.stop_writer()

    async def _read_loop(self, link: Link) -> None:
        ws = link.ws
        max_size = self.config.max_message_bytes
        try:
            async for data in ws:
                if isinstance(data, str):
                    log.warning("%s sent a text frame; closing", link.peer_id)
                    await self._close_quietly(link, CLOSE_UNSUPPORTED, "text frames not accepted")
                    return
                link.bytes_in += len(data)
                link.messages_in += 1
                try:
                    message = self.codec.decode(data, max_size)
                except (RemoteProtocolError, ValueError, TypeError) as exc:
                    reason = f"malformed message: {exc}"
                    log.warning("%s: %s; closing", link.peer_id, reason)
                    await self._close_quietly(link, CLOSE_PROTOCOL, reason)
                    return
                if link.state is LinkState.OPEN or link.superseded:
                    # A superseded duplicate is still an authenticated link to the same
                    # peer: what arrives on it while it closes (acks...) is good.
                    self.handler.link_message(link.peer_id, message)
                if self.room is not None:
                    await self.room()  # the owner is behind: stop reading this socket
        except ConnectionClosed as exc:
            if exc.rcvd is None and exc.sent is not None and exc.sent.code != CLOSE_NORMAL:
                log.warning("link %s closed by us: %s", link.peer_id, exc.sent)
            else:
                log.info("link %s closed: %s", link.peer_id, exc)
