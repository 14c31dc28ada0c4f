"""Records that go in and out of the store.

Input is *structural*: :meth:`store.Store.apply` takes anything shaped like a
:class:`BatchLike` -- in particular the engine's ``sync.effects.Persist`` with its
``ObjectState``, ``LogEntry``, ``HintRecord``, ``HintId`` and ``PeerRecord`` -- without the
store importing ``sync`` (the layering is ``sync.transport -> store -> crdt``). The Protocols
below name exactly the attributes the store reads. :class:`Batch` and the ``*Row`` dataclasses
are the store's own implementations of those shapes, for callers that are not the engine.

Output is plain frozen dataclasses with the same field names as the engine's records, so the
adapter converts them one to one (``ObjectRow`` <-> ``ObjectState``, ``LogRow`` <->
``LogEntry``, ``HintRow`` <-> ``HintRecord``, ``PeerRow`` <-> ``PeerRecord``); summaries
come back as encoded ``CausalContext`` dicts (``{"vv": {...}, "cloud": [...]}``).

Semantics of each batch field (one transaction per batch, applied in this order):

* ``objects``: upsert whole-object checkpoints, named by (key, kind) (last one wins for an
  object within a batch). One key may hold objects of two kinds. Each is stored with
  whether it is live (listed by ``Store.keys``): see :class:`ObjectLike`.
* ``log``: append delta-log entries; an entry whose ``(origin, partition, seq)`` is already
  stored is ignored (first one wins within a batch). They are stored as log segments, one
  per (partition, origin) (see :mod:`store.schema`): a dot stored again is kept in the table
  but never read back, as readers return the first stored entry of each dot.
* ``summaries``: ``(partition, ctx)``: replace the stored summary of that partition.
* ``hints_add``: store a hint; one already stored under the same id is kept.
* ``peers``: upsert what we know of a peer.
* ``hints_drop``: delete hints by id (after ``hints_add``: adding and dropping in one batch
  leaves nothing).
* ``compact``: ``(partition, watermark)``: delete log entries of that partition with
  ``seq <= watermark[origin]`` (last, so it also covers entries appended in the same batch).

Time: ``HintRow.stored_at`` and ``PeerRow.last_seen`` are seconds, as the engine passes
``now``; the tables keep integer milliseconds (``stored_ms``, ``last_seen_ms``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Batch",
    "BatchLike",
    "HintIdLike",
    "HintIdRow",
    "HintLike",
    "HintRow",
    "Loaded",
    "LogLike",
    "LogRow",
    "ObjectLike",
    "ObjectRow",
    "PeerLike",
    "PeerRow",
]


# -- structural input shapes ---------------------------------------------------------------


class ObjectLike(Protocol):
    """A checkpoint of one object (``sync.effects.ObjectState``).

    Optional liveness: an object may also have an attribute ``live: bool | None`` (read
    with ``getattr``, as ``LogLike.delta_json``). A ``bool`` is stored as the object's
    ``live`` flag as it is: the caller (the engine, from the state's ``is_live()``)
    guarantees it. Without it, or None, the store decodes the state to find out (a state
    that does not decode is :class:`~store.errors.InvalidInput`). A deleted object is
    stored all the same, only not listed by ``Store.keys``.
    """

    @property
    def key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> Mapping[str, Any]: ...


class LogLike(Protocol):
    """One delta-log entry (``sync.effects.LogEntry``).

    Optional pre-encoded delta: an entry may also have an attribute ``delta_json: str |
    None`` (read with ``getattr``, so objects without it still conform). When it is a
    ``str``, the caller guarantees it is the JSON text of ``delta``, and the store writes it
    verbatim as the delta blob instead of encoding ``delta`` again; it must start with
    ``{`` (anything else but None is refused with :class:`~store.errors.InvalidInput`).
    The delta's ``"type"`` is still checked against ``kind``: on the text if it begins
    ``{"type":"<kind>"`` (then ``delta`` is not read), else on ``delta["type"]`` (see
    :func:`store.sql.prepare`). It is not a Protocol member because
    a Protocol cannot declare an optional attribute: objects lacking it would stop matching.
    Likewise an optional ``seal``: four strings (the origin's signature, see
    ``sync.signing``), stored with the entry as they are, or None.
    """

    @property
    def origin(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def delta(self) -> Mapping[str, Any]: ...


class HintIdLike(Protocol):
    """Names one hint (``sync.effects.HintId``)."""

    @property
    def target(self) -> str: ...
    @property
    def origin(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def seq(self) -> int: ...


class HintLike(Protocol):
    """A delta held for another replica (``sync.effects.HintRecord``)."""

    @property
    def target(self) -> str: ...
    @property
    def entry(self) -> LogLike: ...
    @property
    def stored_at(self) -> float: ...


class PeerLike(Protocol):
    """What we know of a peer (``sync.effects.PeerRecord``).

    An optional ``card`` (read with ``getattr``, as :class:`LogLike`'s ``seal``): the JSON
    text of the peer's own signed card (``sync.member_cards``), or None. The store checks
    that it is a JSON object naming this peer (``replica_id``) with a string ``key`` and
    ``sig`` and an integer ``at`` (else :class:`~store.errors.InvalidInput`), and keeps the
    text as it is.
    """

    @property
    def replica_id(self) -> str: ...
    @property
    def address(self) -> str | None: ...
    @property
    def site(self) -> str | None: ...
    @property
    def summary(self) -> Mapping[int, Mapping[str, Any]] | None: ...
    @property
    def last_seen(self) -> float: ...
    @property
    def forgotten(self) -> bool: ...


class BatchLike(Protocol):
    """Everything one ``apply`` makes durable together (``sync.effects.Persist``)."""

    @property
    def objects(self) -> Sequence[ObjectLike]: ...
    @property
    def log(self) -> Sequence[LogLike]: ...
    @property
    def summaries(self) -> Sequence[tuple[int, Mapping[str, Any]]]: ...
    @property
    def hints_add(self) -> Sequence[HintLike]: ...
    @property
    def hints_drop(self) -> Sequence[HintIdLike]: ...
    @property
    def peers(self) -> Sequence[PeerLike]: ...
    @property
    def compact(self) -> Sequence[tuple[int, Mapping[str, int]]]: ...


# -- the store's own records ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectRow:
    """One stored object: ``state`` is the CRDT's ``to_dict()``."""

    key: str
    kind: str
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogRow:
    """One stored delta, named by its log dot ``(origin, partition, seq)``.

    ``delta_json``, if given, is the JSON text of ``delta`` (see :class:`LogLike`), written
    as it is. It is a cache of ``delta``, not part of the value: equality ignores it. Rows
    read back from the store carry the stored text in it (so a caller need not encode
    ``delta`` again), and ``delta`` decoded from it.
    """

    origin: str
    partition: int
    seq: int
    key: str
    kind: str
    delta: dict[str, Any]
    delta_json: str | None = field(default=None, compare=False, repr=False)
    #: The seal of its origin, ``(origin, key, digests, signature)`` (``sync.signing.Seal``),
    #: stored as it is (the store does not verify it); None for an unsigned entry.
    seal: tuple[str, str, str, str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class HintIdRow:
    """Names one hint: its target and the log dot it carries."""

    target: str
    origin: str
    partition: int
    seq: int


@dataclass(frozen=True, slots=True)
class HintRow:
    """A delta held for ``target`` since ``stored_at`` (seconds, millisecond precision)."""

    target: str
    entry: LogRow
    stored_at: float

    @property
    def id(self) -> HintIdRow:
        return HintIdRow(self.target, self.entry.origin, self.entry.partition, self.entry.seq)


@dataclass(frozen=True, slots=True)
class PeerRow:
    """What we know of a peer; ``summary`` maps partition -> encoded causal context;
    ``card``: the JSON text of the peer's own signed card (see :class:`PeerLike`)."""

    replica_id: str
    address: str | None = None
    site: str | None = None
    summary: dict[int, dict[str, Any]] | None = None
    last_seen: float = 0.0
    forgotten: bool = False
    card: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """The store's own :class:`BatchLike` (see the module docstring for the semantics)."""

    objects: tuple[ObjectRow, ...] = ()
    log: tuple[LogRow, ...] = ()
    summaries: tuple[tuple[int, dict[str, Any]], ...] = ()
    hints_add: tuple[HintRow, ...] = ()
    hints_drop: tuple[HintIdRow, ...] = ()
    peers: tuple[PeerRow, ...] = ()
    compact: tuple[tuple[int, Mapping[str, int]], ...] = ()


@dataclass(slots=True)
class Loaded:
    """Everything the store holds, as the engine needs it at start."""

    objects: dict[tuple[str, str], ObjectRow] = field(default_factory=dict)  # by (key, kind)
    log: list[LogRow] = field(default_factory=list)
    summaries: dict[int, dict[str, Any]] = field(default_factory=dict)
    hints: list[HintRow] = field(default_factory=list)
    peers: dict[str, PeerRow] = field(default_factory=dict)
    #: False when ``objects`` holds none of a database too large to load whole (the
    #: engine loads them on demand, see :mod:`store.ondemand`).
    objects_complete: bool = True
    #: Keys holding objects of several kinds: key -> kinds (filled by ``load_start``).
    clashes: dict[str, tuple[str, ...]] = field(default_factory=dict)
