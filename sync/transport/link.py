"""One authenticated link: its session state machine and its bounded outgoing queue.

Theory of operation. A :class:`Link` is made by :class:`~sync.transport.connection.Transport`
once the handshake of :mod:`sync.transport.auth` succeeded, and lives until its websocket
ends. Its state changes only through :meth:`Link.event` and the one transition table
:data:`TRANSITIONS` (a missing pair is a bug and raises). Messages to send are encoded when
queued (:meth:`Link.enqueue`, never blocks; the flow-control policy of
:mod:`sync.transport.connection` decides what a full queue drops) and sealed with the link's
:class:`~sync.transport.auth.Session` by the one writer task, in the order they go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .auth import PeerInfo, Session

__all__ = [
    "ANTI_ENTROPY_MESSAGES",
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_UNSUPPORTED",
    "MAX_REPLACED_RUNS",
    "OLDER_RUN_REASON",
    "TRANSITIONS",
    "Codec",
    "Link",
    "LinkEvent",
    "LinkState",
    "ReplacedRuns",
    "truncate_reason",
]

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


def truncate_reason(reason: str) -> str:
    """``reason`` cut to fit a websocket close frame (123 bytes), on a character boundary."""
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

    @property
    def session(self) -> Session:
        """The frame authentication of this link (set by the handshake)."""
        if self.info.session is None:
            raise RuntimeError(f"link to {self.peer_id} has no authenticated session")
        return self.info.session

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
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(self.session))

    async def _write_loop(self, session: Session) -> None:
        try:
            while self.state is LinkState.OPEN:
                if not self.queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                _droppable, data = self.queue.popleft()
                self.queued_bytes -= len(data)
                # Sealed here, in send order: a message dropped from the queue never used
                # a sequence number.
                frame = session.seal(data)
                await self.ws.send(frame)
                self.bytes_out += len(frame)
                self.messages_out += 1
        except ConnectionClosed:
            pass

    async def close(self, code: int, reason: str) -> None:
        """Close the websocket with ``code``/``reason`` (idempotent)."""
        self.event(LinkEvent.CLOSE)
        self._wakeup.set()
        await self.ws.close(code, truncate_reason(reason))

    async def stop_writer(self) -> None:
        self._wakeup.set()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer


#: The runs of one peer that a newer run replaced, kept while it is linked.
MAX_REPLACED_RUNS = 8
#: Why a link from a run of a peer that a newer run replaced is refused.
OLDER_RUN_REASON = "another run of this replica is linked; is a copy of its store running?"


class ReplacedRuns:
    """Per peer, while a link to it is open, the runs of it (the hello's ``run``) whose link
    a newer run's replaced (at most :data:`MAX_REPLACED_RUNS`, the oldest forgotten first),
    each with how many of its links were refused since."""

    __slots__ = ("_runs",)

    def __init__(self) -> None:
        self._runs: dict[str, dict[str | None, int]] = {}

    def refused(self, peer: str, run: str | None) -> int:
        """A link of ``run`` of ``peer`` came: how many were refused, this one counted, if a
        newer run replaced ``run`` (0: it did not, and this one is not refused)."""
        runs = self._runs.get(peer)
        if runs is None or run not in runs:
            return 0
        runs[run] += 1
        return runs[run]

    def replaced(self, peer: str, run: str | None) -> None:
        """A newer run of ``peer`` replaced the link of ``run``."""
        runs = self._runs.setdefault(peer, {})
        runs[run] = 0
        if len(runs) > MAX_REPLACED_RUNS:
            del runs[next(iter(runs))]

    def ended(self, peer: str) -> None:
        """The link to ``peer`` ended: forget its runs."""
        self._runs.pop(peer, None)
