"""The storage logic's one namespace: the plain functions over a SQLAlchemy (sync)
``Connection`` that :class:`store.Store` runs, gathered from the modules that hold them.

:class:`store.Store` only calls these through ``AsyncConnection.run_sync`` (or its writer,
:mod:`store.writer`) and adds the group-commit queue. Each function runs inside the
transaction its caller opened and never commits: the caller decides the transaction's
extent. The logic itself lives in one module per job:

* :mod:`store.codec`: the stored text -- :func:`encode` a ``to_dict()`` form,
  :func:`decode_blob`, :func:`check_context` and :func:`check_card` to decode and check
  what is read (a bad blob raises :class:`~store.errors.CorruptBlob` naming the key and
  table).
* :mod:`store.rows`: writes, step 1 -- :func:`prepare` (pure, no database) validates a
  :class:`~store.records.BatchLike` into a :class:`PreparedBatch` of table rows; bad input
  raises :class:`~store.errors.InvalidInput` before any SQL.
* :mod:`store.writes`: writes, step 2 -- :func:`apply_prepared` writes a list of prepared
  batches in one transaction, one ``executemany`` per table and per run, the log appended
  as segments, compaction; the log fold mark (:func:`mark_folded`,
  :func:`folded_mark`).
* :mod:`store.reads`: :func:`load`, :func:`get_object`, :func:`iter_log`,
  :func:`count_log`, and the keyset pages :func:`deltas_page` and :func:`snapshot_page`;
  the log's readers return each log dot once, from its first stored segment.
* :mod:`store.opening`: :func:`open_database` (create, migrate, check, settle the replica
  identity), :func:`read_schema_version`, :func:`read_meta`, :func:`rotate_replica_id`.

The reads of an engine that holds a bounded cache of objects, and the log fold at open, are
in :mod:`store.ondemand`.
"""

from __future__ import annotations

from .codec import check_card, check_context, decode_blob, encode
from .opening import (
    OpenResult,
    open_database,
    read_meta,
    read_schema_version,
    rotate_replica_id,
)
from .reads import count_log, deltas_page, get_object, iter_log, load, snapshot_page
from .rows import PreparedBatch, prepare
from .writes import (
    SWEEP_MIN,
    SealSweep,
    apply_prepared,
    drop_unused_seals,
    folded_mark,
    mark_folded,
)

__all__ = [
    "SWEEP_MIN",
    "OpenResult",
    "PreparedBatch",
    "SealSweep",
    "apply_prepared",
    "check_card",
    "check_context",
    "count_log",
    "decode_blob",
    "deltas_page",
    "drop_unused_seals",
    "encode",
    "folded_mark",
    "get_object",
    "iter_log",
    "load",
    "mark_folded",
    "open_database",
    "prepare",
    "read_meta",
    "read_schema_version",
    "rotate_replica_id",
    "snapshot_page",
]
