"""The simulated disk: an in-memory model of one replica's store (:class:`SimDisk`).

Knows the engine's effects and the simulator's error type.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

from crdt import CRDT, CausalContext, from_dict, join
from sync.effects import HintId, HintRecord, Loaded, LogEntry, ObjectState, PeerRecord, Persist
from sync.ring import partition_of
from sync.simnet.ops import SimulationError

__all__ = ["SimDisk", "canonical", "peer_copy"]


def peer_copy(rec: PeerRecord) -> PeerRecord:
    """A copy of a peer record that shares nothing mutable with it (the record is frozen:
    only its summary needs copying; most records have none, and are shared as they are)."""
    return rec if rec.summary is None else replace(rec, summary=copy.deepcopy(rec.summary))


def _json_copy(blob: Any, what: str) -> Any:
    """Copy a blob the way a store does (JSON text and back); refuse what JSON cannot hold."""
    try:
        return json.loads(json.dumps(blob, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise SimulationError(f"{what} is not JSON-serialisable: {exc}") from exc


def _entry_copy(e: LogEntry) -> LogEntry:
    """A copy of ``e`` as it is now, with its seal (None if not sealed yet).

    An entry is not immutable: its origin's engine seals its own entries in place when it
    first sends them, which may be in a later drain than the one whose ``Persist`` stored
    them. A store writes the row at commit and never sees that seal, so the disk keeps a
    copy, and hands out copies, so the engine's later changes never reach it."""
    return LogEntry(e.origin, e.partition, e.seq, e.key, e.kind, e.delta_json, e.seal)


def _checked_entry(entry: LogEntry, what: str) -> LogEntry:
    """A copy of ``entry`` (:func:`_entry_copy`) if its delta text is a JSON object, as a
    store would check it."""
    _check_text(entry.delta_json, what)
    return _entry_copy(entry)


def _hint_copy(h: HintRecord) -> HintRecord:
    """A copy of ``h`` (frozen) whose entry is a copy (:func:`_entry_copy`)."""
    return HintRecord(h.target, _entry_copy(h.entry), h.stored_at)


def _checked_object(obj: ObjectState, what: str) -> ObjectState:
    """``obj`` if its state text is a JSON object, as a store would check it."""
    _check_text(obj.state_json, what)
    return obj


def _check_text(text: Any, what: str) -> None:
    try:
        ok = isinstance(text, str) and isinstance(json.loads(text), dict)
    except ValueError as exc:
        raise SimulationError(f"{what} is not JSON: {exc}") from exc
    if not ok:
        raise SimulationError(f"{what} is not the JSON text of an object: {text!r}")


def canonical(state: CRDT | None) -> str | None:
    """The canonical JSON text of ``state`` (equal states, equal texts; None for None)."""
    return None if state is None else json.dumps(state.to_dict(), sort_keys=True)


class SimDisk:
    """An in-memory model of one replica's store, applying ``Persist`` effects atomically.

    ``check_compaction`` (default on) verifies the contract of ``Persist.compact``: a log entry
    may be dropped only if the object checkpoint of its key already contains its delta; a
    violation raises :class:`SimulationError` (the engine would lose data on restart).

    Log entries and hints are kept as copies made when their ``Persist`` is applied, and
    loaded as copies: an own entry that its engine seals after that (when it first sends
    it) is stored, and reloaded, unsealed, as a store that committed it earlier has it.
    """

    def __init__(self, *, check_compaction: bool = True) -> None:
        self.objects: dict[tuple[str, str], ObjectState] = {}  # by (key, kind)
        self.log: dict[tuple[str, int, int], LogEntry] = {}
        self.summaries: dict[int, dict[str, Any]] = {}
        self.hints: dict[HintId, HintRecord] = {}
        self.peers: dict[str, PeerRecord] = {}
        self.persists = 0
        self.compacted = 0
        self.check_compaction = check_compaction

    def apply(self, persist: Persist) -> None:
        """Apply one ``Persist`` as one transaction: all of it or, on a bad blob, none of it."""
        objects = {
            (o.key, o.kind): _checked_object(o, f"object {o.key!r}") for o in persist.objects
        }
        log = [_checked_entry(e, f"log delta {e.key!r}") for e in persist.log]
        summaries = {p: _json_copy(c, f"summary of partition {p}") for p, c in persist.summaries}
        hints = [
            HintRecord(h.target, _checked_entry(h.entry, "hint delta"), h.stored_at)
            for h in persist.hints_add
        ]
        peers = [peer_copy(p) for p in persist.peers]
        drop_plan = self._compaction_plan(persist.compact, objects, log)
        # Everything is validated: commit.
        self.objects.update(objects)
        for e in log:
            self.log.setdefault((e.origin, e.partition, e.seq), e)  # an existing dot is kept
        self.summaries.update(summaries)
        for h in hints:
            self.hints[h.id] = h
        for hid in persist.hints_drop:
            self.hints.pop(hid, None)
        for p in peers:
            self.peers[p.replica_id] = p
        for dot in drop_plan:
            del self.log[dot]
        self.compacted += len(drop_plan)
        self.persists += 1

    def _compaction_plan(
        self,
        compact: tuple[tuple[int, dict[str, int]], ...],
        new_objects: dict[tuple[str, str], ObjectState],
        new_log: list[LogEntry],
    ) -> list[tuple[str, int, int]]:
        if not compact:
            return []
        marks = dict(compact)
        log = dict(self.log)
        for e in new_log:
            log.setdefault((e.origin, e.partition, e.seq), e)
        plan = [
            dot
            for dot, e in sorted(log.items())
            if e.partition in marks and e.seq <= marks[e.partition].get(e.origin, 0)
        ]
        if self.check_compaction:
            for dot in plan:
                self._check_checkpointed(log[dot], new_objects)
        return plan

    def _check_checkpointed(
        self, entry: LogEntry, new_objects: dict[tuple[str, str], ObjectState]
    ) -> None:
        oid = (entry.key, entry.kind)
        obj = new_objects.get(oid) or self.objects.get(oid)
        where = f"log entry {(entry.origin, entry.partition, entry.seq)} of key {entry.key!r}"
        if obj is None:
            raise SimulationError(f"compaction drops {where}, which has no checkpoint")
        state = from_dict(obj.state)
        if canonical(join(state, from_dict(entry.delta))) != canonical(state):
            raise SimulationError(f"compaction drops {where}, not contained in its checkpoint")

    def load(self, objects_limit: int | None = None) -> Loaded:
        """What a store returns at open: copies, so the replica cannot alias the disk.

        With more than ``objects_limit`` objects, as a store does for an engine with a
        bounded cache: the log is folded into the objects first, and no object is returned
        (``objects_complete`` False; the replica loads them with :meth:`get_objects`)."""
        if objects_limit is not None and len(self.objects) > objects_limit:
            self.fold_log()
            kinds: dict[str, list[str]] = {}  # live objects only, as the store counts them
            for (key, kind), obj in sorted(self.objects.items()):
                if _is_live(obj):
                    kinds.setdefault(key, []).append(kind)
            loaded = self.load()
            loaded.objects = {}
            loaded.objects_complete = False
            loaded.clashes = {k: tuple(v) for k, v in kinds.items() if len(v) > 1}
            return loaded
        return Loaded(
            objects=dict(self.objects),  # immutable: the states are text
            log=[_entry_copy(e) for _, e in sorted(self.log.items())],  # copies: sealed later
            summaries={p: CausalContext.from_dict(c) for p, c in sorted(self.summaries.items())},
            hints=[_hint_copy(h) for _, h in sorted(self.hints.items(), key=_hint_order)],
            peers={k: peer_copy(p) for k, p in sorted(self.peers.items())},
        )

    def fold_log(self) -> None:
        """Merge every log entry into its object (a store does this at open, see
        :mod:`store.ondemand`); idempotent."""
        for e in sorted(self.log.values(), key=lambda e: (e.partition, e.origin, e.seq)):
            oid = (e.key, e.kind)
            old = self.objects.get(oid)
            state = (
                from_dict(e.delta)
                if old is None
                else join(from_dict(old.state), from_dict(e.delta))
            )
            self.objects[oid] = ObjectState(e.key, e.kind, state.to_json(), state.is_live())

    def get_objects(self, keys: list[str]) -> list[ObjectState]:
        """Every object (each kind) of ``keys``, as a store's ``get_objects``."""
        wanted = set(keys)
        return [o for (key, _kind), o in sorted(self.objects.items()) if key in wanted]

    def objects_for(self, keys: list[str], parts: list[int], partitions: int) -> list[ObjectState]:
        """Every object of ``keys``, then every object of each partition in ``parts`` (of
        ``partitions``): what an input that wants them is handed first."""
        rows = self.get_objects(keys)
        for p in parts:
            rows += [
                o for (k, _), o in sorted(self.objects.items()) if partition_of(k, partitions) == p
            ]
        return rows

    def objects_page(
        self,
        partition: int,
        partitions: int,
        after: tuple[str, str] | None,
        limit: int,
        max_bytes: int,
    ) -> tuple[list[ObjectState], bool]:
        """A page of the objects of ``partition`` (of ``partitions``) after ``after``, as a
        store's ``objects_page`` (in (key, kind) order, at most ``limit``, no more once their
        states reach ``max_bytes`` characters), and whether none follows."""
        part = [
            o
            for (key, kind), o in sorted(self.objects.items())
            if partition_of(key, partitions) == partition and (after is None or (key, kind) > after)
        ]
        out: list[ObjectState] = []
        size = 0
        for o in part[:limit]:
            if out and size >= max_bytes:
                break
            out.append(o)
            size += len(o.state_json)
        return out, len(out) == len(part)

    def count_objects(self, partitions: tuple[int, ...], count: int) -> dict[int, tuple[int, int]]:
        """Per partition of ``partitions`` (of ``count``): its objects and the characters of
        their states, as a store's ``count_objects``."""
        out: dict[int, tuple[int, int]] = {}
        wanted = set(partitions)
        for (key, _kind), o in self.objects.items():
            p = partition_of(key, count)
            if p in wanted:
                n, size = out.get(p, (0, 0))
                out[p] = (n + 1, size + len(o.state_json))
        return out

    def is_empty(self) -> bool:
        return not (self.objects or self.log or self.summaries or self.hints or self.peers)

    def copy(self) -> SimDisk:
        """A deep copy: a backup, to restore later with ``restart(rid, disk=backup)``."""
        other = SimDisk(check_compaction=self.check_compaction)
        other.objects = copy.deepcopy(self.objects)
        other.log = copy.deepcopy(self.log)
        other.summaries = copy.deepcopy(self.summaries)
        other.hints = copy.deepcopy(self.hints)
        other.peers = copy.deepcopy(self.peers)
        return other


def _is_live(obj: ObjectState) -> bool:
    """The object's ``live`` flag, or (not given) its state's ``is_live()``, as a store
    keeps it."""
    return obj.live if obj.live is not None else from_dict(obj.state).is_live()


def _hint_order(item: tuple[HintId, HintRecord]) -> tuple[str, str, int, int]:
    hid = item[0]
    return (hid.target, hid.origin, hid.partition, hid.seq)
