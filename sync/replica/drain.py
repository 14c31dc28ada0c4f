"""The drain's durable side: our new entries sealed, and the drain's one ``Persist``.

When the caller drains the effects (:meth:`sync.replica.Replica.effects`), before anything
of the drain is executed, :class:`Drain`:

* **seals** the entries this replica wrote since the last drain (a replica given a
  :class:`~sync.signing.Signer` only): one :class:`~sync.signing.Seal` per
  :data:`~sync.signing.SEAL_MAX` of them, set in place on the entry objects the log, the
  pushes and the hints share, so each is stored and sent with its seal;
* builds the **Persist** of every durable change of the drain's inputs (the outbox's
  :class:`~sync.replica.outbox.Changes`: checkpoints, log entries, summaries, hints, peer
  records, compactions), and places it before the effects of the first input that changed
  something durable ("persist before acknowledge");
* **evicts** the objects past the cache's budget, and those a state transfer brought in,
  checkpointing in that ``Persist`` each one that changed since its checkpoint, so an
  object not in memory is complete in the store. With no durable change but such
  checkpoints, the ``Persist`` goes after every effect: nothing queued depends on it.

A clean close (:meth:`Drain.fold_all`) checkpoints every changed object and marks the
store's log as folded into its objects.

Knows the outbox, local data and membership.
"""

from __future__ import annotations

from sync.effects import Persist
from sync.replica.local_data import LocalData
from sync.replica.membership import Membership
from sync.replica.outbox import Changes, Outbox
from sync.signing import SEAL_MAX, Signer

__all__ = ["Drain"]


class Drain:
    """Seals our new entries and builds the ``Persist`` of one drain."""

    __slots__ = ("_data", "_membership", "_outbox", "_signer")

    def __init__(
        self, outbox: Outbox, data: LocalData, membership: Membership, signer: Signer | None
    ) -> None:
        self._outbox = outbox
        self._data = data
        self._membership = membership
        self._signer = signer

    def seal_own(self) -> None:
        """Seal our entries written since the last drain, in place (the log, the pushes and
        the hints hold the same entry objects), before anything of the drain is executed."""
        fresh = self._data.take_unsealed()
        signer = self._signer
        if not fresh or signer is None:
            return
        for i in range(0, len(fresh), SEAL_MAX):
            chunk = fresh[i : i + SEAL_MAX]
            seal = signer.seal(chunk)
            for e in chunk:
                e.seal = seal
        self._data.sealed(fresh)

    def flush(self) -> None:
        """Emit the Persist of every durable change since the last drain (if any), with the
        checkpoints of the objects evicted from the cache now (see the module docstring)."""
        changes = self._outbox.take_pending()
        victims = self._data.evict_plan()
        transient = self._data.take_transient()
        if transient:
            victims = list(dict.fromkeys([*victims, *transient]))
        if victims:
            dirty = self._data.dirty(victims)
            at_end = changes is None
            if dirty and changes is None:
                changes = Changes()
            for oid in dirty:
                changes.objects[oid] = None  # type: ignore[union-attr]
            if changes is not None:
                self._emit_persist(changes, at_end=at_end)
            self._data.evict(victims)
            return
        if changes is None:
            return
        self._emit_persist(changes)

    def fold_all(self) -> None:
        """A clean close (inside an input): checkpoint every object changed since its
        checkpoint, and have the store record that its log is folded into its objects."""
        changes = self._outbox.durable
        for oid in self._data.dirty_all():
            changes.objects[oid] = None
        changes.fold = True

    def _emit_persist(self, changes: Changes, *, at_end: bool = False) -> None:
        # The last change of each hint wins (an add then a drop is a drop, and vice versa),
        # so no hint is both added and dropped by one Persist.
        hints_add = tuple(rec for rec in changes.hints.values() if rec is not None)
        hints_drop = tuple(hid for hid, rec in changes.hints.items() if rec is None)
        persist = Persist(
            objects=self._data.checkpoints(changes.objects) if changes.objects else (),
            log_folded=changes.fold,
            log=tuple(changes.log),
            summaries=self._data.encoded_summaries(changes.summaries),
            hints_add=hints_add,
            hints_drop=hints_drop,
            peers=self._membership.records(changes.peers) if changes.peers else (),
            compact=tuple(changes.compact),
        )
        if not persist.is_empty():
            self._outbox.place_persist(persist, at_end=at_end)
