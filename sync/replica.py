"""The sans-I/O replication engine: one :class:`Replica` per peer.

Theory of operation (Dynamo-style leaderless replication over delta-state CRDTs; DeCandia et
al., SOSP 2007; Almeida, Shoker, Baquero 2018). The replica holds in memory every object,
the *delta log*, per-partition *summaries*, hints and what it knows of its peers. Inputs are
method calls carrying ``now`` (the caller's clock); outputs are effects
(:mod:`sync.effects`) drained with :meth:`Replica.effects` and executed **in order**, plus
:meth:`Replica.next_deadline` (when to call :meth:`Replica.tick`). It never reads a clock,
sleeps, opens a socket or touches a database; its only randomness is a
``random.Random`` seeded from ``config.seed``, the replica id and the construction time.

* **Keys, partitions, homes.** ``partition_of(key)`` names a key's partition; the ring over
  this replica plus every known, not-forgotten peer gives each partition ``n`` *home*
  replicas (:mod:`sync.ring`).
* **Log dots.** Each local mutation gets the log dot ``(self, partition, seq)``, ``seq`` one
  above the highest of ours in that partition. The log holds every delta applied here, from
  any origin, until compaction; a partition's *summary* is the :class:`crdt.CausalContext`
  of the log dots applied here (gaps allowed).
* **Effects of one drain** (every input since the previous :meth:`effects`) hold at most one
  :class:`~sync.effects.Persist`, with every durable change of those inputs, placed before
  the effects of the first input that changed something durable; sends, acks and
  completions follow it, so "persist before acknowledge" holds (draining after each input
  gives one Persist per input, first among its effects). Pushes queued for a peer until the
  next drain are coalesced into one ``Push`` (at most ``ae_batch`` entries and about half of
  ``max_message_bytes`` each); an ``Ack`` of a push id acknowledges every operation it
  carried. A key changed by several inputs of
  one drain gets one ``Changed`` (at its first change).
* **Writes** (:meth:`local_update`) persist locally first and never fail for lack of network.
  The local ack counts if this replica is a home of the key, or always in sloppy mode.
  Homes that are up get a ``Push``; for each home that is down, sloppy mode picks a fallback
  (an up relay first, else the next up non-home peer clockwise) and sends it the entry with
  ``hint_for=<home>``; its ack counts and is reported as hinted. A coordinator that is not a
  home keeps the entry as a hint for every home too (delivered by hinted handoff), because
  anti-entropy only runs between homes. ``strict=True``: only home acks count, no
  fallbacks. ``LOCAL_QUORUM``: only acks from peers of ``config.site`` count. The write
  completes (``WriteDone``) at ``w`` acks, or fails (``WriteFailed``) at its deadline, or as
  soon as no ack that could still count is outstanding (fail fast, like Cassandra's
  "unavailable").
* **Hints.** A fallback persists the hint and acks. Hints are handed off as ``Push`` batches
  of ``ae_batch`` when the target is up (on ``peer_up``, then on each ack, retried every
  ``write_timeout``) and dropped on its ack; hints older than ``hint_window`` or beyond
  ``hint_max_per_target`` (oldest first) are dropped and left to anti-entropy. A non-home
  coordinator's hints of its *own* entries are exempt from both limits: anti-entropy would
  not carry them (it runs between homes), so they go only when a home acks them.
* **Reads** (:meth:`local_read`) ask this replica (same counting rule as writes) and the up
  homes (sloppy: fallbacks for the down ones), join the replies, complete at ``r`` replies
  with ``ReadDone``, and repair every replier whose state differs from the join (late
  repliers too, until all replied or the deadline). The join is merged and checkpointed
  locally. Fewer than ``r`` replies at the deadline (or when nobody else can reply):
  ``ReadFailed`` with what came.
* **Anti-entropy.** With ``anti_entropy_interval`` set, on ``peer_up`` and every interval
  each up peer gets a ``Summary`` of the partitions both are homes of (and, when membership
  changed, the known peers). A summary is answered with the log entries the other lacks, in
  ``Deltas`` of at most ``ae_batch`` entries (and half of ``max_message_bytes``),
  ``ae_max_inflight`` unacked per peer; when the
  other lacks a dot this replica no longer has in its log (compacted, or received by state
  transfer) it gets a state transfer instead: ``SnapshotChunk`` of at most
  ``snapshot_chunk`` objects, the last one (sent only once all others are acked) carrying
  our summary. A summary with ``reply=True`` is answered with our own summary only when its
  sender has something we lack (no ping-pong); converged peers exchange summaries only.
* **Compaction** (causal stability, never a timer): for partition ``p`` and origin ``o`` the
  watermark is the minimum of ``vv[o]`` over our own summary and the last reported summary
  of every other home of ``p``; nothing is compacted while a home has never reported. Log
  entries at or below it are dropped in a ``Persist`` that also checkpoints their keys.
* **Checkpoints.** Every ``checkpoint_every`` log entries a ``Persist`` carries whole-object
  checkpoints of the keys changed since their own last checkpoint by at least three times
  as many entries as they had then (a growing key is re-encoded at geometrically growing
  intervals: O(size) in all). Keys changed without a log entry (repair, state transfer) and
  keys whose entries are compacted are checkpointed at once.
* **Identity.** A peer's summary holding a log dot of ours above our highest one means this
  database was restored or copied: :class:`~sync.effects.IdentityConflict` is emitted and our
  numbering jumps above the seen dot.

Bad remote input raises :class:`~sync.errors.RemoteProtocolError` from :meth:`receive`
before anything changes; bad local arguments raise ``TypeError``/``ValueError``/
:class:`~sync.errors.LocalProtocolError`, also before anything changes. ``now`` values are
clamped to be non-decreasing.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from pydantic_core import from_json

import crdt
from crdt import CRDT, CausalContext, Dot
from sync import messages as m
from sync.config import ReplicaConfig, check_bool, check_seconds
from sync.consistency import LOCAL_QUORUM, Level, check_level, required_acks
from sync.effects import (
    MAX_SEQ,
    Changed,
    Effect,
    HintId,
    HintRecord,
    IdentityConflict,
    Loaded,
    LogEntry,
    ObjectState,
    PeerRecord,
    Persist,
    ReadDone,
    ReadFailed,
    Send,
    WriteDone,
    WriteFailed,
    WriteResult,
)
from sync.errors import LocalProtocolError, RemoteProtocolError
from sync.ring import Ring, partition_of

__all__ = ["Replica", "ReplicaAPI"]

_EMPTY_CTX = CausalContext()
# How the compact JSON text of a delta of each kind begins (to_dict() puts "type" first).
_TYPE_PREFIX = {kind: f'{{"type":"{kind}"' for kind in crdt.KINDS}
_Logged = tuple[str, str, str]  # a log entry held in memory: key, kind, delta JSON


@dataclass(slots=True)
class _Checked:
    """A received batch, checked (nothing changed yet): the entries to apply as a home of
    their key, the entries only to hold as hints, and per key the join of the deltas of the
    entries to apply that this replica lacks (a *delta group*, merged into the state once;
    each decoded delta is joined into it at once, so a batch of hundreds of decoded deltas is
    never alive at the same time) with the key's partition."""

    home: list[LogEntry]
    hints: list[LogEntry]
    groups: dict[str, tuple[int, CRDT]]


# A key is checkpointed again once it has applied this many times the entries it had at its
# last checkpoint (and at least checkpoint_every entries went by): re-encoding everything a
# key ever held costs at most (1 + 1/3) times its final size.
_CHECKPOINT_GROWTH = 3
# Bytes a log entry adds to a message beyond its delta, key and origin (field names, numbers).
_ENTRY_OVERHEAD = 96
# Seconds between compaction passes when anti-entropy is off (else its interval).
_COMPACT_EVERY = 30.0
_PART_CACHE = 1 << 16  # keys whose partition is remembered (cleared when full)


# -- internal bookkeeping ------------------------------------------------------------------
class _Timers:
    """Named timers on a heap with lazy cancellation."""

    __slots__ = ("_heap", "_n", "_when")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._when: dict[Hashable, float] = {}
        self._n = 0

    def set(self, key: Hashable, when: float) -> None:
        self._when[key] = when
        heapq.heappush(self._heap, (when, self._n, key))
        self._n += 1

    def set_if_earlier(self, key: Hashable, when: float) -> None:
        current = self._when.get(key)
        if current is None or when < current:
            self.set(key, when)

    def cancel(self, key: Hashable) -> None:
        self._when.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._when

    def next(self) -> float | None:
        heap = self._heap
        while heap and self._when.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[Hashable]:
        due: list[Hashable] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, key = heapq.heappop(heap)
            if self._when.get(key) == when:
                del self._when[key]
                due.append(key)
        return due


@dataclass(slots=True)
class _Tx:
    """The durable changes of one input, emitted as one Persist placed first."""

    objects: dict[str, None] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)
    summaries: dict[int, None] = field(default_factory=dict)
    hints: dict[HintId, HintRecord | None] = field(default_factory=dict)  # None: dropped
    peers: dict[str, None] = field(default_factory=dict)
    compact: list[tuple[int, dict[str, int]]] = field(default_factory=list)


@dataclass(slots=True)
class _Write:
    op_id: int
    key: str
    required: int
    homes: frozenset[str]
    strict: bool
    site: str | None  # LOCAL_QUORUM: only acks from this site count
    timeout: float
    acked_by: list[str] = field(default_factory=list)
    hinted: list[str] = field(default_factory=list)
    waiting: set[str] = field(default_factory=set)
    fallbacks: set[str] = field(default_factory=set)

    def result(self) -> WriteResult:
        return WriteResult(
            key=self.key,
            acks=len(self.acked_by),
            required=self.required,
            acked_by=tuple(self.acked_by),
            hinted=tuple(self.hinted),
        )


@dataclass(slots=True)
class _Read:
    op_id: int
    key: str
    required: int
    site: str | None
    timeout: float
    asked: set[str] = field(default_factory=set)  # remote peers still expected to reply
    reqs: list[tuple[str, int]] = field(default_factory=list)  # (peer, req_id) sent
    known: dict[str, CRDT | None] = field(default_factory=dict)  # replier -> its state
    counted: list[str] = field(default_factory=list)
    joined: CRDT | None = None
    done: bool = False
    repaired: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Outbound:
    """A sent message awaiting its Ack."""

    peer: str
    ae: bool  # an anti-entropy Deltas/SnapshotChunk (else a Push)
    ops: list[int] = field(default_factory=list)
    hint_ids: list[HintId] = field(default_factory=list)
    hint_for: str | None = None
    sent_at: float = 0.0


@dataclass(slots=True)
class _PushBuf:
    push_id: int
    peer: str
    hint_for: str | None
    outbound: _Outbound  # its record in Replica._outbound
    entries: list[LogEntry] = field(default_factory=list)
    size: int = 0  # estimated encoded bytes of entries


@dataclass(slots=True)
class _AEItem:
    partition: int
    entries: list[LogEntry] | None = None  # a Deltas batch...
    more: bool = False
    objects: list[m.SnapObject] | None = None  # ...or a snapshot chunk
    summary: m.Ctx | None = None
    last: bool = False


@dataclass(slots=True)
class _AESession:
    queue: deque[_AEItem] = field(default_factory=deque)
    inflight: dict[int, float] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.inflight)


def _ctx_model(ctx: CausalContext) -> m.Ctx:
    return m.Ctx.model_construct(
        vv={r: ctx.vv[r] for r in sorted(ctx.vv)}, cloud=[(d[0], d[1]) for d in sorted(ctx.cloud)]
    )


class ReplicaAPI(Protocol):
    """The engine's input/output API as its adapters use it (the asyncio node, the
    simulator): :class:`Replica` implements it; a test may drive a stand-in through it."""

    def local_update(
        self,
        op_id: int,
        key: str,
        kind: str,
        fn: Callable[[Any], Any],
        now: float,
        *,
        w: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> object: ...

    def local_read(
        self,
        op_id: int,
        key: str,
        now: float,
        *,
        r: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> object: ...

    def receive(self, peer_id: str, message: Any, now: float) -> object: ...

    def peer_up(
        self,
        peer_id: str,
        now: float,
        *,
        address: str | None = None,
        site: str | None = None,
        relay: bool = False,
    ) -> object: ...

    def peer_down(self, peer_id: str, now: float) -> object: ...

    def forget(self, peer_id: str, now: float) -> object: ...

    def tick(self, now: float) -> object: ...

    def effects(self) -> list[Any]: ...

    def next_deadline(self) -> float | None: ...

    def value(self, key: str) -> CRDT | None: ...

    def kind_of(self, key: str) -> str | None: ...

    def current_value(self, key: str) -> Any: ...

    def status(self) -> dict[str, Any]: ...


class Replica:
    """One peer's replication engine (see the module docstring for the semantics).

    >>> from sync.config import ReplicaConfig
    >>> r = Replica(ReplicaConfig(n=1), "A")
    >>> r.local_update(1, "visits", "gcounter", lambda c: c.increment("A", 2), now=0.0)
    >>> [type(e).__name__ for e in r.effects()]
    ['Persist', 'Changed', 'WriteDone']
    >>> r.value("visits").value
    2
    """

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        loaded: Loaded | None = None,
        *,
        now: float = 0.0,
    ) -> None:
        if not isinstance(config, ReplicaConfig):
            raise TypeError(f"config must be a ReplicaConfig, got {type(config).__name__}")
        if not isinstance(replica_id, str) or not replica_id:
            raise ValueError(f"replica_id must be a non-empty str, got {replica_id!r}")
        self.config = config
        self.replica_id = replica_id
        self._now = float(now)
        self._rng = random.Random(f"{config.seed}/{replica_id}/{now!r}")
        # Message ids start at a random point so that late acks addressed to a previous
        # incarnation of this replica (before a crash) cannot match new messages.
        self._next_id = self._rng.getrandbits(52)

        self._objects: dict[str, CRDT] = {}
        self._keys_by_part: dict[int, set[str]] = {}
        self._parts: dict[str, int] = {}  # partition_of memo (bounded: see _part)
        # p -> origin -> seq -> (key, kind, delta JSON text): the log is the bulk of a
        # replica's memory, and a tuple of strings is untracked by the garbage collector (a
        # decoded delta is a dozen nested containers it would scan for ever).
        self._log: dict[int, dict[str, dict[int, _Logged]]] = {}
        self._log_size = 0
        self._summ: dict[int, CausalContext] = {}
        self._seq: dict[int, int] = {}
        # Checkpoints (see _finish): per key, log entries applied since its last checkpoint,
        # and the entries it had applied at that checkpoint (the doubling threshold).
        self._dirty: dict[str, int] = {}
        self._local_results: dict[str, WriteResult] = {}  # see _start_write
        self._required_memo: dict[tuple[Level, int], tuple[int, None]] = {}  # see _required
        self._ck_base: dict[str, int] = {}
        self._since_checkpoint = 0

        self._peers: dict[str, PeerRecord] = {}
        self._peer_summ: dict[str, dict[int, CausalContext]] = {}
        self._up: dict[str, float] = {}
        self._relays: set[str] = set()
        self._ring: Ring | None = None
        self._shared: dict[str, tuple[int, ...]] = {}
        self._members_version = 0
        self._gossiped: dict[str, int] = {}

        # Hints held for others (bounded, expire) and hints of our own entries held by a
        # non-home coordinator (the only copy until a home acks: never dropped but on ack).
        self._hints: dict[str, dict[HintId, HintRecord]] = {}
        self._own_hints: dict[str, dict[HintId, HintRecord]] = {}
        self._hint_sent: dict[HintId, float] = {}

        self._writes: dict[int, _Write] = {}
        self._reads: dict[int, _Read] = {}
        self._read_reqs: dict[tuple[str, int], int] = {}
        self._outbound: dict[tuple[str, int], _Outbound] = {}
        self._pushbufs: dict[tuple[str, str | None], _PushBuf] = {}
        self._ae: dict[str, _AESession] = {}
        self._timers = _Timers()

        self._fx: list[Effect] = []
        self._changed_keys: set[str] = set()  # keys with a Changed since the last drain
        self._tx: _Tx | None = None
        self._ptx: _Tx | None = None  # durable changes since the last drain
        self._mark = 0
        self._pmark = 0
        if loaded is not None:
            self._load(loaded)
        self._timers.set(("compact",), self._now + self._compact_interval())

    # -- loading ---------------------------------------------------------------------------
    def _load(self, loaded: Loaded) -> None:
        parts = self.config.partitions
        for key, obj_state in sorted(loaded.objects.items()):
            obj = crdt.from_dict(obj_state.state)
            self._objects[key] = obj
            self._keys_by_part.setdefault(partition_of(key, parts), set()).add(key)
        for p, ctx in loaded.summaries.items():
            self._summ[p] = ctx.copy()
        for e in loaded.log:
            delta = crdt.from_dict(e.delta)
            obj = self._objects.get(e.key)
            if obj is None:
                self._objects[e.key] = delta
                self._keys_by_part.setdefault(e.partition, set()).add(e.key)
            else:
                obj.merge(delta)
            self._log_put(e)
            self._summ.setdefault(e.partition, CausalContext()).add(Dot(e.origin, e.seq))
        for p, ctx in self._summ.items():
            mine = ctx.max_counter(self.replica_id)
            if mine:
                self._seq[p] = mine
        for rec in sorted(loaded.hints, key=lambda h: h.stored_at):
            self._hint_store(rec.id).setdefault(rec.target, {})[rec.id] = rec
        for pid, peer in sorted(loaded.peers.items()):
            if pid == self.replica_id:
                continue
            self._peers[pid] = peer
            if peer.summary:
                self._peer_summ[pid] = {
                    int(p): CausalContext.from_dict(d) for p, d in peer.summary.items()
                }
        if any(self._hints.values()):
            self._schedule_hint_expiry()

    # -- the public API --------------------------------------------------------------------
    def local_update(
        self,
        op_id: int,
        key: str,
        kind: str,
        fn: Callable[[CRDT], CRDT],
        now: float,
        *,
        w: int | str | None = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        """Apply ``fn`` to ``key``'s object (created as a bottom ``kind`` if absent).

        ``fn`` receives the live object, calls one mutator on it and returns that mutator's
        delta. A key holding another kind raises ``TypeError``; an error raised by ``fn``
        propagates; bad ``w``/``timeout`` raise ``TypeError``/``ValueError``. In those cases
        nothing is queued and the replica is unchanged (CRDT mutators check their arguments
        before changing anything, so ``fn`` must not change the object and then raise).

        Next, the caller must drain :meth:`effects` and execute them in order: ``Persist``
        (the write is durable once it is), ``Changed``, then ``WriteDone``/``WriteFailed``
        for ``op_id`` (now or later, at the latest by ``now + timeout``) and the sends.
        """
        _check_now(now)
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        if not key:
            raise ValueError("key must not be empty")
        if kind not in crdt.KINDS:
            raise ValueError(f"unknown CRDT kind {kind!r}; known: {', '.join(crdt.KINDS)}")
        if op_id in self._writes:
            raise LocalProtocolError(f"write op_id {op_id} is still pending")
        cfg = self.config
        level = cfg.w if w is None else check_level(w, cfg.n, name="w")
        strict_ = cfg.strict if strict is None else check_bool("strict", strict)
        timeout_ = cfg.write_timeout if timeout is None else check_seconds("timeout", timeout)
        obj = self._objects.get(key)
        if obj is not None and obj.kind != kind:
            raise TypeError(f"key {key!r} holds a {obj.kind}, not a {kind}")
        p = self._part(key)
        homes = self._ring_now().preference_list(p)
        required, site = self._required(level, homes)
        target = obj if obj is not None else crdt.new(kind)
        delta = fn(target)
        if getattr(delta, "kind", None) != kind or not hasattr(delta, "to_json"):
            # fn mutated nothing we can log; its result is not a delta of this kind.
            raise TypeError(f"fn must return the {kind} delta of its mutator, got {delta!r}")
        # Encoded once, here; from now on the delta travels as this text (see LogEntry).
        raw = delta.to_json()

        now = self._begin(now)
        try:
            if obj is None:
                self._objects[key] = target
                self._keys_by_part.setdefault(p, set()).add(key)
            # _seq[p] is kept >= the highest dot of ours the summary holds (load, _append,
            # state transfer and IdentityConflict all raise it): no scan of the summary here.
            seq = self._seq.get(p, 0) + 1
            entry = LogEntry(self.replica_id, p, seq, key, kind, raw)
            self._append(entry)
            self._changed(key)
            self._start_write(op_id, entry, homes, required, site, strict_, timeout_, now)
        finally:
            self._finish()

    def local_read(
        self,
        op_id: int,
        key: str,
        now: float,
        *,
        r: int | str | None = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        """Read ``key`` from ``r`` replicas (this one answers at once when it counts).

        Next, the caller must drain :meth:`effects` and execute them: ``ReadReq`` sends now,
        and, now or later (at the latest by ``now + timeout``), exactly one ``ReadDone`` or
        ``ReadFailed`` for ``op_id``; read repairs and a ``Persist`` of the joined state may
        follow until every asked replica replied or the deadline passed.
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        if not key:
            raise ValueError("key must not be empty")
        if op_id in self._reads:
            raise LocalProtocolError(f"read op_id {op_id} is still pending")
        cfg = self.config
        level = cfg.r if r is None else check_level(r, cfg.n, name="r")
        strict_ = cfg.strict if strict is None else check_bool("strict", strict)
        timeout_ = cfg.read_timeout if timeout is None else check_seconds("timeout", timeout)
        p = partition_of(key, cfg.partitions)
        homes = self._ring_now().preference_list(p)
        required, site = self._required(level, homes)

        now = self._begin(now)
        try:
            rd = _Read(op_id, key, required, site, timeout_)
            self._reads[op_id] = rd
            if (self.replica_id in homes or not strict_) and self._site_ok(site, self.replica_id):
                local = self._objects.get(key)
                rd.known[self.replica_id] = local.copy() if local is not None else None
                rd.counted.append(self.replica_id)
                rd.joined = local.copy() if local is not None else None
            chosen = set(homes) | {self.replica_id}
            for home in homes:
                if home == self.replica_id:
                    continue
                ask = home if home in self._up else None
                if ask is None and not strict_:
                    ask = self._pick_fallback(p, chosen)
                    if ask is not None:
                        chosen.add(ask)
                if ask is not None:
                    req_id = self._new_id()
                    self._read_reqs[(ask, req_id)] = op_id
                    rd.reqs.append((ask, req_id))
                    rd.asked.add(ask)
                    self._emit(Send(ask, m.ReadReq(req_id=req_id, key=key)))
            self._timers.set(("read", op_id), now + timeout_)
            self._read_progress(rd)
        finally:
            self._finish()

    def receive(self, peer_id: str, message: m.Message, now: float) -> None:
        """Handle ``message`` from ``peer_id`` (an authenticated, connected peer).

        ``RemoteProtocolError`` if the content is semantically bad (a CRDT body that does not
        decode, a key in the wrong partition, a kind clash...): the replica is unchanged and
        the caller should close the connection. ``LocalProtocolError`` for a handshake or
        heartbeat message (the transport's business). Next, drain :meth:`effects`.
        """
        if peer_id == self.replica_id:
            raise LocalProtocolError("a replica cannot receive from itself")
        handler = self._handlers.get(type(message))
        if handler is None:
            raise LocalProtocolError(
                f"{type(message).__name__} is a transport message; the engine does not handle it"
            )
        prepared = handler[0](self, peer_id, message)  # validation only: may raise
        now = self._begin(now)
        try:
            handler[1](self, peer_id, message, prepared, now)
        finally:
            self._finish()

    def peer_up(
        self,
        peer_id: str,
        now: float,
        *,
        address: str | None = None,
        site: str | None = None,
        relay: bool = False,
    ) -> None:
        """``peer_id`` is reachable (the transport completed a handshake with it).

        Learns the peer (``Persist`` of the peer record when new or changed), starts
        anti-entropy with it (a ``Summary`` now and every interval) and hands off the hints
        held for it. Next, drain :meth:`effects`.
        """
        if not isinstance(peer_id, str) or not peer_id:
            raise ValueError(f"peer_id must be a non-empty str, got {peer_id!r}")
        if peer_id == self.replica_id:
            raise LocalProtocolError("a replica cannot be its own peer")
        now = self._begin(now)
        try:
            self._learn(peer_id, address, site)
            rec = self._peers[peer_id]
            self._peers[peer_id] = replace(rec, last_seen=now)
            self._t.peers[peer_id] = None
            self._up[peer_id] = now
            self._gossiped.pop(peer_id, None)  # (re)connected: send it the members again
            # Forgetting is for good and for everyone: a peer that was away when it
            # happened (or came up after it) learns it now. Already-forgotten is a no-op.
            for gone in sorted(p for p, rec in self._peers.items() if rec.forgotten):
                if gone != peer_id:
                    self._emit(Send(peer_id, m.Forget(replica_id=gone)))
            if relay:
                self._relays.add(peer_id)
            else:
                self._relays.discard(peer_id)
            if self.config.anti_entropy_on:
                self._send_summary(peer_id, reply=True)
                self._timers.set(("ae", peer_id), now + self._ae_interval())
            self._handoff(peer_id, now)
        finally:
            self._finish()

    def peer_down(self, peer_id: str, now: float) -> None:
        """``peer_id`` is unreachable (the connection closed or timed out).

        Pending writes and reads stop waiting for it (they may fail now); its anti-entropy
        session stops; hints for it stay. Next, drain :meth:`effects`.
        """
        now = self._begin(now)
        try:
            self._down(peer_id)
        finally:
            self._finish()

    def forget(self, peer_id: str, now: float) -> None:
        """Forget ``peer_id`` for good (an operator's decision).

        It leaves the ring, its hints are dropped, compaction stops waiting for it, and the
        up peers are told (``Forget``). Next, drain :meth:`effects`.
        """
        if not isinstance(peer_id, str) or not peer_id:
            raise ValueError(f"peer_id must be a non-empty str, got {peer_id!r}")
        if peer_id == self.replica_id:
            raise LocalProtocolError("a replica cannot forget itself")
        now = self._begin(now)
        try:
            self._forget(peer_id, None)
        finally:
            self._finish()

    def tick(self, now: float) -> None:
        """Time passed: fire what is due (deadlines, anti-entropy, hint hand-off and expiry).

        Call it at :meth:`next_deadline` (calling it earlier or more often is harmless).
        Next, drain :meth:`effects`.
        """
        now = self._begin(now)
        try:
            for _ in range(4):  # timers set for "now" by a handler fire in the same tick
                due = self._timers.pop_due(now)
                if not due:
                    break
                for key in due:
                    self._fire(key, now)
        finally:
            self._finish()

    def effects(self) -> list[Effect]:
        """Drain the queued effects, in the order the caller must execute them."""
        self._flush_tx()
        self._flush_pushes()
        self._changed_keys.clear()
        out = self._fx
        self._fx = []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must be called next (None: no timer pending)."""
        return self._timers.next()

    def value(self, key: str) -> CRDT | None:
        """A copy of the local state of ``key`` (None if this replica does not hold it)."""
        obj = self._objects.get(key)
        return obj.copy() if obj is not None else None

    def kind_of(self, key: str) -> str | None:
        """The CRDT kind ``key`` holds here (None if this replica does not hold it); O(1)."""
        obj = self._objects.get(key)
        return obj.kind if obj is not None else None

    def current_value(self, key: str) -> Any:
        """``value(key).value`` without copying the state (None if not held here).

        A CRDT's ``value`` is a fresh structure (frozenset, dict, tuple...), so the caller
        may keep it; this skips the copy of the whole state that :meth:`value` makes.
        """
        obj = self._objects.get(key)
        return obj.value if obj is not None else None

    def keys(self) -> list[str]:
        """Every key held here, sorted."""
        return sorted(self._objects)

    def homes(self, key: str) -> tuple[str, ...]:
        """The home replicas of ``key`` in this replica's current view of the ring."""
        return self._ring_now().homes_of(key)

    def summary(self, partition: int) -> CausalContext:
        """A copy of this replica's summary (log dots applied) of ``partition``."""
        return self._summ_of(partition).copy()

    @property
    def peers_up(self) -> list[str]:
        """The peers currently up, sorted."""
        return sorted(self._up)

    def status(self) -> dict[str, Any]:
        """Health: log size, hints per target, peers up, lag per peer (log entries its last
        summary lacks), siblings per key (multi-value registers with more than one value)."""
        lag: dict[str, int] = {}
        for pid in sorted(self._peers):
            if self._peers[pid].forgotten:
                continue
            theirs = self._peer_summ.get(pid)
            if theirs is None:
                continue
            lag[pid] = sum(
                sum(1 for _ in self._summ_of(p).dots_not_in(theirs.get(p, _EMPTY_CTX)))
                for p in self._shared_parts(pid)
            )
        siblings: dict[str, int] = {}
        for key in sorted(self._objects):
            obj = self._objects[key]
            if obj.kind == "mvregister":
                count = len(obj.value)
                if count > 1:
                    siblings[key] = count
        return {
            "replica_id": self.replica_id,
            "objects": len(self._objects),
            "log_size": self._log_size,
            "hints": {
                t: len(self._hints.get(t, ())) + len(self._own_hints.get(t, ()))
                for t in sorted(set(self._hints) | set(self._own_hints))
            },
            "peers_up": sorted(self._up),
            "peers_known": sorted(p for p, r in self._peers.items() if not r.forgotten),
            "lag": lag,
            "siblings": siblings,
            "pending_writes": len(self._writes),
            "pending_reads": len(self._reads),
        }

    # -- effect plumbing -------------------------------------------------------------------
    def _begin(self, now: float) -> float:
        _check_now(now)
        if now > self._now:
            self._now = float(now)
        # Durable changes accumulate in one transaction until the next drain (effects()):
        # one Persist per drain, not per input, so a round of many inputs builds and encodes
        # its summaries and checkpoints once.
        self._tx = self._ptx if self._ptx is not None else _Tx()
        self._mark = len(self._fx)
        return self._now

    def _finish(self) -> None:
        tx = self._tx
        self._tx = None
        if tx is None or tx is self._ptx:
            if tx is not None:
                self._checkpoint_round(tx)
            return
        if not (tx.log or tx.objects or tx.summaries or tx.hints or tx.peers or tx.compact):
            return  # most acks, reads and summaries change nothing durable
        self._checkpoint_round(tx)
        # The Persist goes where the first input that changed something durable began: before
        # every effect of that input and of the later ones (persist before acknowledge).
        self._ptx = tx
        self._pmark = self._mark

    def _checkpoint_round(self, tx: _Tx) -> None:
        if tx.log and self._since_checkpoint >= self.config.checkpoint_every:
            # A checkpoint round: every dirty key whose entries since its last checkpoint
            # reach _CHECKPOINT_GROWTH times the entries it had then (so a key's checkpoints
            # grow geometrically apart and re-encoding a growing object costs O(its size) in
            # all, not O(size^2 / every)). The log is only compacted together with a
            # checkpoint of the keys it drops, and loading replays the whole log, so a
            # deferred checkpoint loses nothing; it only leaves more of the log to replay.
            self._since_checkpoint = 0
            base = self._ck_base
            for key, since in self._dirty.items():
                if since >= _CHECKPOINT_GROWTH * base.get(key, 0):
                    tx.objects[key] = None

    def _flush_tx(self) -> None:
        """Emit the Persist of every durable change since the last drain (if any)."""
        tx = self._ptx
        if tx is None:
            return
        self._ptx = None
        if tx.objects:
            dirty, base = self._dirty, self._ck_base
            for key in tx.objects:
                base[key] = base.get(key, 0) + dirty.pop(key, 0)
        # The last change of each hint wins (an add then a drop is a drop, and vice versa),
        # so no hint is both added and dropped by one Persist.
        hints_add = tuple(rec for rec in tx.hints.values() if rec is not None)
        hints_drop = tuple(hid for hid, rec in tx.hints.items() if rec is None)
        objects = self._objects
        persist = Persist(
            objects=tuple(
                ObjectState(k, objects[k].kind, objects[k].to_json())
                for k in tx.objects
                if k in objects
            )
            if tx.objects
            else (),
            log=tuple(tx.log),
            summaries=tuple((p, self._summ_of(p).to_dict()) for p in tx.summaries),
            hints_add=hints_add,
            hints_drop=hints_drop,
            peers=tuple(self._peers[p] for p in tx.peers if p in self._peers) if tx.peers else (),
            compact=tuple(tx.compact),
        )
        if not persist.is_empty():
            self._fx.insert(self._pmark, persist)

    @property
    def _t(self) -> _Tx:
        assert self._tx is not None, "durable changes happen inside an input"
        return self._tx

    def _emit(self, effect: Effect) -> None:
        self._fx.append(effect)

    def _changed(self, key: str) -> None:
        """``Changed(key)``, once per key per drain (a subscriber reads the latest value)."""
        if key not in self._changed_keys:
            self._changed_keys.add(key)
            self._emit(Changed(key))

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- ring and membership ---------------------------------------------------------------
    def _ring_now(self) -> Ring:
        if self._ring is None:
            members = [p for p, rec in self._peers.items() if not rec.forgotten]
            members.append(self.replica_id)
            cfg = self.config
            self._ring = Ring(members, n=cfg.n, partitions=cfg.partitions, vnodes=cfg.vnodes)
            self._shared.clear()
        return self._ring

    def _membership_changed(self) -> None:
        self._ring = None
        self._members_version += 1

    def _shared_parts(self, peer: str) -> tuple[int, ...]:
        ring = self._ring_now()
        shared = self._shared.get(peer)
        if shared is None:
            me = self.replica_id
            shared = tuple(
                p
                for p in range(self.config.partitions)
                if me in (pl := ring.preference_list(p)) and peer in pl
            )
            self._shared[peer] = shared
        return shared

    def _learn(self, peer: str, address: str | None, site: str | None) -> None:
        rec = self._peers.get(peer)
        if rec is None:
            self._peers[peer] = PeerRecord(peer, address, site, None, self._now)
            self._t.peers[peer] = None
            self._membership_changed()
            return
        changes: dict[str, Any] = {}
        if address is not None and address != rec.address:
            changes["address"] = address
        if site is not None and site != rec.site:
            changes["site"] = site
        if changes:
            self._peers[peer] = replace(rec, **changes)
            self._t.peers[peer] = None

    def _site_of(self, peer: str) -> str | None:
        if peer == self.replica_id:
            return self.config.site
        rec = self._peers.get(peer)
        return rec.site if rec is not None else None

    def _site_ok(self, site: str | None, peer: str) -> bool:
        return site is None or self._site_of(peer) == site

    def _required(self, level: Level, homes: tuple[str, ...]) -> tuple[int, str | None]:
        # A named level counts the homes that exist: in a group smaller than n (two devices,
        # n=3) ALL means both, as Riak and Cassandra users expect. An integer is taken at its
        # word (validated against n): asking for 3 acks from two peers fails honestly.
        if level != LOCAL_QUORUM:  # depends on the level and the number of homes only
            memo = (level, len(homes))
            found = self._required_memo.get(memo)
            if found is None:
                n = self.config.n if isinstance(level, int) else max(1, len(homes))
                found = self._required_memo[memo] = (required_acks(level, n), None)
            return found
        site = self.config.site
        if site is None:
            raise LocalProtocolError("LOCAL_QUORUM needs config.site")
        local = sum(1 for h in homes if self._site_of(h) == site)
        return required_acks(level, max(1, len(homes)), local_homes=local), site

    def _pick_fallback(self, partition: int, chosen: set[str]) -> str | None:
        ring = self._ring_now()
        homes = set(ring.preference_list(partition))
        for relay in sorted(self._relays):
            if relay in self._up and relay not in chosen and relay not in homes:
                return relay
        for peer in ring.walk(partition)[ring.n :]:
            if peer != self.replica_id and peer in self._up and peer not in chosen:
                return peer
        return None

    def _ae_interval(self) -> float:
        return float(self.config.anti_entropy_interval or 0.0)

    def _compact_interval(self) -> float:
        # Compaction also runs on a timer, not only when a peer's summary changes: a
        # partition whose only home is this replica (n=1), or whose homes went quiet, would
        # otherwise keep its log for ever.
        return self._ae_interval() or _COMPACT_EVERY

    def _part(self, key: str) -> int:
        """``partition_of(key)``, memoized (a blake2b per call otherwise; keys recur)."""
        p = self._parts.get(key)
        if p is None:
            if len(self._parts) >= _PART_CACHE:
                self._parts.clear()
            p = self._parts[key] = partition_of(key, self.config.partitions)
        return p

    # -- the log ---------------------------------------------------------------------------
    def _summ_of(self, p: int) -> CausalContext:
        ctx = self._summ.get(p)
        if ctx is None:
            ctx = self._summ[p] = CausalContext()
        return ctx

    def _log_put(self, e: LogEntry) -> None:
        log_p = self._log.get(e.partition)
        if log_p is None:
            log_p = self._log[e.partition] = {}
        by_origin = log_p.get(e.origin)
        if by_origin is None:
            by_origin = log_p[e.origin] = {}
        if e.seq not in by_origin:
            by_origin[e.seq] = (e.key, e.kind, e.delta_json)
            self._log_size += 1

    def _log_entry(self, p: int, origin: str, seq: int) -> LogEntry | None:
        found = self._log.get(p, {}).get(origin, {}).get(seq)
        if found is None:
            return None
        key, kind, raw = found
        return LogEntry(origin, p, seq, key, kind, raw)

    def _append(self, e: LogEntry) -> None:
        """Record an applied entry: log, summary, Persist, checkpoint bookkeeping."""
        self._log_put(e)
        origin, seq = e.origin, e.seq
        summ = self._summ_of(e.partition)
        vv = summ.vv
        if seq == vv.get(origin, 0) + 1 and not summ.cloud:
            vv[origin] = seq  # the common case of CausalContext.add: the next dot, in order
        else:
            summ.add(Dot(origin, seq))
        tx = self._t
        tx.log.append(e)
        tx.summaries[e.partition] = None
        dirty = self._dirty
        dirty[e.key] = dirty.get(e.key, 0) + 1
        self._since_checkpoint += 1
        if e.origin == self.replica_id and e.seq > self._seq.get(e.partition, 0):
            self._seq[e.partition] = e.seq

    def _checkpoint(self, key: str) -> None:
        self._t.objects[key] = None

    def _apply_entries(self, checked: _Checked) -> list[LogEntry]:
        """Log the checked entries this replica lacks and merge each key's delta group;
        Changed once per key, in order. Returns the entries that were new here."""
        changed: dict[str, None] = {}
        applied: list[LogEntry] = []
        summ_of = self._summ_of
        for e in checked.home:
            summ = summ_of(e.partition)
            if e.seq <= summ.vv.get(e.origin, 0) or (e.origin, e.seq) in summ.cloud:
                continue  # had it (CausalContext.contains, inline), or twice in the batch
            self._append(e)
            applied.append(e)
            changed[e.key] = None
        objects, groups = self._objects, checked.groups
        for key in changed:
            p, group = groups[key]
            obj = objects.get(key)
            if obj is None:
                objects[key] = group  # the group is nobody else's: adopt it
                self._keys_by_part.setdefault(p, set()).add(key)
            else:
                obj.merge(group)
            self._changed(key)
        return applied

    def _relay_forward(self, sender: str, applied: list[LogEntry]) -> None:
        """A relay passes new entries straight on to the other homes it is connected to.

        Devices behind NAT reach only the relay; without this they would see each other's
        writes only at the relay's next anti-entropy round. The pushes carry no write (their
        acks complete nothing) and are coalesced like any other; a lost one is repaired by
        anti-entropy. Entries are never sent back to their sender or their origin, and a peer
        that already has them applies nothing, so forwarding between relays terminates.
        """
        if not self.config.relay or not applied:
            return
        ring, up, me = self._ring_now(), self._up, self.replica_id
        targets: dict[int, tuple[str, ...]] = {}  # per partition: the homes to pass on to
        for e in applied:
            homes = targets.get(e.partition)
            if homes is None:
                homes = targets[e.partition] = tuple(
                    h
                    for h in ring.preference_list(e.partition)
                    if h in up and h not in (sender, me)
                )
            for home in homes:
                if home != e.origin:
                    self._queue_push(home, None, e, None, None)

    def _merge_state(self, key: str, state: CRDT) -> bool:
        """Join a whole state into ``key`` (no log entry): checkpointed; True if it changed."""
        obj = self._objects.get(key)
        if obj is None:
            if state.is_bottom():
                return False
            self._objects[key] = state.copy()
            self._keys_by_part.setdefault(partition_of(key, self.config.partitions), set()).add(key)
        else:
            before = obj.copy()
            obj.merge(state)
            if obj == before:
                return False
        self._checkpoint(key)
        self._changed(key)
        return True

    # -- writes ----------------------------------------------------------------------------
    def _start_write(
        self,
        op_id: int,
        entry: LogEntry,
        homes: tuple[str, ...],
        required: int,
        site: str | None,
        strict: bool,
        timeout: float,
        now: float,
    ) -> None:
        me = self.replica_id
        is_home = me in homes
        local_ack = (is_home or not strict) and self._site_ok(site, me)
        # The common case (w=1 counting our own ack) completes now: no pending-write record,
        # no deadline, and the pushes carry no operation (their acks complete nothing).
        done = local_ack and required <= 1
        op = None
        if not done:
            op = _Write(op_id, entry.key, required, frozenset(homes), strict, site, timeout)
            self._writes[op_id] = op
            if local_ack:
                op.acked_by.append(me)
        wop = None if op is None else op_id
        if not is_home:
            # Anti-entropy runs between homes only: keep the entry as a hint for every home.
            for home in homes:
                self._add_hint(HintRecord(home, entry, now))
        chosen: set[str] | None = None  # homes and fallbacks picked (made when one is down)
        for home in homes:
            if home == me:
                continue
            if home in self._up:
                hid = None if is_home else HintId(home, entry.origin, entry.partition, entry.seq)
                if hid is not None:
                    self._hint_sent[hid] = now
                self._queue_push(home, None, entry, wop, hid)
                if op is not None:
                    op.waiting.add(home)
            elif not strict:
                if chosen is None:
                    chosen = set(homes) | {me}
                fallback = self._pick_fallback(entry.partition, chosen)
                if fallback is not None:
                    chosen.add(fallback)
                    if op is not None:
                        op.fallbacks.add(fallback)
                        op.waiting.add(fallback)
                    self._queue_push(fallback, home, entry, wop, None)
        if op is None:
            # Every write of a key acknowledged here alone has the same (immutable) result:
            # one object per key, not one per write.
            result = self._local_results.get(entry.key)
            if result is None or result.required != required:
                if len(self._local_results) >= _PART_CACHE:
                    self._local_results.clear()
                result = WriteResult(key=entry.key, acks=1, required=required, acked_by=(me,))
                self._local_results[entry.key] = result
            self._emit(WriteDone(op_id, result))
            return
        self._timers.set(("write", op_id), now + timeout)
        self._write_progress(op)

    def _write_progress(self, op: _Write) -> None:
        if len(op.acked_by) >= op.required:
            self._end_write(op)
            self._emit(WriteDone(op.op_id, op.result()))
        elif not op.waiting:
            self._end_write(op)
            self._emit(
                WriteFailed(
                    op.op_id,
                    op.result(),
                    f"{len(op.acked_by)} of {op.required} required acks: no other replica "
                    "that counts is reachable (durable here, will replicate later)",
                )
            )

    def _end_write(self, op: _Write) -> None:
        del self._writes[op.op_id]
        self._timers.cancel(("write", op.op_id))

    def _counts_for(self, op: _Write, peer: str) -> bool:
        if peer in op.homes or (not op.strict and peer in op.fallbacks):
            return self._site_ok(op.site, peer)
        return False

    def _queue_push(
        self,
        peer: str,
        hint_for: str | None,
        entry: LogEntry,
        op_id: int | None,
        hint_id: HintId | None,
    ) -> None:
        """Queue ``entry`` for ``peer`` (the entry is its own wire form)."""
        key = (peer, hint_for)
        buf = self._pushbufs.get(key)
        size = _entry_size(entry)
        if buf is not None and (
            len(buf.entries) >= self.config.ae_batch or buf.size + size > self._batch_bytes()
        ):
            self._flush_one(buf)
            buf = None
        if buf is None:
            ob = _Outbound(peer, False, hint_for=hint_for, sent_at=self._now)
            buf = self._pushbufs[key] = _PushBuf(self._new_id(), peer, hint_for, ob)
            self._outbound[(peer, buf.push_id)] = ob
            if ("sweep",) not in self._timers:
                self._timers.set(("sweep",), self._now + 2 * self.config.write_timeout)
        buf.entries.append(entry)
        buf.size += size
        if op_id is not None:
            buf.outbound.ops.append(op_id)
        if hint_id is not None:
            buf.outbound.hint_ids.append(hint_id)

    def _flush_one(self, buf: _PushBuf) -> None:
        del self._pushbufs[(buf.peer, buf.hint_for)]
        msg = m.Push.model_construct(
            proto=1, t="push", push_id=buf.push_id, entries=buf.entries, hint_for=buf.hint_for
        )
        self._emit(Send(buf.peer, msg))

    def _flush_pushes(self) -> None:
        for buf in list(self._pushbufs.values()):
            self._flush_one(buf)

    def _sweep(self, now: float) -> None:
        """Forget pushes whose ack can no longer matter (lost messages on a live link).

        A push is kept while one of its writes is pending; its hints are re-sent by the
        hand-off retry anyway.
        """
        cutoff = now - 2 * self.config.write_timeout
        stale = [
            k
            for k, ob in self._outbound.items()
            if not ob.ae and ob.sent_at <= cutoff and not any(op in self._writes for op in ob.ops)
        ]
        for k in stale:
            del self._outbound[k]
        if any(not ob.ae for ob in self._outbound.values()):
            self._timers.set(("sweep",), now + 2 * self.config.write_timeout)

    # -- hints -----------------------------------------------------------------------------
    def _hint_store(self, hid: HintId) -> dict[str, dict[HintId, HintRecord]]:
        return self._own_hints if hid.origin == self.replica_id else self._hints

    def _add_hint(self, rec: HintRecord) -> None:
        own = rec.entry.origin == self.replica_id
        held = (self._own_hints if own else self._hints).setdefault(rec.target, {})
        if rec.id in held:
            return
        held[rec.id] = rec
        hints = self._t.hints
        hints.pop(rec.id, None)
        hints[rec.id] = rec
        if own:
            return
        while len(held) > self.config.hint_max_per_target:
            oldest = next(iter(held))
            self._drop_hint(oldest)
        self._schedule_hint_expiry()

    def _drop_hint(self, hid: HintId) -> None:
        store = self._hint_store(hid)
        held = store.get(hid.target)
        if held is None or held.pop(hid, None) is None:
            return
        self._hint_sent.pop(hid, None)
        hints = self._t.hints
        hints.pop(hid, None)
        hints[hid] = None
        if not held:
            del store[hid.target]

    def _schedule_hint_expiry(self) -> None:
        oldest = min(
            (next(iter(h.values())).stored_at for h in self._hints.values() if h), default=None
        )
        if oldest is not None:
            self._timers.set_if_earlier(("hint_expiry",), oldest + self.config.hint_window)

    def _expire_hints(self, now: float) -> None:
        window = self.config.hint_window
        for target in sorted(self._hints):
            held = self._hints[target]
            expired = []
            for hid, rec in held.items():
                if rec.stored_at + window > now:  # the same sum as the timer: no float drift
                    break
                expired.append(hid)
            for hid in expired:
                self._drop_hint(hid)
        self._schedule_hint_expiry()

    def _handoff(self, target: str, now: float) -> None:
        """Send the next batch of hints held for ``target`` (if it is up)."""
        if target not in self._up:
            return
        own = self._own_hints.get(target, {})
        held = self._hints.get(target, {})
        if not own and not held:
            return
        retry = self.config.write_timeout
        batch: list[HintRecord] = []
        for hid, rec in itertools.chain(own.items(), held.items()):
            sent = self._hint_sent.get(hid)
            if sent is not None and sent + retry > now:
                continue
            batch.append(rec)
            if len(batch) >= self.config.ae_batch:
                break
        for rec in batch:
            self._hint_sent[rec.id] = now
            self._queue_push(target, None, rec.entry, None, rec.id)
        self._timers.set(("handoff", target), now + retry)

    # -- reads -----------------------------------------------------------------------------
    def _read_progress(self, rd: _Read) -> None:
        if not rd.done and len(rd.counted) >= rd.required:
            rd.done = True
            self._repair(rd)
            state = rd.joined.copy() if rd.joined is not None else None
            self._emit(ReadDone(rd.op_id, rd.key, state, len(rd.counted), tuple(rd.repaired)))
        if not rd.asked:
            if not rd.done:
                self._fail_read(rd, "no other replica that counts can reply")
            else:
                self._end_read(rd)

    def _repair(self, rd: _Read) -> None:
        joined = rd.joined
        if joined is None:
            return
        self._merge_state(rd.key, joined)
        if self.replica_id in rd.known:
            rd.known[self.replica_id] = joined.copy()
        for peer, state in list(rd.known.items()):
            if peer == self.replica_id or state == joined:
                continue
            self._emit(Send(peer, m.Repair(key=rd.key, kind=joined.kind, state=joined.to_dict())))
            rd.known[peer] = joined.copy()
            if peer not in rd.repaired:
                rd.repaired.append(peer)

    def _fail_read(self, rd: _Read, why: str) -> None:
        self._end_read(rd)
        state = rd.joined.copy() if rd.joined is not None else None
        self._emit(
            ReadFailed(
                rd.op_id,
                rd.key,
                len(rd.counted),
                rd.required,
                state,
                f"{len(rd.counted)} of {rd.required} required replies: {why}",
            )
        )

    def _end_read(self, rd: _Read) -> None:
        self._reads.pop(rd.op_id, None)
        self._timers.cancel(("read", rd.op_id))
        for req in rd.reqs:
            self._read_reqs.pop(req, None)

    # -- anti-entropy ----------------------------------------------------------------------
    def _send_summary(self, peer: str, *, reply: bool) -> None:
        parts = {p: _ctx_model(self._summ_of(p)) for p in self._shared_parts(peer)}
        known: list[m.PeerInfo] = []
        if self._gossiped.get(peer) != self._members_version:
            self._gossiped[peer] = self._members_version
            known.append(
                m.PeerInfo.model_construct(
                    replica_id=self.replica_id, address=None, site=self.config.site
                )
            )
            for pid in sorted(self._peers):
                rec = self._peers[pid]
                if not rec.forgotten:
                    known.append(
                        m.PeerInfo.model_construct(
                            replica_id=pid, address=rec.address, site=rec.site
                        )
                    )
        msg = m.Summary.model_construct(
            proto=1, t="summary", parts=parts, known_peers=known, reply=reply
        )
        self._emit(Send(peer, msg))

    def _plan_ae(self, peer: str, theirs: dict[int, CausalContext]) -> None:
        """Queue what ``peer`` lacks of the partitions in its summary."""
        sess = self._ae.setdefault(peer, _AESession())
        if sess.busy:
            return  # one round at a time; the next summary picks up what this one missed
        for p in sorted(theirs):
            mine = self._summ.get(p)
            if mine is None:
                continue
            missing: list[LogEntry] = []
            snapshot = False
            for d in mine.dots_not_in(theirs[p]):
                e = self._log_entry(p, d[0], d[1])
                if e is None:
                    snapshot = True
                    break
                missing.append(e)
            if snapshot:
                self._plan_snapshot(sess, p)
                continue
            chunks = self._batches(missing)
            for i, chunk in enumerate(chunks):
                sess.queue.append(_AEItem(p, entries=chunk, more=i < len(chunks) - 1))

    def _batch_bytes(self) -> int:
        # Half the receiver's limit: room for the envelope and JSON escaping of the deltas.
        return self.config.max_message_bytes // 2

    def _batches(self, entries: list[LogEntry]) -> list[list[LogEntry]]:
        """Split ``entries`` into messages of at most ``ae_batch`` entries and about
        :meth:`_batch_bytes` bytes (an entry bigger than that travels alone)."""
        out: list[list[LogEntry]] = []
        cur: list[LogEntry] = []
        size = 0
        limit, count = self._batch_bytes(), self.config.ae_batch
        for e in entries:
            b = _entry_size(e)
            if cur and (len(cur) >= count or size + b > limit):
                out.append(cur)
                cur, size = [], 0
            cur.append(e)
            size += b
        if cur:
            out.append(cur)
        return out

    def _plan_snapshot(self, sess: _AESession, p: int) -> None:
        keys = sorted(self._keys_by_part.get(p, ()))
        objs = [
            m.SnapObject.model_construct(
                key=k, kind=self._objects[k].kind, state=self._objects[k].to_dict()
            )
            for k in keys
        ]
        size = self.config.snapshot_chunk
        chunks = [objs[i : i + size] for i in range(0, len(objs), size)] or [[]]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            sess.queue.append(
                _AEItem(
                    p,
                    objects=chunk,
                    summary=_ctx_model(self._summ_of(p)) if last else None,
                    last=last,
                )
            )

    def _pump(self, peer: str, now: float) -> None:
        sess = self._ae.get(peer)
        if sess is None or peer not in self._up:
            return
        while sess.queue and len(sess.inflight) < self.config.ae_max_inflight:
            item = sess.queue[0]
            if item.last and sess.inflight:
                break  # the summary-carrying chunk goes only once every other chunk landed
            sess.queue.popleft()
            bid = self._new_id()
            msg: m.Message
            if item.entries is not None:
                msg = m.Deltas.model_construct(
                    proto=1,
                    t="deltas",
                    batch_id=bid,
                    partition=item.partition,
                    entries=list(item.entries),
                    more=item.more,
                )
            else:
                msg = m.SnapshotChunk.model_construct(
                    proto=1,
                    t="snapshot",
                    batch_id=bid,
                    partition=item.partition,
                    objects=item.objects or [],
                    summary=item.summary,
                    last=item.last,
                )
            sess.inflight[bid] = now
            self._outbound[(peer, bid)] = _Outbound(peer, True, sent_at=now)
            self._emit(Send(peer, msg))
        if sess.inflight:
            oldest = min(sess.inflight.values())
            self._timers.set_if_earlier(("ae_timeout", peer), oldest + self.config.write_timeout)

    def _reset_ae(self, peer: str) -> None:
        sess = self._ae.pop(peer, None)
        if sess is not None:
            for bid in sess.inflight:
                self._outbound.pop((peer, bid), None)
        self._timers.cancel(("ae_timeout", peer))

    def _maybe_compact(self, p: int) -> None:
        me = self.replica_id
        homes = self._ring_now().preference_list(p)
        mine = self._summ.get(p)
        log_p = self._log.get(p)
        if mine is None or not log_p:
            return
        if me in homes:
            marks = self._home_watermarks(p, homes, mine, log_p)
        else:
            marks = self._own_watermark(p, log_p)
        if marks is None:
            return
        watermark: dict[str, int] = {}
        touched: dict[str, None] = {}
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
                touched[by_seq.pop(s)[0]] = None
            self._log_size -= len(drop)
            if not by_seq:
                del log_p[origin]
        if watermark:
            for key in touched:
                self._checkpoint(key)
            self._t.compact.append((p, watermark))

    def _home_watermarks(
        self,
        p: int,
        homes: tuple[str, ...],
        mine: CausalContext,
        log_p: dict[str, dict[int, _Logged]],
    ) -> dict[str, int] | None:
        """Per origin, what every home of ``p`` has applied (causal stability); None while a
        home never reported its summary."""
        ctxs = [mine]
        for h in homes:
            if h == self.replica_id:
                continue
            theirs = self._peer_summ.get(h, {}).get(p)
            if theirs is None:
                return None  # a home that never reported: nothing is stable yet
            ctxs.append(theirs)
        return {origin: min(c.vv.get(origin, 0) for c in ctxs) for origin in log_p}

    def _own_watermark(self, p: int, log_p: dict[str, dict[int, _Logged]]) -> dict[str, int]:
        """A replica that is not a home of ``p`` logs only its own writes there, each also held
        as a hint for every home; an entry may go once no hint for it is pending (every home
        acknowledged it). Entries of other origins (left from a ring change) stay."""
        me = self.replica_id
        own = log_p.get(me)
        if not own:
            return {}
        pending = [
            hid.seq
            for held in self._own_hints.values()
            for hid in held
            if hid.partition == p and hid.origin == me
        ]
        return {me: min(pending) - 1 if pending else max(own)}

    # -- receiving: validation (no state change) ---------------------------------------------
    def _decode_entries(
        self, peer: str, entries: Iterable[LogEntry], hint_for: str | None = None
    ) -> _Checked:
        """Check and decode every entry (its delta decodes, partition and kind agree) and
        build the delta groups; nothing changes. An entry of a ``Push`` for ``hint_for``
        (another replica) is only held as a hint unless this replica is a home of its key."""
        parts = self.config.partitions
        kinds: dict[str, str] = {}
        out = _Checked([], [], {})
        home, groups = out.home, out.groups
        from_dict = crdt.from_dict
        me = self.replica_id
        ring = self._ring_now() if hint_for is not None and hint_for != me else None
        summaries = self._summ
        for i, e in enumerate(entries):
            if e.partition >= parts:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: partition out of range 0..{parts - 1}", peer
                )
            if not e.key or not 1 <= e.seq <= MAX_SEQ:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: a log entry needs a non-empty key and a seq in 1..2**63-1",
                    peer,
                )
            if self._part(e.key) != e.partition:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: key {e.key!r} is not in that partition", peer
                )
            try:
                delta = from_dict(from_json(e.delta_json, allow_inf_nan=False))
            except (TypeError, ValueError) as exc:  # DecodeError and bad JSON: ValueErrors
                raise RemoteProtocolError(f"{_where(i, e)}: bad CRDT state: {exc}", peer) from exc
            kind = delta.kind
            if kind != e.kind:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: says kind {e.kind!r} but its delta is a {kind}", peer
                )
            local = self._objects.get(e.key)
            held = local.kind if local is not None else kinds.get(e.key)
            if held is not None and held != kind:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: key {e.key!r} holds a {held}, not a {kind}", peer
                )
            kinds[e.key] = kind
            # The wire's text is logged, stored and forwarded as it is when it is in our own
            # compact form (it is, from shoal peers); any other spelling is encoded afresh.
            if not e.delta_json.startswith(_TYPE_PREFIX[kind]):
                e = replace(e, delta_json=delta.to_json())
            if ring is not None and me not in ring.preference_list(e.partition):
                out.hints.append(e)
                continue
            home.append(e)
            summ = summaries.get(e.partition, _EMPTY_CTX)
            if e.seq <= summ.vv.get(e.origin, 0) or (e.origin, e.seq) in summ.cloud:
                continue  # known here: its delta is in the state already
            group = groups.get(e.key)
            if group is None:
                groups[e.key] = (e.partition, delta)  # freshly decoded: the group to join into
            else:
                group[1].merge(delta)
        return out

    def _check_kind(
        self, peer: str, key: str, kind: str, batch: dict[str, str], where: str
    ) -> None:
        local = self._objects.get(key)
        held = local.kind if local is not None else batch.get(key)
        if held is not None and held != kind:
            raise RemoteProtocolError(f"{where}: key {key!r} holds a {held}, not a {kind}", peer)
        batch[key] = kind

    def _prep_push(self, peer: str, msg: m.Push) -> Any:
        return self._decode_entries(peer, msg.entries, msg.hint_for)

    def _prep_deltas(self, peer: str, msg: m.Deltas) -> Any:
        for i, e in enumerate(msg.entries):
            if e.partition != msg.partition:
                raise RemoteProtocolError(
                    f"entry {i} of a Deltas for partition {msg.partition} is in {e.partition}",
                    peer,
                )
        return self._decode_entries(peer, msg.entries)

    def _prep_none(self, peer: str, msg: Any) -> Any:
        return None

    def _prep_state(self, peer: str, msg: m.ReadResp | m.Repair) -> Any:
        if msg.state is None:
            return None
        state = _decode_crdt(peer, msg.state, f"state of {msg.key!r}")
        if isinstance(msg, m.Repair) and state.kind != msg.kind:
            raise RemoteProtocolError(
                f"repair of {msg.key!r} says kind {msg.kind!r} but carries a {state.kind}", peer
            )
        self._check_kind(peer, msg.key, state.kind, {}, f"state of {msg.key!r}")
        if isinstance(msg, m.ReadResp):
            op_id = self._read_reqs.get((peer, msg.req_id))
            rd = self._reads.get(op_id) if op_id is not None else None
            if rd is not None and rd.key != msg.key:
                raise RemoteProtocolError(
                    f"read reply {msg.req_id} is for {msg.key!r}, asked {rd.key!r}", peer
                )
            if rd is not None and rd.joined is not None and rd.joined.kind != state.kind:
                raise RemoteProtocolError(
                    f"read reply for {msg.key!r} is a {state.kind}, others a {rd.joined.kind}",
                    peer,
                )
        return state

    def _prep_summary(self, peer: str, msg: m.Summary) -> Any:
        parts: dict[int, CausalContext] = {}
        for p, ctx in msg.parts.items():
            if p >= self.config.partitions:
                raise RemoteProtocolError(
                    f"summary of partition {p}, out of range 0..{self.config.partitions - 1}",
                    peer,
                )
            try:
                parts[p] = CausalContext(dict(ctx.vv), [Dot(r, c) for r, c in ctx.cloud])
            except (TypeError, ValueError) as exc:
                raise RemoteProtocolError(f"summary of partition {p}: {exc}", peer) from exc
        return parts

    def _prep_snapshot(self, peer: str, msg: m.SnapshotChunk) -> Any:
        parts = self.config.partitions
        if msg.partition >= parts:
            raise RemoteProtocolError(f"snapshot of partition {msg.partition}: out of range", peer)
        kinds: dict[str, str] = {}
        states: list[tuple[str, CRDT]] = []
        for i, o in enumerate(msg.objects):
            where = f"snapshot object {i} ({o.key!r})"
            if partition_of(o.key, parts) != msg.partition:
                raise RemoteProtocolError(f"{where}: not in partition {msg.partition}", peer)
            state = _decode_crdt(peer, o.state, where)
            if state.kind != o.kind:
                raise RemoteProtocolError(f"{where}: says {o.kind!r}, is a {state.kind}", peer)
            self._check_kind(peer, o.key, o.kind, kinds, where)
            states.append((o.key, state))
        ctx = None
        if msg.summary is not None:
            try:
                ctx = CausalContext(dict(msg.summary.vv), [Dot(r, c) for r, c in msg.summary.cloud])
            except (TypeError, ValueError) as exc:
                raise RemoteProtocolError(f"snapshot summary: {exc}", peer) from exc
        return states, ctx

    # -- receiving: application ----------------------------------------------------------------
    def _on_push(self, peer: str, msg: m.Push, checked: _Checked, now: float) -> None:
        hint_for = msg.hint_for
        if checked.hints and hint_for is not None:  # entries are held as hints only for one
            for e in checked.hints:
                self._add_hint(HintRecord(hint_for, e, now))
        self._relay_forward(peer, self._apply_entries(checked))
        if hint_for is not None and hint_for != self.replica_id and hint_for in self._up:
            self._timers.set_if_earlier(("handoff", hint_for), now)
        self._emit(Send(peer, m.Ack(ids=[msg.push_id])))

    def _on_deltas(self, peer: str, msg: m.Deltas, checked: _Checked, now: float) -> None:
        self._relay_forward(peer, self._apply_entries(checked))
        self._emit(Send(peer, m.Ack(ids=[msg.batch_id])))

    def _on_snapshot(self, peer: str, msg: m.SnapshotChunk, prepared: Any, now: float) -> None:
        states, ctx = prepared
        for key, state in states:
            self._merge_state(key, state)
        if ctx is not None:
            mine = self._summ_of(msg.partition)
            before = mine.copy()
            mine.merge(ctx)
            if mine != before:
                self._t.summaries[msg.partition] = None
                seen = mine.max_counter(self.replica_id)
                if seen > self._seq.get(msg.partition, 0):
                    self._seq[msg.partition] = seen
        self._emit(Send(peer, m.Ack(ids=[msg.batch_id])))

    def _on_ack(self, peer: str, msg: m.Ack, _: Any, now: float) -> None:
        handoff = False
        for bid in msg.ids:
            ob = self._outbound.pop((peer, bid), None)
            if ob is None:
                continue  # a duplicate, or for a message we gave up on
            if ob.ae:
                sess = self._ae.get(peer)
                if sess is not None:
                    sess.inflight.pop(bid, None)
                continue
            for op_id in ob.ops:
                op = self._writes.get(op_id)
                if op is None:
                    continue
                op.waiting.discard(peer)
                if peer not in op.acked_by and self._counts_for(op, peer):
                    op.acked_by.append(peer)
                    if ob.hint_for is not None:
                        op.hinted.append(peer)
                self._write_progress(op)
            for hid in ob.hint_ids:
                self._drop_hint(hid)
                handoff = True
        if handoff:
            self._handoff(peer, now)
        self._pump(peer, now)

    def _on_read_req(self, peer: str, msg: m.ReadReq, _: Any, now: float) -> None:
        obj = self._objects.get(msg.key)
        state = obj.to_dict() if obj is not None else None
        self._emit(Send(peer, m.ReadResp(req_id=msg.req_id, key=msg.key, state=state)))

    def _on_read_resp(self, peer: str, msg: m.ReadResp, state: Any, now: float) -> None:
        op_id = self._read_reqs.pop((peer, msg.req_id), None)
        rd = self._reads.get(op_id) if op_id is not None else None
        if rd is None:
            return  # late, after the read ended
        rd.asked.discard(peer)
        rd.known[peer] = state
        if self._site_ok(rd.site, peer):
            rd.counted.append(peer)
        if state is not None:
            if rd.joined is None:
                rd.joined = state.copy()
            else:
                rd.joined.merge(state)
        if rd.done:
            self._repair(rd)
        self._read_progress(rd)

    def _on_repair(self, peer: str, msg: m.Repair, state: Any, now: float) -> None:
        self._merge_state(msg.key, state)

    def _on_summary(self, peer: str, msg: m.Summary, parts: Any, now: float) -> None:
        me = self.replica_id
        for info in msg.known_peers:
            if info.replica_id != me and not self._is_forgotten(info.replica_id):
                self._learn(info.replica_id, info.address, info.site)
        theirs: dict[int, CausalContext] = parts
        if peer in self._peers and not self._peers[peer].forgotten:
            stored = self._peer_summ.setdefault(peer, {})
            changed = False
            for p, ctx in theirs.items():
                if stored.get(p) != ctx:
                    stored[p] = ctx
                    changed = True
            if changed:
                rec = self._peers[peer]
                encoded = {p: c.to_dict() for p, c in sorted(stored.items())}
                self._peers[peer] = replace(rec, summary=encoded, last_seen=now)
                self._t.peers[peer] = None
                for p in sorted(theirs):
                    self._maybe_compact(p)
        for p in sorted(theirs):
            seen = theirs[p].max_counter(me)
            ours = self._seq.get(p, 0)
            if seen > ours:
                self._emit(IdentityConflict(peer, p, seen, ours))
                self._seq[p] = seen
        self._plan_ae(peer, theirs)
        self._pump(peer, now)
        if msg.reply and peer in self._up and self._lacking(theirs):
            self._send_summary(peer, reply=False)
        elif msg.known_peers and peer in self._up and self._members_missing(msg):
            self._gossiped.pop(peer, None)
            self._send_summary(peer, reply=False)

    def _lacking(self, theirs: dict[int, CausalContext]) -> bool:
        """True when the sender of ``msg`` has log dots we lack."""
        for p, ctx in theirs.items():
            if next(ctx.dots_not_in(self._summ_of(p)), None) is not None:
                return True
        return False

    def _members_missing(self, msg: m.Summary) -> bool:
        """True when ``msg`` lists the sender's members and misses some we know."""
        listed = {i.replica_id for i in msg.known_peers}
        listed.add(self.replica_id)
        return any(not rec.forgotten and pid not in listed for pid, rec in self._peers.items())

    def _on_forget(self, peer: str, msg: m.Forget, _: Any, now: float) -> None:
        if msg.replica_id == self.replica_id or self._is_forgotten(msg.replica_id):
            return
        self._forget(msg.replica_id, peer)

    _handlers: dict[type, tuple[Callable[..., Any], Callable[..., None]]] = {
        m.Push: (_prep_push, _on_push),
        m.Deltas: (_prep_deltas, _on_deltas),
        m.SnapshotChunk: (_prep_snapshot, _on_snapshot),
        m.Ack: (_prep_none, _on_ack),
        m.ReadReq: (_prep_none, _on_read_req),
        m.ReadResp: (_prep_state, _on_read_resp),
        m.Repair: (_prep_state, _on_repair),
        m.Summary: (_prep_summary, _on_summary),
        m.Forget: (_prep_none, _on_forget),
    }

    # -- membership changes ----------------------------------------------------------------------
    def _is_forgotten(self, peer: str) -> bool:
        rec = self._peers.get(peer)
        return rec is not None and rec.forgotten

    def _down(self, peer: str) -> None:
        if self._up.pop(peer, None) is None:
            return
        self._relays.discard(peer)
        self._timers.cancel(("ae", peer))
        self._timers.cancel(("handoff", peer))
        self._reset_ae(peer)
        for hid in [h for h in self._hint_sent if h.target == peer]:
            del self._hint_sent[hid]
        for k in [k for k in self._outbound if k[0] == peer]:
            del self._outbound[k]
        for buf_key in [k for k in self._pushbufs if k[0] == peer]:
            del self._pushbufs[buf_key]
        for op in list(self._writes.values()):
            if peer in op.waiting:
                op.waiting.discard(peer)
                self._write_progress(op)
        for rd in list(self._reads.values()):
            if peer in rd.asked:
                rd.asked.discard(peer)
                self._read_progress(rd)

    def _forget(self, peer: str, told_by: str | None) -> None:
        self._down(peer)
        rec = self._peers.get(peer) or PeerRecord(peer)
        self._peers[peer] = replace(rec, forgotten=True, summary=None)
        self._peer_summ.pop(peer, None)
        self._t.peers[peer] = None
        for hid in [*self._hints.get(peer, {}), *self._own_hints.get(peer, {})]:
            self._drop_hint(hid)
        self._membership_changed()
        # The forgotten peer may have been the only home holding compaction back.
        for p in sorted(self._log):
            self._maybe_compact(p)
        for other in sorted(self._up):
            if other != told_by:
                self._emit(Send(other, m.Forget(replica_id=peer)))

    # -- timers ------------------------------------------------------------------------------------
    def _fire(self, key: Hashable, now: float) -> None:
        assert isinstance(key, tuple)
        what = key[0]
        if what == "write":
            op = self._writes.get(key[1])
            if op is not None:
                self._end_write(op)
                self._emit(
                    WriteFailed(
                        op.op_id,
                        op.result(),
                        f"timed out after {op.timeout:g}s with {len(op.acked_by)} of "
                        f"{op.required} required acks (durable here, will replicate later)",
                    )
                )
        elif what == "read":
            rd = self._reads.get(key[1])
            if rd is not None:
                if rd.done:
                    self._end_read(rd)
                else:
                    self._fail_read(rd, f"timed out after {rd.timeout:g}s")
        elif what == "compact":
            for p in sorted(self._log):
                self._maybe_compact(p)
            self._timers.set(("compact",), now + self._compact_interval())
        elif what == "ae":
            peer = key[1]
            if peer in self._up and self.config.anti_entropy_on:
                self._send_summary(peer, reply=True)
                self._timers.set(("ae", peer), now + self._ae_interval())
        elif what == "ae_timeout":
            peer = key[1]
            sess = self._ae.get(peer)
            if sess is not None and sess.inflight:
                oldest = min(sess.inflight.values())
                if oldest + self.config.write_timeout <= now:
                    self._reset_ae(peer)  # lost: the next summary starts a new round
                else:
                    self._timers.set(("ae_timeout", peer), oldest + self.config.write_timeout)
        elif what == "sweep":
            self._sweep(now)
        elif what == "handoff":
            self._handoff(key[1], now)
        elif what == "hint_expiry":
            self._expire_hints(now)


def _where(i: int, e: LogEntry) -> str:
    return f"entry {i} ({e.origin}, {e.partition}, {e.seq})"


def _decode_crdt(peer: str, d: dict[str, Any], where: str) -> CRDT:
    try:
        obj: CRDT = crdt.from_dict(d)
    except (TypeError, ValueError) as exc:  # DecodeError is a ValueError
        raise RemoteProtocolError(f"{where}: bad CRDT state: {exc}", peer) from exc
    return obj


def _entry_size(e: LogEntry) -> int:
    """About how many bytes ``e`` takes in a message, never less: its delta travels as a JSON
    string (every quote and backslash in it escaped) in UTF-8 (a non-ASCII character is up
    to four bytes); the key is counted the same way."""
    raw, key = e.delta_json, e.key
    size = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
    size += raw.count('"') + raw.count("\\")
    size += len(key) if key.isascii() else 2 * len(key.encode("utf-8", "surrogatepass"))
    origin = e.origin
    size += len(origin) if origin.isascii() else 2 * len(origin.encode("utf-8", "surrogatepass"))
    return size + _ENTRY_OVERHEAD


def _check_now(now: object) -> None:
    if type(now) is float and now == now:
        return  # the common case, first
    if isinstance(now, bool) or not isinstance(now, int | float) or now != now:
        raise TypeError(f"now must be a number of seconds, got {now!r}")
