"""``Store``: the async, durable store -- a thin proxy over ``AsyncEngine`` plus group commit.

Theory of operation
-------------------
All storage logic is plain functions over a sync ``Connection`` (gathered in
:mod:`store.sql`, and :mod:`store.ondemand`); this class calls them through
``AsyncConnection.run_sync`` (reads) or its writer (writes, see below) and holds no data of
its own beyond the engine, the replica identity it settled at open (:mod:`store.opening`),
and the group-commit queue.

Group commit. ``apply(batch)`` validates and encodes the batch in the caller's task (bad input
raises there and touches nothing), then queues it. A single writer task, holding one
connection of its own (:mod:`store.writer`: for SQLite a synchronous connection in a thread
of its own, so that the transaction crosses into that thread once), takes everything queued
(up to ``max_batch_rows`` rows), writes it in
**one** transaction with one ``executemany`` per table (batches merged so that the result
equals applying them one after another; the log's entries appended as one segment row per
(partition, origin), see :mod:`store.schema`), commits, and only then resolves each caller's
await. A caller that finds nothing queued and nothing committing runs its transaction itself
(the same transaction, without two task switches); callers arriving meanwhile queue. If that
transaction fails, each batch is retried alone in its own transaction, so one caller's
failure fails only that caller. Because only the writer task
writes, SQLite transactions use ``BEGIN IMMEDIATE`` and never deadlock on a lock upgrade.

Durability. SQLite runs in WAL mode with ``synchronous=FULL`` by default: an acknowledged
``apply`` survives a process crash and a power loss. ``synchronous="NORMAL"`` is allowed and
faster: it survives a process crash, not a power loss (the last commits may roll back).
PostgreSQL uses the server's durability settings.

Replica identity, and why a copy must not keep it: a database copied, or restored from a
backup, must not keep issuing dots under its old replica id (two different writes would get
the same dot and one would be silently lost), so ``open`` detects a copy or restore and
mints a new id, keeping the data and recording the old id in ``meta.past_replica_ids``.
:mod:`store.opening` says how (a stamp of where the database lives and, for SQLite, a
sidecar file ``PATH.shoal-id``, renewed at open and at a clean close) and what it cannot
see.

One opener at a time. Two processes on one database would issue the same dots from their
own counters, whatever the stamp says, so ``open`` first takes the database's lock
(:mod:`store.lock`: ``flock`` on ``REALPATH.shoal-lock`` and on the database file itself for
SQLite, a session advisory lock for PostgreSQL) and ``aclose`` drops it last; a second
opener, in another process or in this one, under any name of the file (a symlink, a hard
link), gets :class:`~store.errors.DatabaseLocked` naming the holder's PID before anything is
read or written. The identity check and the sidecar write above happen under that lock. The
lock dies with its process: nothing to clean up after ``kill -9``.

Where the database is: :func:`~store.location.database_url` normalises every accepted name
(a path, ``sqlite:///``, ``postgresql://``...), and before SQLite touches a file ``open``
refuses, by :func:`~store.location.check_sqlite_file` and a read of its schema version, a
file it must not use (an empty one included: see :mod:`store.location`).

Lifecycle: ``async with await Store.open(...) as store`` or ``store = await Store.open(...)``
... ``await store.aclose()``. ``aclose`` lets queued writes commit, then disposes the engine;
later calls raise :class:`~store.errors.StoreClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from . import ondemand, sql
from .errors import InvalidInput, StoreClosed, StoreError
from .location import database_url
from .lock import DatabaseLock, check_unheld, lock_sqlite
from .opening import (
    _check_sqlite,
    _new_identity,
    _open_identity,
    _renew_identity_token,
    sidecar_path,
)
from .pg_lock import lock_postgres
from .records import Batch, BatchLike, Loaded, LogRow, ObjectRow
from .writer import AsyncWriter, ThreadReader, ThreadWriter, Writer, install_sqlite_hooks

__all__ = ["SYNCHRONOUS_LEVELS", "Store", "default_partition_of", "sidecar_path"]

log = logging.getLogger("shoal.store")

SYNCHRONOUS_LEVELS = ("FULL", "NORMAL", "EXTRA")
"""Allowed SQLite ``synchronous`` levels. NORMAL survives a process crash, not a power loss."""


def default_partition_of(key: str, partitions: int = 64) -> int:
    """``blake2b(key, 8 bytes) % partitions`` -- the same as ``sync.ring.partition_of``."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


_PARTITION_CACHE = 1 << 12  # keys whose partition the store remembers (~115 B each)

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(slots=True)
class _Pending:
    prepared: sql.PreparedBatch
    rows: int
    future: asyncio.Future[int]


_CLOSE = object()


class Store:
    """The durable store; make one with :meth:`Store.open`."""

    def __init__(
        self,
        engine: AsyncEngine,
        lock: DatabaseLock,
        *,
        partitions: int,
        partition_of: Callable[[str], int],
        opened: sql.OpenResult,
        max_batch_rows: int,
        writer: Writer,
        reader: ThreadReader | None = None,
        db_path: Path | None = None,
    ) -> None:
        self._engine = engine
        self._db_path = db_path  # SQLite: the file, whose sidecar a clean close renews
        self._reader = reader  # SQLite: reads in a thread of their own (else the engine)
        self._lock = lock
        self._write_engine = engine.execution_options(shoal_write=True)
        # PostgreSQL: a read sees one snapshot (its statements, the default READ COMMITTED,
        # would each see their own), so that the seals a page of segments names are still
        # there when the next statement looks them up, whatever a compaction committed
        # meanwhile (see store.schema). SQLite's reads are one snapshot already (WAL).
        self._read_engine = (
            engine.execution_options(isolation_level="REPEATABLE READ")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._writer_db = writer
        self._partitions = partitions
        self._partition_of = partition_of
        self._replica_id = opened.replica_id
        self._signing_key = opened.signing_key
        self._rekeyed = opened.rekeyed
        self._rotated = opened.rotated
        self._cut_short = opened.cut_short
        self._previous = opened.previous_replica_ids
        self._created = opened.created
        self._migrated_from = opened.migrated_from
        self._max_batch_rows = max_batch_rows
        self._queue: asyncio.Queue[_Pending | object] = asyncio.Queue()
        # Held while a transaction of apply() is in flight: the writer task's, or the one a
        # caller runs itself when nothing else is queued or committing (_submit).
        self._committing = asyncio.Lock()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._writer = self._loop.create_task(self._write_loop(), name="shoal-store-writer")

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url_or_path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        partitions: int = 64,
        partition_of: Callable[[str], int] | None = None,
        max_batch_rows: int = 5000,
        busy_timeout_ms: int = 10_000,
    ) -> Store:
        """Open (creating or migrating) the database at a path or SQLAlchemy URL.

        ``partitions`` must match the engine's partition count; ``partition_of(key)`` must
        match the engine's (default: :func:`default_partition_of`, whose results the store
        caches) and be a pure function of the key (a peer's is the engine's own memo).

        Raises :class:`~store.errors.DatabaseLocked` if another process, or another ``Store``
        of this one, has the database open (nothing read or written); the store holds the
        database until :meth:`aclose`. An open that fails gives back everything it took
        (its threads stopped, its connections closed, the lock let go) before it raises.
        """
        synchronous = str(synchronous).upper()
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise InvalidInput(
                f"synchronous must be one of {SYNCHRONOUS_LEVELS}, got {synchronous!r}"
            )
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidInput(f"partitions must be a positive integer, got {partitions!r}")
        if max_batch_rows < 1:
            raise InvalidInput(f"max_batch_rows must be >= 1, got {max_batch_rows!r}")
        url = database_url(url_or_path)
        # partition_of is a pure function of the key (it must match the engine's): a given
        # one is used as it is (a peer's is the engine's own memo: a second cache around it
        # held 7 MB at 64k keys); the default has a small cache across batches, which saves
        # a hash per row for keys written again.
        part_of = partition_of or functools.lru_cache(maxsize=_PARTITION_CACHE)(
            lambda key: default_partition_of(key, partitions)
        )
        # Whatever the open has taken is given back, the last first, if a later step fails
        # (the OS refusing a thread included); once the store is made, aclose() owns it all.
        async with contextlib.AsyncExitStack() as taken:
            # One opener at a time (store.lock): taken before anything is read or written,
            # held until aclose().
            lock, db_path = await _take_lock(url)
            taken.push_async_callback(lock.release)
            engine = create_async_engine(url)
            taken.push_async_callback(engine.dispose)
            if db_path is not None:
                # Refuse a newer schema before the engine (which switches to WAL) writes.
                await asyncio.to_thread(_check_sqlite, db_path)
                install_sqlite_hooks(engine.sync_engine, synchronous, busy_timeout_ms)
            token = secrets.token_hex(16)
            if db_path is not None:
                # An open that fails once its identity committed records a clean end, as
                # aclose() does: no run is left open (store.opening) by an open that was not.
                taken.push_async_callback(_record_clean_close, engine, db_path, token)
            opened = await _open_identity(
                engine, db_path, partitions, part_of, lock.hold_file, synchronous, token
            )
            if opened.created:
                await lock.made()
            writer: Writer
            reader: ThreadReader | None = None
            if db_path is None:
                writer = AsyncWriter(engine, lock.guard)
            else:  # SQLite: the writer's and the reader's threads start here
                writer = ThreadWriter(url, synchronous, busy_timeout_ms)
                taken.push_async_callback(writer.aclose)
                await writer.connect()
                reader = ThreadReader(url, synchronous, busy_timeout_ms)
                taken.push_async_callback(reader.aclose)
            store = cls(
                engine,
                lock,
                partitions=partitions,
                partition_of=part_of,
                opened=opened,
                max_batch_rows=max_batch_rows,
                writer=writer,
                reader=reader,
                db_path=db_path,
            )
            taken.pop_all()
        return store

    # -- properties ------------------------------------------------------------------------

    @property
    def replica_id(self) -> str:
        """This database incarnation's replica id."""
        return self._replica_id

    @property
    def partition_of(self) -> Callable[[str], int]:
        """The partition function this store was opened with (the engine's: an engine may
        share its memo, see ``sync.ring.PartitionMemo``), without the store's own cache."""
        return getattr(self._partition_of, "__wrapped__", self._partition_of)

    @property
    def signing_key(self) -> bytes:
        """The 32 raw bytes of this incarnation's Ed25519 private key: its replica id is the
        one :func:`crdt.replica_id_for` derives from the public key. It signs what this
        replica originates (``sync.signing``); it never leaves the database."""
        return self._signing_key

    @property
    def rekeyed(self) -> bool:
        """True if this open gave a database without a signing key (one made before schema
        version 5) a key, and so a new replica id."""
        return self._rekeyed

    @property
    def identity_rotated(self) -> bool:
        """True if this open detected a copy or restore, or a run cut short that may have lost
        commits (:attr:`identity_cut_short`), and minted a new replica id."""
        return self._rotated

    @property
    def identity_cut_short(self) -> bool:
        """True if this open minted a new replica id because the last run, at
        ``synchronous="NORMAL"``, ended without a clean close under another boot of the
        machine (a power loss or an OS crash may have taken commits that peers hold)."""
        return self._cut_short

    @property
    def previous_replica_ids(self) -> tuple[str, ...]:
        """Replica ids this database used before (oldest first)."""
        return self._previous

    @property
    def created(self) -> bool:
        """True if this open created the database."""
        return self._created

    @property
    def migrated_from(self) -> int | None:
        """The schema version this open migrated from, if it migrated."""
        return self._migrated_from

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (for event hooks in tests and metrics; do not write)."""
        return self._engine

    @property
    def read_engine(self) -> Engine:
        """The synchronous engine the store's reads run on (SQLite: the reader thread's,
        :class:`~store.writer.ThreadReader`; PostgreSQL: the async engine's), for event hooks
        in tests and metrics; do not write."""
        return self._reader.engine if self._reader is not None else self._engine.sync_engine

    @property
    def write_engine(self) -> Engine:
        """The synchronous engine :meth:`apply` commits through (:mod:`store.writer`), for
        event hooks in tests and metrics; do not write."""
        return self._writer_db.engine

    # -- writing ---------------------------------------------------------------------------

    async def apply(self, batch: BatchLike, *, grouped: bool = True, lone: bool = False) -> None:
        """Make ``batch`` durable in one transaction (shared with concurrent callers).

        Returns after the transaction holding it committed; raises
        :class:`~store.errors.InvalidInput` (nothing queued) or the database's error (rolled
        back). ``grouped=False`` is for a caller that is the store's only writer and groups
        its own batches (a peer's executor): a commit that may run in the caller's thread
        (:mod:`store.writer`) then runs at once, without first letting the other callers of
        this turn of the event loop queue to join it. ``lone=True`` says that the caller has
        nothing else to do until this commit is durable (one write in flight): at ``FULL``
        or ``EXTRA`` a small commit may then sync in the caller's thread, while such syncs
        are quick (:mod:`store.writer`).
        """
        prepared = sql.prepare(batch, self._partitions, self._partition_of)
        await self._submit(prepared, grouped=grouped, lone=lone)

    async def compact(self, partition: int, watermark: Mapping[str, int]) -> int:
        """Delete log entries of ``partition`` with ``seq <= watermark[origin]``; return how
        many log dots were removed."""
        prepared = sql.prepare(
            Batch(compact=((partition, watermark),)), self._partitions, self._partition_of
        )
        prepared.count_compacted = True
        return await self._submit(prepared)

    async def rotate_replica_id(self) -> str:
        """Retire the current replica id and mint a new one (durably); return it."""
        self._check_open()
        new_id, new_key = _new_identity()
        async with self._write_engine.begin() as conn:
            new_id, past = await conn.run_sync(sql.rotate_replica_id, new_id, new_key)
        self._replica_id, self._previous = new_id, past
        self._signing_key = new_key
        return new_id

    async def _submit(
        self, prepared: sql.PreparedBatch, *, grouped: bool = True, lone: bool = False
    ) -> int:
        self._check_open()
        if self._writer.done():
            raise StoreError("the store's writer task has stopped; reopen the store")
        rows = prepared.rows
        if rows == 0:
            return 0
        ahead = False
        if self._queue.empty() and not self._committing.locked():
            # Nothing to group with: commit in the caller's task, sparing the two task
            # switches to the writer task and back (one write in flight, the common case of
            # an app awaiting each write: benchmarks/speed_bench.py --goals serial). Callers
            # arriving meanwhile queue for the writer task, which groups them next.
            async with self._committing:
                if grouped and self._writer_db.may_commit_here:
                    # That commit may not yield to the loop at all (store.writer): let the
                    # callers of this turn of the loop queue first, to be grouped.
                    await asyncio.sleep(0)
                if self._queue.empty() or self._closed:
                    # (Closing meanwhile queued its stop: aclose waits for this commit, and
                    # a batch queued behind the stop would never be taken.)
                    (count,) = await self._transaction([prepared], lone=lone)
                    return count
            # Others queued meanwhile: join them, for the writer task to group, ahead of
            # them (they called after this one).
            ahead = True
        future: asyncio.Future[int] = self._loop.create_future()
        self._queue.put_nowait(_Pending(prepared, rows, future))
        if ahead:
            self._move_last_first()
        return await future

    def _move_last_first(self) -> None:
        """Move the batch queued last to the head of the queue (no await: atomic). The writer
        task writes a group in queue order, the order that the merge makes the outcome of
        (a later checkpoint or summary replaces an earlier one): a caller that let the others
        of its turn of the loop queue first must be written before them, or its older
        states overwrite their newer ones (seen at synchronous=NORMAL: a counter's checkpoint
        and its partition's summary went back a write, behind the log)."""
        queued = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        for item in (queued[-1], *queued[:-1]):
            self._queue.put_nowait(item)

    async def _write_loop(self) -> None:
        while True:  # until aclose() queues _CLOSE
            item = await self._queue.get()
            if item is _CLOSE:
                return
            assert isinstance(item, _Pending)
            group = [item]
            rows = item.rows
            stop = False
            while rows < self._max_batch_rows and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is _CLOSE:
                    stop = True
                    break
                assert isinstance(nxt, _Pending)
                group.append(nxt)
                rows += nxt.rows
            try:
                async with self._committing:
                    await self._commit(group)
            except BaseException as exc:  # never leave a caller waiting on a dead writer
                for pending in group:
                    _settle(pending.future, exc=exc)
                self._fail_queued(exc)
                raise
            if stop:
                return

    def _fail_queued(self, cause: BaseException) -> None:
        """The writer is stopping for good: fail every batch still queued (none is lost
        silently; their callers see the error and nothing of theirs was committed)."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _Pending):
                error = StoreError(f"the store's writer stopped ({cause!r}); reopen the store")
                error.__cause__ = cause
                _settle(item.future, exc=error)

    async def _commit(self, group: list[_Pending]) -> None:
        try:
            counts = await self._transaction([p.prepared for p in group])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0].future, exc=exc)
                return
            for pending in group:  # isolate the failure: each batch alone
                try:
                    (count,) = await self._transaction([pending.prepared])
                except Exception as single_exc:
                    _settle(pending.future, exc=single_exc)
                else:
                    _settle(pending.future, result=count)
            return
        for pending, count in zip(group, counts, strict=True):
            _settle(pending.future, result=count)

    async def _transaction(
        self, prepared: list[sql.PreparedBatch], *, lone: bool = False
    ) -> list[int]:
        """Write ``prepared`` in one transaction; return the log dots each batch compacted."""
        # One crossing into the writer's connection for the whole transaction (store.writer).
        removed = await self._writer_db.transaction(prepared, lone=lone)
        # apply_prepared returns one count per compaction entry, in batch order.
        it = iter(removed)
        return [sum(next(it) for _ in batch.compact) for batch in prepared]

    # -- reading ---------------------------------------------------------------------------

    async def load(self) -> Loaded:
        """Everything the engine needs at start, read in one consistent transaction."""
        return await self._read(sql.load)

    async def load_start(self, objects_limit: int) -> Loaded:
        """What an engine with a bounded cache starts from (see
        :func:`store.ondemand.load_start`): every object only if there are at most
        ``objects_limit``; call :meth:`fold_log` first."""
        return await self._read(ondemand.load_start, _count(objects_limit, "objects_limit"))

    async def fold_log(self, page: int = ondemand.FOLD_PAGE) -> int:
        """Fold the log stored since the last clean close into the objects (a page of
        ``page`` segments per transaction); return how many segments were folded."""
        limit = _positive(page, "page")
        total = 0
        while True:  # ends: every page moves the mark past the segments it folded
            self._check_open()
            async with self._write_engine.begin() as conn:
                done = await conn.run_sync(ondemand.fold_page, limit)
            if not done:
                return total
            total += done

    async def get_objects(self, keys: Iterable[str]) -> list[ObjectRow]:
        """Every object (each kind) of ``keys``, in (key, kind) order; batched queries."""
        wanted = list(keys)
        if not all(isinstance(k, str) for k in wanted):
            raise InvalidInput("keys must be strings")
        if not wanted:
            return []
        return await self._read(ondemand.get_objects, wanted)

    async def keys(
        self, prefix: str | None = None, after: str | None = None, limit: int = 500
    ) -> list[str]:
        """Up to ``limit`` keys starting with ``prefix``, above ``after``, in code-point
        order (as Python sorts strings): page with ``after`` = the last key of a page."""
        for name, value in (("prefix", prefix), ("after", after)):
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{name} must be a string or None, got {value!r}")
        return await self._read(ondemand.keys_page, prefix, after, _positive(limit, "limit"))

    async def get_object(self, key: str, kind: str | None = None) -> ObjectRow | None:
        """The object ``(key, kind)`` (``kind=None``: the key's first kind by name)."""
        return await self._read(sql.get_object, key, kind)

    async def deltas_missing(
        self, partition: int, summary: Mapping[str, Any], batch: int = 500
    ) -> AsyncIterator[list[LogRow]]:
        """Log entries of ``partition`` that ``summary`` (an encoded CausalContext) lacks,
        in (origin, seq) order, each log dot once, in lists of at most ``batch`` entries, each
        page read in its own short transaction."""
        part = self._check_partition(partition)
        limit = _positive(batch, "batch")
        try:
            ctx = sql.check_context(summary, "summary")
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        cloud = {(origin, seq) for origin, seq in ctx["cloud"]}
        after: tuple[str, int] | None = None
        while True:  # ends: every page advances the keyset position
            page = await self._read(sql.deltas_page, part, ctx["vv"], after, limit)
            if not page:
                return
            after = (page[-1].origin, page[-1].seq)
            rows = [r for r in page if (r.origin, r.seq) not in cloud]
            if rows:
                yield rows
            if len(page) < limit:
                return

    async def objects_page(
        self, partition: int, after: tuple[str, str] | None, limit: int, max_bytes: int
    ) -> tuple[list[tuple[str, str, str]], bool]:
        """A page of the objects of ``partition`` after ``after`` (``(key, kind)``) as
        ``(key, kind, state text)``, and whether it is the last (see
        :func:`store.ondemand.objects_page`): what a state transfer streams."""
        part = self._check_partition(partition)
        if after is not None and not (
            isinstance(after, tuple) and len(after) == 2 and all(isinstance(x, str) for x in after)
        ):
            raise InvalidInput(f"after must be None or a (key, kind) pair, got {after!r}")
        return await self._read(
            ondemand.objects_page,
            part,
            after,
            _positive(limit, "limit"),
            _positive(max_bytes, "max_bytes"),
        )

    async def count_objects(self, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        """Per partition: its objects and the characters of their states (see
        :func:`store.ondemand.count_objects`)."""
        parts = [self._check_partition(p) for p in partitions]
        return await self._read(ondemand.count_objects, parts)

    async def snapshot(self, partition: int, chunk: int = 500) -> AsyncIterator[list[ObjectRow]]:
        """Every object of ``partition`` in (key, kind) order, ``chunk`` at a time (keyset
        pages)."""
        part = self._check_partition(partition)
        limit = _positive(chunk, "chunk")
        after: tuple[str, str] | None = None
        while True:  # ends: every page advances the keyset position
            page = await self._read(sql.snapshot_page, part, after, limit)
            if not page:
                return
            yield page
            if len(page) < limit:
                return
            after = (page[-1].key, page[-1].kind)

    async def _read(
        self, fn: Callable[Concatenate[Connection, _P], _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        self._check_open()
        if self._reader is not None:
            return await self._reader.read(fn, *args, **kwargs)
        async with self._read_engine.begin() as conn:
            return await conn.run_sync(fn, *args, **kwargs)

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Commit what is queued, stop the writer, record the clean close (SQLite: a new
        identity token, :mod:`store.opening`), dispose the engine. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(_CLOSE)
        try:
            try:
                if not self._writer.done():
                    await self._writer
                # (a writer that already stopped failed its callers then; closing goes on)
            finally:
                if self._db_path is not None:
                    await self._closing_cleanly(self._db_path)
        finally:
            try:
                try:
                    async with self._committing:  # a caller's own transaction ends first
                        await self._writer_db.aclose()
                finally:
                    try:
                        if self._reader is not None:
                            await self._reader.aclose()
                    finally:
                        await self._engine.dispose()
            finally:
                await self._lock.release()  # the next opener may come in

    async def _closing_cleanly(self, db_path: Path) -> None:
        async with self._committing:  # (a caller's own transaction ends first)
            await _record_clean_close(self._engine, db_path)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed()

    def _check_partition(self, partition: int) -> int:
        if (
            isinstance(partition, bool)
            or not isinstance(partition, int)
            or not 0 <= partition < self._partitions
        ):
            raise InvalidInput(
                f"partition must be an integer in [0, {self._partitions}), got {partition!r}"
            )
        return partition


async def _take_lock(url: URL) -> tuple[DatabaseLock, Path | None]:
    """The open lock of the database at ``url`` (:mod:`store.lock`), and its SQLite file
    (None for PostgreSQL); ``InvalidInput`` for a database the store cannot use."""
    if url.get_backend_name() == "postgresql":
        return await lock_postgres(url), None
    if url.get_backend_name() != "sqlite":
        raise InvalidInput(
            f"unsupported database URL {url.render_as_string()!r}: use "
            "sqlite+aiosqlite:///PATH or postgresql+asyncpg://..."
        )
    if not url.database or url.database == ":memory:":
        raise InvalidInput("the store needs a database file, not an in-memory database")
    file = Path(url.database)
    # A file we must not use is refused before the lock leaves its own file next to it
    # (and again under the lock: a creator may have been writing it), by checks that cannot
    # hurt a holder of this process or another (store.lock.check_unheld).
    await asyncio.to_thread(check_unheld, file, _check_sqlite)
    return await lock_sqlite(file), file


async def _record_clean_close(
    engine: AsyncEngine, db_path: Path, opened: str | None = None
) -> None:
    """Renew the identity token and clear ``meta.running`` (:mod:`store.opening`), after a
    failed writer too (what failed was not committed); ``opened``: the token of an open that
    failed, whose record only is cleared. If that fails in turn, the close goes on, logged:
    the database is then as after a crash (no more at risk than its run was)."""
    try:
        await _renew_identity_token(engine, db_path, opened)
    except (DBAPIError, OSError) as exc:
        log.warning("closing %s: could not record the clean close (%s)", db_path, exc)


def _settle(
    future: asyncio.Future[int], *, result: int = 0, exc: BaseException | None = None
) -> None:
    if future.done():  # the caller was cancelled; its batch committed (or not) regardless
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{what} must be a positive integer, got {value!r}")
    return value
