"""Reading: whole-database loads, single objects, and the keyset pages of sync.

Plain functions over a SQLAlchemy ``Connection``, each run inside its caller's transaction.
Every blob read is decoded and checked (:func:`store.codec.decode_blob`); a bad one raises
:class:`~store.errors.CorruptBlob`. Every object row is decoded through :func:`_object`,
looked up in this module's globals (a test counts the decodes by replacing it here and in
:mod:`store.ondemand`).

The log's readers (:func:`iter_log`, :func:`load`, :func:`deltas_page`) merge the segments
of each (partition, origin) into seq order and return each log dot once, from its first
stored (lowest id) segment; the :class:`~store.records.LogRow` they return carry the stored
delta text as ``delta_json``. The seals the segments and hints name by id are looked up in
``seals`` once per chunk of segments, page, or load (:func:`_seals_of`); an id not stored
raises :class:`~store.errors.CorruptBlob` naming the segment or hint. :func:`snapshot_page`
pages through a partition's objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, and_, case, literal, or_, select

from .codec import (
    _SEGMENTS,
    _decode_context,
    _parse_segment,
    _seal_ids,
    _stored_seal,
    _with_seals,
    check_card,
    check_context,
    decode_blob,
)
from .errors import CorruptBlob
from .records import HintRow, Loaded, LogRow, ObjectRow, PeerRow
from .schema import IN_LIST_MAX, hints, log_segments, objects, peers, seals
from .schema import objects as objects_table
from .schema import summaries as summaries_table

__all__ = ["count_log", "deltas_page", "get_object", "iter_log", "load", "snapshot_page"]


def _object(row: Any) -> ObjectRow:
    return ObjectRow(row.key, row.kind, decode_blob("objects", row.key, row.kind, row.state))


_SEGMENT_CHUNK = 256  # segments read before their seals are looked up (iter_log, load)

Seal = tuple[str, str, str, str]


def _seals_of(conn: Connection, ids: Iterable[str], known: dict[str, Seal]) -> dict[str, Seal]:
    """``known`` with the seals of ``ids`` it lacks read from ``seals`` (one query per
    :data:`IN_LIST_MAX` ids; an id not stored stays missing, for the caller to name)."""
    wanted = sorted({sid for sid in ids if sid not in known})
    c = seals.c
    for start in range(0, len(wanted), IN_LIST_MAX):
        chunk = wanted[start : start + IN_LIST_MAX]
        for sid, stored in conn.execute(select(c.id, c.seal).where(c.id.in_(chunk))):
            known[sid] = _stored_seal(sid, stored)
    return known


def _segment_seals(conn: Connection, rows: Iterable[Any], known: dict[str, Seal]) -> None:
    """Read the seals the segments ``rows`` (with ``id`` and ``seals``) name into ``known``."""
    ids = [sid for row in rows if row.seals != "[]" for sid in _seal_ids(row.id, row.seals)]
    if ids:
        _seals_of(conn, ids, known)


def _hint_entry(row: Any, found: Mapping[str, Seal]) -> LogRow:
    delta = decode_blob("hints", row.key, row.kind, row.delta)
    seal = None
    if row.seal is not None:
        seal = found.get(row.seal)
        if seal is None:
            raise CorruptBlob(row.key, "hints", f"hint {row.id} names seal {row.seal} not stored")
    return LogRow(row.origin, row.partition, row.seq, row.key, row.kind, delta, row.delta, seal)


def _merge(segments: list[tuple[int, list[list[Any]]]]) -> list[list[Any]]:
    """The entries of one (partition, origin)'s ``(id, entries)`` segments in seq order, each
    log dot once: the entry of its lowest-id (first stored) segment."""
    merged = segments[0][1] if len(segments) == 1 else [e for _, es in segments for e in es]
    prev = 0
    for entry in merged:  # the usual case: ordered, disjoint segments, no duplicate
        if entry[0] <= prev:
            break
        prev = entry[0]
    else:
        return merged
    first: dict[int, tuple[int, list[Any]]] = {}
    for seg_id, entries in segments:
        for entry in entries:
            seen = first.get(entry[0])
            if seen is None or seg_id < seen[0]:
                first[entry[0]] = (seg_id, entry)
    return [first[seq][1] for seq in sorted(first)]


def _log_groups(conn: Connection) -> Iterator[tuple[int, str, list[list[Any]]]]:
    """``(partition, origin, entries)`` for every (partition, origin) of the log, in that
    order, entries merged by :func:`_merge`. Holds one group's segments at a time."""
    c = log_segments.c
    stmt = select(c.id, c.partition, c.origin, c.entries, c.seals).order_by(
        c.partition, c.origin, c.last_seq, c.id
    )
    group: tuple[int, str] | None = None
    segments: list[tuple[int, list[list[Any]]]] = []
    for rows in conn.execute(stmt).partitions(_SEGMENT_CHUNK):
        found: dict[str, Seal] = {}
        _segment_seals(conn, rows, found)  # one lookup per chunk of segments
        for seg_id, part, origin, text, named in rows:
            if (part, origin) != group:
                if group is not None:
                    yield group[0], group[1], _merge(segments)
                group, segments = (part, origin), []
            entries = _with_seals(seg_id, _parse_segment(seg_id, text), named, found)
            segments.append((seg_id, entries))
    if group is not None:
        yield group[0], group[1], _merge(segments)


def iter_log(conn: Connection, key: str | None = None) -> Iterator[LogRow]:
    """Every log entry (of ``key``, if given) in log-dot order ``(partition, origin, seq)``,
    each log dot once, deltas decoded and checked (:func:`decode_blob`) and ``delta_json``
    set to the stored text. Reads one (partition, origin) group of segments at a time."""
    for part, origin, entries in _log_groups(conn):
        for seq, entry_key, kind, text, seal in entries:
            if key is None or entry_key == key:
                delta = decode_blob(_SEGMENTS, entry_key, kind, text)
                yield LogRow(origin, part, seq, entry_key, kind, delta, text, seal)


def count_log(conn: Connection, key: str | None = None) -> int:
    """How many entries :func:`iter_log` yields (deltas are not decoded)."""
    return sum(
        len(entries) if key is None else sum(1 for entry in entries if entry[1] == key)
        for _part, _origin, entries in _log_groups(conn)
    )


def _peer(row: Any) -> PeerRow:
    summary: dict[int, dict[str, Any]] | None = None
    if row.summary is not None:
        try:
            raw = json.loads(row.summary)
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object of partition -> context")
            summary = {int(p): check_context(ctx, f"partition {p}") for p, ctx in raw.items()}
        except ValueError as exc:
            raise CorruptBlob(row.replica_id, "peers", str(exc)) from exc
    try:
        check_card(row.card, row.replica_id, "its card")
    except ValueError as exc:
        raise CorruptBlob(row.replica_id, "peers", str(exc)) from exc
    return PeerRow(
        row.replica_id,
        row.address,
        row.site,
        summary,
        row.last_seen_ms / 1000,
        bool(row.forgotten),
        row.card,
    )


def get_object(conn: Connection, key: str, kind: str | None = None) -> ObjectRow | None:
    """The object ``(key, kind)``; ``kind=None``: the key's object of the first kind (by
    name; a key holds one kind unless two peers wrote it as two)."""
    stmt = select(objects).where(objects.c.key == key)
    if kind is not None:
        stmt = stmt.where(objects.c.kind == kind)
    row = conn.execute(stmt.order_by(objects.c.kind).limit(1)).first()
    return None if row is None else _object(row)


def load(conn: Connection, *, objects: bool = True) -> Loaded:
    """Everything: objects (unless ``objects=False``), log (in log-dot order), summaries,
    hints, peers."""
    out = Loaded()
    if objects:
        for row in conn.execute(
            select(objects_table).order_by(objects_table.c.key, objects_table.c.kind)
        ):
            out.objects[(row.key, row.kind)] = _object(row)
    out.log = list(iter_log(conn))
    for row in conn.execute(select(summaries_table).order_by(summaries_table.c.partition)):
        out.summaries[row.partition] = _decode_context("summaries", str(row.partition), row.ctx)
    stored_hints = conn.execute(select(hints).order_by(hints.c.id)).all()
    found = _seals_of(conn, (row.seal for row in stored_hints if row.seal is not None), {})
    out.hints = [
        HintRow(row.target, _hint_entry(row, found), row.stored_ms / 1000) for row in stored_hints
    ]
    for row in conn.execute(select(peers).order_by(peers.c.replica_id)):
        out.peers[row.replica_id] = _peer(row)
    return out


def deltas_page(
    conn: Connection,
    partition: int,
    vv: Mapping[str, int],
    after: tuple[str, int] | None,
    limit: int,
) -> list[LogRow]:
    """Up to ``limit`` log entries of ``partition`` beyond ``vv``, in (origin, seq) order,
    strictly after the position ``after`` (keyset pagination), each log dot once (the first
    stored). The cloud is the caller's.

    Segments are read in (origin, first_seq, id) order, a few at a time: once a segment
    starting at (o, f) is read, no unread segment holds an entry of o below f, so the entries
    before it are final (merged, deduplicated) and can be returned.
    """
    c = log_segments.c
    stmt = select(c.id, c.origin, c.first_seq, c.entries, c.seals).where(c.partition == partition)
    if vv:
        stmt = stmt.where(
            c.last_seq > case(*((c.origin == o, literal(n)) for o, n in vv.items()), else_=0)
        )
    if after is not None:
        stmt = stmt.where(
            or_(c.origin > after[0], and_(c.origin == after[0], c.last_seq > after[1]))
        )
    stmt = stmt.order_by(c.origin, c.first_seq, c.id)
    page = _Page(partition, vv, after, limit)
    found: dict[str, Seal] = {}  # the page's seals, by id
    chunk, position = 8, None
    while True:  # ends: every round reads further in keyset order
        query = stmt
        if position is not None:
            o, f, i = position
            query = query.where(
                or_(
                    c.origin > o,
                    and_(c.origin == o, or_(c.first_seq > f, and_(c.first_seq == f, c.id > i))),
                )
            )
        rows = conn.execute(query.limit(chunk)).all()
        _segment_seals(conn, rows, found)  # one lookup per round
        for seg_id, origin, first_seq, text, named in rows:
            if page.settle(origin, first_seq):
                return page.rows
            entries = _with_seals(seg_id, _parse_segment(seg_id, text), named, found)
            page.add(seg_id, origin, entries)
        if len(rows) < chunk:
            break
        position = (rows[-1].origin, rows[-1].first_seq, rows[-1].id)
        chunk = min(chunk * 2, max(limit, 8))
    page.settle(None, 0)
    return page.rows


class _Page:
    """One :func:`deltas_page` result being filled: entries of the origin being read wait
    in ``pending`` until no unread segment can hold a lower seq of that origin."""

    def __init__(
        self, partition: int, vv: Mapping[str, int], after: tuple[str, int] | None, limit: int
    ) -> None:
        self.partition, self.vv, self.after, self.limit = partition, vv, after, limit
        self.rows: list[LogRow] = []
        self.origin: str | None = None
        self.pending: list[tuple[int, list[list[Any]]]] = []

    def add(self, seg_id: int, origin: str, entries: list[list[Any]]) -> None:
        low = self.vv.get(origin, 0)
        if self.after is not None and self.after[0] == origin:
            low = max(low, self.after[1])
        self.origin = origin
        self.pending.append((seg_id, [e for e in entries if e[0] > low]))

    def settle(self, origin: str | None, first_seq: int) -> bool:
        """A segment (``origin``, ``first_seq``) comes next (None: nothing does): move the
        entries that are final to ``rows``; True once the page is full."""
        if not self.pending:
            return False
        merged = _merge(self.pending)
        if origin == self.origin:
            done = [e for e in merged if e[0] < first_seq]
            # The rest stay with their segment ids: a later segment may repeat one of them.
            kept = [(i, [e for e in es if e[0] >= first_seq]) for i, es in self.pending]
            self.pending = [(i, es) for i, es in kept if es]
        else:
            done, self.pending = merged, []
        assert self.origin is not None
        for seq, key, kind, text, seal in done[: self.limit - len(self.rows)]:
            delta = decode_blob(_SEGMENTS, key, kind, text)
            row = LogRow(self.origin, self.partition, seq, key, kind, delta, text, seal)
            self.rows.append(row)
        return len(self.rows) >= self.limit


def snapshot_page(
    conn: Connection, partition: int, after: tuple[str, str] | None, limit: int
) -> list[ObjectRow]:
    """Up to ``limit`` objects of ``partition`` after the object ``after`` (``(key, kind)``),
    in (key, kind) order."""
    c = objects.c
    stmt = select(objects).where(c.partition == partition)
    if after is not None:
        stmt = stmt.where(or_(c.key > after[0], and_(c.key == after[0], c.kind > after[1])))
    stmt = stmt.order_by(c.key, c.kind).limit(limit)
    return [_object(row) for row in conn.execute(stmt)]
