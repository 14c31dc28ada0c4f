"""Opening a database: its schema (created, migrated, or a newer one refused) and its identity.

Before a :class:`~store.Store` exists, :meth:`~store.Store.open` reads the stored schema
version (:func:`read_schema_version`; for SQLite first with a plain connection that writes
nothing, :func:`_check_sqlite`), then :func:`_open_identity` gathers where the database is
now and runs :func:`open_database` in one transaction: create or migrate the schema
(:data:`~store.schema.MIGRATIONS`), check the partition count, and settle the replica
identity. The sync functions are plain functions over a SQLAlchemy ``Connection``, like the
rest of the storage logic; the async ones around them only gather their inputs (a file's
device and inode, the sidecar token, the PostgreSQL database's oid) and write the sidecar.

Replica identity, and why a copy must not keep it. A replica id names the sequence of dots
(and log dots) this database hands out. If a database is copied, or restored from a backup,
and both the copy and the original (or the pre-restore history others have seen) keep issuing
dots under the same id, two different writes get the same dot and one is silently lost.
So the store *detects* a copy/restore at open and then mints a new replica id (the data
is kept, the old id is recorded in ``meta.past_replica_ids``):

* SQLite: ``meta.identity`` holds a stamp of where the database lives (real path, device and
  inode of the file) and a random token that is renewed at every open and at every clean
  close (:func:`_renew_token`) and also written to a sidecar file ``PATH.shoal-id``
  (atomically: beside the token it holds before the transaction commits, alone after, so
  that it holds the database's token whatever fails in between, :func:`_ahead`). At open,
  a different device/inode means the file was copied (or moved to another file system); a
  sidecar that lacks the stored token means the file was restored from a backup taken
  before the last clean close or open (even by ``cp`` over the same inode, and a backup
  taken while the store ran: the close renewed the token after it), or copied or moved
  without its sidecar. A file renamed on its file system *with* its sidecar (same device
  and inode, same token) was moved: it keeps its id.
* PostgreSQL: the stamp is the cluster's system identifier (when readable), the database oid
  and schema: a dump restored elsewhere, or ``CREATE DATABASE ... TEMPLATE``, gets a new id.

Detection errs toward rotating (a rotation only costs a fresh id). A database without a
stamp (one migrated from schema version 0) rotates on its first open for the same reason.
What it cannot see: a database restored in place *together with its sidecar* (the two
tokens match, whichever open they come from), one restored in place from a backup taken
while the store ran, when that run ended without a clean close (killed, a crash, a close
that could not renew the token: the sidecar still holds that open's token), a WAL deleted
after a crash (the commits since the last checkpoint go with it), or a PostgreSQL physical
restore into the same cluster identity. For those, the engine reports an
``IdentityConflict`` when a peer has seen more of our log dots than we have, and the peer
rotates the id (:meth:`~store.Store.rotate_replica_id`); writes made offline before that
contact reuse dots and can be lost, so keep the sidecar out of database backups.

A run cut short at ``synchronous=NORMAL``. There a commit is acknowledged (and its writes
sent to peers) before the WAL is synced; a process crash loses nothing (the OS still writes
the WAL), but a power loss or an OS crash takes the WAL's tail since the last checkpoint,
whose dots peers may hold: kept under its id, the database would issue them again for other
writes, lost behind them. So a SQLite open records the run in ``meta.running`` (its
``synchronous`` level and the machine's boot id, :func:`_boot_id`; at ``NORMAL`` the open
then checkpoints the WAL, else a power loss took the record with the tail it is there for)
and a clean close clears it; an open that finds it set by a run at ``NORMAL`` under another
boot (or an unknown one) mints a new replica id. At ``FULL`` and ``EXTRA`` every commit is
synced before it is acknowledged, and a run killed without a restart in between lost
nothing: both keep the id.

(A WAL found missing after a run that did not close cleanly does not tell a lost WAL from
one that another SQLite program folded into the file and removed, as its close does: a
``sqlite3 PATH`` between the crash and the restart. Rotating on it cost a new id, and the
signatures of the run's unsent entries, at every such look.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import Connection, create_engine, delete, inspect, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from crdt import replica_id_for

from .errors import SchemaVersionMismatch, StoreError
from .location import check_sqlite_file
from .lock import _to_its_end, making_interrupted
from .schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    create_live_index,
    meta,
    metadata,
    widen_hint_ids,
)
from .writes import _upsert

__all__ = [
    "OpenResult",
    "open_database",
    "read_meta",
    "read_schema_version",
    "rotate_replica_id",
    "sidecar_path",
]


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
    if not isinstance(value, str) or not value.isdigit():  # (a file made by another program)
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
    cut_short: bool = False  # rotated: the last run may have lost commits (meta.running)


def open_database(
    conn: Connection,
    *,
    partitions: int,
    partition_of: Callable[[str], int],
    where: Mapping[str, Any],
    token: str,
    sidecar_tokens: tuple[str, ...],
    uses_sidecar: bool,
    run: Mapping[str, Any] | None = None,
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
    (``rekeyed``), the old one recorded as past. ``run`` (SQLite: its ``synchronous`` level
    and the boot id) is recorded in ``meta.running`` until a clean close; found there from a
    run at ``NORMAL`` under another boot, it means the end of that run may have lost commits
    that peers hold: a new id too (``cut_short``).
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
        widen_hint_ids(conn)
    values = read_meta(conn)
    stored_parts = values.setdefault("partitions", str(partitions))
    if stored_parts != str(partitions):
        raise StoreError(
            f"the database uses {stored_parts} partitions; opened with partitions={partitions}"
        )
    past: list[str] = json.loads(values.get("past_replica_ids", "[]"))
    replica_id = values.get("replica_id")
    rotated = rekeyed = cut_short = False
    key_hex = values.get("signing_key")
    if replica_id is None:
        replica_id, key = new_identity()
    elif key_hex is None:
        past.append(replica_id)
        replica_id, key = new_identity()
        rekeyed = True
    else:
        key = bytes.fromhex(key_hex)
        stamp = _json_object(values.get("identity"))
        if (
            stamp is None
            or not _same_storage(stamp.get("where"), where)
            or (uses_sidecar and stamp.get("token") not in sidecar_tokens)
        ):
            past.append(replica_id)
            replica_id, key = new_identity()
            rotated = True
        elif run is not None and _cut_short(values.get("running"), run):
            past.append(replica_id)
            replica_id, key = new_identity()
            rotated = cut_short = True
    settled = {
        "partitions": str(partitions),
        "replica_id": replica_id,
        "signing_key": key.hex(),
        "past_replica_ids": json.dumps(past),
        "identity": json.dumps({"where": dict(where), "token": token}, sort_keys=True),
    }
    if run is not None:
        settled["running"] = json.dumps(dict(run), sort_keys=True)
    _set_meta(conn, settled)
    return OpenResult(
        replica_id,
        created,
        None if created or found == SCHEMA_VERSION else found,
        rotated,
        tuple(past),
        key,
        rekeyed,
        cut_short,
    )


def _cut_short(found: str | None, now: Mapping[str, Any]) -> bool:
    """May the run recorded in ``found`` (``meta.running``, left set: no clean close) have
    lost commits? It ran at ``synchronous=NORMAL`` and ended under another boot than
    ``now``'s (or an unknown one)."""
    if found is None:
        return False
    last = _json_object(found)
    if last is None:
        return True  # (not ours to read: err toward rotating)
    if last.get("synchronous") in ("FULL", "EXTRA"):
        return False
    boot = last.get("boot")
    return boot is None or boot != now.get("boot")


def _boot_id() -> str | None:
    """This boot of the machine (Linux: ``/proc/sys/kernel/random/boot_id``), None where
    unknown: a run cut short under an unknown boot counts as cut by a power loss."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


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


def _json_object(text: str | None) -> dict[str, Any] | None:
    """The JSON object a ``meta`` value holds (the identity stamp, the record of a run);
    None: no value, or one that is not a JSON object, as another program may leave it (the
    callers then err toward a new id)."""
    if text is None:
        return None
    try:
        stamp = json.loads(text)
    except ValueError:
        return None
    return stamp if isinstance(stamp, dict) else None


def _renew_token(conn: Connection, token: str, opened: str | None = None) -> bool:
    """At a clean close: put ``token`` in the identity stamp in place of the open's (the
    caller then writes the sidecar) and clear ``meta.running``; False, changing nothing, for
    a database without a stamp or with one that is not a JSON object, or (``opened``: the
    token of an open that failed) one whose stamp that open did not write (its record is an
    earlier run's, kept)."""
    if not inspect(conn).has_table("meta"):  # (an open that failed making the database)
        return False
    stamp = _json_object(read_meta(conn).get("identity"))
    if stamp is None:  # none, or spoilt by another program: left as it is for the next open
        return False
    if opened is not None and stamp.get("token") != opened:
        return False
    stamp["token"] = token
    _set_meta(conn, {"identity": json.dumps(stamp, sort_keys=True)})
    conn.execute(delete(meta).where(meta.c.name == "running"))
    return True


async def _renew_identity_token(
    engine: AsyncEngine, db_path: Path, opened: str | None = None
) -> None:
    """At a clean close (or the end of an open that failed, ``opened`` its token): a new
    token in the stamp, then in the sidecar. A backup taken while the store ran holds the
    open's token, which no longer matches the sidecar: restored in place, even with the
    sidecar left as it is, it gets a new replica id at its next open."""
    token = secrets.token_hex(16)
    side = sidecar_path(db_path)

    async def renew() -> None:
        await _ahead(side, token)
        async with engine.execution_options(shoal_write=True).begin() as aconn:
            renewed = await aconn.run_sync(_renew_token, token, opened)
        if renewed:
            await asyncio.to_thread(_write_sidecar, side, token)

    # As at open: a cancelled close still writes the sidecar once the stamp has the token.
    await _to_its_end(renew())


def _read_tokens(side: Path) -> tuple[str, ...]:
    """The tokens the sidecar ``side`` holds (none if it is missing)."""
    try:
        return tuple(side.read_text().split())
    except FileNotFoundError:
        return ()


async def _ahead(side: Path, token: str) -> None:
    """Before ``token`` replaces the database's token: the sidecar ``side`` holds it beside
    the token it holds now, so it holds the database's whether the commit lands or not (a
    full disk that refuses the sidecar's write after the commit gave a database never moved
    a new replica id at its next open); a failure here leaves both as they were. (A sidecar
    that holds none is left as it is: the next open rotates regardless.)"""
    held = await asyncio.to_thread(_read_tokens, side)
    if held:
        await asyncio.to_thread(_write_sidecar, side, held[-1], token)


def sidecar_path(db_path: str | os.PathLike[str]) -> Path:
    """Where the SQLite identity token lives: next to the database, ``PATH.shoal-id``."""
    return Path(f"{os.fspath(db_path)}.shoal-id")


def _new_identity() -> tuple[str, bytes]:
    """A fresh replica identity: an Ed25519 key pair, and the id derived from its public key
    (:func:`crdt.replica_id_for`: 100 bits of its SHA-256 as 20 lowercase base32 characters).

    The id is in every dot, hence in every log entry, delta, message and stored state (about
    four times per delta): 20 characters instead of a UUID's 32 hex digits make each delta
    about 15% smaller. 100 bits keep a collision negligible (about 1e-18 for a million
    replicas); a database copied with its id is caught by the identity stamp instead. Returns
    the id and the 32 raw bytes of the private key (kept in ``meta.signing_key``).
    """
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return replica_id_for(public), private


def _check_sqlite(path: Path) -> None:
    # (An empty file left by an opener killed while it made the database is a new one.)
    check_sqlite_file(path, empty_ok=making_interrupted(path))
    if path.exists():
        _precheck_sqlite(path)


def _precheck_sqlite(path: Path) -> None:
    """Read the schema version with a plain connection that writes nothing."""
    engine = create_engine(URL.create("sqlite", database=str(path)), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            try:
                found = read_schema_version(conn)
            except StoreError as exc:  # another application's database: name the file
                raise StoreError(f"{path} is {exc}") from exc
            except DatabaseError as exc:  # a damaged file: SQLite's words, the path first
                raise StoreError(f"cannot read database {path}: {exc.orig or exc}") from exc
            if found is not None and found > SCHEMA_VERSION:
                raise SchemaVersionMismatch(found, SCHEMA_VERSION)
    finally:
        engine.dispose()


async def _open_identity(
    engine: AsyncEngine,
    db_path: Path | None,
    partitions: int,
    partition_of: Callable[[str], int],
    hold_file: Callable[[], Awaitable[None]],
    synchronous: str = "FULL",
    token: str | None = None,
) -> OpenResult:
    """Settle the database's schema and identity (:func:`open_database`); ``hold_file`` is
    the open lock's (:mod:`store.lock`), awaited once the file exists, before the
    transaction that writes them; ``token``: this open's (default: a new one)."""
    token = token or secrets.token_hex(16)
    write_engine = engine.execution_options(shoal_write=True)
    sidecar_tokens: tuple[str, ...] = ()
    run: dict[str, Any] | None = None  # SQLite: this run, in meta.running until a clean close
    if db_path is not None:
        async with engine.connect() as conn:  # creates the file if it is new
            await conn.run_sync(lambda c: c.exec_driver_sql("SELECT 1").all())
        await hold_file()  # a file just made: locked before its schema and identity are written
        st = db_path.stat()
        where: dict[str, Any] = {
            "path": os.path.realpath(db_path),
            "dev": st.st_dev,
            "ino": st.st_ino,
        }
        sidecar_tokens = await asyncio.to_thread(_read_tokens, sidecar_path(db_path))
        run = {"synchronous": synchronous, "boot": _boot_id()}
    else:
        async with engine.connect() as conn:
            where = await conn.run_sync(_pg_where)

    async def settle() -> OpenResult:
        if db_path is not None:
            await _ahead(sidecar_path(db_path), token)
        async with write_engine.begin() as aconn:
            opened: OpenResult = await aconn.run_sync(
                lambda c: open_database(
                    c,
                    partitions=partitions,
                    partition_of=partition_of,
                    where=where,
                    token=token,
                    sidecar_tokens=sidecar_tokens,
                    uses_sidecar=db_path is not None,
                    run=run,
                    new_identity=_new_identity,
                )
            )
        if db_path is not None:
            if synchronous == "NORMAL":
                # That commit sits in the WAL unsynced: a power loss before the store's first
                # checkpoint took meta.running with it, and the run went unseen (its id
                # changed by the sidecar's token alone, as if the file had been restored).
                async with engine.connect() as conn:
                    await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            await asyncio.to_thread(_write_sidecar, sidecar_path(db_path), token)
        return opened

    # The token goes to the database, then to the sidecar, whatever happens to the caller:
    # cancelled in between (SQLite commits in its thread all the same), the sidecar kept
    # the old token and the next open rotated the replica id of a database never copied.
    return await _to_its_end(settle())


def _pg_where(conn: Connection) -> dict[str, Any]:
    row = conn.execute(
        text(
            "SELECT d.oid::bigint AS oid, current_database() AS db, current_schema() AS schema,"
            " has_function_privilege('pg_control_system()', 'EXECUTE') AS can_read_control"
            " FROM pg_database d WHERE d.datname = current_database()"
        )
    ).one()
    where: dict[str, Any] = {"db_oid": int(row.oid), "database": row.db, "schema": row.schema}
    if row.can_read_control:
        where["system_identifier"] = str(
            conn.execute(text("SELECT system_identifier FROM pg_control_system()")).scalar_one()
        )
    conn.rollback()
    return where


def _write_sidecar(path: Path, *tokens: str) -> None:
    """``tokens`` (one per line) in the sidecar ``path``, atomically: a failure leaves it
    as it was, and no temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write("".join(t + "\n" for t in tokens))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
