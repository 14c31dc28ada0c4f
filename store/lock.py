"""One process at a time opens a database: the lock ``Store.open`` takes and ``aclose`` drops.

Theory of operation
-------------------
A replica id names the dots its database hands out. Two processes working on one database
would both issue dots under that id from their own in-memory counters, so two different
writes get the same dot and one is silently lost. So a database has one opener at a time; a
second one -- in another process or in this one -- is refused with
:class:`~store.errors.DatabaseLocked` naming the holder, before anything is read or written.
Each lock belongs to the operating system or the server, never to a file we must clean up: it
dies with the process that holds it, and ``kill -9`` leaves nothing to remove by hand.

SQLite: ``flock(LOCK_EX | LOCK_NB)`` on a sidecar file ``REALPATH.shoal-lock`` next to the
database (its real path, so a symlink to the database takes the same lock), held on a
descriptor of its own from the start of ``Store.open`` until ``aclose``. Why a sidecar and
``flock``:

* SQLite coordinates through POSIX record locks (``fcntl``) on the database file and its
  ``-shm``. Those belong to the *process*, and closing *any* descriptor of the file drops all
  of them; a lock on the database file itself would need a descriptor there, and the refused
  opener closing it would silently release the holder's SQLite locks when both are in one
  process (SQLite's documentation warns against exactly this). The sidecar is a file SQLite
  never opens.
* ``flock`` locks belong to the open file description, not the process, so a second
  ``open`` + ``flock`` in the same process is refused as one in another process is; on Linux
  they do not interact with ``fcntl`` locks at all. (On NFS, Linux emulates ``flock`` with a
  whole-file ``fcntl`` lock: still on the sidecar, still separate from SQLite's.)
* The file is never deleted: unlinking a lock file races with an opener that has just opened
  it (two holders of two inodes). A file left by a killed process is just a file; its lock
  went with the process. Its text (``{"pid", "host", "since"}``, rewritten by each holder)
  only serves the refusal message. A child forked while a lock is held closes its inherited
  copy, so the lock still dies with the process that took it.

The identity sidecar ``PATH.shoal-id`` (:mod:`store.opening`) is read and rewritten under this
lock, so two openers never race on its token any more.

PostgreSQL: a session-level ``pg_try_advisory_lock`` on a key hashed from the database and
schema names, taken on a dedicated connection (autocommit, ``application_name`` =
``shoal pid=PID host=HOST``) kept open for the store's lifetime. The server drops the lock
when that session ends, closed or killed with its process. A refused opener reads the
holder's session from ``pg_locks`` and ``pg_stat_activity``.

Read-only readers (``shoal inspect`` opens SQLite with ``mode=ro``) take no lock and work
while a peer holds the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from .errors import DatabaseLocked

__all__ = ["LOCK_SUFFIX", "DatabaseLock", "lock_path", "lock_postgres", "lock_sqlite"]

LOCK_SUFFIX = ".shoal-lock"

_READ_ATTEMPTS = 50  # a refused opener rereads the holder's record for at most ~0.1 s
_READ_PAUSE = 0.002
_APP_NAME = re.compile(r"^shoal pid=(\d+) host=(\S*)")


class DatabaseLock(Protocol):
    """A held open lock. ``release`` is idempotent."""

    async def release(self) -> None: ...


def lock_path(db_path: str | os.PathLike[str]) -> Path:
    """Where the SQLite open lock lives: ``REALPATH.shoal-lock``, next to the database."""
    return Path(os.path.realpath(os.fspath(db_path)) + LOCK_SUFFIX)


# -- SQLite: flock on a sidecar file ---------------------------------------------------------


class _FileLock:
    """The descriptor holding the ``flock``; closing it (or the process dying) releases it."""

    def __init__(self, fd: int) -> None:
        # Also closed if the owner is dropped without release(): no lock outlives its store.
        self._close = weakref.finalize(self, os.close, fd)
        _HELD.add(self)

    async def release(self) -> None:
        self._close()  # runs os.close once, whatever calls it first

    def drop_inherited(self) -> None:
        """In a forked child: close our copy; the parent's descriptor keeps the lock."""
        self._close()


_HELD: weakref.WeakSet[_FileLock] = weakref.WeakSet()


def _drop_inherited_locks() -> None:
    for held in list(_HELD):
        held.drop_inherited()


os.register_at_fork(after_in_child=_drop_inherited_locks)


async def lock_sqlite(db_path: Path) -> DatabaseLock:
    """Take the open lock of the SQLite database at ``db_path`` or raise ``DatabaseLocked``."""
    return await asyncio.to_thread(_lock_file, db_path)


def _lock_file(db_path: Path) -> _FileLock:
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:  # name the database: the user never heard of the lock file
        raise type(exc)(
            exc.errno, f"cannot lock database {db_path} ({exc.strerror})", str(path)
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseLocked(str(db_path), **_read_holder(fd)) from None
        record = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "since": _now_iso()}
        ).encode()
        # Write, then cut: a reader sees the old or the new record, or a mix it rereads.
        os.pwrite(fd, record + b"\n", 0)
        os.ftruncate(fd, len(record) + 1)
    except BaseException:
        os.close(fd)
        raise
    return _FileLock(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder's record. Between its ``flock`` and its write the file is empty or holds a
    dead predecessor's record; reread briefly (bounded) until it names a live process."""
    found: dict[str, Any] = {}
    for attempt in range(_READ_ATTEMPTS):
        if attempt:
            time.sleep(_READ_PAUSE)
        try:
            record = json.loads(os.pread(fd, 4096, 0))
        except ValueError:  # empty or half-written
            continue
        if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
            continue
        found = {
            "pid": record["pid"],
            "host": str(record.get("host") or "") or None,
            "since": str(record.get("since") or "") or None,
        }
        if found["host"] != socket.gethostname() or _alive(found["pid"]):
            return found
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- PostgreSQL: a session advisory lock -------------------------------------------------------


class _PgLock:
    """The session holding the advisory lock; ending it releases the lock."""

    def __init__(self, engine: AsyncEngine, conn: AsyncConnection) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = conn

    async def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            await conn.close()  # NullPool: the session ends and the server drops its locks
        finally:
            await self._engine.dispose()


async def lock_postgres(url: URL) -> DatabaseLock:
    """Take the open lock of the PostgreSQL database (and schema) at ``url`` or raise
    ``DatabaseLocked``."""
    app = f"shoal pid={os.getpid()} host={socket.gethostname()}"[:63]  # NAMEDATALEN - 1
    engine = create_async_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"server_settings": {"application_name": app}},
    )
    try:
        conn = await engine.connect()
        try:
            holder = await conn.run_sync(_pg_try_lock)
        except BaseException:
            with contextlib.suppress(Exception):  # already failing: report the first error
                await conn.close()
            raise
    except BaseException:
        await engine.dispose()
        raise
    if holder is not None:
        await conn.close()
        await engine.dispose()
        raise DatabaseLocked(url.render_as_string(hide_password=True), **holder)
    return _PgLock(engine, conn)


def _pg_try_lock(conn: Connection) -> dict[str, Any] | None:
    """Take the advisory lock; None if taken, else who holds it (as far as visible)."""
    names = conn.execute(text("SELECT current_database(), current_schema()")).one()
    digest = hashlib.blake2b(
        f"shoal store open lock\0{names[0]}\0{names[1]}".encode(), digest_size=8
    ).digest()
    key = int.from_bytes(digest, "big", signed=True)
    if conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one():
        return None
    # A bigint advisory lock shows in pg_locks as (classid, objid) = its high and low 32
    # bits, objsubid 1, in the current database.
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    row = conn.execute(
        text(
            "SELECT l.pid AS backend_pid, a.application_name AS app, a.backend_start AS since"
            " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid::bigint = :hi AND l.objid::bigint = :lo"
        ),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF},
    ).first()
    if row is None:  # released in between: report what we know
        return {}
    match = _APP_NAME.match(row.app or "")
    return {
        "pid": int(match[1]) if match else None,
        "host": (match[2] or None) if match else None,
        "since": row.since.isoformat(timespec="seconds") if row.since is not None else None,
        "backend_pid": int(row.backend_pid),
    }
