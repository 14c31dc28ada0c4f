"""The simulated cluster (:class:`SimCluster`): the façade a test drives, and the loop that
runs replicas on a fake clock, executes their effects and detects failures.

Behind it, each concern owns its state: the fault model (:mod:`sync.simnet.network`), the
event queue (:mod:`sync.simnet.events`), the operation handles (:mod:`sync.simnet.ops`), the
failure detector's beliefs (:mod:`sync.simnet.detector`), the disks (:mod:`sync.simnet.disk`),
and the reading of what a replica holds (:mod:`sync.simnet.states`). Knows them, the
engine's API and effects and the wire codec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal

from crdt import CRDT
from sync import messages as wire
from sync.config import ReplicaConfig
from sync.effects import (
    Changed,
    Loaded,
    PeerRecord,
    Persist,
    ReadDone,
    ReadFailed,
    ReadPage,
    Send,
    WriteDone,
    WriteFailed,
)
from sync.errors import RemoteProtocolError
from sync.simnet.detector import FailureDetector
from sync.simnet.disk import SimDisk
from sync.simnet.events import Deliver, EventQueue, Fetch, Node, Tick, Trap
from sync.simnet.network import SimNetwork, check_delay, check_probability
from sync.simnet.ops import (
    MessageStats,
    OpLedger,
    OpStatus,
    ReplicaFactory,
    SimOp,
    SimReplica,
    SimulationError,
)
from sync.simnet.states import canonical_held, kinds_held, state_held

__all__ = ["SimCluster"]

_Wants = Callable[[SimReplica], tuple[list[str], list[int]]]


def _default_factory(
    config: ReplicaConfig, replica_id: str, loaded: Loaded | None, now: float
) -> SimReplica:
    from sync.replica import Replica  # late: sync.replica may import this package's modules

    return Replica(config, replica_id, loaded, now=now)


class SimCluster:
    """A deterministic cluster of replicas on a simulated network (see the module docstring).

    ``config`` is one :class:`ReplicaConfig` for everyone or a mapping replica id -> config.
    ``sites`` maps replica id -> site: with a shared ``config`` each replica's config gets its
    ``site``; either way peers are told each other's site in ``peer_up``. ``known_peers``
    starts every replica from a ``Loaded`` that already lists the others (a configured group),
    instead of learning them from ``peer_up``. ``latency`` is the default per-link delay range.
    """

    def __init__(
        self,
        replica_ids: Iterable[str],
        config: ReplicaConfig | Mapping[str, ReplicaConfig] | None = None,
        *,
        seed: int = 0,
        sites: Mapping[str, str] | None = None,
        detect_delay: float = 1.0,
        latency: tuple[float, float] = (0.001, 0.005),
        known_peers: bool = False,
        factory: ReplicaFactory = _default_factory,
        raise_protocol_errors: bool = True,
        check_compaction: bool = True,
    ) -> None:
        ids = list(replica_ids)
        if len(set(ids)) != len(ids) or not ids:
            raise SimulationError(f"replica ids must be distinct and non-empty: {ids}")
        if isinstance(config, Mapping) and set(config) != set(ids):
            raise SimulationError("per-replica configs must name exactly the replica ids")
        check_delay(*latency)
        if detect_delay < 0:
            raise SimulationError(f"detect_delay must be >= 0, not {detect_delay}")
        self.now = 0.0
        self.seed = seed
        self.detect_delay = detect_delay
        self.stats = MessageStats()
        self.changed: Counter[str] = Counter()
        self.keys: set[str] = set()
        self.protocol_errors: list[tuple[str, str, RemoteProtocolError]] = []
        self.anomalies: list[str] = []
        self.other_effects: list[tuple[str, Any]] = []
        self._factory = factory
        self._raise_protocol_errors = raise_protocol_errors
        self._check_compaction = check_compaction
        self._default_config = config if isinstance(config, ReplicaConfig) else ReplicaConfig()
        self._network = SimNetwork(seed, latency)
        self._queue = EventQueue()
        self._ledger = OpLedger()
        self._nodes: dict[str, Node] = {}
        self._detector = FailureDetector(self._queue)
        sites = dict(sites or {})
        for rid in sorted(ids):
            cfg = config[rid] if isinstance(config, Mapping) else self._default_config
            if rid in sites and not isinstance(config, Mapping):
                cfg = replace(cfg, site=sites[rid])
            disk = SimDisk(check_compaction=check_compaction)
            self._nodes[rid] = Node(cfg, disk, sites.get(rid))
        records = {
            rid: PeerRecord(rid, address=f"sim://{rid}", site=node.site)
            for rid, node in sorted(self._nodes.items())
        }
        for rid in self.ids:
            loaded = self._known_peers_loaded(rid, records) if known_peers else None
            self._nodes[rid].replica = factory(self._nodes[rid].config, rid, loaded, self.now)
            self._drain(rid)
        ids = self.ids
        for a in ids:
            self._connect_all(a, ids)

    # ---- membership and inspection -------------------------------------------------------

    @property
    def ops(self) -> list[SimOp]:
        """The handle of every ``update`` and ``read`` issued, in order."""
        return self._ledger.ops

    @property
    def ids(self) -> list[str]:
        """Every replica id, sorted (crashed ones included)."""
        return sorted(self._nodes)

    def alive(self, replica_id: str) -> bool:
        return self._node(replica_id).replica is not None

    def replica(self, replica_id: str) -> SimReplica:
        """The live replica object (raises if it is crashed)."""
        replica = self._node(replica_id).replica
        if replica is None:
            raise SimulationError(f"replica {replica_id!r} is down")
        return replica

    def disk(self, replica_id: str) -> SimDisk:
        return self._node(replica_id).disk

    def config(self, replica_id: str) -> ReplicaConfig:
        return self._node(replica_id).config

    def believes_up(self, observer: str, peer: str) -> bool:
        """Whether ``observer`` has been told that ``peer`` is up (and not down since)."""
        return self._detector.believes_up(observer, peer)

    def add_replica(
        self, replica_id: str, config: ReplicaConfig | None = None, *, site: str | None = None
    ) -> None:
        """A new, empty replica joins (peers detect it after ``detect_delay``)."""
        if replica_id in self._nodes:
            raise SimulationError(f"replica {replica_id!r} already exists")
        cfg = config or self._default_config
        if site is not None and config is None:
            cfg = replace(cfg, site=site)
        node = Node(cfg, SimDisk(check_compaction=self._check_compaction), site)
        self._nodes[replica_id] = node
        self._network.join(replica_id)  # during a partition: alone until heal()
        node.replica = self._factory(cfg, replica_id, None, self.now)
        self._drain(replica_id)
        self._schedule_detects(self._pairs_of(replica_id))

    # ---- operations ----------------------------------------------------------------------

    def update(
        self,
        replica_id: str,
        key: str,
        kind: str,
        fn: Callable[[Any], Any],
        *,
        w: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> SimOp:
        """``local_update`` on ``replica_id`` now; effects run at once; returns the handle.

        An exception from the engine (bad input) propagates and no handle is kept.
        """
        op = self._new_op("write", replica_id, key)
        self._call_op(
            op,
            lambda r: r.local_update(
                op.op_id, key, kind, fn, self.now, w=w, strict=strict, timeout=timeout
            ),
            lambda r: (r.wants_keys((key,)), []),
        )
        self.keys.add(key)
        return op

    def read(
        self,
        replica_id: str,
        key: str,
        *,
        kind: str | None = None,
        r: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> SimOp:
        """``local_read`` of the object ``(key, kind)`` on ``replica_id`` now (``kind=None``:
        the one kind the replica holds); effects run at once; returns the handle."""
        op = self._new_op("read", replica_id, key)
        self._call_op(
            op,
            lambda rep: rep.local_read(
                op.op_id, key, self.now, kind=kind, r=r, strict=strict, timeout=timeout
            ),
            lambda rep: (rep.wants_keys((key,)), []),
        )
        return op

    def forget(self, replica_id: str, peer_id: str) -> None:
        """Operator action on ``replica_id``: forget ``peer_id`` for good."""
        self._node(peer_id)
        self._input(replica_id, lambda r: r.forget(peer_id, self.now))

    def links_connecting(
        self, replica_id: str, count: int, failures: Mapping[str, str] | None = None
    ) -> None:
        """What an adapter's dials tell ``replica_id`` (``Replica.links_connecting``):
        ``count`` links still being dialled, ``failures`` the dials that failed (URL: why)."""
        self._input(replica_id, lambda r: r.links_connecting(count, self.now, failures=failures))

    def value(self, replica_id: str, key: str, kind: str | None = None) -> CRDT | None:
        """The state of the object ``(key, kind)`` on ``replica_id`` (``kind=None``: the
        key's one kind): from its memory, or from its disk for an object it evicted (whose
        stored row is complete: the engine's invariant)."""
        return state_held(self.replica(replica_id), self.disk(replica_id), key, kind)

    def kinds_of(self, replica_id: str, key: str) -> tuple[str, ...]:
        """The kinds ``key`` holds on ``replica_id`` (two or more: a clash), in memory or,
        for an object it evicted, on its disk."""
        return kinds_held(self.replica(replica_id), self.disk(replica_id), key)

    def values(
        self, key: str, replicas: Iterable[str] | None = None, *, kind: str | None = None
    ) -> dict[str, Any]:
        """``{replica: value}`` of ``(key, kind)`` on the live replicas (``None`` where
        absent)."""
        out: dict[str, Any] = {}
        for rid in self._live_ids(replicas):
            state = self.value(rid, key, kind)
            out[rid] = None if state is None else state.value
        return out

    def divergent(
        self,
        keys: Iterable[str] | None = None,
        replicas: Iterable[str] | None = None,
        *,
        holders: Callable[[str], Iterable[str]] | None = None,
    ) -> dict[str, dict[str, str | None]]:
        """Keys whose full states differ among the live replicas (``holders(key)`` narrows the
        replicas compared for one key, e.g. to its home replicas), with each replica's
        canonical state (of every kind the key holds)."""
        out: dict[str, dict[str, str | None]] = {}
        live = self._live_ids(replicas)
        for key in sorted(self.keys if keys is None else set(keys)):
            among = live if holders is None else [r for r in sorted(holders(key)) if r in live]
            states = {rid: canonical_held(self.replica(rid), self.disk(rid), key) for rid in among}
            if len(set(states.values())) > 1:
                out[key] = states
        return out

    def converged(
        self,
        keys: Iterable[str] | None = None,
        replicas: Iterable[str] | None = None,
        *,
        holders: Callable[[str], Iterable[str]] | None = None,
    ) -> bool:
        """Every live replica (or ``holders(key)``) holds the same state of every key."""
        return not self.divergent(keys, replicas, holders=holders)

    # ---- faults --------------------------------------------------------------------------

    def drop(self, a: str | None, b: str | None, p: float, *, one_way: bool = False) -> None:
        """Drop messages between ``a`` and ``b`` (None: any replica) with probability ``p``."""
        check_probability("drop", p)
        self._network.drop(self._pairs(a, b, one_way), p)

    def delay(
        self, a: str | None, b: str | None, lo: float, hi: float, *, one_way: bool = False
    ) -> None:
        """Delay messages between ``a`` and ``b`` by a uniform draw in ``[lo, hi]`` seconds."""
        check_delay(lo, hi)
        self._network.delay(self._pairs(a, b, one_way), lo, hi)

    def duplicate(self, p: float) -> None:
        """Deliver each message twice with probability ``p`` (each copy has its own delay)."""
        check_probability("duplicate", p)
        self._network.duplicate(p)

    def reorder(self, enabled: bool = True) -> None:
        """Let messages on one link overtake each other (links are FIFO otherwise)."""
        self._network.reorder(enabled)

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Cut the network into ``groups``; a replica named in no group is alone.

        Messages across groups (sent or in flight) are lost; replicas are told ``peer_down``
        after ``detect_delay``. A new call replaces the previous partition.
        """
        mapping: dict[str, int] = {}
        for index, group in enumerate(groups):
            for rid in group:
                self._node(rid)
                if rid in mapping:
                    raise SimulationError(f"replica {rid!r} is in two groups")
                mapping[rid] = index
        solo = len(mapping) + 1_000_000
        for i, rid in enumerate(self.ids):
            mapping.setdefault(rid, solo + i)
        self._network.partition(mapping)
        self._schedule_detects(self._all_pairs())

    def heal(self) -> None:
        """Remove the partition and every message fault (drop, delay, duplicate, reorder)."""
        self._network.heal()
        self._schedule_detects(self._all_pairs())

    def crash(self, replica_id: str) -> None:
        """The replica loses its memory and its unexecuted effects; its disk survives."""
        node = self._node(replica_id)
        if node.replica is None:
            raise SimulationError(f"replica {replica_id!r} is already down")
        node.replica = None
        node.life += 1
        node.timers.clear()
        node.trap = None
        self._ledger.lose(replica_id, self.now)
        self._detector.forget(replica_id)
        self._schedule_detects(self._pairs_of(replica_id))

    def crash_when(
        self, replica_id: str, predicate: Callable[[Any], bool], *, before: bool = False
    ) -> None:
        """Arm a one-shot crash of ``replica_id`` right after (or ``before``) the next effect
        it executes for which ``predicate(effect)`` is true; later effects are lost."""
        node = self._node(replica_id)
        if node.replica is None:
            raise SimulationError(f"replica {replica_id!r} is down")
        node.trap = Trap(predicate, before)

    def disarm(self, replica_id: str) -> None:
        """Remove a crash armed by :meth:`crash_when` (no-op if none)."""
        self._node(replica_id).trap = None

    def restart(self, replica_id: str, *, disk: SimDisk | None = None) -> None:
        """A new replica object from the disk's ``Loaded``; peers reconnect after a delay.

        ``disk``: first replace the disk by (a copy of) this one, e.g. a backup taken with
        :meth:`SimDisk.copy` (a restore; the replica id stays the same).
        """
        node = self._node(replica_id)
        if node.replica is not None:
            raise SimulationError(f"replica {replica_id!r} is up; crash it first")
        if disk is not None:
            node.disk = disk.copy()
        for peer in self.ids:
            if peer != replica_id and self.believes_up(peer, replica_id):
                self._set_believed(peer, replica_id, False)  # the old connection resets
        loaded = node.disk.load(node.config.objects_at_start)
        node.replica = self._factory(node.config, replica_id, loaded, self.now)
        self._drain(replica_id)
        self._schedule_detects(self._pairs_of(replica_id))

    # ---- running -------------------------------------------------------------------------

    def step(self) -> bool:
        """Process the next event (advancing the clock to it); False if there is none."""
        next_event = self._queue.pop()
        if next_event is None:
            return False
        at, event = next_event
        self.now = max(self.now, at)
        if isinstance(event, Deliver):
            self._deliver(event)
        elif isinstance(event, Tick):
            self._fire_timer(event)
        elif isinstance(event, Fetch):
            self._fetch(event)
        else:
            self._detect(event.observer, event.peer)
        return True

    def quiet(self) -> bool:
        """No message in flight, no pending failure detection or store read, no operation
        pending."""
        return not self._queue.busy and self._ledger.idle

    def run_until(
        self, predicate: Callable[[], bool], max_steps: int = 100_000, *, every: int = 1
    ) -> bool:
        """Step until ``predicate()`` holds; False if the events or ``max_steps`` ran out.

        ``predicate`` is evaluated before the first step and then every ``every`` steps (for
        a costly predicate such as :meth:`converged` on many keys).
        """
        if every < 1:
            raise SimulationError(f"every must be >= 1, not {every}")
        for i in range(max_steps):
            if i % every == 0 and predicate():
                return True
            if not self.step():
                return predicate()
        return predicate()

    def run_until_quiet(self, max_steps: int = 100_000) -> bool:
        """Step until :meth:`quiet` (timers alone do not keep it busy); returns whether quiet."""
        return self.run_until(self.quiet, max_steps)

    def run_for(self, seconds: float, max_steps: int = 1_000_000) -> None:
        """Process every event up to ``now + seconds``, then set the clock there."""
        if seconds < 0:
            raise SimulationError(f"cannot run for a negative time ({seconds})")
        end = self.now + seconds
        for _ in range(max_steps):
            at = self._queue.next_at()
            if at is None or at > end:
                self.now = end
                return
            self.step()
        raise SimulationError(f"run_for({seconds}) needed more than {max_steps} steps")

    def reset_stats(self) -> None:
        self.stats = MessageStats()

    # ---- internals: inputs and effects ---------------------------------------------------

    def _node(self, replica_id: str) -> Node:
        try:
            return self._nodes[replica_id]
        except KeyError:
            raise SimulationError(f"unknown replica {replica_id!r}") from None

    def _live_ids(self, replicas: Iterable[str] | None) -> list[str]:
        chosen = self.ids if replicas is None else sorted(set(replicas))
        return [rid for rid in chosen if self.alive(rid)]

    def _known_peers_loaded(self, replica_id: str, records: Mapping[str, PeerRecord]) -> Loaded:
        # The records are frozen and hold no summary: every replica's disk shares them.
        peers = {rid: rec for rid, rec in records.items() if rid != replica_id}
        self._nodes[replica_id].disk.peers.update(peers)
        return Loaded(peers=peers)

    def _new_op(self, kind: Literal["write", "read"], replica_id: str, key: str) -> SimOp:
        self.replica(replica_id)
        return self._ledger.open(kind, replica_id, key, self.now)

    def _call_op(
        self, op: SimOp, call: Callable[[SimReplica], object], wants: _Wants | None = None
    ) -> None:
        try:
            self._input(op.replica, call, wants)
        except BaseException:
            self._ledger.withdraw(op)
            raise

    def _input(
        self,
        replica_id: str,
        call: Callable[[SimReplica], object],
        wants: _Wants | None = None,
    ) -> None:
        replica = self.replica(replica_id)
        if wants is not None:
            self._prefetch(replica_id, replica, *wants(replica))
        try:
            call(replica)
        finally:
            self._drain(replica_id)

    def _prefetch(
        self, replica_id: str, replica: SimReplica, keys: list[str], parts: list[int]
    ) -> None:
        """Hand the replica the objects its next input needs, from its disk (which every
        Persist drained so far has reached: the simulator runs effects at once)."""
        if not keys and not parts:
            return
        node = self._nodes[replica_id]
        rows = node.disk.objects_for(keys, parts, node.config.partitions)
        self.stats.loads += 1
        replica.admit(keys, rows, parts)

    def _drain(self, replica_id: str) -> None:
        node = self._nodes[replica_id]
        replica = node.replica
        if replica is None:
            return
        effects = replica.effects()
        for index, effect in enumerate(effects):
            trap = node.trap
            fire = trap is not None and trap.predicate(effect)
            if fire and trap is not None and trap.before:
                self._trap_crash(replica_id, len(effects) - index)
                return
            self._execute(replica_id, effect)
            if fire:
                self._trap_crash(replica_id, len(effects) - index - 1)
                return
        self._schedule_timer(replica_id)

    def _trap_crash(self, replica_id: str, lost: int) -> None:
        self.stats.effects_lost += lost
        self.crash(replica_id)

    def _execute(self, replica_id: str, effect: Any) -> None:
        if isinstance(effect, Persist):
            self._nodes[replica_id].disk.apply(effect)
        elif isinstance(effect, Send):
            self._send(replica_id, effect)
        elif isinstance(effect, WriteDone | ReadDone):
            self._finish(replica_id, effect, "done")
        elif isinstance(effect, WriteFailed | ReadFailed):
            self._finish(replica_id, effect, "failed")
        elif isinstance(effect, Changed):
            self.changed[replica_id] += 1
        elif isinstance(effect, ReadPage):
            # Read from the disk as a store would, after this drain (the Persists before it
            # are applied already): the page comes back as the replica's next input.
            self._queue.push(self.now, Fetch(replica_id, self._nodes[replica_id].life, effect))
            self.stats.pages_read += 1
        else:
            self.other_effects.append((replica_id, effect))

    def _finish(
        self,
        replica_id: str,
        effect: WriteDone | WriteFailed | ReadDone | ReadFailed,
        status: OpStatus,
    ) -> None:
        anomaly = self._ledger.finish(replica_id, effect, status, self.now)
        if anomaly is not None:
            self.anomalies.append(anomaly)

    # ---- internals: the network ----------------------------------------------------------

    def _pairs(self, a: str | None, b: str | None, one_way: bool) -> list[tuple[str, str]]:
        """The directed links between ``a`` and ``b`` (None: any replica), both ways unless
        ``one_way``."""
        for rid in (a, b):
            if rid is not None:
                self._node(rid)
        srcs = self.ids if a is None else [a]
        dsts = self.ids if b is None else [b]
        pairs = {(x, y) for x in srcs for y in dsts if x != y}
        if not one_way:
            pairs |= {(y, x) for x, y in pairs}
        return sorted(pairs)

    def _reachable(self, a: str, b: str) -> bool:
        if self._nodes[a].replica is None or self._nodes[b].replica is None:
            return False
        return self._network.connected(a, b)

    def _send(self, src: str, effect: Send) -> None:
        kind = type(effect.message).__name__
        data = wire.encode(effect.message)
        self.stats.sent[kind] += 1
        self.stats.bytes_sent += len(data)
        dst = effect.peer
        if dst == src or dst not in self._nodes:
            self.anomalies.append(f"{src}: Send {kind} to {dst!r}, not a peer")
            self.stats.dropped[kind] += 1
            return
        if not self._reachable(src, dst):
            self.stats.dropped[kind] += 1
            return
        life = (self._nodes[src].life, self._nodes[dst].life)
        for at in self._network.arrivals(src, dst, self.now, kind, self.stats):
            self._queue.push(at, Deliver(src, dst, data, kind, *life))

    def _deliver(self, event: Deliver) -> None:
        src, dst = self._nodes[event.src], self._nodes[event.dst]
        if (
            src.life != event.src_life
            or dst.life != event.dst_life
            or not self._reachable(event.src, event.dst)
        ):
            self.stats.dropped[event.kind] += 1
            return
        try:
            message = wire.decode(event.data, max_size=dst.config.max_message_bytes)
        except RemoteProtocolError as exc:
            self._protocol_error(event, exc)
            return
        self.stats.delivered[event.kind] += 1
        try:
            self._input(
                event.dst,
                lambda r: r.receive(event.src, message, self.now),
                lambda r: r.wants_message(event.src, message),
            )
        except RemoteProtocolError as exc:
            self._protocol_error(event, exc)

    def _fetch(self, event: Fetch) -> None:
        node = self._nodes[event.replica]
        if node.life != event.life or node.replica is None:
            return
        read = event.read
        count = node.config.partitions
        rows, end = node.disk.objects_page(
            read.partition, count, read.after, read.limit, read.max_bytes
        )
        totals = node.disk.count_objects(read.count, count) if read.count else None
        self._input(
            event.replica, lambda r: r.snapshot_page(read, rows, end, self.now, totals=totals)
        )

    def _protocol_error(self, event: Deliver, exc: RemoteProtocolError) -> None:
        self.protocol_errors.append((event.src, event.dst, exc))
        if self._raise_protocol_errors:
            raise SimulationError(
                f"{event.dst} rejected a {event.kind} from {event.src}: {exc}"
            ) from exc

    # ---- internals: timers and failure detection -----------------------------------------

    def _schedule_timer(self, replica_id: str) -> None:
        node = self._nodes[replica_id]
        if node.replica is None:
            return
        deadline = node.replica.next_deadline()
        if deadline is None:
            return
        at = max(deadline, self.now)
        if at in node.timers:
            return
        node.timers.add(at)
        self._queue.push(at, Tick(replica_id, node.life, at))

    def _fire_timer(self, event: Tick) -> None:
        node = self._nodes[event.replica]
        if node.life != event.life or node.replica is None:
            return
        node.timers.discard(event.at)
        deadline = node.replica.next_deadline()
        if deadline is None:
            return
        if deadline > self.now:
            self._schedule_timer(event.replica)
            return
        self._input(event.replica, lambda r: r.tick(self.now))
        after = node.replica.next_deadline() if node.replica is not None else None
        if after is not None and after <= self.now:
            self.anomalies.append(f"{event.replica}: next_deadline() {after} <= now after tick")

    def _all_pairs(self) -> list[tuple[str, str]]:
        return [(a, b) for a in self.ids for b in self.ids if a != b]

    def _pairs_of(self, replica_id: str) -> list[tuple[str, str]]:
        others = [p for p in self.ids if p != replica_id]
        return [(replica_id, p) for p in others] + [(p, replica_id) for p in others]

    def _schedule_detects(self, pairs: list[tuple[str, str]]) -> None:
        at = self.now + self.detect_delay
        self._detector.look_again(pairs, at, self._reachable, lambda a: self.alive(a))

    def _detect(self, observer: str, peer: str) -> None:
        if self._nodes[observer].replica is None:
            return
        reachable = self._reachable(observer, peer)
        if reachable != self.believes_up(observer, peer):
            self._set_believed(observer, peer, reachable)

    def _connect_all(self, observer: str, ids: list[str]) -> None:
        """At start: ``observer`` is told every other replica is up, then drained once (one
        drain for many inputs, as the engine allows: a group of 1,000 replicas is a million
        of them)."""
        replica = self.replica(observer)
        try:
            for peer in ids:
                if peer != observer:
                    self._detector.believe(observer, peer, True)
                    site = self._nodes[peer].site
                    replica.peer_up(peer, self.now, address=f"sim://{peer}", site=site)
        finally:
            self._drain(observer)

    def _set_believed(self, observer: str, peer: str, up: bool) -> None:
        self._detector.believe(observer, peer, up)
        if up:
            site = self._nodes[peer].site
            # A non-home says so in its handshake (homes say nothing: the default).
            extra = {} if self._nodes[peer].config.home else {"home": False}
            self._input(
                observer,
                lambda r: r.peer_up(peer, self.now, address=f"sim://{peer}", site=site, **extra),
            )
        else:
            self._input(observer, lambda r: r.peer_down(peer, self.now))
