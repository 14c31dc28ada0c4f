"""Links between peers: one authenticated websocket per pair, heartbeats, backoff, flow control.

(About 790 lines: the listener and the dialler share the link's life (handshake, limits,
refusals and their throttles, heartbeats), which reads best in one place; the link itself,
dial states, the dialler tasks, admission and the handshake are modules of their own.)

Theory of operation.

* A :class:`Transport` listens (optional) and dials a set of URLs with exponential backoff
  and equal jitter (:class:`Backoff`, seeded for tests, capped delay; reset only after a
  link stayed up for ``backoff_stable`` seconds, so a peer that refuses us right after the
  handshake is not redialled in a tight loop), until it closes or is told to stop dialling
  one (:meth:`Transport.undial`: a peer moved; see :mod:`sync.transport.diallers`). Every
  websocket first runs the handshake of :mod:`sync.transport.auth`; nothing else is read or
  written before it succeeds, and afterwards every frame, both ways, is sealed and checked
  with the link's :class:`~sync.transport.auth.Session` (a frame that fails its check closes
  the link with 1008 and reaches nothing of the owner).
* Each authenticated websocket is a :class:`~sync.transport.link.Link` with an explicit
  session state machine (:class:`LinkState`, one transition table :data:`TRANSITIONS`; both
  in :mod:`sync.transport.link`, re-exported here).
* **One link per pair.** When two peers dial each other, both sides keep the connection
  *dialled by the smaller replica id* and close the other with code 1000 and the reason
  ``"duplicate connection"``; both sides apply the same rule to the same pair of
  connections, so they agree without talking. A dialler whose target is already linked waits
  for that link to end before dialling again (no redial storm). A link from a new run of a
  peer (the hello's ``run``) replaces the one its last run left open, and is reported as
  the peer going down and coming up; what was queued for the old run is dropped. A link
  from a run so replaced is refused (1008) while the newer run's link is open: two runs of
  one replica up at once (a copy of its store) would otherwise take the link from each other
  at every redial.
* **Heartbeats** are websockets' own keepalive pings (``ping_interval``/``ping_timeout``): a
  peer that stops answering is closed (1011) and reported down (``link_down``).
* **Flow control.** Each link has a bounded outgoing queue (``queue_limit`` frames and
  ``queue_bytes`` bytes; messages are encoded when queued, sealed when sent) drained by one
  writer task; the writer awaits the socket's own write buffer, so a slow reader backs up
  into the queue. When the queue is full the **oldest anti-entropy message**
  (``Summary``/``Deltas``/``SnapshotChunk``; the engine re-sends those anyway) is dropped, or,
  if there is none, the oldest message of any kind. The sender (the node) never blocks, so a
  slow peer cannot stall the others or make this process buffer without bound. Drops are
  counted per link (``dropped``) and exported.
* **Backpressure in.** After each message the reader awaits ``room()`` (the node's input
  queue below its bound), so a peer sending faster than this one can apply stops being
  read and fills its *own* bounded queue (TCP flow control does the rest).
* **Limits after the handshake.** Incoming frames bigger than ``max_message_bytes`` (plus the
  tag) are refused by websockets (close 1009); frames the codec cannot decode close the link
  with 1002 and a reason; text frames are refused (1003). All of these are logged, change
  nothing, and leave every other link alone.
* **Limits before it.** Until the other side has proved the secret, frames are limited to
  :data:`~sync.transport.auth.HANDSHAKE_MAX_BYTES` (a bigger one is refused from its header,
  1009), and the HTTP upgrade and the handshake must each finish within
  ``handshake_timeout``. The listener admits at most ``max_handshakes`` connections that
  have not authenticated yet and ``max_connections`` in all; one more gets HTTP 503 with the
  reason, and is counted (``refused_busy``), as is one that finds the process near its
  limit of open files. Running out of file descriptors while accepting is logged once
  (then at most once a minute, with a count: ``accept_errors``), not as a traceback per
  attempt. All of this is :mod:`sync.transport.admission`.
* **Why a dialled peer is not linked.** Every dialled URL has a state of
  :mod:`sync.transport.dialstate` (``connecting``, ``connected``, ``unreachable``,
  ``tls_failed``, ``wrong_secret``, ``wrong_group``, ``version_mismatch``, ``forgotten``,
  ``refused``, ``failed``) and its last error, read from what each dial ran into; a change of
  state is logged once (WARNING into a failure state), not every retry (``dials``;
  ``dial_errors`` maps each failing URL to its error). A URL counts as connected while a link
  to its replica is open, whichever side dialled it. The listener refuses a dialler its owner
  has forgotten inside the handshake, once the dialler has proved the secret (close 1008,
  :data:`~sync.transport.dialstate.FORGOTTEN_REASON`), so that the dialler never sees a link
  come up and go down at every retry; refusals of the same cause from the same host are
  logged once, then at most once a minute with a count.

The transport knows nothing of the engine: it hands decoded messages to a
:class:`LinkHandler` (the node) and takes messages to send by peer id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from sync.config import MAX_MESSAGE_BYTES
from sync.errors import RemoteProtocolError

from .addresses import bind_listen, shown_listen
from .admission import REPORT_INTERVAL, Admission, HttpHook, Throttle, refusal_host
from .auth import (
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    FRAME_OVERHEAD,
    HANDSHAKE_MAX_BYTES,
    AdminReply,
    AdminRequest,
    FrameAuthError,
    HandshakeError,
    HelloFrame,
    Identity,
    PeerInfo,
    client_handshake,
    decode_frame,
    encode_frame,
    server_handshake,
)
from .diallers import Diallers
from .dialstate import (
    FORGOTTEN_REASON,
    SELF_REASON,
    Backoff,
    DialBook,
    DialState,
    classify_dial_error,
    classify_refusal,
)
from .link import (
    ANTI_ENTROPY_MESSAGES,
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_UNSUPPORTED,
    OLDER_RUN_REASON,
    TRANSITIONS,
    Codec,
    Link,
    LinkEvent,
    LinkState,
    ReplacedRuns,
    truncate_reason,
)
from .wslog import CLIENT_LOG, SERVER_LOG

__all__ = [
    "ANTI_ENTROPY_MESSAGES",
    "TRANSITIONS",
    "Backoff",
    "Codec",
    "DialState",
    "Link",
    "LinkEvent",
    "LinkHandler",
    "LinkState",
    "Transport",
    "TransportConfig",
]

log = logging.getLogger("shoal.transport")

#: Control characters (C0, DEL, C1): escaped in what the log quotes of a client's input.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Hosts whose refused handshakes are throttled each on their own (see _log_refusal).
MAX_REFUSAL_HOSTS = 1000


class LinkHandler(Protocol):
    """What the transport tells its owner (the node)."""

    def link_up(self, info: PeerInfo) -> None: ...

    def link_down(self, peer_id: str) -> None: ...

    def link_message(self, peer_id: str, message: Any) -> None: ...

    async def admin(self, request: AdminRequest) -> AdminReply: ...


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Limits and timers of the transport.

    ``handshake_timeout`` bounds the HTTP upgrade and then the whole authentication
    handshake, each. ``max_handshakes``: inbound connections not yet authenticated (HTTP
    upgrade included); ``max_connections``: inbound connections in all. A connection past
    either gets HTTP 503.
    """

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
    max_handshakes: int = 64
    max_connections: int = 512

    def __post_init__(self) -> None:
        for name in ("max_handshakes", "max_connections", "max_message_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TransportConfig.{name} must be an int >= 1, got {value!r}")
        if not self.handshake_timeout > 0:
            raise ValueError(
                f"TransportConfig.handshake_timeout must be > 0, got {self.handshake_timeout!r}"
            )


_TRAFFIC = ("bytes_in", "bytes_out", "messages_in", "messages_out", "dropped")


def _raise_limit(ws: ClientConnection | ServerConnection, limit: int) -> None:
    """Raise the incoming frame limit of ``ws`` (see :mod:`sync.transport.auth` for when)."""
    protocol = ws.protocol
    # websockets >= 16 names it max_message_size (max_size may set it and a fragment limit).
    name = "max_message_size" if hasattr(protocol, "max_message_size") else "max_size"
    setattr(protocol, name, limit)


class Transport:
    """Listener, diallers and the set of open links of one peer.

    Counters: ``rejected`` (handshakes refused: wrong secret, group, version, garbage),
    ``frame_failures`` (links closed for a frame that failed its check), ``refused_busy`` and
    ``accept_errors`` (see :mod:`sync.transport.admission`), ``dials.failures`` (failed dial
    attempts by :class:`DialState`). ``dials`` holds the state of every dialled URL;
    ``dial_errors`` maps each URL whose state is a failure to its last error.

    ``refuse(info)`` (the owner's policy) gives the reason to refuse an authenticated peer,
    or None: a dialler is refused inside the handshake, a listener we dialled right after it.
    """

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
        self.rejected = 0
        self.frame_failures = 0
        self.dials = DialBook()
        self.admission = Admission(
            max_handshakes=self.config.max_handshakes,
            max_connections=self.config.max_connections,
            http=http,
        )
        self._servers: list[Server] = []  # one per listening socket
        self._diallers = Diallers()
        self._url_peer: dict[str, str] = {}
        self._link_gone: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed_totals: dict[str, dict[str, int]] = {}
        self._replaced_runs = ReplacedRuns()  # of the peers linked now
        #: The traffic of the non-homes whose last link ended (short-lived sessions, counted
        #: together, with how many left): per peer it would grow with every session served.
        self.departed: dict[str, int] = dict.fromkeys(("non_homes", *_TRAFFIC), 0)
        self._closing = False
        self._closed = asyncio.Event()  # set with _closing: wakes the diallers' backoff
        # Refused handshakes, per host (see _log_refusal); past MAX_REFUSAL_HOSTS, one more
        # throttle for every other host.
        self._refusal_logs: dict[str, Throttle] = {}
        self._refusal_overflow = Throttle(REPORT_INTERVAL)
        self._refusal_prune_at = -math.inf  # when a full table is worth scanning again

    @property
    def refused_busy(self) -> int:
        """Inbound connections refused with HTTP 503 (over one of the caps)."""
        return self.admission.refused_busy

    @property
    def accept_errors(self) -> int:
        """``accept()`` calls that failed for lack of file descriptors or memory."""
        return self.admission.accept_errors

    @property
    def dial_errors(self) -> dict[str, str]:
        """The last error of every dialled URL that is in a failure state."""
        return self.dials.errors()

    # -- lifecycle ---------------------------------------------------------------------------

    def _client_ssl(self) -> ssl.SSLContext:
        if self.client_ssl is None:
            self.client_ssl = ssl.create_default_context()
        return self.client_ssl

    async def listen(self, host: str, port: int) -> str:
        """Start accepting peers on ``host:port`` (port 0: the OS picks); return the URL."""
        return await self.listen_on(await bind_listen(host, port))

    async def listen_on(self, sockets: Sequence[socket.socket]) -> str:
        """Start accepting peers on ``sockets``, bound and listening (:func:`bind_listen`);
        they are this transport's from now on, closed with it (or at once if this fails).
        Return the URL of the first."""
        servers: list[Server] = []
        try:
            for sock in sockets:
                servers.append(
                    await serve(
                        self._serve,
                        sock=sock,
                        ssl=self.server_ssl,
                        max_size=HANDSHAKE_MAX_BYTES,  # raised once the dialler authenticated
                        open_timeout=self.config.handshake_timeout,
                        ping_interval=self.config.ping_interval,
                        ping_timeout=self.config.ping_timeout,
                        close_timeout=self.config.close_timeout,
                        process_request=self.admission.process_request,
                        create_connection=self.admission.connection_class(),
                        compression=None,
                        server_header=None,
                        logger=SERVER_LOG,  # (credentials redacted: wslog)
                    )
                )
        except BaseException:
            for server in servers:
                server.close()
            for sock in sockets:
                sock.close()
            raise
        self._servers = servers
        self.admission.watch(asyncio.get_running_loop(), [s for sv in servers for s in sv.sockets])
        bound_host, bound_port = sockets[0].getsockname()[:2]
        scheme = "wss" if self.server_ssl else "ws"
        self.url = f"{scheme}://{shown_listen(bound_host, bound_port)}"
        return self.url

    def dial(self, urls: Iterable[str]) -> None:
        """Keep a link to each URL, redialling with backoff, until :meth:`undial` or
        :meth:`aclose`."""
        for url in urls:
            if not self._closing and self._diallers.start(url, self._dial_forever):
                self.dials.track(url)

    def undial(self, url: str) -> None:
        """Stop keeping a link to ``url`` (:mod:`sync.transport.diallers`): a dial in
        progress is cancelled; a link dialled over it stays open until it ends, and is not
        redialled; ``url`` leaves :attr:`dials`. Nothing happens for a URL not dialled."""
        self._diallers.stop(url)
        self._url_peer.pop(url, None)
        self.dials.drop(url)

    @property
    def dialling(self) -> list[str]:
        """The URLs this transport keeps dialling."""
        return self._diallers.urls()

    async def aclose(self) -> None:
        """Stop listening and dialling, close every link with 1001 (going away)."""
        self._closing = True
        self._closed.set()
        for server in self._servers:
            server.close(close_connections=False)
        links = list(self.links.values())
        await asyncio.gather(
            *(self._close_quietly(link, CLOSE_GOING_AWAY, "peer shutting down") for link in links)
        )
        await self._diallers.aclose(self.config.close_timeout)
        if self._servers:
            for server in self._servers:
                server.close(close_connections=True)
            self.admission.drop_handshaking()
            for server in self._servers:
                await server.wait_closed()
            self.admission.unwatch()
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
        """Count an ended link's traffic: in its peer's totals, or, for the last link of a
        non-home, in :attr:`departed` (its own totals go, as the engine forgets it)."""
        peer = link.peer_id
        if link.info.home or self.links.get(peer, link) is not link:
            t = self._closed_totals.setdefault(peer, dict.fromkeys(_TRAFFIC, 0))
        else:
            t = self.departed
            t["non_homes"] += 1
            for name, value in self._closed_totals.pop(peer, {}).items():
                t[name] += value
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

    def _limit_raiser(self, ws: ClientConnection | ServerConnection) -> Callable[[], None]:
        limit = self.config.max_message_bytes + FRAME_OVERHEAD
        return lambda: _raise_limit(ws, limit)

    async def _serve(self, ws: ServerConnection) -> None:
        try:
            info = await server_handshake(
                ws,
                self.me,
                timeout=self.config.handshake_timeout,
                on_authenticated=self._limit_raiser(ws),
                admit=self._admit,
                max_payload=self.config.max_message_bytes,
            )
        except HandshakeError as exc:
            self.rejected += 1
            self._log_refusal(ws.remote_address, exc.reason)
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close(exc.code, truncate_reason(exc.reason))
            return
        except ConnectionClosed as exc:
            log.info("handshake from %s ended: %s", ws.remote_address, exc)
            return
        self.admission.authenticated(ws)
        if info.role == "admin":
            await self._serve_admin(ws, info)
            return
        if info.address is not None and info.address in self.dials:
            self._url_peer[info.address] = info.replica_id  # the peer at a URL we dial
        await self._run_link(ws, info, dialled_by=info.replica_id)

    def _admit(self, hello: HelloFrame) -> str | None:
        """Refuse a peer the owner will not link with, inside the handshake."""
        if hello.role != "peer" or self.refuse is None:
            return None
        return self.refuse(PeerInfo(hello.replica, hello.address, hello.site, hello.relay, "peer"))

    def _log_refusal(self, remote: Any, reason: str) -> None:
        """A refused handshake: logged at WARNING once per host, then at most once a minute
        (the line says how many refusals it stands for; the others are DEBUG). Per host,
        not per reason: the reason may quote what an unauthenticated client sent, which it
        can vary at will; an IPv6 host is its /64 (one machine's share of addresses, which
        it may change at will too). Past :data:`MAX_REFUSAL_HOSTS` hosts at once, the others
        share one throttle. The reason's control characters are escaped, so that it cannot
        forge lines of the log."""
        reason = _CONTROL.sub(lambda c: f"\\x{ord(c.group()):02x}", reason)
        host = refusal_host(remote)
        now = asyncio.get_running_loop().time()
        logs = self._refusal_logs
        throttle = logs.get(host)
        if throttle is None:
            if len(logs) >= MAX_REFUSAL_HOSTS and now >= self._refusal_prune_at:
                # Drop the hosts whose interval is over; if none is, not before the first
                # ends (a full table is not scanned again at every refusal).
                for spent in [h for h, t in logs.items() if t.spent(now)]:
                    del logs[spent]
                if logs:
                    self._refusal_prune_at = min(t.until for t in logs.values())
            if len(logs) < MAX_REFUSAL_HOSTS:
                throttle = logs[host] = Throttle(REPORT_INTERVAL)
            else:
                throttle = self._refusal_overflow
        muted = throttle.due(now)
        if muted is None:
            log.debug("refused %s again: %s", remote, reason)
            return
        again = f" ({muted + 1} times since the last report)" if muted else ""
        log.warning("refused %s: %s%s", remote, reason, again)

    async def _serve_admin(self, ws: ServerConnection, info: PeerInfo) -> None:
        assert info.session is not None  # server_handshake always makes one
        try:
            data = await asyncio.wait_for(ws.recv(), self.config.handshake_timeout)
            frame = decode_frame(info.session.unseal(data))
            if not isinstance(frame, AdminRequest):
                raise HandshakeError(CLOSE_PROTOCOL, f"expected admin request, got {frame.t}")
            log.warning("admin %s asks: %s %s", info.replica_id, frame.op, frame.replica)
            reply = await self.handler.admin(frame)
            await ws.send(info.session.seal(encode_frame(reply)))
            await ws.close(CLOSE_NORMAL, "done")
        except HandshakeError as exc:
            log.warning("admin link from %s: %s", ws.remote_address, exc)
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close(exc.code, truncate_reason(exc.reason))
        except (ConnectionClosed, TimeoutError) as exc:
            log.info("admin link from %s ended: %s", ws.remote_address, exc)

    async def _connect(self, url: str) -> ClientConnection:
        return await connect(
            url,
            ssl=self._client_ssl() if url.startswith("wss://") else None,
            max_size=HANDSHAKE_MAX_BYTES,  # raised once the listener has authenticated
            ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            close_timeout=self.config.close_timeout,
            open_timeout=self.config.handshake_timeout,
            compression=None,
            logger=CLIENT_LOG,
        )

    async def _dial_forever(self, url: str) -> None:
        """:meth:`_dial_loop`, started again after a failure it does not expect (a bug, or an
        input nobody foresaw): logged with its traceback, the dial reported failed, and the
        URL dialled again after the longest backoff, never dropped until it is undialled."""
        while not self._closing and self._diallers.keeps(url):
            try:
                await self._dial_loop(url)
                return
            except Exception as exc:
                log.exception("dialling %s failed unexpectedly; dialling it again", url)
                self.dials.failed(url, DialState.FAILED, f"failed unexpectedly ({exc!r})")
                await self._rest(self.config.backoff_cap)

    async def _dial_loop(self, url: str) -> None:
        backoff = Backoff(self.config.backoff_base, self.config.backoff_cap, self.rng)
        while not self._closing and self._diallers.keeps(url):
            known = self._url_peer.get(url)
            if known is not None and known in self.links:
                self.dials.up(url, known)  # linked already (it may have dialled us)
                gone = self._link_gone.setdefault(known, asyncio.Event())
                await gone.wait()
                continue
            try:
                ws = await self._connect(url)
            except InvalidURI:
                self.dials.failed(url, DialState.FAILED, "not a ws:// or wss:// URL; not dialled")
                return
            except (OSError, InvalidHandshake, TimeoutError) as exc:  # ssl.SSLError included
                self.dials.failed(url, *classify_dial_error(exc))
                await self._rest(backoff.next())
                continue
            try:
                info = await client_handshake(
                    ws,
                    self.me,
                    timeout=self.config.handshake_timeout,
                    on_authenticated=self._limit_raiser(ws),
                    max_payload=self.config.max_message_bytes,
                )
            except HandshakeError as exc:
                self.dials.failed(url, *classify_refusal(exc.code, exc.reason, by_us=True))
                with contextlib.suppress(ConnectionClosed, OSError):
                    await ws.close(exc.code, truncate_reason(exc.reason))
                await self._rest(backoff.next())
                continue
            except ConnectionClosed as exc:
                code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
                self.dials.failed(url, *classify_refusal(code, reason, by_us=False))
                await self._rest(backoff.next())
                continue
            except asyncio.CancelledError:  # undialled, or closing: the connection goes too
                ws.transport.abort()
                raise
            except Exception:  # not expected (see _dial_forever): the connection goes first
                with contextlib.suppress(Exception):
                    await ws.close(1011, "internal error")
                raise
            if info.replica_id == self.me.replica_id:
                self.dials.failed(url, DialState.FAILED, SELF_REASON)
                with contextlib.suppress(ConnectionClosed, OSError):
                    await ws.close(CLOSE_POLICY, "connected to self")
                return
            self._url_peer[url] = info.replica_id
            started = asyncio.get_running_loop().time()
            with self._diallers.carrying():  # (undial leaves this link open)
                await self._run_link(ws, info, dialled_by=self.me.replica_id, url=url)
            # A link that ended at once (refused after the handshake: forgotten, protocol
            # error) must not reset the backoff, or the peer is redialled every few ms.
            if asyncio.get_running_loop().time() - started >= self.config.backoff_stable:
                backoff.reset()
            if not self._closing and self._diallers.keeps(url):
                await self._rest(backoff.next())

    async def _rest(self, seconds: float) -> None:
        """Wait ``seconds`` before dialling again, or until :meth:`aclose`: a dialler that
        waits to redial has nothing to close, and the close waited ``close_timeout`` for
        it (every close of a peer with a peer down took that long)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    def _install(self, link: Link, *, new_run: bool = False) -> bool:
        """Make ``link`` the peer's link, or refuse it as a duplicate. True if installed.
        ``new_run``: it comes from another run of the peer than the link it replaces."""
        existing = self.links.get(link.peer_id)
        if existing is None:
            self.links[link.peer_id] = link
            return True
        preferred = min(self.me.replica_id, link.peer_id)
        # Same dialler twice: it redials only after its old link ended, so the newer one is
        # live and the old one is a half-open leftover. Different diallers: the smaller wins.
        # A new run of the peer: the old link is a leftover of a run that ended.
        wins = (
            new_run
            or link.dialled_by == existing.dialled_by
            or (link.dialled_by == preferred and existing.dialled_by != preferred)
        )
        if wins:
            existing.superseded = True
            existing.event(LinkEvent.DUPLICATE)
            if not new_run:  # (what was meant for a run that ended is dropped with it)
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
        self,
        ws: ClientConnection | ServerConnection,
        info: PeerInfo,
        dialled_by: str,
        url: str | None = None,
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
            if url is not None:
                why = f"we refuse replica {info.replica_id}: {refused}"
                self.dials.failed(url, DialState.FORGOTTEN, why)
            else:
                log.warning("refused link with %s: %s", info.replica_id, refused)
            await self._close_quietly(link, CLOSE_POLICY, refused)
            return
        old = self.links.get(info.replica_id)
        replaced, new_run = old is not None, old is not None and old.info.run != info.run
        if old is not None and new_run:
            # A run a newer one replaced does not take the link back (two runs up at once,
            # a copy of a store: else they take it from each other at every redial).
            refusals = self._replaced_runs.refused(info.replica_id, info.run)
            if refusals:
                level = logging.WARNING if refusals == 1 else logging.DEBUG
                log.log(level, "refused link with %s: %s", info.replica_id, OLDER_RUN_REASON)
                self._linked(info.replica_id)  # the other run's link stays
                await self._close_quietly(link, CLOSE_POLICY, OLDER_RUN_REASON)
                return
            self._replaced_runs.replaced(info.replica_id, old.info.run)
        if not self._install(link, new_run=new_run):
            link.event(LinkEvent.DUPLICATE)
            log.info("duplicate connection with %s closed", info.replica_id)
            self._linked(info.replica_id)  # the other connection to it stays
            await self._close_quietly_ws(link, "duplicate connection")
            return
        self._link_gone.setdefault(info.replica_id, asyncio.Event()).clear()
        self._linked(info.replica_id)
        link.start_writer()
        if not replaced:
            log.info("link up: %s (%s)", info.replica_id, info.address or "no address")
            self.handler.link_up(info)
        elif new_run:
            # Its last run ended without closing its link (power lost): for the engine it went
            # down and came back, so nothing begun with the old run (a transfer) goes on.
            log.info("link up: %s, a new run of it (its old link was still open)", info.replica_id)
            self.handler.link_down(info.replica_id)
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
                self._replaced_runs.ended(info.replica_id)
                self._link_gone.setdefault(info.replica_id, asyncio.Event()).set()
                if not info.home and info.replica_id not in self._url_peer.values():
                    del self._link_gone[info.replica_id]  # (its waiters hold the event)
                log.info(
                    "link down: %s (code %s %s)", info.replica_id, ws.close_code, ws.close_reason
                )
                if not self._closing:
                    self._unlinked(info.replica_id, ws)
                self.handler.link_down(info.replica_id)
            if link.ws.close_code is None:  # cancelled while open: do not leave it half-open
                self._spawn(self._close_quietly_ws(link, "peer shutting down"))
            await link.stop_writer()

    def _linked(self, replica_id: str) -> None:
        for url, rid in list(self._url_peer.items()):
            if rid == replica_id:
                self.dials.up(url, replica_id)

    def _unlinked(self, replica_id: str, ws: ClientConnection | ServerConnection) -> None:
        """The link to ``replica_id`` ended: its URLs go back to connecting, or to
        ``forgotten`` when the other side closed it because it forgot us."""
        close = ws.protocol.close_rcvd
        for url in self.dials.urls_of(replica_id):
            if close is not None and close.reason.startswith((FORGOTTEN_REASON, "forgotten")):
                refusal = classify_refusal(close.code, close.reason, by_us=False)
                self.dials.failed(url, *refusal)
            else:
                shut_down = close is not None and close.code == CLOSE_GOING_AWAY
                why = f"code {ws.close_code} {ws.close_reason or ''}".strip()
                self.dials.down(url, why, shut_down=shut_down)

    async def _read_loop(self, link: Link) -> None:
        ws = link.ws
        max_size = self.config.max_message_bytes
        unseal = link.session.unseal
        try:
            async for data in ws:
                if isinstance(data, str):
                    log.warning("%s sent a text frame; closing", link.peer_id)
                    await self._close_quietly(link, CLOSE_UNSUPPORTED, "text frames not accepted")
                    return
                link.bytes_in += len(data)
                link.messages_in += 1
                try:
                    payload = unseal(data)
                except FrameAuthError as exc:
                    # Nothing of this frame, or of any after it, reaches the owner.
                    self.frame_failures += 1
                    log.warning("link %s: %s; closing", link.peer_id, exc.reason)
                    await self._close_quietly(link, exc.code, exc.reason)
                    return
                try:
                    message = self.codec.decode(payload, max_size)
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
