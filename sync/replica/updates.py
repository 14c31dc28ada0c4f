"""Updates: a local update turned into a log entry, checked whole, then applied here.

:meth:`sync.replica.Replica.local_update` hands the object ``(key, kind)`` and the caller's
``fn`` to :class:`Updates`, which changes nothing until the update is known to be good:

* **The kind.** A key normally holds one kind. A write of another kind is refused
  (``TypeError``), and so is a write to a key holding this kind *and* another while one of
  the others is live (a kind clash: :class:`~sync.errors.KindClash` naming both), except a
  delete of this kind's object (an ``fn`` whose ``resets`` is True), which is how a clash
  ends.
* **The delta.** ``fn`` runs on a fresh bottom when the key holds no object of the kind, on
  a *copy* of the object otherwise (it replaces the object only once its delta is known to
  fit), or, for a caller that promised the delta fits (``checked``), on the live object (the
  hot path) -- when the configuration makes that promise hold: a value checked against
  ``value_limit`` fits in ``entry_limit`` with :data:`LIVE_SLACK` to spare for the rest of
  the delta (always, but for a ``max_message_bytes`` of a few KiB, where a checked write
  runs on a copy too, so that a refusal changes nothing). It must return its mutator's
  delta, of this kind; the delta is encoded once, here, and travels as that text
  (:class:`~sync.effects.LogEntry`) from then on.
* **The size.** A log entry that would not fit in one message (``entry_limit``, as
  :func:`~sync.replica.outbound.entry_size` counts it) is refused,
  :class:`~sync.errors.ValueTooLarge`, or ``LocalProtocolError`` when ``checked`` broke its
  promise (the live object may keep the change, never logged or sent).

Once the façade has begun the input, :meth:`Updates.apply` holds the new object, logs the
entry under the next log dot of ours and queues ``Changed``; replicating it is
:mod:`~sync.replica.writes`' job.

Knows the outbox, local data and outbound batching (how entries are sized).
"""

from __future__ import annotations

from collections.abc import Callable

import crdt
from crdt import CRDT
from sync.config import ReplicaConfig
from sync.effects import LogEntry
from sync.errors import KindClash, LocalProtocolError, ValueTooLarge, named_kinds
from sync.replica.local_data import LocalData
from sync.replica.outbound import entry_size
from sync.replica.outbox import Outbox

__all__ = ["LIVE_SLACK", "Updates"]

#: What a delta adds to the values a handle checked (ids, dots, timestamps, JSON), bounded.
LIVE_SLACK = 4096


class Updates:
    """Local updates made into log entries, refused before anything changes, then applied."""

    __slots__ = ("_data", "_entry_limit", "_live", "_me", "_outbox")

    def __init__(
        self, config: ReplicaConfig, replica_id: str, outbox: Outbox, data: LocalData
    ) -> None:
        self._me = replica_id
        self._outbox = outbox
        self._data = data
        self._entry_limit = config.entry_limit
        # Whether a checked write may run on the live object (the module docstring).
        self._live = config.value_limit + LIVE_SLACK <= config.entry_limit

    def held(self, key: str, kind: str, fn: Callable[[CRDT], CRDT]) -> CRDT | None:
        """The object ``(key, kind)`` a write of ``fn`` will change (None: absent), or a
        ``TypeError``/:class:`~sync.errors.KindClash` if the key holds another kind."""
        data = self._data
        objs = data.objects_of(key)
        obj = None
        if objs is not None:
            obj = objs.get(kind)
            if obj is None or len(objs) > 1:
                # Another kind is held too: refused while one of the others is live, except
                # a delete of this kind's object (the way out of a clash).
                live = data.kinds_of(key)
                resets = obj is not None and getattr(fn, "resets", False) is True
                if any(k != kind for k in live) and not resets:
                    _refuse_kind(key, kind, live)
        return obj

    def prepare(
        self,
        key: str,
        kind: str,
        partition: int,
        obj: CRDT | None,
        fn: Callable[[CRDT], CRDT],
        checked: bool,
    ) -> tuple[LogEntry, CRDT | None]:
        """Run ``fn`` (on ``obj``, the object :meth:`held` found, or a copy, or a fresh
        bottom) and make its delta our next log entry of ``partition``; nothing changes when
        this raises. Returns the entry, and the object to hold in place of ``obj`` (None when
        ``fn`` ran on ``obj`` itself)."""
        # A fresh bottom, a copy (replacing obj once the delta is known to fit), or obj itself.
        live = checked and self._live
        target = crdt.new(kind) if obj is None else (obj if live else obj.copy())
        delta = fn(target)
        if getattr(delta, "kind", None) != kind or not hasattr(delta, "to_json"):
            # fn mutated nothing we can log; its result is not a delta of this kind.
            raise TypeError(f"fn must return the {kind} delta of its mutator, got {delta!r}")
        # Encoded once, here; from now on the delta travels as this text (see LogEntry).
        raw = delta.to_json()
        me = self._me
        entry = LogEntry(me, partition, self._data.next_seq(partition), key, kind, raw)
        limit = self._entry_limit
        # A bound of entry_size (a delta's character takes at most 4 bytes, escapes
        # included; a key's or origin's at most 8, as entry_size counts them; 96 for the
        # rest): the exact size is computed only for a delta that could be near the limit.
        if 4 * len(raw) + 8 * (len(key) + len(me)) + 96 > limit:
            size = entry_size(entry)
            if size > limit:
                if target is obj:
                    raise LocalProtocolError(
                        f"checked=True, but the delta of this write to {key!r} takes {size} "
                        f"bytes, over what one message carries ({limit}); it was not logged"
                    )
                raise ValueTooLarge(f"the delta of this write to {key!r}", size, limit)
        return entry, (None if target is obj else target)

    def apply(self, entry: LogEntry, replacement: CRDT | None) -> None:
        """Inside an input: hold ``replacement`` (if any) as the entry's object, log the
        entry and queue ``Changed`` for its key."""
        data, key = self._data, entry.key
        if replacement is not None:
            data.adopt(key, replacement)  # new, or the copy fn ran on
        data.append(entry)
        data.refresh_clash(key)
        self._outbox.changed(key, data.objects_of(key))


def _refuse_kind(key: str, kind: str, held: tuple[str, ...]) -> None:
    """A local write of ``kind`` to ``key``, which holds ``held``: refused."""
    if kind in held:
        raise KindClash(key, held)
    raise TypeError(f"key {key!r} holds {named_kinds(held)}, not {named_kinds([kind])}")
