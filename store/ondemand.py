"""Reads for an engine that holds a bounded cache of objects, and the log fold at open.

Plain functions over a SQLAlchemy ``Connection`` (run through ``run_sync`` by
:class:`store.Store`), like the rest of the storage logic (:mod:`store.sql`):

* :func:`get_objects`: every object (all kinds) of a batch of keys, one ``IN`` query per
  500 keys: what the engine asks for before an input that needs objects it does not hold.
* :func:`keys_page`: the keys holding a live object (``objects.live``, see
  :mod:`store.schema`), in code-point order (SQLite's ``BINARY``, PostgreSQL's ``COLLATE
  "C"``), after a key, under a prefix, at most ``limit``, read through the partial index of
  live keys: ``Peer.keys()`` pages through it. A deleted object is still stored (and
  :func:`get_objects` still returns it: a later write merges into it) but not listed.
* :func:`count_objects_upto`: the number of objects, counting no further than a bound (so
  that opening a large database costs the same as a small one).
* :func:`kind_clashes`: keys holding live objects of several kinds (a clash that a delete
  of one kind resolved is not one): one pass over the index of live keys, the only read at
  open that grows with the number of keys.
* :func:`count_deleted_keys` and :func:`unfolded_liveness`: what ``shoal inspect --keys``
  reports of deleted keys, on a database it only reads.
* :func:`objects_page`: a page of a partition's objects in (key, kind) order after a
  position, as their stored text (not decoded), at most a count and about a number of bytes
  of state text: what a state transfer streams (the engine's ``ReadPage``).
  :func:`count_objects`: the objects of some partitions and their state's characters (its
  progress).
* **The log fold.** Objects are loaded on demand, so a stored object must include every
  log entry applied to it. The engine keeps that true while it runs (an object leaves its
  cache only with a checkpoint) and at a clean close checkpoints every object it changed
  and records, in the same transaction, that the log is folded up to its last segment
  (``meta.log_folded``, a ``log_segments.id``; see :func:`mark_folded`). After a crash the
  segments stored since are folded into their objects at open by :func:`fold_page`, a
  bounded page per transaction: the cost is the log written since the last clean close,
  not the number of keys. Folding is idempotent (merging a delta twice changes nothing), so
  a crash during the fold only repeats work, and a mark above every segment (which a
  compaction of an older version left: see :func:`~store.writes._fold_start`) folds the
  whole log. It sets ``live`` as a checkpoint does: an object whose delete was logged but
  not checkpointed before a crash is not listed after.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Integer, String, and_, case, func, literal, or_, select

import crdt

from .codec import _parse_segment, decode_blob
from .reads import _object, load
from .records import Loaded, ObjectRow
from .schema import IN_LIST_MAX, log_segments, objects
from .writes import _fold_start, _set_mark, _upsert

__all__ = [
    "FOLD_PAGE",
    "count_deleted_keys",
    "count_objects",
    "count_objects_upto",
    "fold_page",
    "get_objects",
    "keys_page",
    "kind_clashes",
    "load_start",
    "objects_page",
    "prefix_end",
    "unfolded_keys",
    "unfolded_liveness",
]

FOLD_PAGE = 200
"""Log segments folded per transaction at open (each holds at most 1000 entries)."""


def get_objects(conn: Connection, keys: Iterable[str]) -> list[ObjectRow]:
    """Every object of ``keys`` (each kind of each), in (key, kind) order."""
    wanted = sorted(set(keys))
    out: list[ObjectRow] = []
    for start in range(0, len(wanted), IN_LIST_MAX):
        chunk = wanted[start : start + IN_LIST_MAX]
        stmt = select(objects).where(objects.c.key.in_(chunk))
        out.extend(_object(row) for row in conn.execute(stmt))
    out.sort(key=lambda row: (row.key, row.kind))
    return out


def _ordered(conn: Connection, column: Any) -> Any:
    """``column`` compared in code-point order (as Python sorts strings)."""
    if conn.dialect.name == "postgresql":
        return column.collate("C")
    return column  # SQLite's BINARY collation compares UTF-8 bytes: code-point order


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # no surrogates in stored text
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


def _prefix_conds(key: Any, prefix: str | None) -> list[Any]:
    if not prefix:
        return []
    conds = [key >= literal(prefix, String)]
    end = prefix_end(prefix)
    if end is not None:
        conds.append(key < literal(end, String))
    return conds


def keys_page(conn: Connection, prefix: str | None, after: str | None, limit: int) -> list[str]:
    """Up to ``limit`` distinct keys holding a live object, starting with ``prefix``, above
    ``after``, sorted. (``objects.live`` and the key in code-point order are the terms of
    the partial index :data:`~store.schema.LIVE_INDEX`, which serves the query.)"""
    key = _ordered(conn, objects.c.key)
    conds = [objects.c.live, *_prefix_conds(key, prefix)]
    if after is not None:
        conds.append(key > literal(after, String))
    stmt = select(key).where(and_(*conds))
    stmt = stmt.group_by(key).order_by(key).limit(limit)  # a key of two kinds once
    return [row[0] for row in conn.execute(stmt)]


def count_deleted_keys(conn: Connection, prefix: str | None) -> int:
    """How many keys starting with ``prefix`` hold objects but no live one (deleted or
    emptied: stored, not listed). Reads every object row under the prefix (no state)."""
    c = objects.c
    stmt = select(c.key)
    conds = _prefix_conds(_ordered(conn, c.key), prefix)
    if conds:
        stmt = stmt.where(and_(*conds))
    live = func.sum(case((c.live, literal(1, Integer)), else_=literal(0, Integer)))
    dead = stmt.group_by(c.key).having(live == 0).subquery()
    return int(conn.execute(select(func.count()).select_from(dead)).scalar_one())


def objects_page(
    conn: Connection, partition: int, after: tuple[str, str] | None, limit: int, max_bytes: int
) -> tuple[list[tuple[str, str, str]], bool]:
    """Up to ``limit`` objects ``(key, kind, state text)`` of ``partition`` after the object
    ``after``, in (key, kind) order, and whether none follows them; no more once their
    states reach ``max_bytes`` characters (always one, if any is left).

    Two queries: the positions and sizes of the next ``limit`` objects, then the states of
    those that fit, so that no state beyond the budget is read into memory (a state may
    weigh megabytes)."""
    c = objects.c
    where = [c.partition == partition]
    if after is not None:
        a_key, a_kind = literal(after[0], String), literal(after[1], String)
        where.append(or_(c.key > a_key, and_(c.key == a_key, c.kind > a_kind)))
    sizes = conn.execute(
        select(c.key, c.kind, func.length(c.state))
        .where(*where)
        .order_by(c.key, c.kind)
        .limit(limit + 1)
    ).all()
    take, total = 0, 0
    for _key, _kind, n in sizes[:limit]:
        if take and total >= max_bytes:
            break
        take += 1
        total += int(n or 0)
    if not take:
        return [], True
    last_key, last_kind = literal(sizes[take - 1][0], String), literal(sizes[take - 1][1], String)
    where.append(or_(c.key < last_key, and_(c.key == last_key, c.kind <= last_kind)))
    # No ORDER BY: the index (partition, key) leaves kind to a temporary b-tree that SQLite
    # fills with whole rows, states included (a 10 MB state took 60 MB there; the ORMap of
    # bootstrap_bench.py). The rows go in the order the first query gave (same transaction).
    rows = conn.execute(select(c.key, c.kind, c.state).where(*where))
    states = {(key, kind): state for key, kind, state in rows}
    out = [(key, kind, states[key, kind]) for key, kind, _ in sizes[:take] if (key, kind) in states]
    return out, take == len(sizes)


def count_objects(conn: Connection, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Per partition of ``partitions``: how many objects it holds and the characters of their
    states (partitions with none are left out)."""
    wanted = sorted(set(partitions))
    if not wanted:
        return {}
    c = objects.c
    stmt = (
        select(c.partition, func.count(), func.sum(func.length(c.state)))
        .where(c.partition.in_(wanted))
        .group_by(c.partition)
    )
    return {int(p): (int(n), int(size or 0)) for p, n, size in conn.execute(stmt)}


def count_objects_upto(conn: Connection, bound: int) -> int:
    """How many objects are stored, or ``bound + 1`` if more than ``bound``."""
    inner = select(literal(1)).select_from(objects).limit(bound + 1).subquery()
    return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def kind_clashes(conn: Connection) -> dict[str, tuple[str, ...]]:
    """Keys holding live objects of several kinds: key -> those kinds, sorted (a deleted
    object clashes with nothing: deleting one kind resolves a clash).

    Two steps. The clashed keys: one pass over the partial index of live keys
    (:data:`~store.schema.LIVE_INDEX`), grouped in its order (the key compared as the index
    compares it: ``COLLATE "C"`` on PostgreSQL), so that the server streams the index and
    neither hashes nor sorts the table (grouped by the plain key, PostgreSQL hashed a
    million keys and spilled them to disk: 0.9 s of a 1.0 s open). Then the kinds of those
    keys alone, by primary key, 500 keys a query (no join with a scan of the table). The
    pass still reads every live key's index entry: the one cost of an open that grows
    with the keys (about 0.25 s at a million on PostgreSQL)."""
    c = objects.c
    key = _ordered(conn, c.key)
    clashed = [
        row[0]
        for row in conn.execute(select(key).where(c.live).group_by(key).having(func.count() > 1))
    ]
    out: dict[str, list[str]] = {}
    for start in range(0, len(clashed), IN_LIST_MAX):
        chunk = clashed[start : start + IN_LIST_MAX]
        for k, kind in conn.execute(select(c.key, c.kind).where(c.live, c.key.in_(chunk))):
            out.setdefault(k, []).append(kind)
    # (len > 1: in a read-committed transaction a write between the two reads may have
    # resolved a clash; nothing writes while the store opens, but say what is true.)
    return {k: tuple(sorted(v)) for k, v in sorted(out.items()) if len(v) > 1}


def fold_page(conn: Connection, limit: int = FOLD_PAGE) -> int:
    """Fold the next ``limit`` log segments after the mark into their objects and move the
    mark past them; return how many segments were folded (0: the log is folded)."""
    c = log_segments.c
    after = _fold_start(conn)
    rows = conn.execute(
        select(c.id, c.partition, c.entries).where(c.id > after).order_by(c.id).limit(limit)
    ).all()
    if not rows:
        return 0
    deltas: dict[tuple[str, str], list[str]] = {}
    partitions: dict[str, int] = {}
    for seg_id, part, text in rows:
        for entry in _parse_segment(seg_id, text):
            key, kind, delta_text = entry[1], entry[2], entry[3]
            deltas.setdefault((key, kind), []).append(delta_text)
            partitions[key] = part
    states = _folded(get_objects(conn, {key for key, _ in deltas}), deltas)
    conn.execute(
        _upsert(conn, objects, ["key", "kind"]),
        [
            {
                "key": k,
                "kind": kind,
                "partition": partitions[k],
                "state": state.to_json(),
                "live": state.is_live(),
            }
            for (k, kind), state in states.items()
            if (k, kind) in deltas
        ],
    )
    _set_mark(conn, str(rows[-1][0]))
    return len(rows)


def _folded(
    stored: Iterable[ObjectRow], deltas: dict[tuple[str, str], list[str]]
) -> dict[tuple[str, str], Any]:
    """The ``stored`` objects, decoded, with the delta texts of ``deltas`` merged in (an
    object only in ``deltas`` is the join of its deltas)."""
    states: dict[tuple[str, str], Any] = {
        (row.key, row.kind): crdt.from_dict(row.state) for row in stored
    }
    for (key, kind), texts in deltas.items():
        state = states.get((key, kind))
        for text in texts:
            delta = crdt.from_dict(decode_blob(log_segments.name, key, kind, text))
            if state is None:
                state = states[(key, kind)] = delta
            else:
                state.merge(delta)
    return states


def unfolded_keys(conn: Connection) -> set[str]:
    """The keys of the log entries stored since the log was last folded (see the module
    docstring): after a crash, keys that may have no object row yet."""
    c = log_segments.c
    keys: set[str] = set()
    for seg_id, text in conn.execute(select(c.id, c.entries).where(c.id > _fold_start(conn))):
        keys.update(entry[1] for entry in _parse_segment(seg_id, text))
    return keys


def unfolded_liveness(conn: Connection) -> dict[str, tuple[bool | None, bool]]:
    """For each key of the log stored since it was last folded (after a crash; see the
    module docstring): whether its stored objects list it (None: it has none; else their
    ``live`` flags) and whether it holds a live object once that log is folded in. What
    a reader that must not write (``shoal inspect``) sees as the store's next open will.
    Holds that part of the log in memory, and the objects of 500 of its keys at a time."""
    c = log_segments.c
    deltas: dict[str, dict[tuple[str, str], list[str]]] = {}
    stmt = select(c.id, c.entries).where(c.id > _fold_start(conn)).order_by(c.id)
    for seg_id, text in conn.execute(stmt):
        for entry in _parse_segment(seg_id, text):  # (a sealed entry has a fifth element)
            key, kind, delta_text = entry[1], entry[2], entry[3]
            deltas.setdefault(key, {}).setdefault((key, kind), []).append(delta_text)
    out: dict[str, tuple[bool | None, bool]] = {}
    keys = sorted(deltas)
    for start in range(0, len(keys), IN_LIST_MAX):
        chunk = keys[start : start + IN_LIST_MAX]
        flags: dict[str, bool] = {}
        for key, live in conn.execute(
            select(objects.c.key, objects.c.live).where(objects.c.key.in_(chunk))
        ):
            flags[key] = flags.get(key, False) or bool(live)
        wanted = {oid: texts for key in chunk for oid, texts in deltas[key].items()}
        now: dict[str, bool] = {}
        for (key, _kind), state in _folded(get_objects(conn, chunk), wanted).items():
            now[key] = now.get(key, False) or state.is_live()
        for key in chunk:
            out[key] = (flags.get(key), now[key])
    return out


def load_start(conn: Connection, objects_limit: int) -> Loaded:
    """What an engine with a cache of objects starts from: the log, summaries, hints, peers
    and the kind clashes, plus every object only if there are at most ``objects_limit``
    (``Loaded.objects_complete`` says which). Reads no object of a larger database."""
    whole = count_objects_upto(conn, objects_limit) <= objects_limit
    out = load(conn, objects=whole)
    out.objects_complete = whole
    out.clashes = kind_clashes(conn)
    return out
