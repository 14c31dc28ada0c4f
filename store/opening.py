"""Opening a database: its schema (created, migrated, or a newer one refused) and its identity.

:func:`open_database` runs in the opening transaction: it creates or migrates the schema
(:data:`~store.schema.MIGRATIONS`), checks the partition count, and settles the replica
identity (see :mod:`store.store`); :func:`read_schema_version` reads the stored version
without writing, :func:`read_meta` the ``meta`` table, and :func:`rotate_replica_id`
retires the current id. Plain functions over a SQLAlchemy ``Connection``, like the rest of
the storage logic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, inspect, select

from .errors import SchemaVersionMismatch, StoreError
from .schema import MIGRATIONS, SCHEMA_VERSION, create_live_index, meta, metadata
from .writes import _upsert

__all__ = [
    "OpenResult",
    "open_database",
    "read_meta",
    "read_schema_version",
    "rotate_replica_id",
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
