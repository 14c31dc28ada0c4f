"""A read-only report of a database (what ``shoal inspect`` prints), as plain records.

:func:`read_report` is a plain function over a SQLAlchemy ``Connection`` that only SELECTs:
every object's state joined with the log entries not yet folded into it (an object is named
by its key and type: a key that two peers wrote offline as two types shows both), its type, value,
siblings and version vector, plus the database's identity, log size, pending hints, the
writes held per origin and the known peers. A deleted object (one whose state is not
``is_live()``: deleted, or emptied) is left out of the objects and counted in
``deleted``, as the engine and ``Peer.keys()`` leave it out; :func:`read_keys` lists the
keys holding a live object and counts the others. :func:`report_database` opens the database without
writing to it (SQLite: a read-only connection, so neither the database file nor its identity
sidecar changes, though SQLite may leave the empty ``-wal`` and ``-shm`` files a reader of a
WAL database needs; PostgreSQL: an ordinary connection that only reads) and calls it. Nothing here
formats text: the command line does.

An older schema is not migrated here (migrating writes): :func:`read_report` refuses any
version but :data:`~store.schema.SCHEMA_VERSION` and says that opening the database with
the store migrates it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, func, select
from sqlalchemy.ext.asyncio import create_async_engine

import crdt

from . import ondemand, schema, sql
from .errors import StoreError
from .location import SQLITE_MAGIC, database_url, describe_database
from .lock import read_head
from .writer import install_begin

__all__ = [
    "DatabaseReport",
    "KeysReport",
    "ObjectReport",
    "PeerReport",
    "Progress",
    "read_keys",
    "read_report",
    "report_database",
    "report_keys",
]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: rows read so far of the total to read; every 500 rows and at
the end."""

_PROGRESS_EVERY = 500
_KEYS_PAGE = 1000
_OBJECTS_PAGE = 500
_T = TypeVar("_T")


#: The kind clashes inside one map: ``(path, kinds)`` each, the path the keys from the map down.
MapClashes = tuple[tuple[tuple[Any, ...], tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class ObjectReport:
    """One key: ``value`` in JSON form (a set as a sorted list, siblings as a list),
    ``siblings`` the number of concurrent values of a multi-value register (None for the
    other types) and the version vector of its causal context (for a counter, per replica
    the amounts it added and took away; empty for an LWW register, which has none)."""

    key: str
    kind: str
    value: Any
    siblings: int | None
    version_vector: dict[str, int]


@dataclass(frozen=True, slots=True)
class PeerReport:
    """A peer this database knows of."""

    replica_id: str
    address: str | None
    site: str | None
    forgotten: bool


@dataclass(frozen=True, slots=True)
class DatabaseReport:
    """Everything ``shoal inspect`` shows of one database.

    ``keys`` counts the live objects, listed in ``objects`` (only ``key``'s when one was
    asked for; a key holding two types counts twice); ``deleted`` the objects left out
    because they are not live (deleted or emptied; with ``key``, that key's: a key whose
    objects are all deleted has ``objects`` empty and ``deleted`` above 0); ``log_size`` the
    delta log entries read; ``applied`` the log dots this database holds per origin, over
    every partition (how many of each replica's writes it has); ``kind_clashes`` the keys
    holding live objects of several types, with their types; ``map_clashes`` per live map,
    its keys holding several types (updated concurrently as two kinds: see
    :class:`crdt.ORMap`), each as ``(path, kinds)`` (the path's keys in JSON form).
    """

    db: str
    replica_id: str | None
    schema_version: int
    keys: int
    log_size: int
    pending_hints: int
    applied: dict[str, int]
    peers: tuple[PeerReport, ...]
    objects: tuple[ObjectReport, ...]
    kind_clashes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    deleted: int = 0
    map_clashes: dict[str, MapClashes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeysReport:
    """What :func:`read_keys` found: ``listed`` keys holding a live object (handed to
    ``emit``) and ``deleted`` keys holding objects, none live (left out)."""

    listed: int
    deleted: int


def _json_value(value: Any) -> Any:
    """A CRDT value in JSON form: sets become sorted lists (by their JSON text)."""
    if isinstance(value, frozenset | set):
        return sorted((_json_value(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def _version_vector(state: Any) -> dict[str, int]:
    ctx = getattr(state, "context", None)  # causal types: the compact part of the context
    if ctx is not None:
        vv = ctx.vv
        return dict(sorted((vv if isinstance(vv, dict) else vv.to_dict()).items()))
    # Counters, read from their canonical encoding: per replica, what it added (and, for a
    # PN-counter, what it took away): the count of its operations, by weight.
    encoded = state.to_dict()
    out: dict[str, int] = {}
    for part in ("counts", "p", "n"):
        for replica, n in encoded.get(part, {}).items():
            out[replica] = out.get(replica, 0) + n
    return dict(sorted(out.items()))


def read_report(
    conn: Connection,
    db: str,
    key: str | None = None,
    progress: Progress | None = None,
    emit: Callable[[ObjectReport], None] | None = None,
) -> DatabaseReport:
    """The report of the database behind ``conn`` (named ``db`` in the report and in
    errors), or of its one ``key``; SELECTs only. ``ValueError`` for a database that is not
    shoal's or has another schema version; :class:`~store.errors.CorruptBlob` for a stored
    state or delta that does not decode.

    With ``emit``, each live object is handed to it in (key, type) order as it is read and
    the report's ``objects`` is empty: memory then holds the log not yet folded into the
    objects and a page of objects, whatever their number (the objects are read in pages of
    :data:`_OBJECTS_PAGE`)."""
    version = _check_version(conn, db)
    meta = sql.read_meta(conn)
    c = schema.objects.c
    count_q = select(func.count()).select_from(schema.objects)
    if key is not None:
        count_q = count_q.where(c.key == key)
    total = conn.execute(count_q).scalar_one() + sql.count_log(conn, key)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None and done % _PROGRESS_EVERY == 0:
            progress(done, total)

    # The log not yet folded into the objects (after a crash; the store folds it at its next
    # open), joined per object first, so that each object is complete when it is read.
    pending: dict[tuple[str, str], Any] = {}  # by (key, kind)
    log_size = 0
    for logged in sql.iter_log(conn, key):  # log dots once each, deltas checked
        delta = crdt.from_dict(logged.delta)
        oid = (logged.key, logged.kind)
        if oid in pending:
            pending[oid].merge(delta)
        else:
            pending[oid] = delta
        log_size += 1
        tick()
    kept: list[ObjectReport] = []
    out = kept.append if emit is None else emit
    live = deleted = 0
    kinds: dict[str, tuple[str, ...]] = {}
    maps: dict[str, MapClashes] = {}
    current: tuple[str | None, list[str]] = (None, [])  # the key being read, its live kinds

    def visit(oid: tuple[str, str], state: Any) -> None:
        nonlocal live, deleted, current
        if not state.is_live():
            deleted += 1
            return
        live += 1
        k, kind = oid
        if current[0] != k:
            current = (k, [])
        current[1].append(kind)
        if len(current[1]) > 1:
            kinds[k] = tuple(current[1])
        if kind == "ormap":
            maps.update(_map_clashes([(k, state)]))
        out(_object(k, state))

    # Objects stored without a row of their own (written only in the log) in their place.
    log_only = sorted(pending)
    at = 0
    for row in _objects(conn, key):
        oid = (row.key, row.kind)
        while at < len(log_only) and log_only[at] < oid:
            if log_only[at] in pending:  # (else: merged into its stored object below)
                visit(log_only[at], pending.pop(log_only[at]))
            at += 1
        state = crdt.from_dict(sql.decode_blob("objects", row.key, row.kind, row.state))
        delta = pending.pop(oid, None)
        if delta is not None:
            state.merge(delta)
        visit(oid, state)
        tick()
    for oid in log_only[at:]:
        if oid in pending:
            visit(oid, pending.pop(oid))
    if progress is not None:
        progress(total, total)
    return DatabaseReport(
        db=db,
        replica_id=meta.get("replica_id"),
        schema_version=version,
        keys=live,
        log_size=log_size,
        pending_hints=conn.execute(select(func.count()).select_from(schema.hints)).scalar_one(),
        applied=_applied(conn),
        peers=tuple(
            PeerReport(r.replica_id, r.address, r.site, bool(r.forgotten))
            for r in conn.execute(select(schema.peers).order_by(schema.peers.c.replica_id))
        ),
        objects=tuple(kept),
        kind_clashes=kinds,
        deleted=deleted,
        map_clashes=dict(sorted(maps.items())),
    )


def _objects(conn: Connection, key: str | None) -> Iterator[Any]:
    """The stored objects (of ``key``, if given) in (key, kind) code-point order, in one
    query whose rows are fetched :data:`_OBJECTS_PAGE` at a time (``yield_per``: a server-side
    cursor on PostgreSQL; SQLite's cursor steps through the primary key's index)."""
    c = schema.objects.c
    q = select(c.key, c.kind, c.state).order_by(ondemand._ordered(conn, c.key), c.kind)
    if key is not None:
        q = q.where(c.key == key)
    yield from conn.execute(q.execution_options(yield_per=_OBJECTS_PAGE))


def _map_clashes(maps: Iterable[tuple[str, Any]]) -> dict[str, MapClashes]:
    """Per map holding any, its keys updated concurrently as several kinds, each by its
    path (the keys from the map down: one key for the map's own), in the order of the
    paths' JSON texts."""
    found: dict[str, MapClashes] = {}
    for key, state in maps:
        clashes = state.clash_paths()
        if clashes:
            paths = [(tuple(_json_value(list(p))), kinds) for p, kinds in clashes.items()]
            found[key] = tuple(sorted(paths, key=lambda item: json.dumps(item[0])))
    return found


def _check_version(conn: Connection, db: str) -> int:
    where = describe_database(db)  # (an absolute path, as every message names a database)
    try:
        version = sql.read_schema_version(conn)
    except StoreError as exc:  # tables, but not ours: said as a peer's open says it
        raise ValueError(f"{where} is {exc}") from exc
    if version is None:
        raise ValueError(f"{where} is not a shoal database (no tables)")
    if version != schema.SCHEMA_VERSION:
        raise ValueError(
            f"{where} has schema version {version}; this shoal reads version "
            f"{schema.SCHEMA_VERSION} (opening it with the store migrates an older one)"
        )
    return version


def _object(key: str, state: Any) -> ObjectReport:
    value = state.value
    return ObjectReport(
        key=key,
        kind=state.kind,
        value=_json_value(value),
        siblings=len(value) if state.kind == "mvregister" else None,
        version_vector=_version_vector(state),
    )


def _applied(conn: Connection) -> dict[str, int]:
    # Log dots applied, per origin, over every partition (each partition numbers its own
    # log dots).
    applied: dict[str, int] = {}
    for row in conn.execute(select(schema.summaries)):
        ctx = json.loads(row.ctx)
        for origin, n in ctx.get("vv", {}).items():
            applied[origin] = applied.get(origin, 0) + int(n)
        for origin, _n in ctx.get("cloud", []):
            applied[origin] = applied.get(origin, 0) + 1
    return dict(sorted(applied.items()))


def read_keys(
    conn: Connection, db: str, prefix: str | None, emit: Callable[[list[str]], None]
) -> KeysReport:
    """Every key holding a live object (starting with ``prefix``) in code-point order,
    handed to ``emit`` a page at a time, and how many keys were left out as deleted. SELECTs
    only. The keys of stored objects are read in pages (memory bounded whatever their
    number); the log not yet folded into the objects (after a crash: the store folds it at
    its next open) is folded here in memory, so a key it writes is listed and a key it
    deletes is not (:func:`store.ondemand.unfolded_liveness`)."""
    _check_version(conn, db)
    tail = {
        k: seen
        for k, seen in ondemand.unfolded_liveness(conn).items()
        if prefix is None or k.startswith(prefix)
    }
    deleted = ondemand.count_deleted_keys(conn, prefix)
    for stored, now in tail.values():  # the stored flags, as the fold will change them
        deleted += (not now and stored is not False) - (now and stored is False)
    born = sorted(k for k, (_stored, now) in tail.items() if now)
    after: str | None = None
    total = 0
    while True:  # ends: every page lists keys above the last one
        page = ondemand.keys_page(conn, prefix, after, _KEYS_PAGE)
        last = len(page) < _KEYS_PAGE
        extra = [k for k in born if (after is None or k > after) and (last or k <= page[-1])]
        merged = sorted({k for k in page if tail.get(k, (None, True))[1]} | set(extra))
        if merged:
            emit(merged)
            total += len(merged)
        if last:
            return KeysReport(total, deleted)
        after = page[-1]


def report_keys(
    db: str | os.PathLike[str], prefix: str | None, emit: Callable[[list[str]], None]
) -> KeysReport:
    """Open ``db`` as :func:`report_database` does and run :func:`read_keys` on it."""
    return _on_database(db, lambda conn, name: read_keys(conn, name, prefix, emit))


def report_database(
    db: str | os.PathLike[str],
    key: str | None = None,
    progress: Progress | None = None,
    emit: Callable[[ObjectReport], None] | None = None,
) -> DatabaseReport:
    """Open ``db`` (named any way :func:`store.location.database_url` accepts) without writing
    and return :func:`read_report` of it (``emit``: its objects streamed, as there).
    ``ValueError`` naming the path when there is no shoal database there (missing, empty,
    not a SQLite file).

    Works on read-only media (see :func:`_on_database`). Blocking: it runs its own event
    loop for PostgreSQL (call it from synchronous code).
    """
    return _on_database(db, lambda conn, name: read_report(conn, name, key, progress, emit))


def _on_database(db: str | os.PathLike[str], fn: Callable[[Connection, str], _T]) -> _T:
    """``fn(connection, name)`` on ``db`` (named any way :func:`store.location.database_url`
    accepts) opened without writing; ``ValueError`` naming the path when there is no shoal
    database there (missing, empty, not a SQLite file).

    Works on read-only media: a SQLite database in WAL mode needs its ``-shm`` file to be
    read, and SQLite cannot create one in a read-only directory; when there is none and no
    write-ahead log either (the database was closed cleanly: everything is in the main
    file), the file is read as immutable instead.
    """
    name = os.fspath(db)
    url = database_url(name)
    if url.get_backend_name() == "postgresql":
        return asyncio.run(_run_async(url.render_as_string(False), name, fn))
    path = Path(url.database or "")
    options = _read_only_options(path)
    # mode=ro: SQLite refuses every write on this connection, whatever the code above does.
    engine = create_engine(f"sqlite:///file:{path.resolve()}?{options}&uri=true")
    # One snapshot for the whole report, as on PostgreSQL (_run_async): the driver begins no
    # transaction for reads, so each statement would see the latest commit, and a peer's
    # compaction between two reads could delete the seals of segments already read.
    install_begin(engine)
    try:
        with engine.begin() as conn:
            return fn(conn, name)
    finally:
        engine.dispose()


def _read_only_options(path: Path) -> str:
    """The SQLite URI options that read ``path`` without writing anything (see above)."""
    if path.is_dir():  # (as a peer's open says it)
        raise ValueError(f"cannot open database {path}: it is a directory")
    if not path.is_file():
        raise ValueError(f"no database at {path}")
    try:
        # Not open(): closing a descriptor of the file would drop the locks that SQLite
        # holds on it in this process (an application's own peer, say).
        head = read_head(path, 16)
    except OSError as exc:
        raise ValueError(f"cannot read database {path}: {exc.strerror or exc}") from exc
    if not head:
        raise ValueError(f"{path} is an empty file (0 bytes), not a shoal database")
    if head != SQLITE_MAGIC:
        raise ValueError(f"{path} is not a shoal database (not a SQLite file)")
    shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
    if shm.exists() or os.access(path.parent, os.W_OK):
        return "mode=ro"
    if wal.exists() and wal.stat().st_size > 0:
        raise ValueError(
            f"cannot read {path} here: its write-ahead log {wal.name} holds commits that SQLite "
            f"reads only through {shm.name}, which it cannot create in this read-only "
            "directory; copy the database files to a writable directory"
        )
    return "mode=ro&immutable=1"


async def _run_async(url: str, name: str, fn: Callable[[Connection, str], _T]) -> _T:
    # One snapshot for the whole report: a peer's compaction meanwhile may delete the seals
    # of the segments already read (see store.schema).
    engine = create_async_engine(url, isolation_level="REPEATABLE READ")
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn, name)
    finally:
        await engine.dispose()
