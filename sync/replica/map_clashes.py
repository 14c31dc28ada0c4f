"""Kind clashes inside maps: reported once while they last.

Two replicas that update one key of an ORMap concurrently as two kinds leave the map holding
both (:mod:`crdt.ormap`): it converges, shows one of them, and refuses updates of the key
until one kind is removed. :class:`MapClashes` raises an ``Alarm("map_kind_clash")`` for each
such key (by its path, nested maps' included) when a join into a map makes one, or when a
map holding one is loaded, and remembers it until the clash ends, so that one that ends and
comes back is reported again. Its memory is bounded by :data:`MAP_CLASH_MEMO` paths (past
it, everything is forgotten, and reported again when met).

Knows only the outbox.
"""

from __future__ import annotations

from typing import Any

import crdt
from crdt import CRDT
from sync.effects import Alarm
from sync.errors import named_kinds
from sync.replica.outbox import Outbox

__all__ = ["MAP_CLASH_MEMO", "MapClashes"]

#: Kind clashes inside maps remembered as reported (cleared when full: reported again).
MAP_CLASH_MEMO = 4096

Path = tuple[Any, ...]


class MapClashes:
    """The clashes reported, by the map's key and the path in the map."""

    __slots__ = ("_count", "_outbox", "by_key")

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        #: key -> path in its map -> kinds: the clashes reported and not known to have
        #: ended (read only; a map's key is here only while it has one)
        self.by_key: dict[str, dict[Path, tuple[str, ...]]] = {}
        self._count = 0  # paths in by_key

    def joined(self, key: str, obj: CRDT | None, joined: CRDT) -> None:
        """After ``joined`` (a delta, a state or a piece of one) was joined into the map
        ``obj`` of ``key`` (or ``obj`` was loaded: ``joined`` is ``obj``): an alarm for each
        key of ``joined`` (nested maps' included) that the map now holds as two kinds, unless
        it was reported and has not ended since."""
        if type(obj) is not crdt.ORMap or type(joined) is not crdt.ORMap:
            return
        self.forget_ended(key, obj)
        found = obj.clashes_from(joined)
        for path, kinds in found.items():
            reported = self.by_key.get(key)
            if reported is not None and reported.get(path) == kinds:
                continue
            if self._count >= MAP_CLASH_MEMO:
                self.by_key.clear()
                self._count = 0
            reported = self.by_key.setdefault(key, {})
            self._count += path not in reported
            reported[path] = kinds
            self._outbox.emit(Alarm("map_kind_clash", key, _message(key, path, kinds)))

    def forget_ended(self, key: str, obj: CRDT | None) -> None:
        """Forget the clashes reported in the map of ``key`` (now ``obj``) that ended, so
        that one coming back is reported again."""
        reported = self.by_key.get(key)
        if not reported:
            return
        for path in list(reported):
            if type(obj) is not crdt.ORMap or len(obj.kinds_at(path)) < 2:
                del reported[path]
                self._count -= 1
        if not reported:
            del self.by_key[key]


def _message(key: str, path: Path, kinds: tuple[str, ...]) -> str:
    *outer, last = path
    where = "".join(f"[{k!r}]" for k in outer)
    if outer:
        what = f"the key of its map at {where}, {last!r}"
        fix = f"remove({last!r}, kind=...) in the map at {where}"
    else:
        what, fix = f"its key {last!r}", f"remove({last!r}, kind=...)"
    return (
        f"map {key!r}: {what} holds {named_kinds(kinds)}, written as two kinds concurrently; "
        f"its value shows the {kinds[-1]}, and updates of the key are refused until the one "
        f"not kept is removed: {fix}"
    )
