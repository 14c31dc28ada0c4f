"""The database schema (SQLAlchemy Core), its version, and the migrations that reach it.

Tables (version 7)::

    meta(name PK, value)                    schema_version, replica_id, signing_key (hex of
                                            the Ed25519 private key the id derives from),
                                            partitions, identity (stamp, JSON),
                                            past_replica_ids (JSON), running (JSON,
                                            SQLite: the run that has it open, until a
                                            clean close; see store.opening)
    objects(key, kind, partition, state, live)
                                            checkpoints, PK (key, kind): an object is named by
                                            its key and kind (a key two peers wrote offline as
                                            two kinds holds both); index (partition, key) for
                                            snapshots; ``live``: the state's ``is_live()``
                                            (see below), with a partial index on the key of
                                            the live rows for the listing
    log_segments(id PK, partition, origin, first_seq, last_seq, entries, seals)
                                            the delta log, append-only: one row per
                                            (partition, origin) per transaction (see below);
                                            index (partition, origin, last_seq) for paging and
                                            compaction
    summaries(partition PK, ctx)            the encoded CausalContext of applied log dots
    hints(id PK, target, origin, partition, seq, key, kind, delta, stored_ms, seal)
                                            unique (target, origin, partition, seq); ``seal``
                                            the id of its entry's seal (or NULL)
    seals(id PK, seal)                      each seal once, by a hash of its text (see
                                            below)
    peers(replica_id PK, address, site, summary, last_seen_ms, forgotten, card)

Blobs (``state``, ``delta``, ``ctx``, ``summary``, ``card``) are the JSON text of the crdt
``to_dict()`` forms: the store's own encoding (compact) or, for deltas and checkpoints, the
text the engine hands over (``delta_json``, ``state_json``), stored as it is.

Log segments. A transaction that appends N log entries writes one ``log_segments`` row per
(partition, origin) it touches, not N rows: ``entries`` is the JSON array of ``[seq, key,
kind, delta_text]`` in increasing ``seq``, where ``delta_text`` is the delta's JSON text as a
JSON *string*; ``first_seq``/``last_seq`` are its first and last ``seq``. An entry signed by
its origin has a fifth element, the index of its seal in the segment's ``seals``, the JSON
array of the ids of the distinct seals of its entries (a hint's ``seal`` is the id of its
entry's seal, or NULL). A group larger than :data:`SEGMENT_MAX_ENTRIES` entries, or whose
keys and delta texts pass :data:`SEGMENT_MAX_BYTES`, is cut into several segments (a single
larger entry gets a segment of its own). The primary key is the row number, so appends go to
the end of the table's B-tree, and a higher id means stored later. (Written this way, a
transaction of 1000 deltas is a few rows instead of 1000: ``benchmarks/store_bench.py``
measures the store against raw sqlite3 writing the same segments.)

Seals. A seal (``[origin, key, digests, signature]``, see ``sync.signing``) covers up to
128 entries of its origin, whose keys may fall in as many partitions: about 2.9 KB of JSON
that every segment and hint of those entries would repeat (version 6 did: ten times the
entries' own text for writes spread over the partitions). So each seal is stored once, in
``seals``: ``seal`` its compact JSON text (:func:`seal_text`), ``id`` the hex of its BLAKE2b
digest of 16 bytes (:func:`seal_id`), so that equal seals share a row; a transaction inserts
the seals its segments and hints name (``ON CONFLICT DO NOTHING``) before them. The readers
look up the ids of a chunk or page of segments, or of the hints, in one query; an id missing
from ``seals`` is a :class:`~store.errors.CorruptBlob` naming the segment or hint, and so is a
row whose text is not the one its id names. A seal no segment or hint names is garbage: a
transaction that compacts the log (deletes or rewrites a segment) deletes every such seal
in one statement (:func:`store.writes.drop_unused_seals`), which reads the ``seals`` of
every segment, and so the whole log; so a peer's compactions do it only once the
transactions since the last sweep named as many seals as that sweep left, at least
:data:`store.writes.SWEEP_MIN` (:class:`store.writes.SealSweep`; the first compaction on a
connection, one after a failed transaction, and :meth:`store.Store.compact` always sweep):
unused seals stay within about the live ones. A seal that only dropped hints named stays
until the next sweep.

Segments are never merged, so the seq ranges of one (partition, origin) may overlap (a delta
that arrived out of order) and a log dot may be stored twice (a delta persisted again): the
readers (:func:`store.sql.iter_log`, :func:`store.sql.deltas_page`) merge each (partition,
origin) in seq order and keep the *first stored* (lowest id) entry of a dot, which is the
contract the old ``ON CONFLICT DO NOTHING`` gave. Compaction deletes the segments wholly at or
below a watermark and rewrites one that straddles it without those entries (same id).

Liveness. A deleted object stays stored: its state is the observed reset that remembers
what the delete removed, which a later or concurrent write needs to merge correctly. So the
listing of keys (:func:`store.ondemand.keys_page`) cannot go by rows; it goes by ``live``,
written with every checkpoint (the engine says it, from the object's ``is_live()``; any
other caller's state is decoded to find out) and by the log fold at open. The index
``ix_objects_live_key`` holds the key of the live rows only (``WHERE live``), in code-point
order (PostgreSQL: ``key COLLATE "C"``), so a page of keys reads only live rows in order,
whatever the number of deleted ones.

Versioning: ``meta.schema_version`` holds the version. ``MIGRATIONS[k]`` moves a database from
version ``k`` to ``k + 1`` inside the opening transaction, so a failed migration leaves the
database as it was. A database newer than :data:`SCHEMA_VERSION` is refused
(:class:`~store.errors.SchemaVersionMismatch`) before anything is written.

Version 0 is the pre-release layout: no ``objects.partition``, no ``kind`` in ``log`` and
``hints`` (the kind was only inside the blob), no index for snapshots. Migration 0 -> 1 adds
them, computing partitions with the store's partition function and kinds from the blobs'
``"type"`` field.

Version 1 kept the log one row per entry: ``log(partition, origin, seq, key, kind, delta)``,
PK ``(partition, origin, seq)``. Migration 1 -> 2 packs its rows into segments (one per
(partition, origin), cut as above) and drops it.

Version 2 named an object by its key alone (``objects.key`` the primary key) and refused a
write of another kind to a stored key. Migration 2 -> 3 makes the primary key ``(key, kind)``
(rows kept as they are): SQLite rebuilds the table (it cannot alter a primary key),
PostgreSQL swaps the constraint.

Version 3 had no ``live`` column: a listing showed deleted objects. Migration 3 -> 4 adds it
(``NOT NULL``, true by default), decodes every stored state once, in pages of
:data:`MIGRATION_PAGE` rows in (key, kind) order (memory bounded whatever the number of
objects), marks the ones that are not live, and creates the index. Decoding at the
migration, rather than marking every row live and waiting for the next checkpoint, is what
keeps a listing right at once: an object deleted before the upgrade may never be written
again, so no checkpoint would ever correct it. It costs one pass over the objects, once.
A state that does not decode fails the migration (:class:`~store.errors.CorruptBlob`, the
database left at version 3).

Version 4 had no signing key and no seals. Migration 4 -> 5 adds ``log_segments.seals`` and
``hints.seal`` and deletes the hints (unsigned, no peer would take them; anti-entropy and
state transfer repair what they held between homes); the log's entries stay (unsigned: a
peer that lacks one gets a state transfer instead). :func:`store.sql.open_database` then
gives the database a key, and so a new replica id.

Version 5 kept no peer's card. Migration 5 -> 6 adds ``peers.card`` (nullable): the JSON
text of the peer's own signed card (``sync.member_cards``), which its replica holds again
at the next start, so that an older card of that peer replayed by a member after a restart
is refused as it was before it. Rows from before have none (the next card of each peer
fills it in).

Version 6 kept each seal inline: ``log_segments.seals`` the JSON array of the seals
themselves, ``hints.seal`` the seal's JSON. Migration 6 -> 7 creates ``seals`` and moves
them into it, in pages of :data:`MIGRATION_PAGE` rows by id, rewriting the columns to ids.
A seal that is not four strings fails the migration (:class:`~store.errors.CorruptBlob`,
the database left at version 6).

Version 7 held only seals signed alone. Version 8 may also hold seals of a group, whose
``signature`` text is longer (``sync.signing``: one signature over several seals, link
protocol 7): a shoal of version 7 would send them to its peers, which refuse them and close
the link, over and over. So migration 7 -> 8 changes no table; it moves the version, and a
shoal of version 7 refuses the database (newer than it supports) rather than serve it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from hashlib import blake2b
from typing import Any

import msgspec
from pydantic_core import to_json
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    insert,
    inspect,
    or_,
    select,
    text,
    true,
    update,
)

import crdt

from .errors import CorruptBlob

__all__ = [
    "IN_LIST_MAX",
    "LIVE_INDEX",
    "MIGRATIONS",
    "MIGRATION_PAGE",
    "SCHEMA_VERSION",
    "SEGMENT_COLUMNS",
    "SEGMENT_MAX_BYTES",
    "SEGMENT_MAX_ENTRIES",
    "Migration",
    "SealIds",
    "SegmentEntry",
    "create_live_index",
    "hints",
    "insert_seals",
    "log_segments",
    "meta",
    "metadata",
    "objects",
    "pack_segments",
    "peers",
    "seal_id",
    "seal_text",
    "seals",
    "segment_fields",
    "summaries",
    "widen_hint_ids",
]

SCHEMA_VERSION = 8

IN_LIST_MAX = 500
"""Values per ``IN (...)`` list of a statement: well under every backend's parameter limit."""

SEGMENT_MAX_ENTRIES = 1000
"""At most this many entries in one log segment."""

SEGMENT_MAX_BYTES = 1 << 20
"""A segment is closed once its entries' keys and delta texts reach this many characters (so
its ``entries`` text stays near 1 MiB: over by at most one entry plus the JSON escaping)."""

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

objects = Table(
    "objects",
    metadata,
    Column("key", Text, primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("state", Text, nullable=False),
    # True while the state is_live() (a deleted or emptied object is not): what lists it.
    Column("live", Boolean, nullable=False, server_default=true()),
    Index("ix_objects_partition_key", "partition", "key"),
)

LIVE_INDEX = "ix_objects_live_key"
"""The partial index of the live objects' keys (made by :func:`create_live_index`)."""

MIGRATION_PAGE = 500
"""Object rows decoded per page by the migration 3 -> 4."""


def create_live_index(conn: Connection) -> None:
    """Create :data:`LIVE_INDEX`: the keys of the live rows, in code-point order, the order
    :func:`store.ondemand.keys_page` lists them in (PostgreSQL compares ``COLLATE "C"``,
    SQLite's default ``BINARY`` is that order already). Not in ``metadata``: its column
    expression differs per dialect."""
    # The predicate is written as SQLAlchemy renders ``objects.c.live`` in a WHERE clause on
    # each dialect: SQLite uses a partial index only for a query term that is the same.
    if conn.dialect.name == "postgresql":
        column, where = 'key COLLATE "C"', "live"
    else:
        column, where = "key", "live = 1"
    conn.execute(
        text(f"CREATE INDEX IF NOT EXISTS {LIVE_INDEX} ON objects ({column}) WHERE {where}")
    )


log_segments = Table(
    "log_segments",
    metadata,
    # INTEGER PRIMARY KEY is SQLite's rowid (appends go to the B-tree's end); BIGSERIAL on
    # PostgreSQL.
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("partition", Integer, nullable=False),
    Column("origin", Text, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("entries", Text, nullable=False),
    Column("seals", Text, nullable=False, server_default="[]"),
    Index("ix_log_segments_partition_origin_last_seq", "partition", "origin", "last_seq"),
)

# The version-1 log (one row per entry), only for the migrations: not in ``metadata``.
_log_v1 = Table(
    "log",
    MetaData(),
    Column("partition", Integer, nullable=False),
    Column("origin", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("key", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("delta", Text, nullable=False),
    PrimaryKeyConstraint("partition", "origin", "seq", name="pk_log"),
)

# The version-3 objects table (no ``live``), only for the migrations: not in ``metadata``.
_objects_v3 = Table(
    "objects",
    MetaData(),
    Column("key", Text, primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Index("ix_objects_partition_key", "partition", "key"),
)

SegmentEntry = tuple[Any, ...]
"""One entry of a segment: ``(seq, key, kind, delta_text)``, or with a fifth element, the
seal of its origin (a sequence of four strings, or None). :func:`pack_segments` also takes an
entry object with the attributes ``seq``, ``key``, ``kind``, ``delta_json`` and ``seal`` (the
engine's log entry, checked by the store's ``prepare``) in place of the tuple."""

SEGMENT_COLUMNS = ("partition", "origin", "first_seq", "last_seq", "entries", "seals")
"""The columns of a ``log_segments`` row as :func:`pack_segments` makes it (the id aside)."""


def segment_fields(entry: Any) -> tuple[int, str, str, str, Any]:
    """``(seq, key, kind, delta_text, seal)`` of a segment entry, tuple or object."""
    if type(entry) is tuple:
        return entry[0], entry[1], entry[2], entry[3], entry[4] if len(entry) > 4 else None
    return entry.seq, entry.key, entry.kind, entry.delta_json, getattr(entry, "seal", None)


def _seq(entry: Any) -> int:
    seq: int = entry[0] if type(entry) is tuple else entry.seq
    return seq


SealIds = dict[Any, tuple[str, str]]
"""Per seal met (the entries' own seal objects, or a hint's seal text), its id and text:
what :func:`pack_segments` fills in, for its caller to insert into ``seals``."""


def seal_text(seal: Any) -> str:
    """The stored text of a seal (four strings): its compact JSON array."""
    return to_json(list(seal)).decode()


def seal_id(text: str) -> str:
    """The id of a seal stored as ``text``: the hex of its BLAKE2b digest of 16 bytes."""
    return blake2b(text.encode(), digest_size=16).hexdigest()


# A segment's text, written by msgspec: the bytes pydantic-core's ``to_json`` writes for its
# lists of ints and strings (tests/store/test_segments.py), in less time; every entry a peer
# logs goes through it.
_segment_json = msgspec.json.Encoder().encode


def _packed(entries: list[Any], found: SealIds) -> tuple[str, str]:
    """The ``entries`` and ``seals`` texts of one segment: each sealed entry gets the index of
    its seal in the segment's list of distinct seal ids (each seal's id and text put in
    ``found``, computed once per seal object)."""
    index_of: dict[Any, int] = {}
    out: list[SegmentEntry] = []
    append = out.append
    for entry in entries:
        seq, key, kind, text, seal = segment_fields(entry)
        if seal is None:
            append((seq, key, kind, text))
        else:
            index = index_of.get(seal)
            if index is None:
                index = index_of[seal] = len(index_of)
            append((seq, key, kind, text, index))
    if not index_of:
        return _segment_json(out).decode(), "[]"
    ids: list[str] = []
    for seal in index_of:
        known = found.get(seal)
        if known is None:
            stored = seal_text(seal)
            known = found[seal] = (seal_id(stored), stored)
        ids.append(known[0])
    return _segment_json(out).decode(), _segment_json(ids).decode()


def pack_segments(
    partition: int, origin: str, entries: Iterable[Any], found: SealIds | None = None
) -> Iterator[tuple[int, str, int, int, str, str]]:
    """``(partition, origin, first_seq, last_seq, entries_text, seals_text)`` rows holding
    ``entries`` (already in increasing seq, one per seq; :data:`SegmentEntry` tuples or entry
    objects), cut by :data:`SEGMENT_MAX_ENTRIES` and :data:`SEGMENT_MAX_BYTES`. The texts
    are one encoder call each (msgspec's). ``seals_text`` names the seals by id; their ids and
    texts go in ``found``, which the caller stores in ``seals``."""
    if found is None:
        found = {}
    if isinstance(entries, list) and len(entries) <= SEGMENT_MAX_ENTRIES:
        # The usual case, one segment: encode first, measure after.
        text, sealed = _packed(entries, found)
        if len(text) <= SEGMENT_MAX_BYTES:
            if entries:
                yield partition, origin, _seq(entries[0]), _seq(entries[-1]), text, sealed
            return
    chunk: list[Any] = []
    size = 0
    for entry in entries:
        chunk.append(entry)
        _, key, _, text, _ = segment_fields(entry)
        size += len(key) + len(text)
        if len(chunk) >= SEGMENT_MAX_ENTRIES or size >= SEGMENT_MAX_BYTES:
            yield partition, origin, _seq(chunk[0]), _seq(chunk[-1]), *_packed(chunk, found)
            chunk, size = [], 0
    if chunk:
        yield partition, origin, _seq(chunk[0]), _seq(chunk[-1]), *_packed(chunk, found)


summaries = Table(
    "summaries",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("ctx", Text, nullable=False),
)

hints = Table(
    "hints",
    metadata,
    # 64 bits everywhere (BIGSERIAL on PostgreSQL: a SERIAL's 2**31 ids, never reused, ran
    # out within a busy relay's life; see widen_hint_ids).
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("target", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("key", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("delta", Text, nullable=False),
    Column("stored_ms", BigInteger, nullable=False),
    Column("seal", Text, nullable=True),
    UniqueConstraint("target", "origin", "partition", "seq", name="uq_hints_dot"),
)

seals = Table(
    "seals",
    metadata,
    Column("id", Text, primary_key=True),  # seal_id(seal): the hex of 16 bytes of BLAKE2b
    Column("seal", Text, nullable=False),  # seal_text(seal): [origin, key, digests, signature]
)

peers = Table(
    "peers",
    metadata,
    Column("replica_id", Text, primary_key=True),
    Column("address", Text, nullable=True),
    Column("site", Text, nullable=True),
    Column("summary", Text, nullable=True),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("forgotten", Boolean, nullable=False),
    Column("card", Text, nullable=True),
)

Migration = Callable[[Connection, Callable[[str], int]], None]
"""``migration(conn, partition_of)``: move the database one version forward, in place."""


def _kind_of_blob(table: str, key: str, blob: str) -> str:
    try:
        decoded: Any = json.loads(blob)
    except ValueError as exc:
        raise CorruptBlob(key, table, f"not JSON ({exc})") from exc
    kind = decoded.get("type") if isinstance(decoded, dict) else None
    if not isinstance(kind, str):
        raise CorruptBlob(key, table, 'no "type" field to migrate the kind from')
    return kind


def _migrate_0_to_1(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v0 -> v1: objects.partition (+ index), log.kind, hints.kind."""
    conn.execute(text("ALTER TABLE objects ADD COLUMN partition INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE log ADD COLUMN kind VARCHAR(32) NOT NULL DEFAULT ''"))
    conn.execute(text("ALTER TABLE hints ADD COLUMN kind VARCHAR(32) NOT NULL DEFAULT ''"))
    keys = [row.key for row in conn.execute(select(objects.c.key))]
    if keys:
        conn.execute(
            update(objects).where(objects.c.key == bindparam("k")).values(partition=bindparam("p")),
            [{"k": key, "p": partition_of(key)} for key in keys],
        )
    log = _log_v1
    for table, pk in ((log, (log.c.partition, log.c.origin, log.c.seq)), (hints, (hints.c.id,))):
        rows = conn.execute(select(*pk, table.c.key, table.c.delta)).all()
        if not rows:
            continue
        names = [c.name for c in pk]
        stmt = update(table).values(kind=bindparam("new_kind"))
        for column in pk:
            stmt = stmt.where(column == bindparam(f"b_{column.name}"))
        conn.execute(
            stmt,
            [
                {
                    **{f"b_{name}": row[i] for i, name in enumerate(names)},
                    "new_kind": _kind_of_blob(table.name, row.key, row.delta),
                }
                for row in rows
            ],
        )
    for index in objects.indexes:
        index.create(conn, checkfirst=True)


def _migrate_1_to_2(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v1 -> v2: the log's rows packed into ``log_segments``, then ``log`` dropped."""
    del partition_of  # unused: the rows keep their partitions
    log_segments.create(conn)
    log = _log_v1
    rows = conn.execute(
        select(
            log.c.partition, log.c.origin, log.c.seq, log.c.key, log.c.kind, log.c.delta
        ).order_by(log.c.partition, log.c.origin, log.c.seq)
    )
    pending: list[tuple[int, str, int, int, str, str]] = []
    group: tuple[int, str] | None = None
    entries: list[SegmentEntry] = []
    for part, origin, seq, key, kind, delta in rows:
        if (part, origin) != group:
            if group is not None:
                pending.extend(pack_segments(*group, entries))
            group, entries = (part, origin), []
        entries.append((seq, key, kind, delta))
        if len(pending) >= 500:
            _insert_segments(conn, pending)
            pending = []
    if group is not None:
        pending.extend(pack_segments(*group, entries))
    _insert_segments(conn, pending)
    log.drop(conn)


def _insert_segments(conn: Connection, rows: list[tuple[int, str, int, int, str, str]]) -> None:
    if rows:
        conn.execute(
            insert(log_segments), [dict(zip(SEGMENT_COLUMNS, row, strict=True)) for row in rows]
        )


def _migrate_2_to_3(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v2 -> v3: the objects' primary key becomes (key, kind); rows kept."""
    del partition_of  # unused: rows keep their partitions
    if conn.dialect.name == "postgresql":
        pk = conn.execute(
            text(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'objects'::regclass"
                " AND contype = 'p'"
            )
        ).scalar_one()
        conn.execute(text(f'ALTER TABLE objects DROP CONSTRAINT "{pk}"'))
        conn.execute(text("ALTER TABLE objects ADD PRIMARY KEY (key, kind)"))
        return
    # SQLite cannot change a primary key: rebuild the table under the new one.
    conn.execute(text("ALTER TABLE objects RENAME TO objects_v2"))
    for index in _objects_v3.indexes:
        conn.execute(text(f'DROP INDEX IF EXISTS "{index.name}"'))
    _objects_v3.create(conn)
    conn.execute(
        text(
            "INSERT INTO objects (key, kind, partition, state)"
            " SELECT key, kind, partition, state FROM objects_v2"
        )
    )
    conn.execute(text("DROP TABLE objects_v2"))


def _migrate_3_to_4(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v3 -> v4: ``objects.live``, from each state decoded once (in pages), and its index."""
    del partition_of  # unused: rows keep their partitions
    default = "TRUE" if conn.dialect.name == "postgresql" else "1"
    conn.execute(text(f"ALTER TABLE objects ADD COLUMN live BOOLEAN NOT NULL DEFAULT {default}"))
    c = objects.c
    after: tuple[str, str] | None = None
    while True:  # ends: every page reads further in (key, kind) order
        stmt = select(c.key, c.kind, c.state)
        if after is not None:
            stmt = stmt.where(or_(c.key > after[0], and_(c.key == after[0], c.kind > after[1])))
        rows = conn.execute(stmt.order_by(c.key, c.kind).limit(MIGRATION_PAGE)).all()
        dead = [
            {"b_key": key, "b_kind": kind}
            for key, kind, state in rows
            if not _state_of_blob(key, kind, state).is_live()
        ]
        if dead:
            conn.execute(
                update(objects)
                .where(c.key == bindparam("b_key"), c.kind == bindparam("b_kind"))
                .values(live=False),
                dead,
            )
        if len(rows) < MIGRATION_PAGE:
            break
        after = (rows[-1].key, rows[-1].kind)
    create_live_index(conn)


def _state_of_blob(key: str, kind: str, blob: str) -> crdt.CRDT:
    try:
        decoded: Any = json.loads(blob)
    except ValueError as exc:
        raise CorruptBlob(key, "objects", f"not JSON ({exc})") from exc
    if not isinstance(decoded, dict) or decoded.get("type") != kind:
        raise CorruptBlob(key, "objects", f"not the encoding of a {kind!r}")
    try:
        state: crdt.CRDT = crdt.from_dict(decoded)
    except crdt.DecodeError as exc:
        raise CorruptBlob(key, "objects", str(exc)) from exc
    return state


def _migrate_4_to_5(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v4 -> v5: ``log_segments.seals`` and ``hints.seal``; unsigned hints deleted (the
    signing key, and with it a new replica id, is settled by the identity check after)."""
    del partition_of  # unused
    # (A log made by migration 1 -> 2 was created with this version's columns already.)
    have = {col["name"] for col in inspect(conn).get_columns("log_segments")}
    if "seals" not in have:
        conn.execute(text("ALTER TABLE log_segments ADD COLUMN seals TEXT NOT NULL DEFAULT '[]'"))
    have = {col["name"] for col in inspect(conn).get_columns("hints")}
    if "seal" not in have:
        conn.execute(text("ALTER TABLE hints ADD COLUMN seal TEXT"))
    conn.execute(delete(hints))


def _migrate_5_to_6(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v5 -> v6: ``peers.card`` (none held yet)."""
    del partition_of  # unused
    # (A peers table made by an older version's creation may have it already.)
    have = {col["name"] for col in inspect(conn).get_columns("peers")}
    if "card" not in have:
        conn.execute(text("ALTER TABLE peers ADD COLUMN card TEXT"))


def _four_strings(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(type(part) is str for part in value)


def insert_seals(conn: Connection, rows: Iterable[tuple[str, str]]) -> None:
    """Store the seals ``(id, text)`` not stored yet (one executemany)."""
    params = [{"id": sid, "seal": stored} for sid, stored in rows]
    if params:
        conn.execute(
            text("INSERT INTO seals (id, seal) VALUES (:id, :seal) ON CONFLICT (id) DO NOTHING"),
            params,
        )


def _migrate_6_to_7(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v6 -> v7: the ``seals`` table; every segment's and hint's inline seals moved into it
    and named by id, in pages of :data:`MIGRATION_PAGE` rows by id."""
    del partition_of  # unused
    seals.create(conn, checkfirst=True)
    for table, column in ((log_segments, log_segments.c.seals), (hints, hints.c.seal)):
        ident = table.c.id
        after = 0
        while True:  # ends: every page reads further in id order
            rows = conn.execute(
                select(ident, column)
                .where(ident > after, column.is_not(None), column != "[]")
                .order_by(ident)
                .limit(MIGRATION_PAGE)
            ).all()
            found: dict[str, str] = {}
            changes: list[dict[str, Any]] = []
            for row_id, inline in rows:
                try:
                    value: Any = json.loads(inline)
                except ValueError:
                    value = None
                listed = [value] if table is hints else value
                if not isinstance(listed, list) or not all(_four_strings(s) for s in listed):
                    what = "seal is not" if table is hints else "seals are not a list of"
                    raise CorruptBlob(
                        f"{'hint' if table is hints else 'segment'} {row_id}",
                        table.name,
                        f"{what} four strings [origin, key, digests, signature]",
                    )
                ids = []
                for seal in listed:
                    stored = seal_text(seal)
                    ids.append(seal_id(stored))
                    found[ids[-1]] = stored
                new = ids[0] if table is hints else to_json(ids).decode()
                changes.append({"b_id": row_id, "new": new})
            insert_seals(conn, sorted(found.items()))
            if changes:
                conn.execute(
                    update(table)
                    .where(ident == bindparam("b_id"))
                    .values({column: bindparam("new")}),
                    changes,
                )
            if len(rows) < MIGRATION_PAGE:
                break
            after = rows[-1][0]


def widen_hint_ids(conn: Connection) -> None:
    """PostgreSQL: ``hints.id`` of 64 bits in a database made when it was a 32-bit SERIAL
    (after 2**31 hints, never reused, every commit holding a hint failed, and the relay
    stopped again at each restart). Idempotent, at every open; nothing to do on SQLite,
    whose integer keys are 64 bits."""
    if conn.dialect.name != "postgresql":
        return
    found = conn.execute(
        text(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'hints'"
            " AND column_name = 'id'"
        )
    ).scalar()
    if found == "integer":
        conn.execute(text("ALTER TABLE hints ALTER COLUMN id TYPE BIGINT"))
        sequence = conn.execute(text("SELECT pg_get_serial_sequence('hints', 'id')")).scalar()
        if sequence is not None:
            conn.execute(text(f"ALTER SEQUENCE {sequence} AS BIGINT MAXVALUE 9223372036854775807"))


def _migrate_7_to_8(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v7 -> v8: nothing in the tables (seals of a group may be stored from now on)."""
    del conn, partition_of  # unused


MIGRATIONS: list[Migration] = [
    _migrate_0_to_1,
    _migrate_1_to_2,
    _migrate_2_to_3,
    _migrate_3_to_4,
    _migrate_4_to_5,
    _migrate_5_to_6,
    _migrate_6_to_7,
    _migrate_7_to_8,
]
"""``MIGRATIONS[k]`` migrates version ``k`` to ``k + 1``; ``len(MIGRATIONS) == SCHEMA_VERSION``."""
