"""Effects: what the sans-I/O :class:`sync.Replica` asks its caller to do, in order.

Theory of operation (the contract between the engine and every adapter — the asyncio node,
the simulated network, tests):

* Each input (``local_update``, ``local_read``, ``receive``, ``peer_up``, ``peer_down``,
  ``tick``) only changes the replica's memory and queues effects. ``Replica.effects()``
  drains the queue.
* The caller executes the effects **in order**. A :class:`Persist` must be durable before any
  effect after it is executed: that is how "persist before acknowledge" holds, because the
  engine always queues the ``Persist`` of a change before the ``Send``/``WriteDone`` that
  depend on it.
* A caller that crashes loses the effects it had not executed; the engine recovers from what
  :class:`Persist` effects made durable (see :class:`Loaded`).

Durability model: the delta log is the source of truth. ``Persist.log`` appends log entries
(append-only, cheap); ``Persist.objects`` are *checkpoints* of whole object states, written
every so often and whenever a state changes without a log entry (read repair, state transfer).
Because merge is idempotent, loading ``objects`` and then merging every entry still in
``log`` rebuilds the exact state. Compaction (``Persist.compact``) only drops log entries whose
keys are checkpointed in the same or an earlier ``Persist``.

Hints are held for a home replica that was unreachable (sloppy quorum); they are not applied
to the holder's own objects unless the holder is itself a home of the key.

The engine never reads the store itself: a state transfer asks for the objects it sends
with :class:`ReadPage`, a read the caller makes once every ``Persist`` before it is durable,
and whose rows it hands back with ``Replica.snapshot_page``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple

from annotated_types import Ge, Le, MinLen
from pydantic_core import from_json, to_json

from crdt import CRDT, CausalContext
from sync.signing import Seal

__all__ = [
    "MAX_SEQ",
    "Alarm",
    "CatchUp",
    "Changed",
    "Effect",
    "HintId",
    "HintRecord",
    "IdentityConflict",
    "KindClashFound",
    "Loaded",
    "LogDot",
    "LogEntry",
    "ObjectState",
    "PeerRecord",
    "Persist",
    "ReadDone",
    "ReadFailed",
    "ReadPage",
    "Send",
    "WriteDone",
    "WriteFailed",
    "WriteResult",
]


@dataclass(frozen=True, slots=True)
class ObjectState:
    """A checkpoint of one object: its key, CRDT kind and the JSON text of its ``to_dict()``
    (encoded when the checkpoint is taken; a large state's decoded form would stay alive,
    and be walked by the garbage collector, until the commit), and whether the state
    ``is_live()`` (the engine sets it; the store lists only live objects' keys, and decodes
    the state to find out when it is None)."""

    key: str
    kind: str
    state_json: str
    live: bool | None = None

    @property
    def state(self) -> dict[str, Any]:
        """The ``to_dict()`` form, decoded from :attr:`state_json` on each call."""
        decoded: dict[str, Any] = from_json(self.state_json)
        return decoded

    @classmethod
    def of(cls, key: str, kind: str, state: dict[str, Any]) -> ObjectState:
        """A checkpoint of the ``to_dict()`` form ``state`` (encoded here)."""
        return cls(key, kind, to_json(state).decode())


# The largest log sequence number (and summary count): a signed 64-bit integer, the store's.
MAX_SEQ = 2**63 - 1


@dataclass(slots=True, unsafe_hash=True)
class LogEntry:
    """One delta in the log, named by its log dot ``(origin, partition, seq)``.

    Immutable by convention, not ``frozen``: a frozen dataclass takes four times as long to
    build, and one is built per delta on every peer it passes through. Nothing assigns to
    an entry's fields; it is hashable as if frozen.

    The same object is the wire's entry (:mod:`sync.messages` validates it with the
    constraints below; on the wire it is the array ``[origin, partition, seq, key, kind,
    delta_json]``), the log's and a hint's: a received entry is logged, stored and forwarded
    as it arrived, with the seal of its origin. ``seq`` fits a signed 64-bit integer, as
    the store's columns do.
    """

    origin: Annotated[str, MinLen(1)]
    partition: Annotated[int, Ge(0)]
    seq: Annotated[int, Ge(1), Le(MAX_SEQ)]
    key: Annotated[str, MinLen(1)]
    kind: Annotated[str, MinLen(1)]
    #: The JSON text of the delta's ``to_dict()``. A delta is encoded once, where it is made,
    #: and kept as text from then on: the in-memory log, the wire and the store all carry it
    #: as it is, and it is parsed only to be merged (text is also invisible to the garbage
    #: collector, unlike the dicts and lists of a decoded form).
    delta_json: str
    #: The origin's :class:`~sync.signing.Seal` covering this entry (None until the origin
    #: seals it at the end of the drain that wrote it; always set on an entry received by a
    #: replica that signs). Not part of the entry's value: equality and hash ignore it. It is
    #: set once, by the origin's engine, and travels, is logged and stored with the entry.
    seal: Seal | None = field(default=None, compare=False)

    @property
    def delta(self) -> dict[str, Any]:
        """The delta's ``to_dict()`` form, decoded from :attr:`delta_json` on each call."""
        decoded: dict[str, Any] = from_json(self.delta_json)
        return decoded

    @classmethod
    def of(
        cls, origin: str, partition: int, seq: int, key: str, kind: str, delta: dict[str, Any]
    ) -> LogEntry:
        """A log entry of the ``to_dict()`` form ``delta`` (encoded here)."""
        return cls(origin, partition, seq, key, kind, to_json(delta).decode())


@dataclass(frozen=True, slots=True)
class HintId:
    """Names one hint: the home replica it is for and the log dot it carries."""

    target: str
    origin: str
    partition: int
    seq: int


@dataclass(frozen=True, slots=True)
class HintRecord:
    """A delta held for ``target`` (a home replica that was unreachable) since ``stored_at``."""

    target: str
    entry: LogEntry
    stored_at: float

    @property
    def id(self) -> HintId:
        return HintId(self.target, self.entry.origin, self.entry.partition, self.entry.seq)


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """What this replica knows of another peer; ``summary`` maps partition -> encoded context;
    ``card``: the JSON text of the newest card of the peer's own held here (a replica that
    signs; :mod:`sync.member_cards`), held again when the record is loaded."""

    replica_id: str
    address: str | None = None
    site: str | None = None
    summary: dict[int, dict[str, Any]] | None = None
    last_seen: float = 0.0
    forgotten: bool = False
    card: str | None = None


@dataclass(frozen=True, slots=True)
class Persist:
    """Make all of this durable in one transaction, then go on with the next effect.

    ``summaries`` maps partition -> the full encoded ``CausalContext`` of log dots applied
    (replace the stored one). ``compact`` maps partition -> a version vector: drop log entries
    of that partition with ``seq <= watermark[origin]``.

    Within one ``Persist`` apply the fields in this order: ``objects`` (upsert), ``log``
    (insert, ignoring an existing dot), ``summaries`` (replace), ``hints_add`` (insert),
    ``hints_drop`` (delete), ``peers`` (upsert), ``compact`` (delete). The engine never puts
    the same hint in both ``hints_add`` and ``hints_drop`` of one ``Persist``.
    """

    objects: tuple[ObjectState, ...] = ()
    log: tuple[LogEntry, ...] = ()
    summaries: tuple[tuple[int, dict[str, Any]], ...] = ()
    hints_add: tuple[HintRecord, ...] = ()
    hints_drop: tuple[HintId, ...] = ()
    peers: tuple[PeerRecord, ...] = ()
    compact: tuple[tuple[int, dict[str, int]], ...] = ()
    #: Every object changed here is checkpointed in this Persist (a clean close): the store
    #: records that its whole log is folded into its objects, so opening it next time folds
    #: nothing (see :mod:`store.ondemand`).
    log_folded: bool = False

    def is_empty(self) -> bool:
        return not (
            self.log_folded
            or self.objects
            or self.log
            or self.summaries
            or self.hints_add
            or self.hints_drop
            or self.peers
            or self.compact
        )


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (a :mod:`sync.messages` model) to ``peer``; losing it is allowed.

    ``early``: it depends on nothing the replica makes durable (a relay's forward of other
    origins' entries), so a caller that commits several rounds' ``Persist`` effects at once
    may send it before that commit; the engine puts it ahead of its round's effects."""

    peer: str
    message: Any
    early: bool = False


class LogDot(NamedTuple):
    """A log dot: the name of one delta, ``seq`` of ``origin`` in ``partition``."""

    origin: str
    partition: int
    seq: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How a write went: who acknowledged it, and which of those acks were hints.

    ``dot`` is the write's log dot: ``peer.whereabouts(result)`` asks, later, how far the
    write has travelled since."""

    key: str
    acks: int
    required: int
    acked_by: tuple[str, ...]
    hinted: tuple[str, ...] = ()
    dot: LogDot | None = None


class WriteDone:
    """The write ``op_id`` reached its quorum (``result.acks >= result.required``).

    ``WriteDone(op_id, result)``. Immutable by convention (one per local write: not frozen,
    see :class:`LogEntry`). A write that completes at once, on this replica's own ack (the
    common ``w=1`` case), is made with :meth:`acked_here`, which builds its ``result`` when
    it is first read: a window of many concurrent writes then holds one object per write
    until its commit instead of three (the result and its log dot), which is what the
    garbage collector's young collections count."""

    __slots__ = ("_acked_by", "_entry", "_required", "_result", "op_id")
    __match_args__ = ("op_id", "result")

    def __init__(self, op_id: int, result: WriteResult) -> None:
        self.op_id = op_id
        self._result: WriteResult | None = result
        self._entry: LogEntry | None = None
        self._required = 0
        self._acked_by: tuple[str, ...] = ()

    @classmethod
    def acked_here(
        cls, op_id: int, entry: LogEntry, required: int, acked_by: tuple[str, ...]
    ) -> WriteDone:
        """The write ``op_id`` of ``entry``, acknowledged by ``acked_by`` (this replica) only,
        which meets ``required``: ``WriteResult(entry.key, 1, required, acked_by, (),
        LogDot(entry.origin, entry.partition, entry.seq))``, built when first read."""
        done = cls.__new__(cls)
        done.op_id = op_id
        done._result = None
        done._entry = entry
        done._required = required
        done._acked_by = acked_by
        return done

    @property
    def result(self) -> WriteResult:
        result = self._result
        if result is None:
            e = self._entry
            assert e is not None
            dot = _new_dot(LogDot, (e.origin, e.partition, e.seq))
            result = self._result = WriteResult(e.key, 1, self._required, self._acked_by, (), dot)
            self._entry = None
        return result

    def __eq__(self, other: object) -> bool:
        if type(other) is not WriteDone:
            return NotImplemented
        return self.op_id == other.op_id and self.result == other.result

    def __hash__(self) -> int:
        return hash((self.op_id, self.result))

    def __repr__(self) -> str:
        return f"WriteDone(op_id={self.op_id!r}, result={self.result!r})"


_new_dot = tuple.__new__  # LogDot(...) without its Python __new__ (one per local write)


@dataclass(frozen=True, slots=True)
class WriteFailed:
    """The write ``op_id`` missed its quorum by its deadline. It is durable locally and will
    replicate later; ``result`` says which acks came."""

    op_id: int
    result: WriteResult
    reason: str


@dataclass(frozen=True, slots=True)
class ReadDone:
    """The read ``op_id`` joined ``replies`` answers; ``state`` is the joined CRDT (or None if
    no replica holds the key)."""

    op_id: int
    key: str
    state: CRDT | None
    replies: int
    repaired: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReadFailed:
    """The read ``op_id`` got fewer than ``required`` replies by its deadline."""

    op_id: int
    key: str
    replies: int
    required: int
    state: CRDT | None
    reason: str


@dataclass(frozen=True, slots=True)
class Changed:
    """The value of ``key`` changed (local or remote); subscribers may want to look.

    ``objects`` is the key's live objects by kind when it changed (not compared, not shown):
    the engine may evict them from its cache before the adapter runs this effect, and the
    adapter reads the value from here; a later change brings a later ``Changed``."""

    key: str
    objects: Mapping[str, CRDT] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IdentityConflict:
    """``peer`` has seen log dot ``(us, partition, seen_seq)`` but we only issued up to
    ``our_seq``: this database was restored from a backup or copied, so its replica id may
    reuse dots others already hold. The adapter should rotate the replica id (a new
    incarnation) and restart the replica. Meanwhile the engine keeps working and numbers its
    next log dots of that partition above ``seen_seq``, so log dots are not reused; dots
    *inside* CRDT states can still collide, which only a new replica id prevents.
    """

    peer: str
    partition: int
    seen_seq: int
    our_seq: int


@dataclass(frozen=True, slots=True)
class KindClashFound:
    """``key`` holds objects of several ``kinds`` (sorted): two peers wrote it offline as
    different types. Both are kept and replicate as any object does (an object is named by
    its key and kind); a local write to the key is refused (:class:`~sync.errors.KindClash`)
    until one is deleted. Emitted once per key, when the engine first holds the second kind
    (or at start, for a clash it loaded); the adapter reports it (a warning)."""

    key: str
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReadPage:
    """Read a page of the objects of ``partition`` for the state transfer to ``peer``, once
    every ``Persist`` before this effect is durable, and hand it back with
    ``Replica.snapshot_page(self, rows, end, now, totals=...)`` (``read_id`` tells this
    read from any other).

    ``rows``: the objects (each kind) after the object ``after`` (``(key, kind)``; None: from
    the first) in (key, kind) order, as :class:`ObjectState`: at most ``limit`` of them, and
    no more once their state texts reach ``max_bytes`` (always at least one, if any is
    left). ``end``: no object of the partition follows the last row. ``count``: also count,
    for each of these partitions, its objects and the UTF-8 bytes of their state texts
    (``totals``: partition -> ``(objects, bytes)``), for the transfer's progress.
    """

    peer: str
    partition: int
    after: tuple[str, str] | None
    limit: int
    max_bytes: int
    count: tuple[int, ...] = ()
    read_id: int = 0


@dataclass(frozen=True, slots=True)
class CatchUp:
    """A catch-up from ``peer`` (anti-entropy that takes more than one message: log entries
    or a state transfer) ``started``, is ``done`` or was ``interrupted`` (the peer went
    down). ``entries`` and ``bytes``: at the start, about how much is coming (log entries
    and objects, as the sender counts them); at the end, how much came. ``seconds``: since
    it started (0 at the start). The adapter logs it."""

    peer: str
    phase: str  # "started" | "done" | "interrupted"
    entries: int
    bytes: int
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something an operator must see; the adapter logs ``message`` at WARNING. ``kind``
    names what (``"clock_skew"``...), ``peer`` the replica concerned. The engine's
    ``status()`` keeps the figures behind it; alarms repeat at most every few minutes. (A
    ``"map_kind_clash"`` names the map's key as ``peer``; it is raised once while the clash
    lasts, and again after a restart, when the map is loaded: ``shoal inspect`` lists the
    clashes a database holds.)"""

    kind: str
    peer: str
    message: str


Effect = (
    Persist
    | Send
    | WriteDone
    | WriteFailed
    | ReadDone
    | ReadFailed
    | Changed
    | IdentityConflict
    | KindClashFound
    | ReadPage
    | CatchUp
    | Alarm
)


@dataclass(slots=True)
class Loaded:
    """What the engine starts from: everything a store (or the simulator's disk) holds.

    ``objects_complete`` False: ``objects`` holds only some objects (none, from a store too
    large to load whole); the others are loaded on demand (``Replica.wants_*`` and
    ``Replica.admit``), and the store's objects already include every log entry (the store
    folds its log at open). True: ``objects`` is every object, and the log is merged into
    them at load. ``clashes``: keys holding objects of several kinds (the store knows them
    when the objects are not loaded)."""

    objects: dict[tuple[str, str], ObjectState] = field(default_factory=dict)  # by (key, kind)
    log: list[LogEntry] = field(default_factory=list)
    summaries: dict[int, CausalContext] = field(default_factory=dict)
    hints: list[HintRecord] = field(default_factory=list)
    peers: dict[str, PeerRecord] = field(default_factory=dict)
    objects_complete: bool = True
    clashes: dict[str, tuple[str, ...]] = field(default_factory=dict)
