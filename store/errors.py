"""The store's exceptions: one tree, structured attributes, never a swallowed database error.

::

    StoreError                      anything the store refuses or cannot do
    ├── DatabaseLocked              another opener (another process, or another Store in this
    │                               one) holds the database; names it; nothing was read or written
    ├── SchemaVersionMismatch       the database was written by a newer shoal (found > supported);
    │                               it is left untouched
    ├── CorruptBlob                 a stored JSON blob is not valid JSON or not a valid encoding
    │                               for its kind; names the key and the table; nothing is modified
    ├── KindMismatch                kept for callers that catch it: since schema version 3 an
    │                               object is named by (key, kind), and the store raises it no more
    ├── InvalidInput (ValueError)   a batch, summary or argument is malformed; refused before any
    │                               write
    └── StoreClosed                 the store was closed (or is closing) and takes no more calls

Database driver errors (``sqlalchemy.exc.DBAPIError`` and friends) are not wrapped: they say
what happened better than a rewording could.
"""

from __future__ import annotations

import os
import socket

__all__ = [
    "CorruptBlob",
    "DatabaseLocked",
    "InvalidInput",
    "KindMismatch",
    "SchemaVersionMismatch",
    "StoreClosed",
    "StoreError",
]


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class DatabaseLocked(StoreError):
    """``database`` (a path, or a URL without its password) is open in another process, or
    in another ``Store`` of this one: one process at a time opens a database.

    ``pid`` and ``host`` name the holder's process (``None`` if it could not be read),
    ``since`` when it took the database (ISO 8601), ``backend_pid`` its PostgreSQL session,
    ``opened_as`` the name the holder opened the same file as, when it is another one (a
    hard link). Refused before anything was read or written.
    """

    def __init__(
        self,
        database: str,
        *,
        pid: int | None = None,
        host: str | None = None,
        since: str | None = None,
        backend_pid: int | None = None,
        opened_as: str | None = None,
    ) -> None:
        details = []
        if pid == os.getpid() and host == socket.gethostname():
            details.append("this process: close the other Peer (or Store) that has it open first")
        elif host:
            details.append(f"host {host}")
        if opened_as:
            details.append(f"the same file, opened as {opened_as}")
        if since:
            details.append(f"since {since}")
        if backend_pid is not None:
            details.append(f"PostgreSQL backend {backend_pid}")
        who = f"process {pid}" if pid is not None else "another process"
        message = f"database {database} is in use by {who}"
        if details:
            message += f" ({', '.join(details)})"
        super().__init__(message + "; one process at a time may open it")
        self.database = database
        self.pid = pid
        self.host = host
        self.since = since
        self.backend_pid = backend_pid
        self.opened_as = opened_as


class SchemaVersionMismatch(StoreError):
    """The database's schema version is newer than this code supports; nothing was changed."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"database schema version {found} is newer than the supported version {supported}; "
            "upgrade shoal to open it (the database was left untouched)"
        )
        self.found = found
        self.supported = supported


class CorruptBlob(StoreError):
    """A stored blob could not be decoded: ``key`` in ``table`` (``detail`` says why)."""

    def __init__(self, key: str, table: str, detail: str = "") -> None:
        message = f"corrupt stored blob for key {key!r} in table {table!r}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.key = key
        self.table = table
        self.detail = detail


class KindMismatch(StoreError):
    """``key`` is stored as kind ``stored``; a write tried to give it kind ``given``.

    Not raised since schema version 3, where an object is named by its key and kind (a key
    two peers wrote as two kinds holds both); kept so that code catching it still imports."""

    def __init__(self, key: str, stored: str, given: str) -> None:
        super().__init__(
            f"key {key!r} holds a {stored!r}; refusing to write a {given!r} to it "
            "(nothing was written)"
        )
        self.key = key
        self.stored = stored
        self.given = given


class InvalidInput(StoreError, ValueError):
    """A malformed batch, summary or argument; refused before anything was written."""


class StoreClosed(StoreError):
    """The store is closed."""

    def __init__(self) -> None:
        super().__init__("the store is closed")
