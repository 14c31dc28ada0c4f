"""Reads for an engine that holds a bounded cache of objects, and the log fold at open.

Plain functions over a SQLAlchemy ``Connection`` (run through ``run_sync`` by
:class:`store.Store`), as in :mod:`store.sql`:

* :func:`get_objects`: every object (all kinds) of a batch of keys, one ``IN`` query per
  500 keys: what the engine asks for before an input that needs objects it does not hold.
* :func:`keys_page`: keys in code-point order (SQLite's ``BINARY``, PostgreSQL's ``COLLATE
  "C"``), after a key, under a prefix, at most ``limit``: ``Peer.keys()`` pages through it.
* :func:`count_objects_upto`: the number of objects, counting no further than a bound (so
  that opening a large database costs the same as a small one).
* :func:`kind_clashes`: keys holding objects of several kinds.
* **The log fold.** Objects are loaded on demand, so a stored object must include every
  log entry applied to it. The engine keeps that true while it runs (an object leaves its
  cache only with a checkpoint) and at a clean close checkpoints every object it changed
  and records, in the same transaction, that the log is folded up to its last segment
  (``meta.log_folded``, a ``log_segments.id``; see :func:`mark_folded`). After a crash the
  segments stored since are folded into their objects at open by :func:`fold_page`, a
  bounded page per transaction: the cost is the log written since the last clean close,
  not the number of keys. Folding is idempotent (merging a delta twice changes nothing), so
  a crash during the fold only repeats work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, String, and_, func, literal, select

import crdt

from .records import Loaded, ObjectRow
from .schema import log_segments, objects
from .sql import _object, _parse_segment, _set_mark, _upsert, decode_blob, folded_mark, load

__all__ = [
    "FOLD_PAGE",
    "count_objects_upto",
    "fold_page",
    "get_objects",
    "keys_page",
    "kind_clashes",
    "load_start",
    "prefix_end",
    "unfolded_keys",
]

FOLD_PAGE = 200
"""Log segments folded per transaction at open (each holds at most 1000 entries)."""

_IN_CHUNK = 500


def get_objects(conn: Connection, keys: Iterable[str]) -> list[ObjectRow]:
    """Every object of ``keys`` (each kind of each), in (key, kind) order."""
    wanted = sorted(set(keys))
    out: list[ObjectRow] = []
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
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


def keys_page(conn: Connection, prefix: str | None, after: str | None, limit: int) -> list[str]:
    """Up to ``limit`` distinct keys starting with ``prefix``, above ``after``, sorted."""
    key = _ordered(conn, objects.c.key)
    conds = []
    if prefix:
        conds.append(key >= literal(prefix, String))
        end = prefix_end(prefix)
        if end is not None:
            conds.append(key < literal(end, String))
    if after is not None:
        conds.append(key > literal(after, String))
    stmt = select(key)
    if conds:
        stmt = stmt.where(and_(*conds))
    stmt = stmt.group_by(key).order_by(key).limit(limit)  # a key of two kinds once
    return [row[0] for row in conn.execute(stmt)]


def count_objects_upto(conn: Connection, bound: int) -> int:
    """How many objects are stored, or ``bound + 1`` if more than ``bound``."""
    inner = select(literal(1)).select_from(objects).limit(bound + 1).subquery()
    return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def kind_clashes(conn: Connection) -> dict[str, tuple[str, ...]]:
    """Keys holding objects of several kinds: key -> kinds, sorted."""
    clashed = select(objects.c.key).group_by(objects.c.key).having(func.count() > 1).subquery()
    stmt = select(objects.c.key, objects.c.kind).where(objects.c.key.in_(select(clashed.c.key)))
    out: dict[str, list[str]] = {}
    for key, kind in conn.execute(stmt):
        out.setdefault(key, []).append(kind)
    return {k: tuple(sorted(v)) for k, v in sorted(out.items())}


def fold_page(conn: Connection, limit: int = FOLD_PAGE) -> int:
    """Fold the next ``limit`` log segments after the mark into their objects and move the
    mark past them; return how many segments were folded (0: the log is folded)."""
    c = log_segments.c
    after = folded_mark(conn)
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
    states: dict[tuple[str, str], Any] = {
        (row.key, row.kind): crdt.from_dict(row.state)
        for row in get_objects(conn, {key for key, _ in deltas})
    }
    for (key, kind), texts in deltas.items():
        state = states.get((key, kind))
        for text in texts:
            delta = crdt.from_dict(decode_blob(log_segments.name, key, kind, text))
            if state is None:
                state = states[(key, kind)] = delta
            else:
                state.merge(delta)
    conn.execute(
        _upsert(conn, objects, ["key", "kind"]),
        [
            {"key": k, "kind": kind, "partition": partitions[k], "state": state.to_json()}
            for (k, kind), state in states.items()
            if (k, kind) in deltas
        ],
    )
    _set_mark(conn, str(rows[-1][0]))
    return len(rows)


def unfolded_keys(conn: Connection) -> set[str]:
    """The keys of the log entries stored since the log was last folded (see the module
    docstring): after a crash, keys that may have no object row yet."""
    c = log_segments.c
    keys: set[str] = set()
    for seg_id, text in conn.execute(select(c.id, c.entries).where(c.id > folded_mark(conn))):
        keys.update(entry[1] for entry in _parse_segment(seg_id, text))
    return keys


def load_start(conn: Connection, objects_limit: int) -> Loaded:
    """What an engine with a cache of objects starts from: the log, summaries, hints, peers
    and the kind clashes, plus every object only if there are at most ``objects_limit``
    (``Loaded.objects_complete`` says which). Reads no object of a larger database."""
    whole = count_objects_upto(conn, objects_limit) <= objects_limit
    out = load(conn, objects=whole)
    out.objects_complete = whole
    out.clashes = kind_clashes(conn)
    return out
