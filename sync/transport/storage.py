"""The node's boundary with the store: what it needs of one, and the values that cross.

* :class:`StoreLike` is the part of :class:`store.Store` the node drives (commit a batch,
  load objects, page through a partition, count objects).
* Stored rows become the engine's values: :func:`loaded_from_store` turns what
  ``Store.load_start`` read into the engine's :class:`~sync.effects.Loaded` (a log row keeps
  its stored text and its origin's seal), :func:`object_states` turns object rows into what
  ``Replica.admit`` takes.
* :func:`on_wall_clock` turns the times a ``Persist`` holds (a hint's ``stored_at``, a
  peer's ``last_seen``) from the engine's clock to the wall clock as it reads now, once it
  was stepped since the node started (see :mod:`sync.transport.node`, "Clock").
* :func:`merge_persists` folds the ``Persist`` effects of several engine rounds into one
  batch with the same end result, so that the executor commits them in one transaction
  (see :mod:`sync.transport.executor`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from typing import Any, Protocol

from crdt import CausalContext
from store import BatchLike, LogRow, ObjectRow
from store import Loaded as StoredLoaded
from sync.effects import HintId, HintRecord, Loaded, LogEntry, ObjectState, PeerRecord, Persist
from sync.signing import Seal

__all__ = ["StoreLike", "loaded_from_store", "merge_persists", "object_states", "on_wall_clock"]


class StoreLike(Protocol):
    """What the node needs of :class:`store.Store`."""

    async def apply(
        self, batch: BatchLike, *, grouped: bool = True, lone: bool = False
    ) -> None: ...

    async def get_objects(self, keys: Iterable[str]) -> list[ObjectRow]: ...

    def snapshot(self, partition: int, chunk: int = 500) -> AsyncIterator[list[ObjectRow]]: ...

    async def objects_page(
        self, partition: int, after: tuple[str, str] | None, limit: int, max_bytes: int
    ) -> tuple[list[tuple[str, str, str]], bool]: ...

    async def count_objects(self, partitions: Iterable[int]) -> dict[int, tuple[int, int]]: ...


def _log_entry(row: LogRow) -> LogEntry:
    """A stored log row as the engine's entry: the stored text as it is (``delta_json``, set
    on rows read back), encoded afresh only for a row that lacks it."""
    text = getattr(row, "delta_json", None)
    if text is None:
        entry = LogEntry.of(row.origin, row.partition, row.seq, row.key, row.kind, dict(row.delta))
    else:
        entry = LogEntry(row.origin, row.partition, row.seq, row.key, row.kind, text)
    seal = getattr(row, "seal", None)
    if seal is not None:
        entry.seal = Seal(*seal)  # the origin's seal, stored with the entry
    return entry


def loaded_from_store(stored: StoredLoaded) -> Loaded:
    """Convert ``store.Loaded`` (rows, encoded summaries) to the engine's ``Loaded``."""
    objects = {
        (o.key, o.kind): ObjectState.of(o.key, o.kind, dict(o.state))
        for o in stored.objects.values()
    }
    logs = [_log_entry(e) for e in stored.log]
    summaries = {int(p): CausalContext.from_dict(dict(c)) for p, c in stored.summaries.items()}
    hints = [HintRecord(h.target, _log_entry(h.entry), h.stored_at) for h in stored.hints]
    peers = {
        rid: PeerRecord(
            p.replica_id,
            p.address,
            p.site,
            None if p.summary is None else {int(k): dict(v) for k, v in p.summary.items()},
            p.last_seen,
            p.forgotten,
            p.card,
        )
        for rid, p in stored.peers.items()
    }
    return Loaded(
        objects=objects,
        log=logs,
        summaries=summaries,
        hints=hints,
        peers=peers,
        objects_complete=stored.objects_complete,
        clashes=dict(stored.clashes),
    )


def object_states(rows: Iterable[ObjectRow]) -> list[ObjectState]:
    """Stored object rows as the engine admits them (with their encoded text: its size)."""
    return [ObjectState.of(o.key, o.kind, dict(o.state)) for o in rows]


def on_wall_clock(persist: Persist, offset: float) -> Persist:
    """``persist`` with its times moved by ``offset`` (the wall clock less the engine's
    clock): the engine's clock is anchored to the wall clock at start, the next run's starts
    at the wall time of its open, so what is stored must be wall time, or a device that
    booted a day behind and was set right (NTP) would find, at its next open, every home it
    saw in this run unseen for a day, and every hint it stored a day old."""
    if not persist.hints_add and not persist.peers:
        return persist
    return replace(
        persist,
        hints_add=tuple(replace(h, stored_at=h.stored_at + offset) for h in persist.hints_add),
        peers=tuple(
            p if not p.last_seen else replace(p, last_seen=p.last_seen + offset)
            for p in persist.peers
        ),
    )


def merge_persists(persists: Iterable[Persist]) -> Persist:
    """Fold consecutive ``Persist`` effects into one with the same end result.

    The store applies a batch's fields in a fixed order (objects, log, summaries, hints_add,
    peers, hints_drop, compact), with "last wins" for objects; here later summaries and
    peers replace earlier ones, a hint dropped and then re-added stays, one added and then
    dropped goes, and compaction watermarks join (max per origin) so the compaction of an
    earlier Persist still covers what it covered.
    """
    objects: dict[tuple[str, str], ObjectState] = {}
    logs: dict[tuple[str, int, int], LogEntry] = {}
    summaries: dict[int, dict[str, Any]] = {}
    adds: dict[HintId, HintRecord] = {}
    drops: dict[HintId, None] = {}
    peers: dict[str, PeerRecord] = {}
    compact: dict[int, dict[str, int]] = {}
    folded = False
    for p in persists:
        folded = folded or p.log_folded
        for o in p.objects:
            oid = (o.key, o.kind)
            objects.pop(oid, None)
            objects[oid] = o
        for e in p.log:
            logs.setdefault((e.origin, e.partition, e.seq), e)
        for part, ctx in p.summaries:
            summaries[part] = ctx
        for h in p.hints_add:
            drops.pop(h.id, None)
            adds[h.id] = h
        for hid in p.hints_drop:
            adds.pop(hid, None)
            drops[hid] = None
        for peer in p.peers:
            peers[peer.replica_id] = peer
        for part, vv in p.compact:
            joined = compact.setdefault(part, {})
            for origin, seq in vv.items():
                joined[origin] = max(seq, joined.get(origin, 0))
    return Persist(
        objects=tuple(objects.values()),
        log=tuple(logs.values()),
        summaries=tuple(summaries.items()),
        hints_add=tuple(adds.values()),
        hints_drop=tuple(drops),
        peers=tuple(peers.values()),
        compact=tuple(compact.items()),
        log_folded=folded,
    )
