"""The seal table: the seals of the entries in a replica's in-memory log, by number.

The log holds each entry as one string (see :mod:`sync.replica.local_data`) whose third
field is the number of its seal here, or empty: the seals themselves are kept once, in this
table, with how many logged entries refer to each, and dropped with the last. It also keeps,
per partition, the highest seq of this replica's own entries logged with a seal
(:meth:`SealTable.never_sealed`): an own entry above it was never sealed, which spares the
drain that seals what it sends a lookup in the log for every new entry.

Knows nothing else of the engine.
"""

from __future__ import annotations

from typing import Any

from sync.signing import Seal

__all__ = ["SealTable"]


class SealTable:
    """Seals by number, each with how many logged entries refer to it."""

    __slots__ = ("_count", "_last", "_seals", "_upto")

    def __init__(self) -> None:
        self._seals: dict[int, list[Any]] = {}  # number -> [seal, entries logged with it]
        self._last: tuple[Seal, int] | None = None  # the last seal numbered (a batch's)
        self._count = 0
        self._upto: dict[int, int] = {}  # partition -> highest own seq logged sealed

    def __len__(self) -> int:
        return len(self._seals)

    def held(self) -> list[tuple[Seal, int]]:
        """The seals held, each with how many logged entries refer to it, in the order
        they were numbered."""
        return [(held[0], held[1]) for held in self._seals.values()]

    def ref(self, seal: Seal) -> int:
        """The number of ``seal``, counting one more entry logged with it (the entries of
        one seal arrive together: the last one numbered is tried first)."""
        last = self._last
        if last is not None and (last[0] is seal or last[0] == seal) and last[1] in self._seals:
            sid = last[1]
            self._seals[sid][1] += 1
            return sid
        sid = self._count = self._count + 1
        self._seals[sid] = [seal, 1]
        self._last = (seal, sid)
        return sid

    def unref(self, sid: int) -> None:
        """One entry logged with seal ``sid`` fewer (the seal goes with the last)."""
        held = self._seals[sid]
        held[1] -= 1
        if held[1] <= 0:
            del self._seals[sid]

    def get(self, sid: int) -> Seal:
        seal: Seal = self._seals[sid][0]
        return seal

    def own_sealed(self, partition: int, seq: int) -> None:
        """An own entry ``seq`` of ``partition`` is logged with a seal."""
        if seq > self._upto.get(partition, 0):
            self._upto[partition] = seq

    def never_sealed(self, partition: int, seq: int) -> bool:
        """Was the own entry ``seq`` of ``partition`` never logged with a seal (it is above
        every own seq of the partition that was)?"""
        return seq > self._upto.get(partition, 0)
