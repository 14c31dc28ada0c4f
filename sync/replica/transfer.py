"""State transfers streamed from the store, and the catch-up progress of a receiver.

**Sending.** A peer behind the compacted log gets every object of a partition. The engine
holds only a bounded cache of objects, so a transfer reads them from the store, a page at a
time, through the caller (sans-I/O): a :class:`~sync.effects.ReadPage` effect, executed once
every ``Persist`` before it is durable, answered by ``Replica.snapshot_page``. A
:class:`Stream` is one partition's transfer to one peer:

* when it starts, the objects of the partition changed in the cache since their checkpoint
  are checkpointed (in the drain's ``Persist``, which the read waits for), and our summary
  of the partition is taken: every object read afterwards holds at least what it says (a
  later page may hold more, which is harmless), so the summary sent with the last chunk
  never claims a dot the objects lack;
* each page becomes ``SnapshotChunk`` objects: a state as its stored text when it fits in a
  message, else its text cut by its type into pieces that fit (``crdt/_split_text.py``, at
  half the room: the text travels JSON-escaped; the state is never decoded whole), then cut
  into chunks of at most ``snapshot_chunk`` objects and :meth:`Outbound.batch_bytes` bytes;
* chunks are made from the page lazily (:class:`Ready`), at most :data:`AHEAD` ahead of
  those sent, so the pieces of a big state are made as the window of ``ae_max_inflight``
  chunks in flight moves, never all at once; a round of the engine sends at most one chunk
  holding a piece, and the next is cut in a round of its own (:data:`PIECE_GAP` later), so
  each piece leaves as soon as it is cut instead of with the window's others;
* the next page is read when the chunks of the last one are sent (one page ahead of the
  window), so a transfer holds one page of objects (its rows' texts, and a few chunks made
  from them), whatever the size of the partition or of one object in it.

The first read of a round also counts the objects (and their states' characters) of every
partition the round transfers, so that each message can say how much of the round is left
(``remaining``).

**Receiving.** :class:`Progress` follows, per peer, what its anti-entropy messages say is
left: a round announced bigger than one batch (more than ``ae_batch`` entries and objects)
is a *catch-up*, reported at its start and end (:class:`~sync.effects.CatchUp`) and listed
by ``Replica.status()``; smaller rounds, the daily business of anti-entropy, are not.

Knows the outbox, local data and outbound batching.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from crdt._split_text import split_text
from sync import messages as m
from sync.config import ReplicaConfig
from sync.digest import ctx_model
from sync.effects import CatchUp, ObjectState, ReadPage
from sync.replica.local_data import LocalData
from sync.replica.outbound import Outbound, text_size
from sync.replica.outbox import Outbox

__all__ = [
    "AHEAD",
    "PIECE_GAP",
    "Chunk",
    "Progress",
    "Ready",
    "Stream",
    "Transfers",
    "checked_page",
]

# Bytes a SnapObject adds to a chunk beyond its key and state text (field names, flags).
_OBJECT_OVERHEAD = 64

#: Chunks a stream makes ahead of those it sent, while its page has more to make.
AHEAD = 2
#: Seconds between the rounds that send the pieces of a big state, one each: the next is
#: cut (tens of milliseconds for a map of 100k entries) once the last is on its way.
PIECE_GAP = 0.001


@dataclass(slots=True)
class Chunk:
    """The objects of one ``SnapshotChunk``; ``rows``: the stored objects it completes (the
    last piece of a split one counts it); ``size``: the bytes it takes in a message;
    ``chars``: the characters of its state texts (as the store counts them)."""

    objects: list[m.SnapObject]
    rows: int = 0
    size: int = 0
    chars: int = 0

    @property
    def has_piece(self) -> bool:
        """Whether it holds a piece of a state too big for one message."""
        return any(o.piece for o in self.objects)


class Ready(deque[Chunk]):
    """The chunks of a stream ready to send: made from a source of chunks (:meth:`feed`) as
    they are asked for. :meth:`ahead` makes them up to :data:`AHEAD` held while the source
    has more, so that one held then means the last (what the anti-entropy pump asks before
    each chunk it sends); taking one (``popleft``) makes nothing, so a chunk leaves as soon
    as the one after it is known, not once two more are made (a piece of a big state takes
    tens of milliseconds to cut).

    A source that fails (a stored state that cannot be cut: a corrupt row) leaves the stream
    stuck, never complete: taking a chunk raises its error again, and ``len`` counts more
    than one, so that the last chunk, whose summary would claim what was not sent, never
    goes. The anti-entropy pump then leaves the partition out of the round, with an
    ``unreadable_state`` alarm, and tries it again in the next."""

    __slots__ = ("_failed", "_source")

    def __init__(self, chunks: Iterable[Chunk] = ()) -> None:
        super().__init__(chunks)
        self._source: Iterator[Chunk] | None = None
        self._failed: Exception | None = None

    def __len__(self) -> int:
        held = super().__len__()
        return held + AHEAD if self._failed is not None else held

    def feed(self, chunks: Iterator[Chunk]) -> None:
        """Make the chunks of ``chunks`` after those held, as they are needed."""
        self._source = chunks if self._source is None else chain(self._source, chunks)
        self._fill()

    def ahead(self) -> int:
        """The chunks held, once made up to :data:`AHEAD` while the source has more."""
        self._fill()
        return len(self)

    def holds_piece(self) -> bool:
        """Whether the next chunk (made already: see :meth:`ahead`) holds a piece of a
        state too big for one message."""
        held = super().__len__()
        return bool(held) and self[0].has_piece

    @property
    def drained(self) -> bool:
        """Nothing held and nothing left to make: the stream needs its next page."""
        return self._source is None and self._failed is None and not super().__len__()

    def popleft(self) -> Chunk:
        if self._failed is not None:
            raise self._failed
        if not super().__len__():
            self._fill()
        return super().popleft()

    def _fill(self) -> None:
        source = self._source
        while source is not None and super().__len__() < AHEAD:
            try:
                chunk = next(source, None)
            except Exception as exc:
                self._source, self._failed = None, exc
                raise
            if chunk is None:
                self._source = source = None
            else:
                self.append(chunk)


@dataclass(slots=True)
class Stream:
    """One partition's state transfer to one peer, read from the store page by page."""

    partition: int
    summary: m.Ctx | None = None  # ours when it started: sent with the last chunk
    after: tuple[str, str] | None = None  # the last object read
    started: bool = False
    reading: ReadPage | None = None  # the read that is out
    end: bool = False  # no object follows ``after``
    ready: Ready = field(default_factory=Ready)  # made from pages, not sent yet
    objects_left: int = 0  # of the partition, as counted when the round started
    bytes_left: int = 0

    @property
    def buffered(self) -> int:
        """Objects held for this stream (read, not sent yet)."""
        return sum(len(c.objects) for c in self.ready)


class Transfers:
    """Streams of partitions out of the store: the reads, the chunks and their sizes."""

    __slots__ = ("_config", "_data", "_me", "_outbound", "_outbox")

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        outbox: Outbox,
        data: LocalData,
        outbound: Outbound,
    ) -> None:
        self._config = config
        self._me = replica_id
        self._outbox = outbox
        self._data = data
        self._outbound = outbound

    def begin(self, peer: str, stream: Stream, count: Iterable[int] = ()) -> None:
        """Start ``stream``: checkpoint what the store lacks of its partition, take our
        summary, read the first page (counting the partitions ``count``)."""
        data, p = self._data, stream.partition
        for key, kind in data.dirty_in(p):
            data.checkpoint(key, kind)
        stream.summary = ctx_model(data.summary(p))
        stream.started = True
        self.read(peer, stream, tuple(count))

    def read(self, peer: str, stream: Stream, count: tuple[int, ...] = ()) -> None:
        """Ask for the next page of ``stream`` (one at a time)."""
        read = stream.reading = ReadPage(
            peer,
            stream.partition,
            stream.after,
            self._config.snapshot_chunk,
            self._outbound.batch_bytes(),
            count,
            self._outbox.new_id(),
        )
        self._outbox.emit(read)

    def page(self, stream: Stream, rows: list[ObjectState], end: bool) -> None:
        """The page ``stream`` asked for: its objects as chunks ready to send (made as they
        are taken)."""
        stream.reading = None
        stream.end = end
        if rows:
            stream.after = (rows[-1].key, rows[-1].kind)
        stream.ready.feed(self._chunks(rows))

    def _chunks(self, rows: list[ObjectState]) -> Iterator[Chunk]:
        """The chunks of a page's ``rows``, one at a time."""
        limit, count = self._outbound.batch_bytes(), self._config.snapshot_chunk
        chunk = Chunk([])
        for row in rows:
            for obj, size in self._items(row):
                if chunk.objects and (len(chunk.objects) >= count or chunk.size + size > limit):
                    yield chunk
                    chunk = Chunk([])
                chunk.objects.append(obj)
                chunk.size += size
                chunk.chars += len(obj.state_json)
            chunk.rows += 1  # it holds the row's last item: the row is complete
        if chunk.objects:
            yield chunk

    def _items(self, row: ObjectState) -> Iterator[tuple[m.SnapObject, int]]:
        """A stored object as chunk items: itself, or the pieces of a state too big for one
        message, cut from its text as they are needed (each with the bytes it takes in a
        chunk)."""
        text = row.state_json
        overhead = _OBJECT_OVERHEAD + text_size(row.key) + len(row.kind)
        size = text_size(text) + overhead
        if size <= self._outbound.batch_bytes():
            yield m.snap_object(row.key, row.kind, text), size
            return
        # Escaping a JSON text as a string at most doubles it: pieces of half the room fit.
        budget = max(1, (self._outbound.batch_bytes() - overhead) // 2)
        for piece_text in split_text(text, budget):
            yield (
                m.snap_object(row.key, row.kind, piece_text, piece=True),
                text_size(piece_text) + overhead,
            )

    @staticmethod
    def counted(streams: Iterable[Stream], totals: Mapping[int, tuple[int, int]]) -> None:
        """The counts a page brought: what each stream has left to send."""
        for stream in streams:
            objects, size = totals.get(stream.partition, (0, 0))
            stream.objects_left, stream.bytes_left = objects, size

    @staticmethod
    def sent(stream: Stream, chunk: Chunk) -> None:
        stream.objects_left = max(0, stream.objects_left - chunk.rows)
        stream.bytes_left = max(0, stream.bytes_left - chunk.chars)


# -- the receiving side ----------------------------------------------------------------------
@dataclass(slots=True)
class _CatchUp:
    """A catch-up from one peer: how much was announced, how much is left, since when."""

    entries: int
    bytes: int
    entries_left: int
    bytes_left: int
    since: float


def checked_page(
    read: ReadPage,
    rows: Iterable[ObjectState],
    end: bool,
    totals: Mapping[int, tuple[int, int]] | None,
) -> tuple[list[ObjectState], dict[int, tuple[int, int]] | None]:
    """The arguments of ``Replica.snapshot_page`` checked before anything changes (a
    ``TypeError`` otherwise): the page's rows, and the counts per partition if given."""
    if not isinstance(read, ReadPage):
        raise TypeError(f"read must be the ReadPage effect, got {type(read).__name__}")
    page = list(rows)
    if not all(isinstance(r, ObjectState) for r in page):
        raise TypeError("rows must be ObjectState values")
    if not isinstance(end, bool):
        raise TypeError(f"end must be a bool, got {end!r}")
    counts = None
    if totals is not None:
        counts = {int(p): (int(n), int(b)) for p, (n, b) in totals.items()}
    return page, counts


class Progress:
    """Per peer, the catch-up under way (see the module docstring)."""

    __slots__ = ("_emit", "_peers", "_threshold")

    def __init__(self, config: ReplicaConfig, outbox: Outbox) -> None:
        self._emit = outbox.emit
        self._threshold = config.ae_batch
        self._peers: dict[str, _CatchUp] = {}

    def received(self, peer: str, msg: m.Deltas | m.SnapshotChunk, now: float) -> None:
        """An anti-entropy message from ``peer`` (applied): what it carried, and what it says
        is left after it (``remaining``; None: it does not say)."""
        remaining = msg.remaining
        if remaining is None:
            return
        if isinstance(msg, m.Deltas):
            entries, size = len(msg.entries), sum(len(e.delta_json) for e in msg.entries)
        else:
            entries, size = len(msg.objects), sum(len(o.state_json) for o in msg.objects)
        left, left_bytes = remaining
        cur = self._peers.get(peer)
        if cur is None:
            total, total_bytes = left + entries, left_bytes + size
            if left == 0 or total <= self._threshold:
                return  # a round of one batch: not a catch-up
            cur = self._peers[peer] = _CatchUp(total, total_bytes, left, left_bytes, now)
            self._emit(CatchUp(peer, "started", total, total_bytes))
            return
        # Within a round what is left only shrinks (a late duplicate says more: ignored).
        cur.entries_left = min(cur.entries_left, left)
        cur.bytes_left = min(cur.bytes_left, left_bytes)
        if cur.entries_left == 0:
            del self._peers[peer]
            self._emit(CatchUp(peer, "done", cur.entries, cur.bytes, now - cur.since))

    def stop(self, peer: str, now: float) -> None:
        """``peer`` went down: its catch-up (if any) is interrupted."""
        cur = self._peers.pop(peer, None)
        if cur is not None:
            left = cur.entries_left
            self._emit(CatchUp(peer, "interrupted", left, cur.bytes_left, now - cur.since))

    def status(self) -> dict[str, dict[str, Any]]:
        """Per peer with a catch-up under way: entries and bytes announced, left, since."""
        return {
            peer: {
                "entries": c.entries,
                "bytes": c.bytes,
                "entries_left": c.entries_left,
                "bytes_left": c.bytes_left,
                "since": c.since,
            }
            for peer, c in sorted(self._peers.items())
        }
