"""Where a database is: the names every command accepts, and the files the store refuses.

Every command and ``Peer.open`` name a database the same ways, normalised by
:func:`database_url`: a path (``shop.db``), ``sqlite:///PATH``, ``sqlite+aiosqlite:///PATH``,
``postgresql://...`` (also ``postgres://``), ``postgresql+asyncpg://...`` (any PostgreSQL
driver named is replaced by asyncpg, the store's). :func:`describe_database` is how
messages name one (the SQLite path, or the URL without its password).

Before SQLite touches a file, the store checks it with :func:`check_sqlite_file` and
refuses, with a :class:`~store.errors.StoreError` naming the path and the cause, a missing
or read-only directory, a directory, a read-only file, a file that is not a SQLite
database, and an **empty (0-byte) file**: SQLite would take it for a new database and the
peer would start as a new, empty replica, where an empty file is far more likely a copy or
restore gone wrong than the operator's intent (remove it to create a new database there).
Another application's SQLite database is refused when its schema is read
(:func:`store.sql.read_schema_version`).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.engine import URL

from .errors import InvalidInput, StoreError
from .lock import read_head

__all__ = ["check_sqlite_file", "database_url", "describe_database"]


def database_url(url_or_path: str | os.PathLike[str]) -> URL:
    """The store's URL for a database named any of the accepted ways (module docstring).

    A path or ``sqlite:///PATH`` becomes ``sqlite+aiosqlite:///ABSOLUTE_PATH``; a
    PostgreSQL URL (``postgresql://``, ``postgres://``, any driver) gets the asyncpg driver.
    ``InvalidInput`` (a ``ValueError``) for an empty name, a string that is not a URL or
    another database. Reads no file.
    """
    raw = os.fspath(url_or_path)
    if not raw:
        raise InvalidInput("no database given: name a SQLite file or a database URL")
    if "://" not in raw:
        return URL.create("sqlite+aiosqlite", database=os.path.abspath(raw))
    if raw.startswith("postgres://"):  # the short scheme many hosts print
        raw = "postgresql://" + raw[len("postgres://") :]
    try:
        url = make_url(raw)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError: reword for the user
        raise InvalidInput(f"not a database URL: {raw!r} ({exc})") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            url = url.set(database=os.path.abspath(url.database))
        return url.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+asyncpg")
    raise InvalidInput(
        f"unsupported database URL {url.render_as_string()!r}: use a SQLite path, "
        "sqlite:///PATH or postgresql://..."
    )


def describe_database(url_or_path: str | os.PathLike[str]) -> str:
    """How messages name a database: the SQLite path, or the URL without its password."""
    try:
        url = database_url(url_or_path)
    except InvalidInput:
        return repr(os.fspath(url_or_path))
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


#: The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_file(path: Path, *, empty_ok: bool = False) -> None:
    """Refuse, before SQLite touches it, a database file the store cannot or must not use.

    :class:`StoreError` naming ``path`` and the cause: its directory is missing or not
    writable (SQLite creates ``-wal``, ``-shm`` and the lock file next to it), it is a
    directory, an empty (0-byte) file (unless ``empty_ok``: one an interrupted open of ours
    left while it made the database), not a SQLite file, or read-only.
    A file that is absent in a writable directory is fine (it will be created).
    """
    parent = path.parent
    if not parent.is_dir():
        raise StoreError(f"cannot open database {path}: directory {parent} does not exist")
    if path.is_dir():
        raise StoreError(f"cannot open database {path}: it is a directory")
    if not path.exists():
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"cannot create database {path}: directory {parent} is not writable")
        return
    try:
        head = read_head(path, len(SQLITE_MAGIC))  # (keeps this process's SQLite locks)
    except OSError as exc:
        raise StoreError(f"cannot read database {path}: {exc.strerror or exc}") from exc
    if not head and empty_ok:
        head = SQLITE_MAGIC  # (checked as a file SQLite will make a database in)
    if not head:
        raise StoreError(
            f"database {path} is an empty file (0 bytes), not a shoal database: refusing to "
            "start it as a new replica; remove it to create a new database there"
        )
    if head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not a shoal database (not a SQLite file)")
    if not os.access(path, os.W_OK):
        raise StoreError(f"database {path} is read-only (a peer writes to its database)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(
            f"database {path}: directory {parent} is not writable (SQLite keeps its write-ahead "
            "log and the lock file next to the database)"
        )
