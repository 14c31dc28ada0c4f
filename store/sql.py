"""The storage logic: plain functions over a SQLAlchemy (sync) ``Connection``.

Everything that touches SQL lives here; :class:`store.Store` only calls these through
``AsyncConnection.run_sync`` and adds the group-commit queue. Each function runs inside the
transaction its caller opened and never commits: the caller decides the transaction's extent.

Writes are two steps:

1. :func:`prepare` (pure, no database): validate a :class:`~store.records.BatchLike` and turn
   it into table rows -- JSON-encoded blobs, object rows deduplicated per (key, kind) (last
   wins), log rows per log dot (first wins). Bad input raises
   :class:`~store.errors.InvalidInput` before any SQL. An object is named by its key and kind
   (schema version 3): one key given two kinds is two objects, never an error.
2. :func:`apply_prepared` writes a list of prepared batches in one transaction with one
   ``executemany`` per table and per *run*: consecutive batches are merged into a run until
   one carries order-sensitive work (``hints_drop`` or ``compact``), which closes it, so the
   merged result equals applying the batches one after another. A run's log entries are
   grouped by (partition, origin) and appended as log *segments* (one row per group, cut at
   :data:`~store.schema.SEGMENT_MAX_ENTRIES` entries or about
   :data:`~store.schema.SEGMENT_MAX_BYTES`; see :mod:`store.schema`): a transaction of N
   entries writes a handful of rows, not N. Appending reads nothing: a log dot that is
   already stored may be stored again, and the readers keep the first one.

Reads decode every blob; a blob that is not JSON, or not a valid encoding of its kind
(``crdt.from_dict``), raises :class:`~store.errors.CorruptBlob` naming the key and table.
The log's readers (:func:`iter_log`, :func:`load`, :func:`deltas_page`) merge the segments of
each (partition, origin) into seq order and return each log dot once, from its first stored
(lowest id) segment; the :class:`~store.records.LogRow` they return carry the stored delta
text as ``delta_json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    Connection,
    Insert,
    and_,
    bindparam,
    case,
    delete,
    func,
    inspect,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError

import crdt

from .errors import CorruptBlob, InvalidInput, SchemaVersionMismatch, StoreError
from .records import (
    BatchLike,
    HintRow,
    Loaded,
    LogRow,
    ObjectRow,
    PeerRow,
)
from .schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SEGMENT_COLUMNS,
    SegmentEntry,
    create_live_index,
    hints,
    log_segments,
    meta,
    metadata,
    objects,
    pack_segments,
    peers,
)
from .schema import objects as objects_table
from .schema import summaries as summaries_table

__all__ = [
    "OpenResult",
    "PreparedBatch",
    "apply_prepared",
    "check_context",
    "compact",
    "count_log",
    "decode_blob",
    "deltas_page",
    "encode",
    "folded_mark",
    "get_object",
    "iter_log",
    "load",
    "mark_folded",
    "open_database",
    "prepare",
    "read_meta",
    "read_schema_version",
    "rotate_replica_id",
    "snapshot_page",
]

_IN_CHUNK = 500  # keys per IN (...) list: well under every backend's parameter limit


# -- blobs ---------------------------------------------------------------------------------


def encode(value: Mapping[str, Any]) -> str:
    """Compact JSON text of a ``to_dict()`` form (pydantic-core's serializer: ~6x faster than
    the stdlib's; key order is kept as given, which the canonical forms already fix).

    Values are not re-validated here: ``to_dict()`` forms are JSON by construction (the
    crdt mutators refuse non-JSON values). An object with no JSON form at all raises
    ``ValueError`` (``PydanticSerializationError``); a set or tuple becomes a list.
    """
    return to_json(value if type(value) is dict else dict(value), inf_nan_mode="constants").decode()


def decode_blob(table: str, key: str, kind: str | None, blob: str) -> dict[str, Any]:
    """Decode a stored CRDT blob, checking it is a valid encoding of ``kind``."""
    try:
        value: Any = json.loads(blob)
    except ValueError as exc:
        raise CorruptBlob(key, table, f"not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise CorruptBlob(key, table, f"expected a JSON object, found {type(value).__name__}")
    if kind is not None and value.get("type") != kind:
        raise CorruptBlob(
            key, table, f"stored kind is {kind!r} but the blob encodes a {value.get('type')!r}"
        )
    try:
        crdt.from_dict(value)
    except crdt.DecodeError as exc:
        raise CorruptBlob(key, table, str(exc)) from exc
    return value


def check_context(value: Any, what: str) -> dict[str, Any]:
    """Check the shape of an encoded CausalContext; return a clean copy or raise
    ``ValueError``."""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValueError(
            f"{what}: expected {{'vv': ..., 'cloud': ...}}, found {type(value).__name__}"
        )
    vv, cloud = value.get("vv", {}), value.get("cloud", [])
    if type(vv) is not dict and not isinstance(vv, Mapping):
        raise ValueError(f"{what}: 'vv' must map replica ids to non-negative integers")
    for origin, n in vv.items():
        if type(origin) is not str or type(n) is not int or n < 0:
            raise ValueError(f"{what}: 'vv' must map replica ids to non-negative integers")
    if type(cloud) is not list and type(cloud) is not tuple:
        raise ValueError(f"{what}: 'cloud' must be a list of [replica, counter] pairs")
    pairs = []
    for dot in cloud:
        if (
            (type(dot) is not list and type(dot) is not tuple)
            or len(dot) != 2
            or type(dot[0]) is not str
            or type(dot[1]) is not int
            or dot[1] < 0
        ):
            raise ValueError(f"{what}: 'cloud' must be a list of [replica, counter] pairs")
        pairs.append([dot[0], dot[1]])
    return {"vv": dict(vv), "cloud": pairs}


def _is_count(n: Any) -> bool:
    return type(n) is int and n >= 0


def _decode_context(table: str, key: str, blob: str) -> dict[str, Any]:
    try:
        return check_context(json.loads(blob), "stored context")
    except ValueError as exc:
        raise CorruptBlob(key, table, str(exc)) from exc


# -- preparing a batch ---------------------------------------------------------------------


# Row layouts (tuples, in the order of the statements below).
_OBJECT_COLS = ("key", "kind", "partition", "state", "live")
_LOG_COLS = ("partition", "origin", "seq", "key", "kind", "delta", "seal")  # prepared, per entry
_SEGMENT_COLS = SEGMENT_COLUMNS  # written
_HINT_COLS = (
    "target",
    "origin",
    "partition",
    "seq",
    "key",
    "kind",
    "delta",
    "stored_ms",
    "seal",
)
_PEER_COLS = ("replica_id", "address", "site", "summary", "last_seen_ms", "forgotten")

Row = tuple[Any, ...]
Dot = tuple[int, str, int]
HintKey = tuple[str, str, int, int]


@dataclass(slots=True)
class PreparedBatch:
    """A validated batch as table rows (see :func:`prepare`); merge with :meth:`absorb`."""

    objects: dict[tuple[str, str], Row] = field(default_factory=dict)  # by (key, kind)
    log: dict[Dot, Row] = field(default_factory=dict)
    summaries: dict[int, str] = field(default_factory=dict)
    hints_add: dict[HintKey, Row] = field(default_factory=dict)
    peers: dict[str, Row] = field(default_factory=dict)
    hints_drop: set[HintKey] = field(default_factory=set)
    compact: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    fold: bool = False  # record that the log is folded into the objects (mark_folded)

    @property
    def rows(self) -> int:
        return (
            len(self.objects)
            + len(self.log)
            + len(self.summaries)
            + len(self.hints_add)
            + len(self.peers)
            + len(self.hints_drop)
            + len(self.compact)
            + self.fold
        )

    @property
    def ordered(self) -> bool:
        """True if it holds deletions, which must not be reordered with later inserts."""
        return bool(self.hints_drop or self.compact or self.fold)

    def absorb(self, later: PreparedBatch) -> None:
        """Merge ``later`` in as if it were applied after this one (no deletions here)."""
        self.objects.update(later.objects)
        for dot, row in later.log.items():
            self.log.setdefault(dot, row)
        self.summaries.update(later.summaries)
        for hid, row in later.hints_add.items():
            self.hints_add.setdefault(hid, row)
        self.peers.update(later.peers)
        self.hints_drop |= later.hints_drop
        self.compact.extend(later.compact)
        self.fold = self.fold or later.fold


def _text(value: Any, what: str) -> str:
    if type(value) is not str or not value:
        raise InvalidInput(f"{what} must be a non-empty string, got {value!r}")
    return value


def _int(value: Any, what: str, low: int, high: int | None = None) -> int:
    if type(value) is not int or value < low or (high is not None and value >= high):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise InvalidInput(f"{what} must be an integer {bound}, got {value!r}")
    return value


def _ms(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number of seconds, got {value!r}")
    return round(value * 1000)


def _blob(value: Any, kind: str, what: Callable[[], str], text: Any = None) -> str:
    """The blob of a to_dict() ``value`` declared as ``kind``: ``text`` verbatim if given
    (the caller's JSON of ``value``, see :func:`prepare`), else ``value`` encoded."""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise InvalidInput(f"{what()} must be a to_dict() mapping, got {type(value).__name__}")
    if value.get("type") != kind:
        raise InvalidInput(f"{what()} encodes a {value.get('type')!r}, not the declared {kind!r}")
    if text is not None:
        if type(text) is not str or not text.startswith("{"):
            raise InvalidInput(
                f"{what()}: delta_json must be the JSON text of the delta (a str starting "
                f"with '{{'), got {_preview(text)}"
            )
        return text
    try:
        return encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what()} is not JSON-encodable: {exc}") from exc


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


_KINDS = frozenset(crdt.KINDS)


def _kind(value: Any, what: str) -> str:
    if value not in _KINDS:
        raise InvalidInput(f"{what} must be one of {sorted(_KINDS)}, got {value!r}")
    return str(value)


class _Partitions:
    """``partition_of`` with a per-batch memo (a key's partition is computed once); also the
    last seal checked (consecutive entries share their seal: checked once)."""

    __slots__ = ("_fn", "count", "last_seal", "memo")

    def __init__(self, fn: Callable[[str], int], count: int) -> None:
        self._fn, self.count = fn, count
        self.memo: dict[str, int] = {}
        self.last_seal: tuple[Any, tuple[str, str, str, str] | None] = (None, None)

    def __call__(self, key: str) -> int:
        part = self.memo.get(key)
        if part is None:
            part = self.memo[key] = self._fn(key)
        return part


# The canonical to_dict() forms put "type" first, so compact JSON of a delta of kind k
# starts with this: the kind is checked on the text without decoding it.
_TYPE_PREFIX = {kind: f'{{"type":"{kind}"' for kind in _KINDS}


def _log_row(entry: Any, parts: _Partitions, what: str, i: int) -> Row:
    """One entry as a ``_LOG_COLS`` row; ``what.format(i)`` names it in errors.

    The fast path is one combined check per row (this runs for every delta the engine
    persists); anything it does not accept goes to :func:`_checked_log_row`, which raises
    the precise error (or, should the combined check be stricter, builds the same row).
    With ``delta_json`` the fast path does not read ``entry.delta`` at all (the engine's
    ``LogEntry.delta`` decodes the text on each access)."""
    key, kind, part, origin, seq = entry.key, entry.kind, entry.partition, entry.origin, entry.seq
    text = getattr(entry, "delta_json", None)
    seal = getattr(entry, "seal", None)
    if seal is not None:
        given, checked = parts.last_seal
        if seal is given:
            seal = checked
        else:
            parts.last_seal = (seal, _seal(seal, f"{what.format(i)}.seal"))
            seal = parts.last_seal[1]
    if (
        type(key) is str
        and type(origin) is str
        and type(part) is int
        and type(seq) is int
        and key
        and origin
        and seq >= 1
        and 0 <= part < parts.count
        and kind in _KINDS
        and part == (parts.memo.get(key) or parts(key))
    ):
        if type(text) is str:
            if text.startswith(_TYPE_PREFIX[kind]):
                return (part, origin, seq, key, kind, text, seal)
        elif text is None:
            delta = entry.delta
            if type(delta) is dict and delta.get("type") == kind:
                try:
                    text = to_json(delta, inf_nan_mode="constants").decode()
                except (TypeError, ValueError):
                    pass  # not JSON: reported below, naming the key
                else:
                    return (part, origin, seq, key, kind, text, seal)
    return (*_checked_log_row(entry, parts, what.format(i)), seal)


def _seal(value: Any, what: str) -> tuple[str, str, str, str]:
    """A log entry's seal as stored: four strings (``sync.signing.Seal``); the store keeps it
    and does not verify it."""
    if isinstance(value, tuple | list) and len(value) == 4:
        origin, key, digests, signature = value
        if (
            type(origin) is str
            and type(key) is str
            and type(digests) is str
            and type(signature) is str
        ):
            return (origin, key, digests, signature)
    raise InvalidInput(f"{what} must be four strings [origin, key, digests, signature]")


def _checked_log_row(entry: Any, parts: _Partitions, what: str) -> Row:
    key = _text(entry.key, f"{what}.key")
    kind = _kind(entry.kind, f"{what}.kind")
    part = _int(entry.partition, f"{what}.partition", 0, parts.count)
    if part != parts(key):
        raise InvalidInput(
            f"{what}: key {key!r} belongs to partition {parts(key)}, not {part} "
            "(is the store opened with the engine's partition count?)"
        )
    return (
        part,
        _text(entry.origin, f"{what}.origin"),
        _int(entry.seq, f"{what}.seq", 1),
        key,
        kind,
        _blob(
            entry.delta,
            kind,
            lambda: f"{what}.delta for key {key!r}",
            getattr(entry, "delta_json", None),
        ),
    )


def prepare(batch: BatchLike, partitions: int, partition_of: Callable[[str], int]) -> PreparedBatch:
    """Validate ``batch`` and turn it into rows; raises before anything is written.

    Pre-encoded deltas: a log entry (or a hint's entry) may carry its delta's JSON text as
    an attribute ``delta_json``. If it is not None, it is stored verbatim as the delta blob
    instead of encoding ``delta`` again. The caller guarantees that it is the JSON of
    ``delta`` (what :func:`encode` would give, up to formatting): the store only checks that
    it is a ``str`` starting with ``{`` (else :class:`~store.errors.InvalidInput`), and
    still checks the delta's ``"type"`` against the declared ``kind``: on the text when it
    begins ``{"type":"<kind>"`` (compact JSON of a canonical ``to_dict()`` form, which puts
    ``"type"`` first; ``delta`` is then not read, as decoding it may cost a parse), else on
    ``delta["type"]``. Reads decode the
    stored text as usual, so a ``delta_json`` that breaks the guarantee is read back as
    itself (or as :class:`~store.errors.CorruptBlob`), not as ``delta``.
    """
    out = PreparedBatch()
    parts = _Partitions(partition_of, partitions)
    try:
        _prepare_objects(out, batch, parts)
        for i, (part, ctx) in enumerate(batch.summaries):
            part = _int(part, f"summaries[{i}] partition", 0, partitions)
            try:
                out.summaries[part] = encode(check_context(ctx, f"summaries[{i}]"))
            except ValueError as exc:
                raise InvalidInput(str(exc)) from exc
        for i, hint in enumerate(batch.hints_add):
            row = _log_row(hint.entry, parts, "hints_add[{}].entry", i)
            target = _text(hint.target, f"hints_add[{i}].target")
            stored_ms = _ms(hint.stored_at, f"hints_add[{i}].stored_at")
            part, origin, seq, key, kind, delta, seal = row
            out.hints_add.setdefault(
                (target, origin, part, seq),
                (
                    *(target, origin, part, seq, key, kind, delta, stored_ms),  # _HINT_COLS
                    None if seal is None else to_json(seal).decode(),
                ),
            )
        for i, peer in enumerate(batch.peers):
            out.peers[_text(peer.replica_id, f"peers[{i}].replica_id")] = _peer_row(peer, i)
        for i, hid in enumerate(batch.hints_drop):
            out.hints_drop.add(
                (
                    _text(hid.target, f"hints_drop[{i}].target"),
                    _text(hid.origin, f"hints_drop[{i}].origin"),
                    _int(hid.partition, f"hints_drop[{i}].partition", 0, partitions),
                    _int(hid.seq, f"hints_drop[{i}].seq", 1),
                )
            )
        for i, (part, watermark) in enumerate(batch.compact):
            out.compact.append(
                (
                    _int(part, f"compact[{i}] partition", 0, partitions),
                    _watermark(watermark, f"compact[{i}] watermark"),
                )
            )
        out.fold = getattr(batch, "log_folded", False) is True
    except (AttributeError, TypeError) as exc:
        raise InvalidInput(f"not a batch of store records: {exc}") from exc
    return out


def _live(obj: Any, i: int, state: Any) -> bool:
    """The object's ``live`` flag (see :class:`~store.records.ObjectLike`): as the caller
    says it, else from its state decoded (``state``: the to_dict() form or its text)."""
    live = getattr(obj, "live", None)
    if type(live) is bool:
        return live
    if live is not None:
        raise InvalidInput(f"objects[{i}].live must be a bool or None, got {live!r}")
    try:
        decoded: crdt.CRDT = crdt.from_dict(json.loads(state) if type(state) is str else state)
    except (ValueError, crdt.DecodeError) as exc:
        raise InvalidInput(
            f"objects[{i}].state for key {obj.key!r} is not a valid encoding of its kind: {exc}"
        ) from exc
    return decoded.is_live()


def _prepare_objects(out: PreparedBatch, batch: BatchLike, parts: _Partitions) -> None:
    objects_out, log_out = out.objects, out.log
    for i, obj in enumerate(batch.objects):
        key, kind = obj.key, obj.kind
        text = getattr(obj, "state_json", None)
        if (
            type(text) is str
            and type(key) is str
            and key
            and kind in _KINDS
            and text.startswith(_TYPE_PREFIX[kind])
        ):
            # Pre-encoded by the caller (the engine): stored as it is, kind read off the text.
            objects_out[(key, kind)] = (key, kind, parts(key), text, _live(obj, i, text))
            continue
        try:
            state = obj.state
        except ValueError as exc:  # a state_json that is not JSON (decoded by the property)
            raise InvalidInput(f"objects[{i}].state_json is not JSON: {exc}") from exc
        if type(key) is str and key and type(state) is dict and kind in _KINDS:
            if state.get("type") != kind:
                _blob(state, kind, lambda: f"objects[{i}].state for key {key!r}")  # noqa: B023
            try:
                blob = to_json(state, inf_nan_mode="constants").decode()
            except (TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"objects[{i}].state for key {key!r} is not JSON-encodable: {exc}"
                ) from exc
        else:
            key = _text(key, f"objects[{i}].key")
            kind = _kind(kind, f"objects[{i}].kind")
            blob = _blob(state, kind, lambda: f"objects[{i}].state for key {key!r}")  # noqa: B023
        objects_out[(key, kind)] = (key, kind, parts(key), blob, _live(obj, i, state))
    for i, entry in enumerate(batch.log):
        row = _log_row(entry, parts, "log[{}]", i)
        log_out.setdefault((row[0], row[1], row[2]), row)


def _watermark(value: Any, what: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or not all(
        isinstance(o, str) and _is_count(n) for o, n in value.items()
    ):
        raise InvalidInput(f"{what} must map replica ids to non-negative integers")
    return dict(value)


def _peer_row(peer: Any, i: int) -> Row:
    for attr in ("address", "site"):
        value = getattr(peer, attr)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"peers[{i}].{attr} must be a string or None, got {value!r}")
    summary = peer.summary
    encoded: str | None = None
    if summary is not None:
        if not isinstance(summary, Mapping):
            raise InvalidInput(f"peers[{i}].summary must map partition -> context")
        try:
            encoded = encode(
                {
                    str(_int(p, f"peers[{i}].summary partition", 0)): check_context(
                        ctx, f"peers[{i}].summary[{p}]"
                    )
                    for p, ctx in summary.items()
                }
            )
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
    if not isinstance(peer.forgotten, bool):
        raise InvalidInput(f"peers[{i}].forgotten must be a bool")
    return (
        peer.replica_id,
        peer.address,
        peer.site,
        encoded,
        _ms(peer.last_seen, f"peers[{i}].last_seen"),
        peer.forgotten,
    )


# -- writing -------------------------------------------------------------------------------


def _insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return pg_dialect.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite_dialect.insert(table)
    raise StoreError(f"unsupported database dialect {conn.dialect.name!r}")


def _upsert(conn: Connection, table: Any, keys: Sequence[str]) -> Insert:
    stmt = _insert(conn, table)
    columns = [c.name for c in table.columns if c.name not in keys]
    result: Insert = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in columns}
    )
    return result


def _insert_ignore(conn: Connection, table: Any, keys: Sequence[str]) -> Insert:
    result: Insert = _insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))
    return result


def _statements(conn: Connection) -> dict[str, tuple[Any, Sequence[str]]]:
    """The write statements (Core, for this dialect) and the column order of their rows."""
    drop = delete(hints).where(
        hints.c.target == bindparam("target"),
        hints.c.origin == bindparam("origin"),
        hints.c.partition == bindparam("partition"),
        hints.c.seq == bindparam("seq"),
    )
    return {
        "objects": (_upsert(conn, objects, ["key", "kind"]), _OBJECT_COLS),
        "log": (_insert(conn, log_segments), _SEGMENT_COLS),
        "summaries": (_upsert(conn, summaries_table, ["partition"]), ("partition", "ctx")),
        "hints_add": (
            _insert_ignore(conn, hints, ["target", "origin", "partition", "seq"]),
            _HINT_COLS,
        ),
        "peers": (_upsert(conn, peers, ["replica_id"]), _PEER_COLS),
        "hints_drop": (drop, ("target", "origin", "partition", "seq")),
    }


_COMPILED: dict[tuple[str, str], tuple[str, Callable[[Row], Any] | None]] = {}


def _compiled(conn: Connection, name: str) -> tuple[str, Callable[[Row], Any] | None]:
    """``name``'s SQL for this dialect, compiled once, and how to map a row tuple to the
    driver's parameters (None: the tuple already is them).

    The rows go to ``exec_driver_sql`` as one executemany: SQLAlchemy builds the statement
    (dialect-correct upserts), the driver gets the rows without per-row processing. That
    is safe because every bound value is a str, int, bool or None, which both drivers take
    as they are.
    """
    cache_key = (conn.dialect.name, name)
    found = _COMPILED.get(cache_key)
    if found is None:
        stmt, cols = _statements(conn)[name]
        # for_executemany: no RETURNING of generated ids (nothing reads them back).
        compiled = stmt.compile(dialect=conn.dialect, column_keys=list(cols), for_executemany=True)
        if compiled.positional:
            order = list(compiled.positiontup or [])
            if order == list(cols):
                mapper: Callable[[Row], Any] | None = None
            else:
                index = [cols.index(n) for n in order]
                mapper = lambda row: tuple(row[i] for i in index)  # noqa: E731
        else:
            mapper = lambda row: dict(zip(cols, row, strict=True))  # noqa: E731
        found = _COMPILED[cache_key] = (compiled.string, mapper)
    return found


def _executemany(conn: Connection, name: str, rows: Iterable[Row]) -> None:
    """Run ``name`` once per row: one executemany on the driver's cursor.

    Straight on the cursor of the connection's DB-API connection: ``exec_driver_sql`` would
    pass the same statement and rows to the same call, after building an execution context
    and a result per statement, which was about as long as SQLite's own work for a
    one-write transaction (``benchmarks/speed_bench.py --goals serial``). A driver error is
    raised as ``exec_driver_sql`` would raise it (:class:`sqlalchemy.exc.DBAPIError`).
    """
    sql_text, mapper = _compiled(conn, name)
    params = list(rows) if mapper is None else [mapper(r) for r in rows]
    if not params:
        return
    dbapi = conn.connection
    cursor = dbapi.cursor()
    try:
        cursor.executemany(sql_text, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            sql_text, params, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
        ) from exc
    finally:
        cursor.close()


def _runs(batches: Iterable[PreparedBatch]) -> list[PreparedBatch]:
    groups: list[list[PreparedBatch]] = [[]]
    for batch in batches:
        groups[-1].append(batch)
        if batch.ordered:
            groups.append([])
    runs: list[PreparedBatch] = []
    for group in groups:
        if len(group) == 1:
            runs.append(group[0])
        elif group:
            merged = PreparedBatch()
            for batch in group:
                merged.absorb(batch)
            runs.append(merged)
    return runs


def _seq_of(entry: SegmentEntry) -> int:
    seq: int = entry[0]
    return seq


def _segment_rows(rows: Iterable[Row]) -> Iterator[Row]:
    """Prepared log rows (``_LOG_COLS``, one per log dot) as ``_SEGMENT_COLS`` rows: one
    segment per (partition, origin), entries in seq order, cut by the schema's limits."""
    groups: dict[tuple[int, str], list[SegmentEntry]] = {}
    for row in rows:
        group = groups.get(row[:2])
        if group is None:
            groups[row[:2]] = [row[2:]]
        else:
            group.append(row[2:])
    for (part, origin), entries in groups.items():
        entries.sort(key=_seq_of)  # (the engine appends in seq order: a linear pass)
        yield from pack_segments(part, origin, entries)


def apply_prepared(conn: Connection, batches: Sequence[PreparedBatch]) -> list[int]:
    """Write ``batches`` in order, in the caller's transaction; return the log dots each
    batch's ``compact`` removed."""
    removed: list[int] = []
    for run in _runs(batches):
        _executemany(conn, "objects", run.objects.values())
        _executemany(conn, "log", _segment_rows(run.log.values()))
        _executemany(conn, "summaries", run.summaries.items())
        _executemany(conn, "hints_add", run.hints_add.values())
        _executemany(conn, "peers", run.peers.values())
        _executemany(conn, "hints_drop", run.hints_drop)
        # Only the last batch of a run may compact or fold (it closes the run).
        removed.extend(compact(conn, part, wm) for part, wm in run.compact)
        if run.fold:
            mark_folded(conn)
    return removed


def compact(conn: Connection, partition: int, watermark: Mapping[str, int]) -> int:
    """Delete log entries of ``partition`` with ``seq <= watermark[origin]``; return how many
    log dots went.

    A segment wholly at or below the watermark is deleted; one that straddles it is rewritten
    in place (same id, so it keeps its place in the stored order) without those entries.
    """
    marks = {origin: n for origin, n in watermark.items() if n > 0}
    if not marks:
        return 0
    c = log_segments.c
    bound = case(*((c.origin == origin, literal(n)) for origin, n in marks.items()), else_=0)
    found = conn.execute(
        select(c.id, c.origin, c.entries).where(
            c.partition == partition, c.origin.in_(list(marks)), c.first_seq <= bound
        )
    ).all()
    dropped: set[tuple[str, int]] = set()
    doomed: list[int] = []
    rewrites: list[dict[str, Any]] = []
    for seg_id, origin, text in found:
        mark = marks[origin]
        entries = _parse_segment(seg_id, text)
        kept = [entry for entry in entries if entry[0] > mark]
        dropped.update((origin, entry[0]) for entry in entries if entry[0] <= mark)
        if kept:
            new_text = to_json(kept).decode()
            rewrites.append({"b_id": seg_id, "new_first": kept[0][0], "new_entries": new_text})
        else:
            doomed.append(seg_id)
    for start in range(0, len(doomed), _IN_CHUNK):
        conn.execute(delete(log_segments).where(c.id.in_(doomed[start : start + _IN_CHUNK])))
    if rewrites:
        conn.execute(
            update(log_segments)
            .where(c.id == bindparam("b_id"))
            .values(first_seq=bindparam("new_first"), entries=bindparam("new_entries")),
            rewrites,
        )
    return len(dropped)


# -- reading -------------------------------------------------------------------------------


def _object(row: Any) -> ObjectRow:
    return ObjectRow(row.key, row.kind, decode_blob("objects", row.key, row.kind, row.state))


def _hint_entry(row: Any) -> LogRow:
    delta = decode_blob("hints", row.key, row.kind, row.delta)
    seal = None
    if row.seal is not None:
        try:
            seal = _seal(json.loads(row.seal), "seal")
        except (ValueError, InvalidInput) as exc:
            raise CorruptBlob(row.key, "hints", f"malformed seal ({exc})") from exc
    return LogRow(row.origin, row.partition, row.seq, row.key, row.kind, delta, row.delta, seal)


_SEGMENTS = log_segments.name


def _parse_segment(seg_id: int, text: str) -> list[list[Any]]:
    """A segment's ``entries``, checked to be a list of ``[seq, key, kind, delta_text]``
    (the delta texts are decoded later, by :func:`decode_blob`)."""
    try:
        value: Any = json.loads(text)
    except ValueError as exc:
        raise CorruptBlob(f"segment {seg_id}", _SEGMENTS, f"not valid JSON ({exc})") from exc
    if type(value) is not list:
        raise CorruptBlob(f"segment {seg_id}", _SEGMENTS, "entries are not a JSON array")
    for entry in value:
        if (
            type(entry) is not list
            or not 4 <= len(entry) <= 5
            or (len(entry) == 5 and (type(entry[4]) is not int or entry[4] < 0))
            or type(entry[0]) is not int
            or entry[0] < 1
            or type(entry[1]) is not str
            or type(entry[2]) is not str
            or type(entry[3]) is not str
        ):
            key = entry[1] if type(entry) is list and len(entry) > 1 else None
            raise CorruptBlob(
                key if type(key) is str else f"segment {seg_id}",
                _SEGMENTS,
                f"entry {_preview(entry)} is not [seq, key, kind, delta_text(, seal)]",
            )
    return value


def _with_seals(seg_id: int, entries: list[list[Any]], seals_text: str) -> list[list[Any]]:
    """A parsed segment's entries, each with its seal (a tuple of four strings, or None) as a
    fifth element in place of its index into the segment's ``seals``."""
    if seals_text == "[]":
        return [e if len(e) == 5 and e[4] is None else [*e[:4], None] for e in entries]
    try:
        raw: Any = json.loads(seals_text)
        seals = [_seal(s, "seal") for s in raw] if type(raw) is list else None
    except (ValueError, InvalidInput):
        seals = None
    if seals is None:
        raise CorruptBlob(f"segment {seg_id}", _SEGMENTS, "seals are not a list of seals")
    out: list[list[Any]] = []
    for e in entries:
        if len(e) == 5:
            if e[4] >= len(seals):
                raise CorruptBlob(e[1], _SEGMENTS, f"entry {e[0]} names a seal it lacks")
            out.append([e[0], e[1], e[2], e[3], seals[e[4]]])
        else:
            out.append([*e, None])
    return out


def _merge(segments: list[tuple[int, list[list[Any]]]]) -> list[list[Any]]:
    """The entries of one (partition, origin)'s ``(id, entries)`` segments in seq order, each
    log dot once: the entry of its lowest-id (first stored) segment."""
    merged = segments[0][1] if len(segments) == 1 else [e for _, es in segments for e in es]
    prev = 0
    for entry in merged:  # the usual case: ordered, disjoint segments, no duplicate
        if entry[0] <= prev:
            break
        prev = entry[0]
    else:
        return merged
    first: dict[int, tuple[int, list[Any]]] = {}
    for seg_id, entries in segments:
        for entry in entries:
            seen = first.get(entry[0])
            if seen is None or seg_id < seen[0]:
                first[entry[0]] = (seg_id, entry)
    return [first[seq][1] for seq in sorted(first)]


def _log_groups(conn: Connection) -> Iterator[tuple[int, str, list[list[Any]]]]:
    """``(partition, origin, entries)`` for every (partition, origin) of the log, in that
    order, entries merged by :func:`_merge`. Holds one group's segments at a time."""
    c = log_segments.c
    stmt = select(c.id, c.partition, c.origin, c.entries, c.seals).order_by(
        c.partition, c.origin, c.last_seq, c.id
    )
    group: tuple[int, str] | None = None
    segments: list[tuple[int, list[list[Any]]]] = []
    for seg_id, part, origin, text, seals in conn.execute(stmt):
        if (part, origin) != group:
            if group is not None:
                yield group[0], group[1], _merge(segments)
            group, segments = (part, origin), []
        segments.append((seg_id, _with_seals(seg_id, _parse_segment(seg_id, text), seals)))
    if group is not None:
        yield group[0], group[1], _merge(segments)


def iter_log(conn: Connection, key: str | None = None) -> Iterator[LogRow]:
    """Every log entry (of ``key``, if given) in log-dot order ``(partition, origin, seq)``,
    each log dot once, deltas decoded and checked (:func:`decode_blob`) and ``delta_json``
    set to the stored text. Reads one (partition, origin) group of segments at a time."""
    for part, origin, entries in _log_groups(conn):
        for seq, entry_key, kind, text, seal in entries:
            if key is None or entry_key == key:
                delta = decode_blob(_SEGMENTS, entry_key, kind, text)
                yield LogRow(origin, part, seq, entry_key, kind, delta, text, seal)


def count_log(conn: Connection, key: str | None = None) -> int:
    """How many entries :func:`iter_log` yields (deltas are not decoded)."""
    return sum(
        len(entries) if key is None else sum(1 for entry in entries if entry[1] == key)
        for _part, _origin, entries in _log_groups(conn)
    )


def _peer(row: Any) -> PeerRow:
    summary: dict[int, dict[str, Any]] | None = None
    if row.summary is not None:
        try:
            raw = json.loads(row.summary)
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object of partition -> context")
            summary = {int(p): check_context(ctx, f"partition {p}") for p, ctx in raw.items()}
        except ValueError as exc:
            raise CorruptBlob(row.replica_id, "peers", str(exc)) from exc
    return PeerRow(
        row.replica_id, row.address, row.site, summary, row.last_seen_ms / 1000, bool(row.forgotten)
    )


def get_object(conn: Connection, key: str, kind: str | None = None) -> ObjectRow | None:
    """The object ``(key, kind)``; ``kind=None``: the key's object of the first kind (by
    name; a key holds one kind unless two peers wrote it as two)."""
    stmt = select(objects).where(objects.c.key == key)
    if kind is not None:
        stmt = stmt.where(objects.c.kind == kind)
    row = conn.execute(stmt.order_by(objects.c.kind).limit(1)).first()
    return None if row is None else _object(row)


def load(conn: Connection, *, objects: bool = True) -> Loaded:
    """Everything: objects (unless ``objects=False``), log (in log-dot order), summaries,
    hints, peers."""
    out = Loaded()
    if objects:
        for row in conn.execute(
            select(objects_table).order_by(objects_table.c.key, objects_table.c.kind)
        ):
            out.objects[(row.key, row.kind)] = _object(row)
    out.log = list(iter_log(conn))
    for row in conn.execute(select(summaries_table).order_by(summaries_table.c.partition)):
        out.summaries[row.partition] = _decode_context("summaries", str(row.partition), row.ctx)
    out.hints = [
        HintRow(row.target, _hint_entry(row), row.stored_ms / 1000)
        for row in conn.execute(select(hints).order_by(hints.c.id))
    ]
    for row in conn.execute(select(peers).order_by(peers.c.replica_id)):
        out.peers[row.replica_id] = _peer(row)
    return out


def deltas_page(
    conn: Connection,
    partition: int,
    vv: Mapping[str, int],
    after: tuple[str, int] | None,
    limit: int,
) -> list[LogRow]:
    """Up to ``limit`` log entries of ``partition`` beyond ``vv``, in (origin, seq) order,
    strictly after the position ``after`` (keyset pagination), each log dot once (the first
    stored). The cloud is the caller's.

    Segments are read in (origin, first_seq, id) order, a few at a time: once a segment
    starting at (o, f) is read, no unread segment holds an entry of o below f, so the entries
    before it are final (merged, deduplicated) and can be returned.
    """
    c = log_segments.c
    stmt = select(c.id, c.origin, c.first_seq, c.entries, c.seals).where(c.partition == partition)
    if vv:
        stmt = stmt.where(
            c.last_seq > case(*((c.origin == o, literal(n)) for o, n in vv.items()), else_=0)
        )
    if after is not None:
        stmt = stmt.where(
            or_(c.origin > after[0], and_(c.origin == after[0], c.last_seq > after[1]))
        )
    stmt = stmt.order_by(c.origin, c.first_seq, c.id)
    page = _Page(partition, vv, after, limit)
    chunk, position = 8, None
    while True:  # ends: every round reads further in keyset order
        query = stmt
        if position is not None:
            o, f, i = position
            query = query.where(
                or_(
                    c.origin > o,
                    and_(c.origin == o, or_(c.first_seq > f, and_(c.first_seq == f, c.id > i))),
                )
            )
        rows = conn.execute(query.limit(chunk)).all()
        for seg_id, origin, first_seq, text, seals in rows:
            if page.settle(origin, first_seq):
                return page.rows
            page.add(seg_id, origin, _with_seals(seg_id, _parse_segment(seg_id, text), seals))
        if len(rows) < chunk:
            break
        position = (rows[-1].origin, rows[-1].first_seq, rows[-1].id)
        chunk = min(chunk * 2, max(limit, 8))
    page.settle(None, 0)
    return page.rows


class _Page:
    """One :func:`deltas_page` result being filled: entries of the origin being read wait
    in ``pending`` until no unread segment can hold a lower seq of that origin."""

    def __init__(
        self, partition: int, vv: Mapping[str, int], after: tuple[str, int] | None, limit: int
    ) -> None:
        self.partition, self.vv, self.after, self.limit = partition, vv, after, limit
        self.rows: list[LogRow] = []
        self.origin: str | None = None
        self.pending: list[tuple[int, list[list[Any]]]] = []

    def add(self, seg_id: int, origin: str, entries: list[list[Any]]) -> None:
        low = self.vv.get(origin, 0)
        if self.after is not None and self.after[0] == origin:
            low = max(low, self.after[1])
        self.origin = origin
        self.pending.append((seg_id, [e for e in entries if e[0] > low]))

    def settle(self, origin: str | None, first_seq: int) -> bool:
        """A segment (``origin``, ``first_seq``) comes next (None: nothing does): move the
        entries that are final to ``rows``; True once the page is full."""
        if not self.pending:
            return False
        merged = _merge(self.pending)
        if origin == self.origin:
            done = [e for e in merged if e[0] < first_seq]
            # The rest stay with their segment ids: a later segment may repeat one of them.
            kept = [(i, [e for e in es if e[0] >= first_seq]) for i, es in self.pending]
            self.pending = [(i, es) for i, es in kept if es]
        else:
            done, self.pending = merged, []
        assert self.origin is not None
        for seq, key, kind, text, seal in done[: self.limit - len(self.rows)]:
            delta = decode_blob(_SEGMENTS, key, kind, text)
            row = LogRow(self.origin, self.partition, seq, key, kind, delta, text, seal)
            self.rows.append(row)
        return len(self.rows) >= self.limit


def snapshot_page(
    conn: Connection, partition: int, after: tuple[str, str] | None, limit: int
) -> list[ObjectRow]:
    """Up to ``limit`` objects of ``partition`` after the object ``after`` (``(key, kind)``),
    in (key, kind) order."""
    c = objects.c
    stmt = select(objects).where(c.partition == partition)
    if after is not None:
        stmt = stmt.where(or_(c.key > after[0], and_(c.key == after[0], c.kind > after[1])))
    stmt = stmt.order_by(c.key, c.kind).limit(limit)
    return [_object(row) for row in conn.execute(stmt)]


# -- the log fold mark (see store.ondemand) ---------------------------------------------------

_FOLDED = "log_folded"


def folded_mark(conn: Connection) -> int:
    """The last log segment known folded into the objects (0: none)."""
    value = conn.execute(select(meta.c.value).where(meta.c.name == _FOLDED)).scalar_one_or_none()
    return int(value) if value is not None and value.isdigit() else 0


def _set_mark(conn: Connection, mark: Any) -> None:
    stmt = _upsert(conn, meta, ["name"]).values(name=_FOLDED, value=mark)
    conn.execute(stmt)


def mark_folded(conn: Connection) -> None:
    """Record that every stored log entry is in its object (the caller checkpointed every
    object it changed, in this transaction)."""
    last = conn.execute(select(func.max(log_segments.c.id))).scalar()
    _set_mark(conn, str(last or 0))


# -- meta, versions, identity --------------------------------------------------------------


def read_meta(conn: Connection) -> dict[str, str]:
    return {row.name: row.value for row in conn.execute(select(meta))}


def _set_meta(conn: Connection, values: Mapping[str, str]) -> None:
    conn.execute(
        _upsert(conn, meta, ["name"]), [{"name": k, "value": v} for k, v in values.items()]
    )


def read_schema_version(conn: Connection) -> int | None:
    """The stored schema version; None for an empty database. Writes nothing."""
    names = set(inspect(conn).get_table_names())
    if "meta" not in names:
        if names:
            raise StoreError(
                f"not a shoal database: it has tables {sorted(names)} but no 'meta' table"
            )
        return None
    value = conn.execute(
        select(meta.c.value).where(meta.c.name == "schema_version")
    ).scalar_one_or_none()
    if value is None or not value.isdigit():
        raise StoreError(f"not a shoal database: meta.schema_version is {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class OpenResult:
    """What :func:`open_database` found and decided."""

    replica_id: str
    created: bool
    migrated_from: int | None
    rotated: bool
    previous_replica_ids: tuple[str, ...]
    signing_key: bytes = b""  # the raw Ed25519 private key behind replica_id
    rekeyed: bool = False  # a database without a key (before schema 5) got one, and a new id


def open_database(
    conn: Connection,
    *,
    partitions: int,
    partition_of: Callable[[str], int],
    where: Mapping[str, Any],
    token: str,
    sidecar_token: str | None,
    uses_sidecar: bool,
    new_identity: Callable[[], tuple[str, bytes]],
) -> OpenResult:
    """Create, migrate and check the database, and settle its replica identity.

    ``where`` describes the storage the database is in now (file path/device/inode, or the
    PostgreSQL database's oid); ``token`` is this open's fresh random token, written to
    ``meta`` (and by the caller, after commit, to the sidecar file). A stored stamp that
    differs from ``where``, or (``uses_sidecar``) a sidecar token that differs from the stored
    one, means the data was copied or restored: a new replica id is minted and the old one
    recorded in ``past_replica_ids``. A SQLite file renamed on its file system (same device
    and inode) with its sidecar was moved, not copied, and keeps its id. The id is derived
    from an Ed25519 key kept in ``meta.signing_key`` (``new_identity()`` makes both); a
    database without a key (made before schema version 5) gets one, and so a new id
    (``rekeyed``), the old one recorded as past.
    """
    found = read_schema_version(conn)
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaVersionMismatch(found, SCHEMA_VERSION)
    created = found is None
    if found is None:
        metadata.create_all(conn)
        create_live_index(conn)
        _set_meta(conn, {"schema_version": str(SCHEMA_VERSION), "partitions": str(partitions)})
    else:
        for version in range(found, SCHEMA_VERSION):
            MIGRATIONS[version](conn, partition_of)
        if found < SCHEMA_VERSION:
            _set_meta(conn, {"schema_version": str(SCHEMA_VERSION)})
    values = read_meta(conn)
    stored_parts = values.setdefault("partitions", str(partitions))
    if stored_parts != str(partitions):
        raise StoreError(
            f"the database uses {stored_parts} partitions; opened with partitions={partitions}"
        )
    past: list[str] = json.loads(values.get("past_replica_ids", "[]"))
    replica_id = values.get("replica_id")
    rotated = rekeyed = False
    key_hex = values.get("signing_key")
    if replica_id is None:
        replica_id, key = new_identity()
    elif key_hex is None:
        past.append(replica_id)
        replica_id, key = new_identity()
        rekeyed = True
    else:
        key = bytes.fromhex(key_hex)
        stamp = json.loads(values["identity"]) if "identity" in values else None
        if (
            stamp is None
            or not _same_storage(stamp.get("where"), where)
            or (uses_sidecar and sidecar_token != stamp.get("token"))
        ):
            past.append(replica_id)
            replica_id, key = new_identity()
            rotated = True
    _set_meta(
        conn,
        {
            "partitions": str(partitions),
            "replica_id": replica_id,
            "signing_key": key.hex(),
            "past_replica_ids": json.dumps(past),
            "identity": json.dumps({"where": dict(where), "token": token}, sort_keys=True),
        },
    )
    return OpenResult(
        replica_id,
        created,
        None if created or found == SCHEMA_VERSION else found,
        rotated,
        tuple(past),
        key,
        rekeyed,
    )


def _same_storage(stamped: Any, where: Mapping[str, Any]) -> bool:
    """Is the database where it was stamped? A SQLite file renamed on its file system keeps
    its device and inode: moved (with its sidecar, checked apart), not copied."""
    if not isinstance(stamped, dict):
        return False
    if stamped == dict(where):
        return True
    return "ino" in where and all(stamped.get(k) == where[k] for k in ("dev", "ino"))


def rotate_replica_id(
    conn: Connection, new_id: str, signing_key: bytes
) -> tuple[str, tuple[str, ...]]:
    """Retire the current replica id for ``new_id`` (the id of ``signing_key``'s public key);
    return (new id, past ids)."""
    values = read_meta(conn)
    past: list[str] = json.loads(values.get("past_replica_ids", "[]"))
    past.append(values["replica_id"])
    _set_meta(
        conn,
        {
            "replica_id": new_id,
            "signing_key": signing_key.hex(),
            "past_replica_ids": json.dumps(past),
        },
    )
    return new_id, tuple(past)
