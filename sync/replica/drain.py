"""The drain's durable side: our new entries sealed, and the drain's one ``Persist``.

When the caller drains the effects (:meth:`sync.replica.Replica.effects`), before anything
of the drain is executed, :class:`Drain`:

* builds the **Persist** of every durable change of the drain's inputs (the outbox's
  :class:`~sync.replica.outbox.Changes`: checkpoints, log entries, summaries, hints, peer
  records, compactions), and places it before the effects of the first input that changed
  something durable ("persist before acknowledge");
* **evicts** the objects past the cache's budget, and those a state transfer brought in,
  checkpointing in that ``Persist`` each one that changed since its checkpoint, so an
  object not in memory is complete in the store; the keys a state transfer passed through
  (their rows in that ``Persist``) are on demand from then on too. With no durable change but such
  checkpoints, the ``Persist`` goes after every effect: nothing queued depends on it.
* **seals**, once the drain's effects are all queued, the entries of our own origin that
  its messages carry unsealed (a replica given a :class:`~sync.signing.Signer` only): one
  :class:`~sync.signing.Seal` per :data:`~sync.signing.SEAL_MAX` of them, all under one
  signature per :data:`~sync.signing.GROUP_MAX` seals, set in place on
  every object of such an entry in the drain (the ``Persist`` may hold the same object,
  and then stores the seal too), or the seal the log already holds for it. An entry is
  signed when it first leaves this replica, not when it is written: a replica writing
  while no peer is linked (offline, or a lone peer) signs nothing until it syncs, and then
  its backlog goes out in seals of up to ``SEAL_MAX`` entries, not one per write. Our own
  entries stored unsealed are sealed the same way whenever they are sent, after a restart
  too, as long as this replica keeps its id. A hint is sealed when it is stored: it may be
  the only copy of a write until a home has it, and a replica whose id changes (a restored
  copy: the store drops the old key) could no longer seal the old id's entries. Its log
  entries of the old id, unsealed, still reach the others, by state transfer
  (``AntiEntropy(sealed_only=True)``).

A clean close (:meth:`Drain.fold_all`) checkpoints every changed object and marks the
store's log as folded into its objects.

Knows the outbox, local data and membership.
"""

from __future__ import annotations

from sync.effects import Effect, LogEntry, Persist, Send
from sync.messages import Deltas, Push
from sync.replica.local_data import LocalData
from sync.replica.membership import Membership
from sync.replica.outbox import Changes, Outbox
from sync.signing import SEAL_MAX, Signer

__all__ = ["Drain"]


class Drain:
    """Builds the ``Persist`` of one drain and seals our entries that it sends."""

    __slots__ = ("_data", "_membership", "_outbox", "_signer")

    def __init__(
        self, outbox: Outbox, data: LocalData, membership: Membership, signer: Signer | None
    ) -> None:
        self._outbox = outbox
        self._data = data
        self._membership = membership
        self._signer = signer

    def seal_sent(self, effects: list[Effect]) -> None:
        """Seal, in place, the entries of our own origin that the messages of ``effects``
        (the drain, before any of it is executed) carry without a seal, and those its
        ``Persist`` stores as hints: a hint may be the only copy of a write until a home has
        it, so it is stored deliverable by whatever id this replica has when it hands it off
        (a restored copy gets a new id, and its store drops the old key)."""
        signer = self._signer
        if signer is None:
            return
        me = signer.replica_id
        # Per log dot, the first object of it in the drain; the other objects of a dot (a
        # push and a hint may hold two), which take the first's seal.
        fresh: dict[tuple[int, int], LogEntry] = {}
        more: list[LogEntry] = []
        for effect in effects:
            if isinstance(effect, Send):
                message = effect.message
                if not isinstance(message, Push | Deltas):
                    continue
                entries = message.entries
            elif isinstance(effect, Persist):
                entries = [h.entry for h in effect.hints_add]
            else:
                continue
            for e in entries:
                if e.seal is None and e.origin == me:
                    first = fresh.setdefault((e.partition, e.seq), e)
                    if first is not e:
                        more.append(e)
        if not fresh:
            return
        data = self._data
        unsealed: list[LogEntry] = []
        for (partition, seq), e in fresh.items():
            e.seal = data.log.seal_of(partition, seq)  # sent sealed before: the same seal again
            if e.seal is None:
                unsealed.append(e)
        for i, seal in enumerate(signer.seal_all(unsealed)):
            for e in unsealed[i * SEAL_MAX : (i + 1) * SEAL_MAX]:
                e.seal = seal
        for e in more:
            e.seal = fresh[e.partition, e.seq].seal
        data.log.sealed(unsealed)

    def flush(self) -> None:
        """Emit the Persist of every durable change since the last drain (if any), with the
        checkpoints of the objects evicted from the cache now (see the module docstring)."""
        changes = self._outbox.take_pending()
        self._data.pass_on()
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
        objects = self._data.checkpoints(changes.objects, changes.texts)
        persist = Persist(
            objects=(*objects, *changes.passed.values()) if changes.passed else objects,
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
