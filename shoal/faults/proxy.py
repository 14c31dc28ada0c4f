"""A seeded fault-injecting TCP proxy for one directed link, aware of websocket frames.

One :class:`Proxy` stands between a dialler and the peer it dials: it listens on 127.0.0.1
(port 0) and forwards each accepted connection to its current *target*, which can change
while it runs (:meth:`Proxy.retarget`, after a peer restarted on a new port). Its controls:

* :meth:`Proxy.cut` closes every open connection and refuses new ones (accepted, then closed
  at once) until :meth:`Proxy.heal`: a partition the peers see at once, as a reset.
* :meth:`Proxy.stall` stops forwarding without closing anything (bytes wait in the kernel's
  buffers, as during a real partition with TCP retransmission); the peers find out through
  their heartbeats. :meth:`Proxy.heal` lets the bytes flow again, none lost.
* :class:`LinkFaults` (:meth:`Proxy.set_faults`): ``delay`` plus uniform ``jitter`` on every
  unit (order kept), and per *data frame* the probabilities to ``drop`` it, ``duplicate``
  it, ``reorder`` it (hold it and send it after the next data frame, or after
  ``reorder_hold`` seconds if none comes) and ``corrupt`` it (flip one payload bit).

Why websocket frames over a TCP proxy. Peers talk over websockets on TCP, and TCP itself never
loses, duplicates or reorders bytes: a byte-level drop would only make the stream unparsable,
which is a reset by another name. Message-level faults (a lost, replayed or swapped message)
are what a replication protocol must survive, so the proxy splits the stream into websocket
frames (:mod:`shoal.faults.frames`) and applies them to whole data frames. Control frames
(ping, pong, close) and the HTTP upgrade pass untouched, and so do the first
``spare_frames`` data frames of each direction (the shoal handshake), so that a frame fault
exercises the replication traffic and a dead link is modelled by ``cut``/``stall`` only. A
peer that authenticates every frame with a sequence number closes the link on a dropped,
replayed or swapped frame and dials again: that is a valid outcome of these faults. A stream
that is not a websocket (``wss://``) is forwarded raw: only delay, cut and stall apply.

Determinism. Every decision is drawn from ``random.Random(f"{seed}/{name}/{connection}/{
direction}")`` in a fixed order per unit (one draw for jitter, five more per data frame past
the spared ones, whatever the faults in force), so a given sequence of frames on a given
connection meets the same faults in every run; what timing changes is only which frames the
peers send, and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from dataclasses import dataclass, field

from .frames import FrameSplitter, Unit, corrupt

__all__ = ["LinkFaults", "LinkState", "Proxy", "ProxyStats"]

_READ = 64 * 1024
_QUEUE = 1024  # units waiting for their send time per direction (backpressure past it)
_CONNECT_TIMEOUT = 5.0
_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """The faults a :class:`Proxy` applies (see the module docstring). Probabilities are per
    data frame, in ``[0, 1]``; times in seconds."""

    delay: float = 0.0
    jitter: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    reorder_hold: float = 0.05
    spare_frames: int = 2

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "reorder", "corrupt"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        for name in ("delay", "jitter", "reorder_hold"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.reorder > 0 and self.reorder_hold <= 0:
            raise ValueError("reorder needs reorder_hold > 0")
        if isinstance(self.spare_frames, bool) or not isinstance(self.spare_frames, int):
            raise TypeError(f"spare_frames must be an int, got {self.spare_frames!r}")
        if self.spare_frames < 0:
            raise ValueError(f"spare_frames must be >= 0, got {self.spare_frames}")


class LinkState(enum.Enum):
    """Whether a proxy forwards (``OPEN``), refuses (``CUT``) or holds bytes (``STALLED``)."""

    OPEN = "open"
    CUT = "cut"
    STALLED = "stalled"


@dataclass(slots=True)
class ProxyStats:
    """What one proxy did, cumulative over its connections."""

    connections: int = 0
    refused: int = 0
    units: int = 0
    data_frames: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    bytes_received: int = 0
    bytes_forwarded: int = 0


@dataclass(eq=False)
class _Conn:
    index: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for w in (self.client, self.upstream):
            w.transport.abort()


class _Sender:
    """Writes units in order, each not before its due time, and never while stalled."""

    def __init__(self, writer: asyncio.StreamWriter, flowing: asyncio.Event, stats: ProxyStats):
        self.writer = writer
        self.flowing = flowing
        self.stats = stats
        self.queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(_QUEUE)
        self.last_due = 0.0
        self.dead = False
        self.task = asyncio.ensure_future(self._run())

    async def put(self, data: bytes, delay: float) -> None:
        if self.dead:
            raise ConnectionResetError("the other side of the proxy is gone")
        due = max(self.last_due, asyncio.get_running_loop().time() + delay)
        self.last_due = due
        await self.queue.put((due, data))

    async def finish(self) -> None:
        """Send what is queued, then end the stream (EOF)."""
        await self.queue.put(None)
        await self.task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        ended = False  # the pump's end-of-stream marker was taken from the queue
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    ended = True
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                due, data = item
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self.flowing.wait()
                self.writer.write(data)
                self.stats.bytes_forwarded += len(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            # The socket is gone: say so to the pump and keep taking (and discarding) what it
            # queues until its end marker, so that it never waits on a full queue.
            self.dead = True
            self.writer.transport.abort()
            while not ended and await self.queue.get() is not None:
                pass


class Proxy:
    """One directed link ``name`` (the dialler dials :attr:`url`; bytes go to the target)."""

    def __init__(
        self,
        name: str,
        seed: int,
        target: tuple[str, int] | None = None,
        faults: LinkFaults | None = None,
    ) -> None:
        self.name = name
        self.seed = seed
        self.target = target
        self.faults = faults or LinkFaults()
        self.state = LinkState.OPEN
        self.stats = ProxyStats()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._conns: set[_Conn] = set()
        self._next_index = 0
        self._server: asyncio.Server | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT``: what the dialler of this link dials."""
        if self._server is None:
            raise RuntimeError(f"proxy {self.name} is not started")
        return f"ws://127.0.0.1:{self._port}"

    async def start(self) -> str:
        """Listen on 127.0.0.1 (the OS picks the port); return :attr:`url`."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        self.state = LinkState.CUT
        self._flowing.set()
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.abort()
        tasks = [t for conn in list(self._conns) for t in conn.tasks]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
            for task in late:  # should not happen: the sockets are aborted
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- controls ----------------------------------------------------------------------------

    def retarget(self, target: tuple[str, int] | None) -> None:
        """Send new connections to ``target`` (None: refuse them, as when the peer is down)."""
        self.target = target

    def set_faults(self, faults: LinkFaults) -> None:
        """Apply ``faults`` from the next unit on (to open connections too)."""
        self.faults = faults

    def cut(self) -> None:
        """Close every open connection and refuse new ones until :meth:`heal`."""
        self.state = LinkState.CUT
        self._flowing.set()
        for conn in list(self._conns):
            conn.abort()

    def stall(self) -> None:
        """Stop forwarding (nothing is closed or lost) until :meth:`heal`."""
        self.state = LinkState.STALLED
        self._flowing.clear()

    def heal(self) -> None:
        """Forward again."""
        self.state = LinkState.OPEN
        self._flowing.set()

    def _cut(self) -> bool:
        return self.state is LinkState.CUT

    # -- connections -------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self._next_index
        self._next_index += 1
        target = self.target
        if self.state is LinkState.CUT or target is None:
            self.stats.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*target), _CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            self.stats.refused += 1
            writer.transport.abort()
            return
        if self._cut():  # cut while connecting
            self.stats.refused += 1
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.stats.connections += 1
        conn = _Conn(index, writer, up_writer)
        self._conns.add(conn)
        conn.tasks = [
            asyncio.ensure_future(self._pump(conn, reader, up_writer, "up")),
            asyncio.ensure_future(self._pump(conn, up_reader, writer, "down")),
        ]
        try:
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # closing: this handler ends here (asyncio's server owns the task)
        finally:
            conn.abort()
            self._conns.discard(conn)

    async def _pump(
        self,
        conn: _Conn,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        rng = random.Random(f"{self.seed}/{self.name}/{conn.index}/{direction}")
        splitter = FrameSplitter()
        sender = _Sender(writer, self._flowing, self.stats)
        held: Unit | None = None
        data_frames = 0
        try:
            while True:
                try:
                    if held is None:
                        chunk = await reader.read(_READ)
                    else:
                        hold = self.faults.reorder_hold
                        chunk = await asyncio.wait_for(reader.read(_READ), hold)
                except TimeoutError:
                    assert held is not None
                    await sender.put(held.data, self.faults.delay)
                    held = None
                    continue
                except (ConnectionError, OSError):
                    break
                if not chunk:
                    break
                self.stats.bytes_received += len(chunk)
                await self._flowing.wait()
                units = splitter.feed(chunk)
                for unit in units:
                    faults = self.faults
                    self.stats.units += 1
                    delay = faults.delay + rng.random() * faults.jitter
                    if not unit.is_data:
                        if held is not None:
                            await sender.put(held.data, delay)
                            held = None
                        await sender.put(unit.data, delay)
                        continue
                    data_frames += 1
                    self.stats.data_frames += 1
                    if data_frames <= faults.spare_frames:
                        await sender.put(unit.data, delay)
                        continue
                    held = await self._frame_faults(unit, faults, rng, sender, held, delay)
            if held is not None:
                await sender.put(held.data, self.faults.delay)
            for rest in splitter.flush():
                await sender.put(rest.data, self.faults.delay)
            await sender.finish()  # EOF on the other side: a half-close, as TCP does
        except (ConnectionError, OSError):
            conn.abort()
        finally:
            if not sender.task.done():
                sender.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender.task

    async def _frame_faults(
        self,
        unit: Unit,
        faults: LinkFaults,
        rng: random.Random,
        sender: _Sender,
        held: Unit | None,
        delay: float,
    ) -> Unit | None:
        """Apply the frame faults to one data frame; return the frame now held (if any)."""
        # Always five draws, in this order, whatever the faults in force.
        r_drop, r_corrupt, position = rng.random(), rng.random(), rng.getrandbits(32)
        r_duplicate, r_reorder = rng.random(), rng.random()
        if r_drop < faults.drop:
            self.stats.dropped += 1
            return held
        if r_corrupt < faults.corrupt:
            self.stats.corrupted += 1
            unit = corrupt(unit, position)
        copies = 1
        if r_duplicate < faults.duplicate:
            self.stats.duplicated += 1
            copies = 2
        if held is None and r_reorder < faults.reorder:
            self.stats.reordered += 1
            if copies == 2:
                await sender.put(unit.data, delay)
            return unit  # held: sent after the next data frame (or after reorder_hold)
        for _ in range(copies):
            await sender.put(unit.data, delay)
        if held is not None:
            await sender.put(held.data, delay)
        return None
