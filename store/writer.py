"""The group-commit writer's connection: where one transaction of :class:`~store.Store` runs.

A transaction crosses into the database's thread **once**. The store's writer task hands a
group of prepared batches to a writer here and awaits one result; every statement of the
transaction (``BEGIN IMMEDIATE``, one ``executemany`` per table, ``COMMIT``) runs on a plain
SQLAlchemy ``Connection`` in that thread, through :func:`store.sql.apply_prepared`.

* SQLite (:class:`ThreadWriter`): a synchronous SQLAlchemy engine on the standard ``sqlite3``
  driver, one connection kept open for the store's life, used by one thread of its own.
  Through the async engine (aiosqlite), each statement is a round trip between the event
  loop and the driver's thread, several per statement (cursor, execute, close): for a
  one-write transaction at ``synchronous=NORMAL`` those round trips, not the disk, were the
  cost (``benchmarks/speed_bench.py --goals serial``). Reads do the same in a thread of
  their own (:class:`ThreadReader`), one crossing per read.
* **Small commits without the crossing.** At ``synchronous=NORMAL`` a commit in WAL mode
  writes to the WAL and syncs nothing, so a small transaction (at most
  :data:`INLINE_MAX_ROWS` rows and :data:`INLINE_MAX_BYTES` of text, no compaction: one
  write, an ack's bookkeeping) costs SQLite a few tens of microseconds, less than the
  crossing into the thread and back. When the writer's thread has no job queued or
  running, such a transaction runs on the connection in the caller's thread (the event
  loop's); anything bigger crosses as before.
* **A lone commit that syncs.** At ``FULL`` or ``EXTRA`` a commit syncs the WAL, which the
  loop should not wait for while it has other work. But when the caller says it is *lone*
  (a peer's executor with no input waiting for its engine: one write in flight,
  the way an app that awaits each write writes), nothing on the loop waits for it but what
  arrives meanwhile, and the crossing (a wake-up of each thread) cost half as much again as
  the sync itself (``benchmarks/commit_bench.py``: 225 against 150 us for a one-row commit
  at FULL; ``benchmarks/speed_bench.py --goals serial``). Such a small
  commit runs in the caller's thread too, as long as small commits' syncs have taken under
  :data:`SYNC_HERE_MAX` seconds on average (a moving average of every small commit, here
  or in the thread): on a disk whose syncs are slow, every commit crosses, and the loop
  never waits longer than about that for one. Other commits at ``FULL`` cross, as before.
* The connection is used by one thread at a time: a job counts as
  running from its queueing until the thread has finished it, whether or not its caller
  still waits. **The loop never waits on that connection** for a lock, a checkpoint or
  connecting (the thread makes the connection, at open and after a failed commit dropped
  it; a lone commit's sync above is the one wait it allows). A commit here runs with no busy
  timeout and without SQLite's automatic checkpoint (which would copy the WAL into the
  database and sync it inside the commit: milliseconds); if another connection holds the
  write lock (another process, or the store's own async engine rotating the replica id),
  its ``BEGIN IMMEDIATE`` fails at once and the transaction is handed to the thread, which
  waits up to the busy timeout as at ``FULL``. A commit in the thread runs with both
  settings back (the busy timeout, a checkpoint past :data:`AUTOCHECKPOINT_PAGES` pages of
  WAL), and a passive checkpoint runs after every :data:`CHECKPOINT_COMMITS` commits, so the
  WAL stays bounded whichever way commits go. That checkpoint runs on a connection and in a
  thread of its own (the *checkpointer*): WAL lets it copy committed pages into the database
  while the writer commits, so the writer's thread stays idle and small commits stay on the
  loop meanwhile (in the writer's thread, each checkpoint of 256 commits sent the commits
  behind it across: about 6% of a serial writer's time at NORMAL). The frames committed
  during that copy are then copied by the writer's thread, between two commits: SQLite
  starts the WAL over only once a checkpoint has caught up with its end, which a copy that
  commits keep outrunning never does (the WAL grew by a megabyte per checkpoint).
* PostgreSQL (:class:`AsyncWriter`): asyncpg is asyncio-native, so its statements run on the
  event loop without a thread; the transaction is one ``AsyncConnection.run_sync``.

Either writer keeps its connection between transactions and drops it after a failed one (the
next transaction connects again). ``engine`` is the synchronous ``Engine`` the writer
commits through, for event hooks (``event.listen(writer.engine, "commit", ...)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from . import sql
from .writes import on_cursor

__all__ = [
    "AsyncWriter",
    "ThreadReader",
    "ThreadWriter",
    "Writer",
    "install_begin",
    "install_sqlite_hooks",
]

_T = TypeVar("_T")

log = logging.getLogger("shoal.store")

#: The reader connection's SQLite page cache, in KiB.
READER_CACHE_KIB = 512
#: The most rows a transaction may have to commit in the caller's thread (see the module's
#: docstring; a write is three: its object, its log segment, its partition's summary).
INLINE_MAX_ROWS = 64
#: The most characters of text (states, deltas, summaries; not counted in bytes, nor the
#: seals) such a transaction may write.
INLINE_MAX_BYTES = 64 * 1024
#: A lone small commit at ``FULL`` or ``EXTRA`` runs in the caller's thread only while such
#: commits (here or in the thread) have taken less than this on average, in seconds: about
#: the longest the loop waits for a sync.
SYNC_HERE_MAX = 0.002
#: The weight of the latest small commit's time in that average.
SYNC_WEIGHT = 0.125
#: SQLite's automatic checkpoint (its default) on the writer's connection for commits in
#: its thread.
AUTOCHECKPOINT_PAGES = 1000
#: Commits between two checkpoints of the WAL by the writer's thread, where commits may run
#: in the caller's thread (SQLite's automatic checkpoint: at 1000 pages, a few hundred
#: small commits).
CHECKPOINT_COMMITS = 256


def install_sqlite_hooks(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    """Every new connection: WAL, ``synchronous``, the busy timeout, and the transactions of
    :func:`install_begin`."""
    install_begin(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.close()


def install_begin(engine: Engine) -> None:
    """Every new connection begins no transaction by itself (the driver would, before a
    write only: each read alone would see the latest commit); a transaction begins with
    ``BEGIN IMMEDIATE`` on a writing connection (execution option ``shoal_write``), else
    ``BEGIN``, so that its reads see one snapshot. (Without PRAGMAs: a read-only
    connection, ``shoal inspect``'s, takes it as it is.)"""

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("shoal_write", False)
        # On the driver's cursor (exec_driver_sql would build an execution context and a
        # result for it: a fifth of a one-write commit's time, py-spy on a serial loop).
        on_cursor(conn, "BEGIN IMMEDIATE" if write else "BEGIN")


def _write(
    conn: Connection,
    prepared: Sequence[sql.PreparedBatch],
    guard: Callable[[Connection], None] | None = None,
) -> list[int]:
    try:
        with conn.begin():
            removed = sql.apply_prepared(conn, prepared)
            if guard is not None:
                guard(conn)  # (raises: the transaction rolls back)
            return removed
    except BaseException:
        sql.SealSweep.forget(conn)  # (a sweep it ran was rolled back too)
        raise


def _write_lean(conn: Connection, prepared: Sequence[sql.PreparedBatch]) -> list[int]:
    """:func:`_write` for the SQLite writer, without SQLAlchemy's ``Transaction`` object.

    The connection's ``begin`` and ``commit`` events run as SQLAlchemy would run them (the
    first issues ``BEGIN IMMEDIATE``, :func:`install_sqlite_hooks`; tests hook the second),
    and ``COMMIT`` goes to the driver's cursor. The ``Transaction`` around them cost about
    6 us a transaction (``benchmarks/commit_bench.py``: a one-row commit at NORMAL, 20 us
    through it against 14 us on the driver). A failure rolls
    back (the caller then drops the connection) and is raised as SQLAlchemy raises it. Only
    for batches whose statements all go to the driver's cursor: a compaction or a fold
    executes through SQLAlchemy, which would begin a second transaction (:func:`_write`).
    """
    if any(batch.compact or batch.fold for batch in prepared):
        return _write(conn, prepared)
    conn.dispatch.begin(conn)
    try:
        removed = sql.apply_prepared(conn, prepared)
        conn.dispatch.commit(conn)
        on_cursor(conn, "COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):  # already failing: report the first error
            on_cursor(conn, "ROLLBACK")
        raise
    return removed


class Writer:
    """What the store's writer task needs: one transaction at a time, and closing.
    ``may_commit_here``: whether :meth:`transaction` may commit without yielding to the
    event loop (then the store lets concurrent callers queue first, to group them)."""

    engine: Engine
    may_commit_here = False

    async def transaction(
        self, prepared: Sequence[sql.PreparedBatch], *, lone: bool = False
    ) -> list[int]:
        """Write ``prepared`` in one transaction (see :func:`store.sql.apply_prepared`);
        ``lone``: the caller waits for nothing else (see the module's docstring)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class AsyncWriter(Writer):
    """The transaction as one ``run_sync`` on a connection of the async engine; ``guard``
    runs in it before its commit (the open lock's check, :class:`store.lock.DatabaseLock`)."""

    def __init__(
        self, engine: AsyncEngine, guard: Callable[[Connection], None] | None = None
    ) -> None:
        self._engine = engine.execution_options(shoal_write=True)
        self.engine = engine.sync_engine
        self._conn: AsyncConnection | None = None
        self._guard = guard

    async def transaction(
        self, prepared: Sequence[sql.PreparedBatch], *, lone: bool = False
    ) -> list[int]:
        if self._conn is None:
            self._conn = await self._engine.connect()
        try:
            return await self._conn.run_sync(_write, prepared, self._guard)
        except BaseException:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # already failing: report the first error
                await conn.close()
            raise

    async def aclose(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()


_STOP = object()
_Job = tuple[asyncio.Future[Any], Callable[[], Any]]


class _DbThread:
    """One synchronous SQLAlchemy connection and a thread of its own: jobs come in through a
    queue and each job's future is settled on its event loop (``call_soon_threadsafe``), one
    crossing each way per job. :meth:`run_here` runs a job in the caller's thread instead,
    when the thread is :meth:`idle`, so that one thread at a time uses the connection. The
    connection is made on first use, kept between jobs and dropped after a failed one (the
    next job connects again)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self._conn: Connection | None = None  # used by one thread at a time (see idle)
        self._jobs: SimpleQueue[_Job | object] = SimpleQueue()
        # Jobs queued and not yet finished by the thread: counted up when queued, down on the
        # event loop once the thread has finished one (not when its caller stops waiting).
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self._thread.name

    def idle(self) -> bool:
        """Whether the thread has no job queued or running (checked on the event loop)."""
        return self._busy == 0 and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        """Whether the connection is made (a job connects first: its hook sets the journal
        mode, which may wait up to the busy timeout for another connection's lock)."""
        return self._conn is not None

    def run_here(self, fn: Callable[[Connection], _T]) -> _T:
        """``fn(connection)`` in the caller's thread; only when :meth:`idle`."""
        assert self.idle(), "the connection is in use by the store's thread"
        result: _T = self._with_connection(fn)
        return result

    def start(self, fn: Callable[[Connection], Any]) -> asyncio.Future[Any]:
        """Queue ``fn(connection)`` for the thread; its future (awaited or not)."""
        if not self._thread.is_alive():
            raise RuntimeError(f"the store's thread {self._thread.name} has stopped")
        return self._queue(lambda: self._with_connection(fn))

    async def call(self, fn: Callable[[Connection], Any]) -> Any:
        """``fn(connection)`` in the thread."""
        return await self.start(fn)

    def _queue(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._busy += 1
        self._jobs.put((future, fn))
        return future

    def _finished(
        self, future: asyncio.Future[Any], result: Any, exc: BaseException | None
    ) -> None:
        self._busy -= 1
        _settle(future, result, exc)

    async def aclose(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            await self._call_raw(self._close_connection)  # (after the jobs queued before it)
        finally:
            self._jobs.put(_STOP)
            await asyncio.to_thread(self._thread.join)

    async def _call_raw(self, fn: Callable[[], Any]) -> Any:
        return await self._queue(fn)

    # -- in the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:  # until aclose() queues _STOP
            job = self._jobs.get()
            if not isinstance(job, tuple):  # _STOP
                return
            future: asyncio.Future[Any] = job[0]
            fn: Callable[[], Any] = job[1]
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting task, raised there
                self._settle_soon(future, None, exc)
            else:
                self._settle_soon(future, result, None)
            # Not held until the next job: a job holds its batches (5000 rows after a burst).
            del job, fn, future

    def _settle_soon(
        self, future: asyncio.Future[Any], result: Any, exc: BaseException | None
    ) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            future.get_loop().call_soon_threadsafe(self._finished, future, result, exc)

    def _with_connection(self, fn: Callable[[Connection], Any]) -> Any:
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            return fn(self._conn)
        except BaseException:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # already failing: report the first error
                conn.close()
            raise

    def _close_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


def _sqlite_engine(
    url: URL, synchronous: str, busy_timeout_ms: int, *, shared: bool = False
) -> Engine:
    """``shared``: the connection may be used by another thread than the one that made it
    (one at a time: :class:`_DbThread`)."""
    args = {"check_same_thread": False} if shared else {}
    engine = create_engine(
        url.set(drivername="sqlite+pysqlite"), poolclass=NullPool, connect_args=args
    )
    install_sqlite_hooks(engine, synchronous, busy_timeout_ms)
    return engine


class _OwnThread:
    """An engine and the thread that runs its one connection (:class:`_DbThread`)."""

    engine: Engine
    _thread: _DbThread

    async def aclose(self) -> None:
        try:
            await self._thread.aclose()
        finally:
            self.engine.dispose()


class ThreadWriter(_OwnThread, Writer):
    """SQLite: the transaction on a synchronous connection, in a thread of the writer's own
    (one crossing each way per transaction); a small one at ``synchronous=NORMAL``, or a
    small lone one at ``FULL`` or ``EXTRA`` while syncs are quick, in the caller's thread
    while that thread is idle (see the module's docstring).
    ``checkpoints``: the passive checkpoints its checkpointer ran (not those SQLite ran inside
    the thread's commits)."""

    def __init__(self, url: URL, synchronous: str, busy_timeout_ms: int) -> None:
        # NORMAL: commits sync nothing (else: FULL, EXTRA).
        self._inline = self.may_commit_here = synchronous == "NORMAL"
        # Where commits sync: how long a small one has taken, on average (seconds).
        self.sync_time = 0.0
        self.engine = _sqlite_engine(url, synchronous, busy_timeout_ms, shared=True)
        self._busy_timeout_ms = int(busy_timeout_ms)
        # The driver connection whose settings are those of a commit in the caller's thread
        # (None: it has the thread's, as every new connection does).
        self._set_for_here: Any = None
        self._thread = _DbThread(
            self.engine.execution_options(shoal_write=True), "shoal-store-writer"
        )
        self._checkpointer: _DbThread | None = None  # (made at the first checkpoint)
        self._commits = 0
        self.checkpoints = 0

    async def connect(self) -> None:
        """Make the writer's connection now, in its thread (a commit in the caller's thread
        needs it made: see :meth:`transaction`)."""
        await self._thread.call(lambda _conn: None)

    async def transaction(
        self, prepared: Sequence[sql.PreparedBatch], *, lone: bool = False
    ) -> list[int]:
        small = _small(prepared)
        here = self._inline or (lone and self.sync_time < SYNC_HERE_MAX)
        removed: list[int] | None = None
        # (Connecting is the thread's: never on the loop, first or after a failed commit.)
        if here and small and self._thread.idle() and self._thread.connected:
            try:
                removed = self._thread.run_here(lambda c: self._set_up(c, prepared, True, small))
            except DBAPIError as exc:
                if not _locked(exc):
                    raise
                # Another connection holds the write lock (nothing was written: the failed
                # connection is closed, which rolls back): the thread waits for it, not the loop.
        if removed is None:
            removed = await self._thread.call(lambda c: self._set_up(c, prepared, False, small))
        self._commits += 1
        if self._commits >= CHECKPOINT_COMMITS:
            self._checkpoint_soon()
        return removed

    def _checkpoint_soon(self) -> None:
        """Start a passive checkpoint in the checkpointer's thread, unless one is running (the
        next commit tries again)."""
        if self._checkpointer is None:
            self._checkpointer = _DbThread(self.engine, "shoal-store-checkpointer")
        if self._checkpointer.idle():
            self._commits = 0
            self._checkpointer.start(self._checkpoint).add_done_callback(self._catch_up_soon)

    def _catch_up_soon(self, checkpoint: asyncio.Future[Any]) -> None:
        """The checkpointer copied the bulk: the writer's thread copies what was committed
        meanwhile (see the module's docstring)."""
        _checked(checkpoint)
        if checkpoint.cancelled() or checkpoint.exception() is not None:
            return
        with contextlib.suppress(RuntimeError):  # the writer's thread has stopped
            self._thread.start(_checkpoint).add_done_callback(_checked)

    async def aclose(self) -> None:
        try:
            if self._checkpointer is not None:
                await self._checkpointer.aclose()
        finally:
            await super().aclose()

    def _set_up(
        self, conn: Connection, prepared: Sequence[sql.PreparedBatch], here: bool, small: bool
    ) -> list[int]:
        """The transaction, with the connection's settings for where it runs (the module's
        docstring): in the caller's thread, no busy timeout and no automatic checkpoint.
        Where commits sync, a small one's time goes into :attr:`sync_time`."""
        raw = conn.connection.driver_connection
        if (self._set_for_here is raw) != here:
            busy, pages = (0, 0) if here else (self._busy_timeout_ms, AUTOCHECKPOINT_PAGES)
            assert raw is not None
            raw.execute(f"PRAGMA busy_timeout = {busy}").fetchall()
            raw.execute(f"PRAGMA wal_autocheckpoint = {pages}").fetchall()
            self._set_for_here = raw if here else None
        if self._inline or not small:
            return _write_lean(conn, prepared)
        start = time.perf_counter()
        removed = _write_lean(conn, prepared)
        self.sync_time += (time.perf_counter() - start - self.sync_time) * SYNC_WEIGHT
        return removed

    def _checkpoint(self, conn: Connection) -> None:
        _checkpoint(conn)
        self.checkpoints += 1


def _checkpoint(conn: Connection) -> None:
    """A passive checkpoint (it waits for no lock: busy, it copies what it can), on the
    driver's connection: outside any transaction (a checkpoint cannot run in one)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _small(prepared: Sequence[sql.PreparedBatch]) -> bool:
    """Is the transaction of ``prepared`` small enough to commit in the caller's thread: at
    most INLINE_MAX_ROWS rows and INLINE_MAX_BYTES of text, and no compaction or fold (whose
    cost grows with the log, not with the batch)?"""
    rows = 0
    for batch in prepared:
        rows += batch.rows
        if rows > INLINE_MAX_ROWS or batch.compact or batch.fold:
            return False
    return sum(batch.text_size() for batch in prepared) <= INLINE_MAX_BYTES


def _locked(exc: DBAPIError) -> bool:
    """Did SQLite refuse because another connection holds a lock (SQLITE_BUSY, _LOCKED)?"""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (5, 6)


def _checked(future: asyncio.Future[Any]) -> None:
    """A checkpoint's outcome, which nobody awaits: a failure is logged (the next one, or the
    next clean close, checkpoints what this one left)."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("a checkpoint of the WAL failed: %r", future.exception())


class ThreadReader(_OwnThread):
    """SQLite: the store's reads on a synchronous connection of their own, in a thread of
    their own: a read (``BEGIN``, its statements, ``COMMIT``) crosses into it once, where
    through the async engine each statement was several round trips to aiosqlite's thread
    (a state transfer's loads of the keys it names took a fifth of a new peer's time). WAL
    lets it read while the writer writes. Its page cache is :data:`READER_CACHE_KIB` (its
    reads are lookups by key and pages of a partition, which the operating system's file
    cache serves as well; SQLite's default of 2 MiB a connection was 2% of a new peer's
    peak memory)."""

    def __init__(self, url: URL, synchronous: str, busy_timeout_ms: int) -> None:
        self.engine = _sqlite_engine(url, synchronous, busy_timeout_ms)

        @event.listens_for(self.engine, "connect")
        def _small_cache(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
            cursor.close()

        self._thread = _DbThread(self.engine, "shoal-store-reader")

    async def read(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``fn(connection, *args, **kwargs)`` in one read transaction."""

        def job(conn: Connection) -> _T:
            with conn.begin():
                return fn(conn, *args, **kwargs)

        result: _T = await self._thread.call(job)
        return result


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
