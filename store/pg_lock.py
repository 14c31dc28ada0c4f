"""The open lock of a PostgreSQL database: one process at a time, as :mod:`store.lock` says.

A session-level ``pg_try_advisory_lock`` on a key hashed from the database and schema
names, taken on a dedicated connection (autocommit, ``application_name`` =
``shoal pid=PID host=HOST``) kept open for the store's lifetime. The server drops the lock
when that session ends, closed or killed with its process. A refused opener reads the
holder's session from ``pg_locks`` and ``pg_stat_activity``; each write transaction checks
that the session still holds it (:meth:`_PgLock.guard`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from .errors import DatabaseLocked, StoreError
from .lock import DatabaseLock

__all__ = ["lock_postgres"]

_APP_NAME = re.compile(r"^shoal pid=(\d+) host=(\S*)")


class _PgLock:
    """The session holding the advisory lock; ending it releases the lock.

    That session may end while the store goes on committing on its own connection: a
    server's ``idle_session_timeout``, a pooler or a firewall dropping an idle connection,
    an administrator's ``pg_terminate_backend``. A second process could then open the
    database and hand out dots under the same replica id. So each write transaction checks,
    before its commit, that the session still holds the lock (:meth:`guard`, one look at
    ``pg_locks``): once it does not, the commit is refused and the store stops."""

    def __init__(self, engine: AsyncEngine, conn: AsyncConnection, key: int, pid: int) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = conn
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        self._held = {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF, "pid": pid}

    def guard(self, conn: Connection) -> None:
        found = conn.execute(
            text(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 1 AND pid = :pid"
                " AND classid::bigint = :hi AND objid::bigint = :lo"
            ),
            self._held,
        ).first()
        if found is None:
            raise StoreError(
                "the database's open lock was lost (its PostgreSQL session ended: a timeout, "
                "a dropped connection, pg_terminate_backend): this store stops, so that no "
                "second opener writes under its replica id; open it again"
            )

    async def hold_file(self) -> None:
        """Nothing to do: the advisory lock covers the database from the start."""

    async def made(self) -> None:
        """Nothing to do: a transaction makes the schema, or nothing of it."""

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
            holder, key, pid = await conn.run_sync(_pg_try_lock)
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
    return _PgLock(engine, conn, key, pid)


def _pg_try_lock(conn: Connection) -> tuple[dict[str, Any] | None, int, int]:
    """Take the advisory lock: (None if taken, else who holds it as far as visible; the
    lock's key; this session's backend pid)."""
    names = conn.execute(text("SELECT current_database(), current_schema()")).one()
    digest = hashlib.blake2b(
        f"shoal store open lock\0{names[0]}\0{names[1]}".encode(), digest_size=8
    ).digest()
    key = int.from_bytes(digest, "big", signed=True)
    pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    if conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one():
        return None, key, pid
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
        return {}, key, pid
    match = _APP_NAME.match(row.app or "")
    holder = {
        "pid": int(match[1]) if match else None,
        "host": (match[2] or None) if match else None,
        "since": row.since.isoformat(timespec="seconds") if row.since is not None else None,
        "backend_pid": int(row.backend_pid),
    }
    return holder, key, pid
