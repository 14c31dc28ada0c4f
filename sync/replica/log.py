"""The in-memory delta log: per partition, origin and seq, the entries applied here.

An entry is held as one string, ``key NUL kind NUL seal NUL delta JSON`` (keys and kinds
hold no NUL; ``seal`` is the number of the origin's seal in the log's
:class:`~sync.replica.seals.SealTable`, or empty). Strings are invisible to the garbage
collector: the log, the most numerous objects a replica holds, neither adds to what its full
collections walk nor, entry by entry, brings the next collection closer (a tuple per entry
did both, and with a NamedTuple seal in it stayed tracked for good: 10-20% of e2e_bench went
to collections walking it). An entry is a :class:`~sync.effects.LogEntry` again only when
it is read (:meth:`DeltaLog.entry`).

Owned by :class:`~sync.replica.local_data.LocalData`, which records each entry applied
(its summary, its Persist, its key's checkpoint bookkeeping) around :meth:`DeltaLog.put`
and drops entries at compaction (:meth:`DeltaLog.drop_upto`); the other parts of the engine
read it through ``LocalData.log``. Knows only the seal table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sync.effects import LogEntry
from sync.replica.checked import ObjectId
from sync.replica.seals import SealTable
from sync.signing import Seal

__all__ = ["DeltaLog", "Logged"]

#: A log entry held in memory (see the module docstring).
Logged = str


class DeltaLog:
    """The entries applied here until compaction drops them, and the seals they hold."""

    __slots__ = ("_log", "_me", "seals", "size")

    def __init__(self, replica_id: str) -> None:
        self._me = replica_id
        # partition -> origin -> seq -> key NUL kind NUL seal NUL delta JSON
        self._log: dict[int, dict[str, dict[int, Logged]]] = {}
        self.size = 0  # entries held
        self.seals = SealTable()  # the seals of the entries, by number

    def put(self, e: LogEntry) -> bool:
        """Hold ``e``; False if it was held already."""
        log_p = self._log.get(e.partition)
        if log_p is None:
            log_p = self._log[e.partition] = {}
        by_origin = log_p.get(e.origin)
        if by_origin is None:
            by_origin = log_p[e.origin] = {}
        if e.seq in by_origin:
            return False
        seal = e.seal
        if seal is None:
            sid: int | str = ""
        else:
            sid = self.seals.ref(seal)
            if e.origin == self._me:
                self.seals.own_sealed(e.partition, e.seq)
        by_origin[e.seq] = f"{e.key}\x00{e.kind}\x00{sid}\x00{e.delta_json}"
        self.size += 1
        return True

    def drop_upto(
        self, partition: int, marks: Mapping[str, int]
    ) -> tuple[dict[str, int], dict[ObjectId, None]]:
        """Drop the entries of ``partition`` at or below ``marks[origin]``: the watermark of
        each origin that dropped some, and the objects whose entries were dropped."""
        watermark: dict[str, int] = {}
        touched: dict[ObjectId, None] = {}
        log_p = self._log.get(partition)
        if not log_p:
            return watermark, touched
        seals = self.seals
        for origin in sorted(log_p):
            wm = marks.get(origin, 0)
            if wm <= 0:
                continue
            by_seq = log_p[origin]
            drop = [s for s in by_seq if s <= wm]
            if not drop:
                continue
            watermark[origin] = wm
            for s in drop:
                key, kind, sid, _ = by_seq.pop(s).split("\x00", 3)
                if sid:
                    seals.unref(int(sid))
                touched[(key, kind)] = None
            self.size -= len(drop)
            if not by_seq:
                del log_p[origin]
        return watermark, touched

    def partitions(self) -> list[int]:
        """The partitions that have (or had) entries here, in order."""
        return sorted(self._log)

    def own_seqs(self) -> dict[int, list[int]]:
        """Per partition (in order), the seqs of our own entries, in order."""
        me, log = self._me, self._log
        return {p: sorted(log[p][me]) for p in sorted(log) if log[p].get(me)}

    def own_entries(self) -> dict[int, list[LogEntry]]:
        """Per partition (in order), our own entries, in seq order."""
        me, get = self._me, self.entry
        return {
            p: [e for seq in seqs if (e := get(p, me, seq)) is not None]
            for p, seqs in self.own_seqs().items()
        }

    def of(self, partition: int) -> Mapping[str, Mapping[int, Logged]] | None:
        """The entries of ``partition`` by origin and seq (read only)."""
        return self._log.get(partition)

    def entry(self, partition: int, origin: str, seq: int) -> LogEntry | None:
        """The entry of log dot ``(origin, partition, seq)``, None if it is not held."""
        found = self._log.get(partition, {}).get(origin, {}).get(seq)
        if found is None:
            return None
        key, kind, sid, raw = found.split("\x00", 3)
        if not sid:
            return LogEntry(origin, partition, seq, key, kind, raw, None)
        return LogEntry(origin, partition, seq, key, kind, raw, self.seals.get(int(sid)))

    def keys_of(self, partition: int) -> dict[str, dict[int, str]]:
        """Per origin, the key of each entry of ``partition`` by seq."""
        return {
            origin: {seq: text.split("\x00", 1)[0] for seq, text in by_seq.items()}
            for origin, by_seq in self._log.get(partition, {}).items()
        }

    def seal_of(self, partition: int, seq: int) -> Seal | None:
        """The seal held for our own entry ``seq`` of ``partition`` (None: not sealed yet,
        or not held)."""
        if self.seals.never_sealed(partition, seq):
            return None  # (spares the lookup for a new entry of ours)
        found = self._log.get(partition, {}).get(self._me, {}).get(seq)
        if found is None:
            return None
        # key NUL kind NUL sid NUL delta: the third field, without copying the delta
        start = found.index("\x00", found.index("\x00") + 1) + 1
        sid = found[start : found.index("\x00", start)]
        return self.seals.get(int(sid)) if sid else None

    def sealed(self, entries: Iterable[LogEntry]) -> None:
        """Record the seals just set on our own ``entries``."""
        seals = self.seals
        for e in entries:
            p, seq = e.partition, e.seq
            by_seq = self._log.get(p, {}).get(e.origin)
            if by_seq is None or seq not in by_seq:
                continue
            if seals.never_sealed(p, seq):
                # Its text holds no seal, and is e's own: written again without reading it.
                if e.seal is None:
                    continue
                by_seq[seq] = f"{e.key}\x00{e.kind}\x00{seals.ref(e.seal)}\x00{e.delta_json}"
                seals.own_sealed(p, seq)
                continue
            key, kind, sid, raw = by_seq[seq].split("\x00", 3)
            if sid:
                seals.unref(int(sid))
            new = "" if e.seal is None else seals.ref(e.seal)
            by_seq[seq] = f"{key}\x00{kind}\x00{new}\x00{raw}"
