"""Local data: the objects held here, the delta log, the summaries and the checkpoints.

(About 740 lines: one owner for the dictionaries every change goes through, the cache, the
log and the summaries updated together by each change, which splitting would hand out; the
log's storage, its kind-clash alarms, the keys it evicted and the checked batches it
applies are modules of their own, ``log.py``, ``map_clashes.py``, ``evicted.py`` and
``checked.py``.)

Every change of an object, of the log or of a summary goes through :class:`LocalData`; no
other part of the engine holds a reference to its dictionaries (they read the log through
:attr:`LocalData.log`). It
records what must become durable in the outbox's :class:`~sync.replica.outbox.Changes`
(log entries, summaries, keys to checkpoint) and queues ``Changed`` effects, nothing else.

* **Objects**: an object is named by its key *and* its kind (as riak_dt's map fields are
  ``{name, type}``): usually one CRDT per key, but two peers that wrote one key offline as two
  kinds both keep theirs, and both replicate everywhere the same way. Such a key is a
  *clash*: it is listed (:meth:`LocalData.clashes`), reported once with a
  :class:`~sync.effects.KindClashFound` effect, and a local write to it is refused until one
  object is deleted.
* **The log**: per partition, origin and seq, the delta of every entry applied here until
  compaction drops it, each held as one string (:mod:`sync.replica.log`): the log is the
  bulk of a replica's memory, and a string is untracked by the garbage collector (a decoded
  delta is a dozen nested containers it would scan for ever).
* **Summaries**: per partition, the :class:`~crdt.CausalContext` of the log dots applied
  here, and the highest seq of our own in each partition (the next log dot is one above).
* **The cache**: the objects are held in a bounded cache, least recently used first, each
  sized cheaply (its encoded length when loaded or checkpointed, plus the deltas applied
  since, plus :data:`OBJECT_OVERHEAD` per key). At each drain, past ``config.cache_bytes``
  the least recently used keys are evicted; one with entries applied since its checkpoint is
  checkpointed in that drain's ``Persist`` first, so a key not in the cache is complete in
  the store (the invariant that lets it be loaded again as it is). An input that needs a key
  not in the cache gets it loaded first: the adapter asks :meth:`LocalData.missing`
  (through the façade's ``wants_*``), loads those objects from the store and hands them to
  :meth:`LocalData.admit`. A replica that holds every object (a fresh one, or one loaded
  whole from a small store) is *complete* and needs nothing loaded until it first evicts;
  after that, only the keys within the span of those it evicted of their partition
  (:mod:`sync.replica.evicted`).
  The in-memory log and summaries are not cached: they stay whole, as before.
* **State transfers pass through**: a whole state received for a key held nowhere here (not
  in the cache, and the store cannot hold it) never enters the cache: its received text is
  the drain's ``Persist`` row (``Changes.passed``) and the key is on demand once the drain
  ends (:meth:`pass_on`); an input of the same drain that touches the key takes it into the
  cache first, as any other state it brought in. Such a state, merged into one held here,
  is checkpointed at once (adopted as it came: as the text it came as, ``Changes.texts``),
  and a key it brought into the cache leaves it at the end of the drain
  (:meth:`take_transient`), so a bootstrap does not fill the cache; the pieces of a state
  too big for one message are merged as deltas into the cached object
  (:meth:`merge_piece`) and checkpointed with the partition's last chunk
  (:meth:`pieces_done`), before its summary is merged. A transfer sent reads the store:
  :meth:`dirty_in` names what to checkpoint first.
* **Checkpoints**: every ``checkpoint_every`` log entries a round checkpoints each key whose
  entries since its last checkpoint reach :data:`CHECKPOINT_GROWTH` times the entries it
  had then (a growing key is re-encoded at geometrically growing intervals: O(size) in
  all); a state changed without a log entry, and a key whose entries are compacted, is
  checkpointed at once.

Knows only the outbox, and holds three parts of its own: the log's storage and the seals of
its entries (:mod:`sync.replica.log`), the alarms of kind clashes inside maps
(:mod:`sync.replica.map_clashes`) and the spans of the keys it evicted
(:mod:`sync.replica.evicted`). It applies what inbound validation checked, a
:class:`~sync.replica.checked.CheckedBatch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import crdt
from crdt import CRDT, CausalContext, Dot
from sync.config import ReplicaConfig
from sync.effects import KindClashFound, Loaded, LogEntry, ObjectState
from sync.errors import LocalProtocolError
from sync.replica.checked import CheckedBatch, ObjectId
from sync.replica.evicted import Evicted
from sync.replica.log import DeltaLog
from sync.replica.map_clashes import MapClashes
from sync.replica.outbox import Changes, Outbox
from sync.ring import PartitionMemo

__all__ = [
    "CHECKPOINT_GROWTH",
    "OBJECT_OVERHEAD",
    "WHOLE_TEXT_SHARE",
    "LocalData",
]


# A key is checkpointed again once it has applied this many times the entries it had at its
# last checkpoint (and at least checkpoint_every entries went by): re-encoding everything a
# key ever held costs at most (1 + 1/3) times its final size.
CHECKPOINT_GROWTH = 3

# A received state's text is stored as it came only if it is at most this share of the
# largest message (in characters): such a text is always served whole, however it is
# spelled. One big enough to be cut into pieces when served is encoded afresh, since the
# cutter (crdt/_split_text.py) reads our own layout entry by entry, and a peer's text in
# another layout that decodes all the same (a duplicated JSON key, say) would stop it.
# Characters to bytes in a message: at most 4 for UTF-8 and twice that escaped; a 4x margin
# for a smaller max_message_bytes later. 64 KiB of text at the default 4 MiB.
WHOLE_TEXT_SHARE = 64

OBJECT_OVERHEAD = 512
"""Bytes counted per key in the cache on top of its objects' encoded size: the Python
objects of a small CRDT, its key and the cache's own entries."""


def live_kinds(objects: Mapping[str, CRDT] | None) -> tuple[str, ...]:
    """The kinds of the *live* objects of a key's ``objects`` (kind -> object), sorted: two or
    more is a clash. The one rule of which objects count (``is_live()``: a deleted or emptied
    object does not), for the engine (:meth:`LocalData.kinds_of`) and its adapters (a change
    feed given a key's objects)."""
    if not objects:
        return ()
    return tuple(sorted(kind for kind, obj in objects.items() if obj.is_live()))


class LocalData:
    """The objects, log, summaries and checkpoint bookkeeping of one replica."""

    __slots__ = (
        "_admitted",
        "_at_checkpoint",
        "_bytes",
        "_clashes",
        "_config",
        "_entries_since_round",
        "_evicted",
        "_last_seq",
        "_map_clashes",
        "_me",
        "_objects",
        "_outbox",
        "_passed",
        "_pieces",
        "_since_checkpoint",
        "_sizes",
        "_summaries",
        "_transient",
        "_unfolded",
        "log",
        "partition",
    )

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        outbox: Outbox,
        partition_of: PartitionMemo | None = None,
    ) -> None:
        self._config = config
        self._me = replica_id
        self._outbox = outbox
        #: A key's partition, memoized (a blake2b per call otherwise; keys recur).
        self.partition = partition_of or PartitionMemo(config.partitions)
        # The cache: key -> kind -> object (two kinds only for a clash; none: known absent),
        # least recently used first; per key its estimated size.
        self._objects: dict[str, dict[str, CRDT]] = {}
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._evicted = Evicted(self.partition)  # what the store may hold, the cache not
        self._admitted: set[str] = set()  # keys loaded from the store for this drain's inputs
        # Keys a state transfer brought in that were not in the cache: dropped from it at
        # the end of the drain (checkpointed first), so that a bootstrap passes through.
        self._transient: set[str] = set()
        # Keys a state transfer passed through in this drain: key -> (partition, the key's
        # objects by kind, the received text); see :meth:`merge_state`.
        self._passed: dict[str, tuple[int, dict[str, CRDT], str]] = {}
        # Per partition, the objects state-transfer pieces changed since its last chunk
        # (checkpointed with it: the summary never gets ahead of the stored objects).
        self._pieces: dict[int, set[ObjectId]] = {}
        self._unfolded: set[ObjectId] = set()  # log replayed at load, not yet checkpointed
        self._clashes: dict[str, tuple[str, ...]] = {}  # key -> its kinds, sorted
        self._map_clashes = MapClashes(outbox)  # inside maps: alarms
        #: The in-memory delta log (read by the other parts of the engine).
        self.log = DeltaLog(replica_id)
        self._summaries: dict[int, CausalContext] = {}
        self._last_seq: dict[int, int] = {}  # per partition, the highest seq of ours
        # Per key, log entries applied since its last checkpoint, and the entries it had
        # applied at that checkpoint (the geometric threshold); entries since the last round.
        self._since_checkpoint: dict[ObjectId, int] = {}
        self._at_checkpoint: dict[ObjectId, int] = {}
        self._entries_since_round = 0

    def load(self, loaded: Loaded) -> None:
        """Start from what the store holds: the log, the summaries and the objects it gave
        (every object, then every log entry merged in, when ``loaded.objects_complete``;
        else the objects are loaded on demand, and the store's already hold the log)."""
        complete = self._evicted.whole = loaded.objects_complete
        for _oid, obj_state in sorted(loaded.objects.items()):
            self._admit_row(obj_state)
        for key, kinds in sorted(loaded.clashes.items()):
            if key not in self._clashes:
                self._clashes[key] = kinds
                self._outbox.emit(KindClashFound(key, kinds))
        for p, ctx in loaded.summaries.items():
            self._summaries[p] = ctx.copy()
        for e in loaded.log:
            if complete:
                delta = crdt.from_dict(e.delta)
                obj = self.peek(e.key, e.kind)
                if obj is None:
                    self.adopt(e.key, delta)
                else:
                    obj.merge(delta)
                self._unfolded.add((e.key, e.kind))
            self.log.put(e)  # (ours stored unsealed: sealed when first sent)
            self._summaries.setdefault(e.partition, CausalContext()).add(Dot(e.origin, e.seq))
        for p, ctx in self._summaries.items():
            mine = ctx.max_counter(self._me)
            if mine:
                self._last_seq[p] = mine
        for key, objs in self._objects.items():  # the clashes inside maps, reported again
            found = objs.get("ormap")
            if type(found) is crdt.ORMap and found.has_clash():
                self._map_clashes.joined(key, found, found)

    # -- objects ---------------------------------------------------------------------------
    def get(self, key: str, kind: str) -> CRDT | None:
        """The live object ``(key, kind)`` (None if not held here); the caller must not keep
        it. ``LocalProtocolError`` if the key is not in the cache and may be in the store
        (the adapter did not load what ``missing`` named)."""
        objs = self._cached(key)
        return objs.get(kind) if objs is not None else None

    def objects_of(self, key: str) -> Mapping[str, CRDT] | None:
        """The live objects of ``key`` by kind (None if it holds none here; read only);
        ``LocalProtocolError`` as :meth:`get`."""
        return self._cached(key) or None

    def _cached(self, key: str, required: bool = False) -> dict[str, CRDT] | None:
        objects = self._objects  # (required: the input's require() checked ``key``)
        objs = objects.get(key)
        if objs is None:
            if key in self._passed:
                return self._take_passed(key)
            if not required and self._evicted.may_hold(key):
                raise LocalProtocolError(
                    f"object {key!r} is not loaded: load what wants_keys/wants_message name "
                    "and admit it before the input"
                )
            return None
        del objects[key]  # the least recently used come first
        objects[key] = objs
        return objs

    def peek(self, key: str, kind: str) -> CRDT | None:
        """``(key, kind)`` if it is in the cache (None otherwise); no error, no touch."""
        objs = self._held(key)
        return objs.get(kind) if objs is not None else None

    def _held(self, key: str) -> dict[str, CRDT] | None:
        """The objects of ``key`` in the cache, or passed through in this drain; read only."""
        objs = self._objects.get(key)
        if objs is None and key in self._passed:
            return self._passed[key][1]
        return objs

    @property
    def complete(self) -> bool:
        """True while every object is in the cache (nothing to load)."""
        return not self._evicted

    def resident(self, key: str) -> bool:
        """True if ``key`` is in the cache (or known absent)."""
        return key in self._objects or not self._evicted.may_hold(key)

    def missing(self, keys: Iterable[str], partition: int | None = None) -> list[str]:
        """The keys of ``keys`` to load before an input that reads or changes them (not in
        the cache, maybe in the store: :mod:`sync.replica.evicted`); ``partition``: all's."""
        if not self._evicted:
            return []
        objects, maybe = self._objects, self._evicted.may_hold
        return [k for k in dict.fromkeys(keys) if k not in objects and maybe(k, partition)]

    def require(self, keys: Iterable[str], partition: int | None = None) -> None:
        """``LocalProtocolError`` before anything changes if a key of ``keys`` is missing."""
        missing = self.missing(keys, partition)
        if missing:
            raise LocalProtocolError(
                f"objects not loaded: {missing[:5]!r}: load what wants_keys/wants_message "
                "name and admit them before the input"
            )

    def admit(self, keys: Iterable[str], rows: Iterable[ObjectState]) -> None:
        """Take objects loaded from the store into the cache: ``rows`` are every object of
        ``keys`` (each kind), and maybe of other keys. A key already in the cache is kept as
        it is (the cache is newer than the store), and so is one passed through in this
        drain; one of ``keys`` with no row is held as known absent."""
        objects, passed = self._objects, self._passed
        fresh = {k for k in keys if k not in objects and k not in passed}
        for row in rows:
            if (row.key in objects and row.key not in fresh) or row.key in passed:
                continue
            fresh.add(row.key)
            self._admit_row(row)
            if row.kind == "ormap":
                found = objects[row.key].get("ormap")
                if type(found) is crdt.ORMap and found.has_clash():
                    self._map_clashes.joined(row.key, found, found)
        for key in fresh:
            if key not in objects:
                objects[key] = {}
                self._sizes[key] = OBJECT_OVERHEAD
                self._bytes += OBJECT_OVERHEAD
        self._admitted |= fresh

    def _admit_row(self, row: ObjectState) -> None:
        obj = crdt.from_dict(row.state)
        text = getattr(row, "state_json", None)
        self.adopt(row.key, obj)
        self._grow(row.key, len(text) if isinstance(text, str) else 0)

    def _grow(self, key: str, nbytes: int) -> None:
        self._sizes[key] = self._sizes.get(key, 0) + nbytes
        self._bytes += nbytes

    @property
    def cache_bytes(self) -> int:
        """The estimated size of the objects in the cache."""
        return self._bytes

    def evict_plan(self) -> list[str]:
        """The least recently used keys to evict for the cache to fit its budget (it goes
        down to 90% of it, so that evictions come in batches). The most recently used is
        kept, however big: an object bigger than the whole budget, evicted after every
        write, was loaded and saved whole again at each next one (a cost growing with its
        size, per write)."""
        budget = self._config.cache_bytes
        if self._bytes <= budget:
            return []
        target, freed, sizes = self._bytes - budget * 9 // 10, 0, self._sizes
        victims: list[str] = []
        last = next(reversed(self._objects), None)
        for key in self._objects:
            if freed >= target or key == last:
                break
            victims.append(key)
            freed += sizes.get(key, 0)
        return victims

    def dirty(self, keys: Iterable[str]) -> list[ObjectId]:
        """The objects of ``keys`` whose store row lacks something applied here."""
        since, unfolded = self._since_checkpoint, self._unfolded
        return [
            (key, kind)
            for key in keys
            for kind in self._objects.get(key, ())
            if (key, kind) in since or (key, kind) in unfolded
        ]

    def evict(self, keys: Iterable[str]) -> None:
        """Drop ``keys`` from the cache (their dirty objects are checkpointed already)."""
        objects, sizes = self._objects, self._sizes
        since, base, unfolded = self._since_checkpoint, self._at_checkpoint, self._unfolded
        for key in keys:
            objs = objects.pop(key, None)
            if objs is None:
                continue
            self._bytes -= sizes.pop(key, 0)
            for kind in objs:
                oid = (key, kind)
                since.pop(oid, None)
                base.pop(oid, None)
                unfolded.discard(oid)
            self._evicted.add(key)

    def end_drain(self) -> None:
        """A drain ended: the keys loaded for its inputs are like any other now."""
        self._admitted.clear()

    def take_transient(self) -> list[str]:
        """The keys a state transfer brought into the cache in this drain, to drop from it
        (with :meth:`evict`, after checkpointing what is dirty)."""
        keys = [k for k in self._transient if k in self._objects]
        self._transient.clear()
        return keys

    def dirty_in(self, partition: int) -> list[ObjectId]:
        """The objects of ``partition`` in the cache whose store row lacks something applied
        here (a state transfer checkpoints them before it reads the store)."""
        part = self.partition
        dirty = set(self._since_checkpoint) | self._unfolded
        return sorted(oid for oid in dirty if part(oid[0]) == partition)

    def unsaved_keys(self) -> dict[str, bool]:
        """Keys in the cache whose store rows may be missing or behind (written since their
        last checkpoint), each with whether it holds a live object here (:meth:`kinds_of`):
        a listing merged with the store's must leave out one that is False (deleted here,
        maybe live in the store) and list one that is True (maybe not stored yet)."""
        keys = {oid[0] for oid in self._since_checkpoint} | {oid[0] for oid in self._unfolded}
        return {key: bool(self.kinds_of(key)) for key in keys}

    def dirty_all(self) -> list[ObjectId]:
        """Every object in the cache whose store row lacks something applied here."""
        return sorted(set(self._since_checkpoint) | self._unfolded)

    def kinds_of(self, key: str) -> tuple[str, ...]:
        """The kinds of the *live* objects ``key`` holds here, sorted (two or more: a clash).

        The one place that decides which objects of a key are live (``is_live()``: a
        deleted or emptied object is not): the clash check of local writes, :meth:`clashes`
        and the status all go through it."""
        return live_kinds(self._held(key))

    def refresh_clash(self, key: str) -> None:
        """After a change of ``key``'s objects: a clash appears when a second kind is live
        (reported once: :class:`~sync.effects.KindClashFound`) and ends when only one is
        (a delete of the other, here or anywhere)."""
        objs = self._objects.get(key)
        if key in self._map_clashes.by_key and objs is not None:
            self._map_clashes.forget_ended(key, objs.get("ormap"))  # (may end by a local remove)
        if objs is None or (len(objs) < 2 and key not in self._clashes):
            return  # one kind, no clash recorded: the common case, nothing to look at
        live = self.kinds_of(key)
        if len(live) > 1:
            if self._clashes.get(key) != live:
                # Two peers wrote this key offline as two kinds: both objects are kept, and
                # the clash is reported (the adapter logs it; status lists it).
                self._clashes[key] = live
                self._outbox.emit(KindClashFound(key, live))
        else:
            self._clashes.pop(key, None)

    def clashes(self) -> dict[str, tuple[str, ...]]:
        """Keys holding objects of several kinds: key -> kinds, by key."""
        return {k: self._clashes[k] for k in sorted(self._clashes)}

    def keys(self) -> list[str]:
        """The keys in the cache holding an object, and those passed through in this drain,
        sorted."""
        return sorted([*(k for k, objs in self._objects.items() if objs), *self._passed])

    def __len__(self) -> int:
        """How many objects are in the cache (a clashed key counts once per kind)."""
        return sum(len(objs) for objs in self._objects.values())

    def adopt(self, key: str, obj: CRDT) -> None:
        """Hold ``obj`` as the object ``(key, obj.kind)`` (absent until now)."""
        objs = self._objects.get(key)
        if objs is None:
            self._objects[key] = {obj.kind: obj}
            self._grow(key, OBJECT_OVERHEAD)
            return
        objs[obj.kind] = obj
        self.refresh_clash(key)

    def siblings(self) -> dict[str, int]:
        """Multi-value registers holding more than one value: key -> how many."""
        siblings: dict[str, int] = {}
        for key in sorted([*self._objects, *self._passed]):
            obj = self.peek(key, "mvregister")
            if isinstance(obj, crdt.MVRegister):
                count = obj.sibling_count
                if count > 1:
                    siblings[key] = count
        return siblings

    def merge_state(
        self,
        key: str,
        state: CRDT,
        *,
        transferred: bool = False,
        text: str | None = None,
        partition: int | None = None,
    ) -> bool:
        """Join a whole state into ``(key, state.kind)`` (no log entry): checkpointed; True
        if it changed. ``transferred``: a state transfer's, decoded for this call and held by
        nobody else (a key absent here adopts it as it is, no copy); a key that was not in
        the cache before this drain leaves it at the end of the drain
        (:meth:`take_transient`). ``text``: the JSON ``state`` was decoded from; a state
        adopted as it is is checkpointed as that text, unless the key changes again before
        the drain ends (a new peer's bootstrap then encodes nothing it received), or the text
        is one that serving it could ever cut into pieces (see :data:`WHOLE_TEXT_SHARE`).
        With ``partition`` (the key's) too, a key held nowhere here passes through
        (:meth:`_passes`)."""
        if (
            transferred
            and text is not None
            and partition is not None
            and self._passes(key, state, text, partition)
        ):
            return not state.is_bottom()
        if transferred and (key in self._admitted or key not in self._objects):
            self._transient.add(key)
        kind, objs = state.kind, self._cached(key, transferred)  # (a chunk's keys: required)
        obj = objs.get(kind) if objs is not None else None
        adopted = obj is None and transferred
        if obj is None:
            if state.is_bottom():
                return False
            self.adopt(key, state if transferred else state.copy())
            obj = self.peek(key, kind)
        else:
            before = obj.copy()
            obj.merge(state)
            if obj == before:
                return False
        self.checkpoint(key, kind)
        self.refresh_clash(key)
        self._map_clashes.joined(key, obj, state)
        self._outbox.changed(key, self._objects.get(key))
        whole = self._config.max_message_bytes // WHOLE_TEXT_SHARE
        if adopted and text is not None and len(text) <= whole:
            self._outbox.durable.texts[key] = (kind, text)  # (after changed(): it drops it)
        return True

    def _passes(self, key: str, state: CRDT, text: str, partition: int) -> bool:
        """Pass a transferred state of a key held nowhere here (not in the cache nor passed
        in this drain, and the store cannot hold it) straight to the drain's ``Persist``, as
        the text it came as, without taking it into the cache (True; a bottom state is not
        stored). False, nothing done, for any other key, or a text too big to store as it
        came (:data:`WHOLE_TEXT_SHARE`). A bootstrap's states all pass: no cache entry, no
        checkpoint and no eviction per key."""
        if (
            key in self._objects
            or key in self._passed
            or self._evicted.may_hold(key, partition)
            or len(text) > self._config.max_message_bytes // WHOLE_TEXT_SHARE
        ):
            return False
        if state.is_bottom():
            return True
        kind = state.kind
        objs = {kind: state}
        self._passed[key] = (partition, objs, text)
        self._outbox.durable.passed[key] = ObjectState(key, kind, text, state.is_live())
        if type(state) is crdt.ORMap and state.has_clash():  # (has_clash: the cheap look)
            self._map_clashes.joined(key, state, state)
        self._outbox.changed(key, objs)
        return True

    def _take_passed(self, key: str) -> dict[str, CRDT]:
        """Take ``key``, passed through in this drain, into the cache, as a transferred state
        that was adopted (checkpointed as its text, unless it changes; transient); an input
        of the same drain is about to read or change it."""
        _p, objs, text = self._passed.pop(key)
        changes = self._outbox.open_changes()
        changes.passed.pop(key, None)
        kind = next(iter(objs))
        self._objects[key] = objs
        self._grow(key, OBJECT_OVERHEAD)
        self._transient.add(key)
        changes.objects[(key, kind)] = None
        changes.texts[key] = (kind, text)
        return objs

    def pass_on(self) -> None:
        """The drain ends: the keys passed through are in its ``Persist``, the store holds
        them, and they are on demand from now on (:mod:`sync.replica.evicted`)."""
        add = self._evicted.add
        for key, (partition, _objs, _text) in self._passed.items():
            add(key, partition)
        self._passed.clear()

    def merge_piece(self, key: str, partition: int, piece: CRDT, size: int) -> None:
        """Join ``piece`` (of ``size`` bytes), one of the deltas a state too big for one
        message was split into, into ``(key, piece.kind)``: no copy of the object to compare
        (it may be huge), so it counts as changed; checkpointed once the partition's last
        chunk came (:meth:`pieces_done`) or when it leaves the cache."""
        kind = piece.kind
        obj = self.get(key, kind)
        oid = (key, kind)
        if obj is None:
            self.adopt(key, piece)
            obj = piece
        else:
            obj.merge(piece)
        self._map_clashes.joined(key, obj, piece)
        since = self._since_checkpoint
        since[oid] = since.get(oid, 0) + 1
        self._grow(key, size)
        self._pieces.setdefault(partition, set()).add(oid)
        self.refresh_clash(key)
        self._outbox.changed(key, self._objects.get(key))

    def pieces_done(self, partition: int) -> None:
        """The last chunk of a state transfer of ``partition`` came: checkpoint the objects
        pieces changed (those still in the cache; the others were checkpointed when they
        left it)."""
        for key, kind in sorted(self._pieces.pop(partition, ())):
            if self.peek(key, kind) is not None:
                self.checkpoint(key, kind)

    # -- the log and the summaries ----------------------------------------------------------
    def summary(self, partition: int) -> CausalContext:
        """The live summary of ``partition`` (created empty if absent)."""
        ctx = self._summaries.get(partition)
        if ctx is None:
            ctx = self._summaries[partition] = CausalContext()
        return ctx

    def held_partitions(self) -> list[int]:
        """The partitions whose summary holds a log dot here, in order."""
        return sorted(p for p, ctx in self._summaries.items() if not ctx.is_bottom())

    def summary_if_any(self, partition: int) -> CausalContext | None:
        """The live summary of ``partition``, None if this replica never had one."""
        return self._summaries.get(partition)

    def next_seq(self, partition: int) -> int:
        # _last_seq[p] is kept >= the highest dot of ours the summary holds (load, append,
        # state transfer and IdentityConflict all raise it): no scan of the summary here.
        return self._last_seq.get(partition, 0) + 1

    def last_seq(self, partition: int) -> int:
        return self._last_seq.get(partition, 0)

    def raise_seq(self, partition: int, seq: int) -> None:
        """Number our next log dots of ``partition`` above ``seq`` (an identity conflict)."""
        self._last_seq[partition] = seq

    def merge_summary(self, partition: int, ctx: CausalContext) -> None:
        """Join ``ctx`` (a state transfer's) into our summary of ``partition``."""
        mine = self.summary(partition)
        before = mine.copy()
        mine.merge(ctx)
        if mine != before:
            self._outbox.durable.summaries[partition] = None
            seen = mine.max_counter(self._me)
            if seen > self._last_seq.get(partition, 0):
                self._last_seq[partition] = seen

    def append(self, e: LogEntry) -> None:
        """Record an applied entry: log, summary, Persist, checkpoint bookkeeping.

        The hot path of every write and every received entry: the dict lookups of
        :meth:`summary` and ``CausalContext.add`` are inlined for the common cases."""
        self.log.put(e)
        origin, seq, p, key, size = e.origin, e.seq, e.partition, e.key, len(e.delta_json)
        summ = self._summaries.get(p)
        if summ is None:
            summ = self._summaries[p] = CausalContext()
        vv = summ.vv
        if not summ.cloud and seq == vv.get(origin, 0) + 1:
            vv[origin] = seq  # the common case of CausalContext.add: the next dot, in order
        else:
            summ.add(Dot(origin, seq))
        changes = self._outbox.durable
        changes.log.append(e)
        changes.summaries[p] = None
        since, oid = self._since_checkpoint, (key, e.kind)
        since[oid] = since.get(oid, 0) + 1
        sizes = self._sizes
        sizes[key] = sizes.get(key, 0) + size
        self._bytes += size
        self._entries_since_round += 1
        if origin == self._me:
            last = self._last_seq
            if seq > last.get(p, 0):
                last[p] = seq

    def apply_entries(self, batch: CheckedBatch) -> list[LogEntry]:
        """Log the checked entries this replica lacks and merge each key's delta group;
        Changed once per key, in order. Returns the entries that were new here."""
        changed: dict[ObjectId, None] = {}
        applied: list[LogEntry] = []
        summary = self.summary
        for e in batch.home:
            summ = summary(e.partition)
            if e.seq <= summ.vv.get(e.origin, 0) or (e.origin, e.seq) in summ.cloud:
                continue  # had it (CausalContext.contains, inline), or twice in the batch
            self.append(e)
            applied.append(e)
            changed[(e.key, e.kind)] = None
        groups, get = batch.groups, self.get
        for oid in changed:
            _p, group = groups[oid]
            key = oid[0]
            obj = get(key, oid[1])
            if obj is None:
                self.adopt(key, group)  # the group is nobody else's: adopt it
                obj = group
            else:
                obj.merge(group)
            self.refresh_clash(key)
            self._map_clashes.joined(key, obj, group)
            self._outbox.changed(key, self._objects.get(key))
        return applied

    def compact(self, partition: int, marks: Mapping[str, int]) -> None:
        """Drop the log entries of ``partition`` at or below ``marks[origin]``, in a Persist
        that checkpoints their keys."""
        watermark, touched = self.log.drop_upto(partition, marks)
        if watermark:
            for key, kind in touched:
                self.checkpoint(key, kind)
            self._outbox.durable.compact.append((partition, watermark))

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint(self, key: str, kind: str) -> None:
        """Checkpoint the object ``(key, kind)`` in this drain's Persist."""
        self._outbox.durable.objects[(key, kind)] = None

    def checkpoint_round(self, changes: Changes) -> None:
        """At the end of an input: a checkpoint round if enough entries went by."""
        if changes.log and self._entries_since_round >= self._config.checkpoint_every:
            # Every key whose entries since its last checkpoint reach CHECKPOINT_GROWTH times
            # the entries it had then (so a key's checkpoints grow geometrically apart and
            # re-encoding a growing object costs O(its size) in all, not O(size^2 / every)).
            # The log is only compacted together with a checkpoint of the keys it drops, and
            # loading replays the whole log, so a deferred checkpoint loses nothing; it only
            # leaves more of the log to replay.
            self._entries_since_round = 0
            base = self._at_checkpoint
            for oid, since in self._since_checkpoint.items():
                if since >= CHECKPOINT_GROWTH * base.get(oid, 0):
                    changes.objects[oid] = None

    def checkpoints(
        self, oids: Iterable[ObjectId], texts: Mapping[str, tuple[str, str]] | None = None
    ) -> tuple[ObjectState, ...]:
        """The checkpoints of the objects ``oids`` for a Persist (each is counted as
        checkpointed); ``texts``: key -> (kind, text) of states held as they were received
        (:attr:`Changes.texts`), checkpointed as that text."""
        since, base, objects = self._since_checkpoint, self._at_checkpoint, self._objects
        out: list[ObjectState] = []
        for oid in oids:
            objs = objects.get(oid[0])
            obj = objs.get(oid[1]) if objs is not None else None
            if obj is None or objs is None:
                continue  # not in the cache: its store row is complete already
            base[oid] = base.get(oid, 0) + since.pop(oid, 0)
            self._unfolded.discard(oid)
            given = texts.get(oid[0]) if texts else None
            text = given[1] if given is not None and given[0] == oid[1] else obj.to_json()
            out.append(ObjectState(oid[0], oid[1], text, obj.is_live()))
            if len(objs) == 1:  # re-measure the key from its encoding
                size = len(text) + OBJECT_OVERHEAD
                self._bytes += size - self._sizes.get(oid[0], 0)
                self._sizes[oid[0]] = size
        return tuple(out)

    def encoded_summaries(
        self, partitions: Iterable[int]
    ) -> tuple[tuple[int, dict[str, Any]], ...]:
        """``(partition, summary.to_dict())`` of ``partitions``, for a Persist."""
        return tuple((p, self.summary(p).to_dict()) for p in partitions)
