"""The outbox: queues the effects of the inputs since the last drain, in order.

It holds three things every other part of the engine writes into:

* the **effects** (:mod:`sync.effects`), appended in the order the caller must execute them,
  with one ``Changed`` per key per drain (:meth:`Outbox.changed`);
* the **durable changes** (:class:`Changes`) of those inputs: which keys to checkpoint, the
  log entries, summaries, hints, peer records and compactions that the drain's one
  ``Persist`` must carry. The drain (:mod:`sync.replica.drain`) turns them into that
  ``Persist``, and inserts it where the first input that changed something durable began:
  before every effect of that input and of the later ones ("persist before acknowledge");
* the **message ids** (push, batch and request ids), counting up from a random start so
  that late acks addressed to a previous incarnation of the replica match nothing.

This module knows no other part of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crdt import CRDT
from sync.effects import Changed, Effect, HintId, HintRecord, LogEntry, ObjectState, Persist

__all__ = ["Changes", "Outbox"]


@dataclass(slots=True)
class Changes:
    """The durable changes of the inputs of one drain, emitted as one ``Persist``."""

    objects: dict[tuple[str, str], None] = field(default_factory=dict)  # (key, kind) to checkpoint
    log: list[LogEntry] = field(default_factory=list)
    summaries: dict[int, None] = field(default_factory=dict)  # partitions whose summary changed
    hints: dict[HintId, HintRecord | None] = field(default_factory=dict)  # None: dropped
    peers: dict[str, None] = field(default_factory=dict)  # peers whose record changed
    compact: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    fold: bool = False  # a clean close: every changed object is checkpointed
    #: key -> (kind, text): a state transfer's state adopted as it came, with the text it
    #: came as, which is then its checkpoint (no re-encoding); dropped when the key changes.
    texts: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: key -> its row: a state transfer's state stored as it came, never in the cache
    #: (``LocalData.merge_state``); dropped if the key is taken into the cache.
    passed: dict[str, ObjectState] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (
            self.fold
            or self.log
            or self.objects
            or self.passed
            or self.summaries
            or self.hints
            or self.peers
            or self.compact
        )


class Outbox:
    """The effects and durable changes queued since the last drain, and the message ids."""

    __slots__ = (
        "_changed_keys",
        "_early",
        "_input_mark",
        "_next_id",
        "_pending",
        "_pending_mark",
        "changes",
        "effects",
    )

    def __init__(self, first_id: int) -> None:
        self.effects: list[Effect] = []
        self._early: list[Effect] = []  # effects that go before everything of this drain
        #: The durable changes of the input being handled (None between inputs).
        self.changes: Changes | None = None
        self._pending: Changes | None = None  # durable changes since the last drain
        self._pending_mark = 0  # where their Persist goes among the effects
        self._input_mark = 0  # where the effects of the current input begin
        self._changed_keys: set[str] = set()  # keys with a Changed since the last drain
        self._next_id = first_id

    @property
    def durable(self) -> Changes:
        """The durable changes of the current input (only inside an input)."""
        changes = self.changes
        assert changes is not None, "durable changes happen inside an input"
        return changes

    def open_changes(self) -> Changes:
        """The durable changes not yet in a ``Persist``: the current input's, or between
        inputs those of the drain so far (there must be some)."""
        changes = self.changes or self._pending
        assert changes is not None, "no durable changes since the last drain"
        return changes

    def emit(self, effect: Effect) -> None:
        self.effects.append(effect)

    def emit_early(self, effect: Effect) -> None:
        """Queue ``effect`` ahead of every effect of this drain, its ``Persist`` included:
        for what depends on nothing this drain makes durable (a relay's forward of other
        origins' entries), so that it is not held up by the commit."""
        self._early.append(effect)

    def changed(self, key: str, objects: Mapping[str, CRDT] | None = None) -> None:
        """``Changed(key)``, once per key per drain (a subscriber reads the latest value of
        ``objects``, the key's live objects by kind). Every change of a held object comes
        here, so this is also where a text received for the key stops being its state's."""
        changes = self.changes
        if changes is not None and changes.texts:
            changes.texts.pop(key, None)
        if key not in self._changed_keys:
            self._changed_keys.add(key)
            self.effects.append(Changed(key, objects))

    def new_id(self) -> int:
        """A fresh message id (push, batch or request)."""
        self._next_id += 1
        return self._next_id

    def begin_input(self) -> None:
        # Durable changes accumulate in one Changes until the next drain: one Persist per
        # drain, not per input, so a round of many inputs builds and encodes its summaries
        # and checkpoints once.
        self.changes = self._pending if self._pending is not None else Changes()
        self._input_mark = len(self.effects)

    def end_input(self) -> Changes | None:
        """Close the current input; its drain's changes if there are any (else None)."""
        changes, self.changes = self.changes, None
        if changes is None:
            return None
        if changes is not self._pending:
            if changes.is_empty():
                return None  # most acks, reads and summaries change nothing durable
            # The Persist goes where the first input that changed something durable began.
            self._pending = changes
            self._pending_mark = self._input_mark
        return changes

    def take_pending(self) -> Changes | None:
        """The durable changes since the last drain (None if none); they are taken."""
        changes, self._pending = self._pending, None
        return changes

    def place_persist(self, persist: Persist, *, at_end: bool = False) -> None:
        """Put the drain's ``Persist`` before the effects of the inputs that needed it (or,
        ``at_end``, after every effect: checkpoints of evicted objects, which nothing queued
        depends on)."""
        self.effects.insert(len(self.effects) if at_end else self._pending_mark, persist)

    def drain(self) -> list[Effect]:
        """The queued effects, in order; the queue starts afresh."""
        self._changed_keys.clear()
        out = self.effects
        self.effects = []
        if self._early:
            out[:0] = self._early
            self._early = []
        return out
