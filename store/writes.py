"""Writing: a list of prepared batches applied in one transaction, compaction, the fold mark.

:func:`apply_prepared` writes a list of :class:`~store.rows.PreparedBatch` in the caller's
transaction with one ``executemany`` per table and per *run*: consecutive batches are merged
into a run until one carries order-sensitive work (``hints_drop`` or ``compact``), which
closes it, so the merged result equals applying the batches one after another. A run's log
entries are grouped by (partition, origin) and appended as log *segments* (one row per
group, cut at :data:`~store.schema.SEGMENT_MAX_ENTRIES` entries or about
:data:`~store.schema.SEGMENT_MAX_BYTES`; see :mod:`store.schema`): a transaction of N
entries writes a handful of rows, not N, and each seal its segments and hints name once, in
``seals``, before them. Appending reads nothing: a log dot that is already
stored may be stored again, and the readers (:mod:`store.reads`) keep the first one.

:func:`apply_prepared` also compacts: it deletes the log below a watermark (and, amortized
over the seals written, the seals nothing names any more: :class:`SealSweep`). The log fold
mark (``meta.log_folded``, :func:`mark_folded`, :func:`folded_mark`; see
:mod:`store.ondemand`) records how much of the log is already in the objects. Like every
storage function, these run inside the transaction their caller opened and never commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    Connection,
    Insert,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError

from .codec import _parse_segment, _seal_ids
from .errors import CorruptBlob, StoreError
from .rows import (
    _HINT_COLS,
    _OBJECT_COLS,
    _PEER_COLS,
    _SEGMENT_COLS,
    PreparedBatch,
    Row,
)
from .schema import (
    IN_LIST_MAX,
    SealIds,
    hints,
    log_segments,
    meta,
    objects,
    pack_segments,
    peers,
    seal_id,
)
from .schema import seals as seals_table
from .schema import summaries as summaries_table

__all__ = [
    "SWEEP_MIN",
    "SealSweep",
    "apply_prepared",
    "drop_unused_seals",
    "folded_mark",
    "mark_folded",
]


def _insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        # Imported here: a peer on SQLite never loads PostgreSQL's dialect (2 MB resident).
        from sqlalchemy.dialects import postgresql as pg_dialect

        return pg_dialect.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite_dialect.insert(table)
    raise StoreError(f"unsupported database dialect {conn.dialect.name!r}")


def _upsert(conn: Connection, table: Any, keys: Sequence[str]) -> Insert:
    stmt = _insert(conn, table)
    columns = [c.name for c in table.columns if c.name not in keys]
    result: Insert = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in columns}
    )
    return result


def _insert_ignore(conn: Connection, table: Any, keys: Sequence[str]) -> Insert:
    result: Insert = _insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))
    return result


def _statements(conn: Connection) -> dict[str, tuple[Any, Sequence[str]]]:
    """The write statements (Core, for this dialect) and the column order of their rows."""
    drop = delete(hints).where(
        hints.c.target == bindparam("target"),
        hints.c.origin == bindparam("origin"),
        hints.c.partition == bindparam("partition"),
        hints.c.seq == bindparam("seq"),
    )
    return {
        "objects": (_upsert(conn, objects, ["key", "kind"]), _OBJECT_COLS),
        "log": (_insert(conn, log_segments), _SEGMENT_COLS),
        "summaries": (_upsert(conn, summaries_table, ["partition"]), ("partition", "ctx")),
        "hints_add": (
            _insert_ignore(conn, hints, ["target", "origin", "partition", "seq"]),
            _HINT_COLS,
        ),
        "peers": (_upsert(conn, peers, ["replica_id"]), _PEER_COLS),
        "seals": (_insert_ignore(conn, seals_table, ["id"]), ("id", "seal")),
        "hints_drop": (drop, ("target", "origin", "partition", "seq")),
    }


_COMPILED: dict[tuple[str, str], tuple[str, Callable[[Row], Any] | None]] = {}


def _compiled(conn: Connection, name: str) -> tuple[str, Callable[[Row], Any] | None]:
    """``name``'s SQL for this dialect, compiled once, and how to map a row tuple to the
    driver's parameters (None: the tuple already is them).

    The rows go to ``exec_driver_sql`` as one executemany: SQLAlchemy builds the statement
    (dialect-correct upserts), the driver gets the rows without per-row processing. That
    is safe because every bound value is a str, int, bool or None, which both drivers take
    as they are.
    """
    cache_key = (conn.dialect.name, name)
    found = _COMPILED.get(cache_key)
    if found is None:
        stmt, cols = _statements(conn)[name]
        # for_executemany: no RETURNING of generated ids (nothing reads them back).
        compiled = stmt.compile(dialect=conn.dialect, column_keys=list(cols), for_executemany=True)
        if compiled.positional:
            order = list(compiled.positiontup or [])
            if order == list(cols):
                mapper: Callable[[Row], Any] | None = None
            else:
                index = [cols.index(n) for n in order]
                mapper = lambda row: tuple(row[i] for i in index)  # noqa: E731
        else:
            mapper = lambda row: dict(zip(cols, row, strict=True))  # noqa: E731
        found = _COMPILED[cache_key] = (compiled.string, mapper)
    return found


def _executemany(conn: Connection, name: str, rows: Iterable[Row]) -> None:
    """Run ``name`` once per row: one executemany on the driver's cursor.

    Straight on the cursor of the connection's DB-API connection: ``exec_driver_sql`` would
    pass the same statement and rows to the same call, after building an execution context
    and a result per statement, which was about as long as SQLite's own work for a
    one-write transaction (``benchmarks/speed_bench.py --goals serial``). A driver error is
    raised as ``exec_driver_sql`` would raise it (:class:`sqlalchemy.exc.DBAPIError`).
    """
    sql_text, mapper = _compiled(conn, name)
    params = list(rows) if mapper is None else [mapper(r) for r in rows]
    if params:
        on_cursor(conn, sql_text, params)


def on_cursor(conn: Connection, statement: str, params: list[Any] | None = None) -> None:
    """``statement`` on a cursor of the connection's DB-API connection: once per row of
    ``params`` (``executemany``), or once without parameters (None). A driver error is raised
    as ``exec_driver_sql`` would raise it (:class:`sqlalchemy.exc.DBAPIError`)."""
    cursor = conn.connection.cursor()
    try:
        if params is None:
            cursor.execute(statement)
        else:
            cursor.executemany(statement, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            statement, params, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
        ) from exc
    finally:
        cursor.close()


def _runs(batches: Iterable[PreparedBatch]) -> list[PreparedBatch]:
    groups: list[list[PreparedBatch]] = [[]]
    for batch in batches:
        groups[-1].append(batch)
        if batch.ordered:
            groups.append([])
    runs: list[PreparedBatch] = []
    for group in groups:
        if len(group) == 1:
            runs.append(group[0])
        elif group:
            merged = PreparedBatch()
            for batch in group:
                merged.absorb(batch)
            runs.append(merged)
    return runs


def _segment_rows(
    log: Mapping[tuple[int, str], Mapping[int, Any]], found: SealIds
) -> Iterator[Row]:
    """A prepared log (per (partition, origin), per seq, an entry: see
    :attr:`~store.rows.PreparedBatch.log`) as ``_SEGMENT_COLS`` rows: one segment per
    (partition, origin), entries in seq order, cut by the schema's limits; the seals they
    name put in ``found``."""
    for (part, origin), by_seq in log.items():
        seqs = sorted(by_seq)  # (the engine appends in seq order: a linear pass)
        yield from pack_segments(part, origin, [by_seq[seq] for seq in seqs], found)


def _hint_rows(rows: Iterable[Row], found: SealIds) -> list[Row]:
    """Prepared hint rows (their seal the seal's text, last) with the seal's id in its place;
    the seals put in ``found`` (by text)."""
    out: list[Row] = []
    for row in rows:
        stored = row[-1]
        if stored is None:
            out.append(row)
            continue
        known = found.get(stored)
        if known is None:
            known = found[stored] = (seal_id(stored), stored)
        out.append((*row[:-1], known[0]))
    return out


#: The fewest seals stored since the last sweep that make a peer's compaction sweep again
#: (:class:`SealSweep`).
SWEEP_MIN = 256


class SealSweep:
    """When a compacting transaction also deletes the seals nothing names.

    A sweep (:func:`drop_unused_seals`) reads the ``seals`` of every segment, which lie after
    their ``entries`` in the row: it reads the whole log. Sweeping at every compaction made a
    large log's catch-up quadratic (each partition's compaction read the log again), so a
    peer's compaction sweeps only once the seals named by the transactions since the last
    sweep reach as many as that sweep left (at least :data:`SWEEP_MIN`): the reads are
    amortized over the seals written, and what is stored of unused seals stays within about
    the live ones plus :data:`SWEEP_MIN`. The first compacting transaction on a connection
    sweeps (nothing is known yet; after a failed transaction, whose sweep was rolled back
    with it, :meth:`forget` starts over), and so does :meth:`store.Store.compact` (an
    explicit call)."""

    __slots__ = ("live", "named")

    def __init__(self) -> None:
        #: Seals left by the last sweep (None: no sweep yet on this connection).
        self.live: int | None = None
        #: Seals named by the transactions since then (stored, or already there).
        self.named = 0

    @classmethod
    def of(cls, conn: Connection) -> SealSweep:
        """The connection's own (kept in its ``info``, which lives as long as the driver's
        connection: one per writer)."""
        info = conn.info
        sweep = info.get("shoal_seal_sweep")
        if sweep is None:
            sweep = info["shoal_seal_sweep"] = cls()
        return sweep

    @staticmethod
    def forget(conn: Connection) -> None:
        """Drop the connection's counters after a transaction that failed: a sweep it ran was
        rolled back with it, so the next compaction sweeps (they outlive the transaction)."""
        with contextlib.suppress(Exception):  # (a connection invalidated by the failure)
            conn.info.pop("shoal_seal_sweep", None)

    def due(self) -> bool:
        return self.live is None or self.named >= max(SWEEP_MIN, self.live)

    def sweep(self, conn: Connection) -> None:
        drop_unused_seals(conn)
        self.live = conn.execute(select(func.count()).select_from(seals_table)).scalar_one()
        self.named = 0


def drop_unused_seals(conn: Connection) -> None:
    """Delete the seals that no log segment and no hint names (one statement, which reads the
    ``seals`` of every segment; see :class:`SealSweep` for when a compaction runs it)."""
    if conn.dialect.name == "postgresql":
        # NOT EXISTS: an anti-join, hashed and spilled to disk as needed (a NOT IN list
        # larger than work_mem would be scanned once per seal).
        statement = (
            "DELETE FROM seals AS s WHERE NOT EXISTS (SELECT 1 FROM log_segments AS g,"
            " jsonb_array_elements_text(g.seals::jsonb) AS j(id)"
            " WHERE g.seals <> '[]' AND j.id = s.id)"
            " AND NOT EXISTS (SELECT 1 FROM hints AS h WHERE h.seal = s.id)"
        )
    else:
        # NOT IN: SQLite builds each list once, as a temporary index.
        statement = (
            "DELETE FROM seals WHERE id NOT IN"
            " (SELECT j.value FROM log_segments AS g, json_each(g.seals) AS j)"
            " AND id NOT IN (SELECT seal FROM hints WHERE seal IS NOT NULL)"
        )
    on_cursor(conn, statement)


def apply_prepared(conn: Connection, batches: Sequence[PreparedBatch]) -> list[int]:
    """Write ``batches`` in order, in the caller's transaction; return the log dots each
    batch's ``compact`` removed."""
    removed: list[int] = []
    compacted = forced = False
    for run in _runs(batches):
        found: SealIds = {}
        segments = list(_segment_rows(run.log, found))
        hint_rows = _hint_rows(run.hints_add.values(), found)
        if found:  # each seal once, before the rows naming it
            _executemany(conn, "seals", sorted(dict(found.values()).items()))
            SealSweep.of(conn).named += len(found)
        _executemany(conn, "objects", run.objects.values())
        _executemany(conn, "log", segments)
        _executemany(conn, "summaries", run.summaries.items())
        _executemany(conn, "hints_add", hint_rows)
        _executemany(conn, "peers", run.peers.values())
        _executemany(conn, "hints_drop", run.hints_drop)
        # Only the last batch of a run may compact or fold (it closes the run).
        for part, wm in run.compact:
            count, changed = _compact(conn, part, wm, count=run.count_compacted)
            removed.append(count)
            compacted = compacted or changed
        forced = forced or run.count_compacted  # (Store.compact: an explicit call)
        if run.fold:
            mark_folded(conn)
    if compacted:
        sweep = SealSweep.of(conn)
        if forced or sweep.due():
            sweep.sweep(conn)
    return removed


def _compact(
    conn: Connection, partition: int, watermark: Mapping[str, int], *, count: bool
) -> tuple[int, bool]:
    """Delete log entries of ``partition`` with ``seq <= watermark[origin]``: how many log
    dots went (0 unless ``count``), and whether any segment was deleted or rewritten (then
    the caller may sweep the seals: :class:`SealSweep`).

    A segment wholly at or below the watermark (its ``last_seq``) is deleted, unread unless
    ``count``; one that straddles it is rewritten in place (same id, so it keeps its place in
    the stored order) without those entries, and without the seals only they named. The fold
    mark comes down to the last segment left (:func:`_lower_mark_to_log`)."""
    marks = {origin: n for origin, n in watermark.items() if n > 0}
    if not marks:
        return 0, False
    c = log_segments.c
    bound = case(*((c.origin == origin, literal(n)) for origin, n in marks.items()), else_=0)
    mine = (c.partition == partition, c.origin.in_(list(marks)), c.first_seq <= bound)
    # Reading a segment costs a parse of all its deltas: only those it keeps a part of are
    # read, unless the caller counts (a peer's compactions do not; Store.compact does).
    read = mine if count else (*mine, c.last_seq > bound)
    found = conn.execute(select(c.id, c.origin, c.entries, c.seals).where(*read)).all()
    dropped: set[tuple[str, int]] = set()
    doomed: list[int] = []
    rewrites: list[dict[str, Any]] = []
    for seg_id, origin, text, named in found:
        mark = marks[origin]
        entries = _parse_segment(seg_id, text)
        kept = [entry for entry in entries if entry[0] > mark]
        dropped.update((origin, entry[0]) for entry in entries if entry[0] <= mark)
        if kept:
            kept, named = _kept_seals(seg_id, kept, named)
            rewrites.append(
                {
                    "b_id": seg_id,
                    "new_first": kept[0][0],
                    "new_entries": to_json(kept).decode(),
                    "new_seals": named,
                }
            )
        else:
            doomed.append(seg_id)
    gone = len(doomed)
    if not count:
        gone += conn.execute(delete(log_segments).where(*mine, c.last_seq <= bound)).rowcount
    for start in range(0, len(doomed), IN_LIST_MAX):
        conn.execute(delete(log_segments).where(c.id.in_(doomed[start : start + IN_LIST_MAX])))
    if gone:
        _lower_mark_to_log(conn)
    if rewrites:
        conn.execute(
            update(log_segments)
            .where(c.id == bindparam("b_id"))
            .values(
                first_seq=bindparam("new_first"),
                entries=bindparam("new_entries"),
                seals=bindparam("new_seals"),
            ),
            rewrites,
        )
    return len(dropped), bool(gone or rewrites)


def _kept_seals(seg_id: int, kept: list[list[Any]], seals_text: str) -> tuple[list[list[Any]], str]:
    """The entries a compaction keeps of a segment and its ``seals``, without the seals only
    the dropped entries named (so that :func:`drop_unused_seals` can delete them)."""
    if seals_text == "[]":
        return kept, seals_text
    ids = _seal_ids(seg_id, seals_text)
    used = sorted({entry[4] for entry in kept if len(entry) == 5})
    if len(used) == len(ids):
        return kept, seals_text
    if used and used[-1] >= len(ids):
        raise CorruptBlob(f"segment {seg_id}", log_segments.name, "names a seal it lacks")
    index = {old: new for new, old in enumerate(used)}
    kept = [entry if len(entry) == 4 else [*entry[:4], index[entry[4]]] for entry in kept]
    return kept, to_json([ids[i] for i in used]).decode()


# -- the log fold mark (see store.ondemand) ---------------------------------------------------

_FOLDED = "log_folded"


def folded_mark(conn: Connection) -> int:
    """The last log segment known folded into the objects (0: none)."""
    value = conn.execute(select(meta.c.value).where(meta.c.name == _FOLDED)).scalar_one_or_none()
    return int(value) if value is not None and value.isdigit() else 0


def _set_mark(conn: Connection, mark: Any) -> None:
    stmt = _upsert(conn, meta, ["name"]).values(name=_FOLDED, value=mark)
    conn.execute(stmt)


def _fold_start(conn: Connection) -> int:
    """The last log segment known folded: the mark, or 0 (fold the whole log) if the mark is
    above every segment. A compaction lowers the mark with the log it deletes
    (:func:`_lower_mark_to_log`); a compaction of an older version did not, so a mark above
    the log says that the segments appended after that compaction took ids below it, and a
    crash may have left them unfolded. Folding is idempotent: folding the whole log again
    only costs the work."""
    mark, last = _mark_and_last(conn)
    return 0 if last < mark else mark


def _lower_mark_to_log(conn: Connection) -> None:
    """Bring the fold mark down to the last segment left, if compaction deleted those above
    it. SQLite gives a new row the rowid after the largest one in the table, so the
    segments appended next would take ids at or below a mark left higher, and after a crash
    the fold (which reads the ids above the mark) would skip them: their acknowledged
    entries never reached their objects. Every segment left at or below the mark is folded,
    so the lower mark is as true."""
    mark, last = _mark_and_last(conn)
    if last < mark:
        _set_mark(conn, str(last))


def _mark_and_last(conn: Connection) -> tuple[int, int]:
    """The fold mark, and the id of the last log segment (0: the log is empty)."""
    mark = folded_mark(conn)
    if not mark:
        return 0, 0
    return mark, conn.execute(select(func.max(log_segments.c.id))).scalar() or 0


def mark_folded(conn: Connection) -> None:
    """Record that every stored log entry is in its object (the caller checkpointed every
    object it changed, in this transaction)."""
    last = conn.execute(select(func.max(log_segments.c.id))).scalar()
    _set_mark(conn, str(last or 0))
