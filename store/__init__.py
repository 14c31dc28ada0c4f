"""shoal's durable store: SQLite (default) or PostgreSQL, through SQLAlchemy 2 async Core.

See :mod:`store.store` for the theory of operation (group commit, durability),
:mod:`store.sql` for the storage logic (plain functions over a sync ``Connection``, one
module per job: :mod:`store.codec` for the stored text, :mod:`store.rows` and
:mod:`store.writes` for a write's two steps, :mod:`store.reads` for reads and keyset pages,
:mod:`store.opening` for the schema and the replica identity at open), :mod:`store.ondemand`
for the reads of an engine with a bounded cache and the log fold, :mod:`store.location` for
the database names every command accepts and the files the store refuses, :mod:`store.lock`
for the lock that lets one process at a time open a database, :mod:`store.records` for the
batch semantics, :mod:`store.writer` for where a group commit's transaction runs,
:mod:`store.schema` for tables and migrations and :mod:`store.report` for the read-only
report behind ``shoal inspect``, loaded on first use (PEP 562): a peer never reads it, and
``tests/store/test_dialect_import.py`` checks that a peer does not import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CorruptBlob,
    DatabaseLocked,
    InvalidInput,
    KindMismatch,
    SchemaVersionMismatch,
    StoreClosed,
    StoreError,
)
from .location import check_sqlite_file, database_url, describe_database
from .lock import (
    LOCK_SUFFIX,
    DatabaseLock,
    check_unheld,
    lock_path,
    lock_sqlite,
    read_head,
)
from .ondemand import (
    FOLD_PAGE,
    count_deleted_keys,
    count_objects,
    count_objects_upto,
    fold_page,
    get_objects,
    keys_page,
    kind_clashes,
    load_start,
    objects_page,
    prefix_end,
    unfolded_keys,
    unfolded_liveness,
)
from .pg_lock import lock_postgres
from .records import (
    Batch,
    BatchLike,
    HintIdLike,
    HintIdRow,
    HintLike,
    HintRow,
    Loaded,
    LogLike,
    LogRow,
    ObjectLike,
    ObjectRow,
    PeerLike,
    PeerRow,
)
from .schema import (
    IN_LIST_MAX,
    LIVE_INDEX,
    MIGRATION_PAGE,
    MIGRATIONS,
    SCHEMA_VERSION,
    SEGMENT_COLUMNS,
    SEGMENT_MAX_BYTES,
    SEGMENT_MAX_ENTRIES,
    Migration,
    SealIds,
    SegmentEntry,
    create_live_index,
    hints,
    insert_seals,
    log_segments,
    meta,
    metadata,
    objects,
    pack_segments,
    peers,
    seal_id,
    seal_text,
    seals,
    segment_fields,
    summaries,
    widen_hint_ids,
)
from .sql import (
    OpenResult,
    PreparedBatch,
    apply_prepared,
    check_card,
    check_context,
    compact,
    count_log,
    decode_blob,
    deltas_page,
    drop_unused_seals,
    encode,
    folded_mark,
    get_object,
    iter_log,
    load,
    mark_folded,
    open_database,
    prepare,
    read_meta,
    read_schema_version,
    rotate_replica_id,
    snapshot_page,
)
from .store import SYNCHRONOUS_LEVELS, Store, default_partition_of, sidecar_path
from .writer import (
    AsyncWriter,
    ThreadReader,
    ThreadWriter,
    Writer,
    install_begin,
    install_sqlite_hooks,
)

__all__ = [
    "FOLD_PAGE",
    "IN_LIST_MAX",
    "LIVE_INDEX",
    "LOCK_SUFFIX",
    "MIGRATIONS",
    "MIGRATION_PAGE",
    "SCHEMA_VERSION",
    "SEGMENT_COLUMNS",
    "SEGMENT_MAX_BYTES",
    "SEGMENT_MAX_ENTRIES",
    "SYNCHRONOUS_LEVELS",
    "AsyncWriter",
    "Batch",
    "BatchLike",
    "CorruptBlob",
    "DatabaseLock",
    "DatabaseLocked",
    "DatabaseReport",
    "HintIdLike",
    "HintIdRow",
    "HintLike",
    "HintRow",
    "InvalidInput",
    "KeysReport",
    "KindMismatch",
    "Loaded",
    "LogLike",
    "LogRow",
    "Migration",
    "ObjectLike",
    "ObjectReport",
    "ObjectRow",
    "OpenResult",
    "PeerLike",
    "PeerReport",
    "PeerRow",
    "PreparedBatch",
    "Progress",
    "SchemaVersionMismatch",
    "SealIds",
    "SegmentEntry",
    "Store",
    "StoreClosed",
    "StoreError",
    "ThreadReader",
    "ThreadWriter",
    "Writer",
    "apply_prepared",
    "check_card",
    "check_context",
    "check_sqlite_file",
    "check_unheld",
    "compact",
    "count_deleted_keys",
    "count_log",
    "count_objects",
    "count_objects_upto",
    "create_live_index",
    "database_url",
    "decode_blob",
    "default_partition_of",
    "deltas_page",
    "describe_database",
    "drop_unused_seals",
    "encode",
    "fold_page",
    "folded_mark",
    "get_object",
    "get_objects",
    "hints",
    "insert_seals",
    "install_begin",
    "install_sqlite_hooks",
    "iter_log",
    "keys_page",
    "kind_clashes",
    "load",
    "load_start",
    "lock_path",
    "lock_postgres",
    "lock_sqlite",
    "log_segments",
    "mark_folded",
    "meta",
    "metadata",
    "objects",
    "objects_page",
    "open_database",
    "pack_segments",
    "peers",
    "prefix_end",
    "prepare",
    "read_head",
    "read_keys",
    "read_meta",
    "read_report",
    "read_schema_version",
    "report_database",
    "report_keys",
    "rotate_replica_id",
    "seal_id",
    "seal_text",
    "seals",
    "segment_fields",
    "sidecar_path",
    "snapshot_page",
    "summaries",
    "unfolded_keys",
    "unfolded_liveness",
    "widen_hint_ids",
]

if TYPE_CHECKING:
    from .report import (
        DatabaseReport,
        KeysReport,
        ObjectReport,
        PeerReport,
        Progress,
        read_keys,
        read_report,
        report_database,
        report_keys,
    )

_REPORT_NAMES = frozenset(
    {
        "DatabaseReport",
        "KeysReport",
        "ObjectReport",
        "PeerReport",
        "Progress",
        "read_keys",
        "read_report",
        "report_database",
        "report_keys",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _REPORT_NAMES:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    value = getattr(importlib.import_module("store.report"), name)
    globals()[name] = value  # later lookups skip this function
    return value
