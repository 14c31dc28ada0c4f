"""The simulated cluster (:class:`SimCluster`): what a test holds and calls (the theory of
operation is the package's docstring, :mod:`sync.simnet`).

It checks its arguments, starts the replicas, and gives a test the operations (``update``,
``read``, ``forget``...), the reading of what each replica holds (:mod:`sync.simnet.states`),
the fault and crash controls (the fault model itself is :mod:`sync.simnet.network`) and runs
until a condition. Running the replicas (inputs, effects, deliveries, timers, failure
detection) is the runtime's, :mod:`sync.simnet.runtime`, which this class extends.

Knows the runtime and the components behind it, and the engine's config and records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal

from crdt import CRDT
from sync.config import ReplicaConfig
from sync.effects import Loaded, PeerRecord
from sync.simnet.disk import SimDisk
from sync.simnet.events import Node, Trap
from sync.simnet.network import check_delay, check_probability
from sync.simnet.ops import MessageStats, ReplicaFactory, SimOp, SimReplica, SimulationError
from sync.simnet.runtime import SimRuntime, Wants
from sync.simnet.states import canonical_held, kinds_held, state_held

__all__ = ["SimCluster"]


def _default_factory(
    config: ReplicaConfig, replica_id: str, loaded: Loaded | None, now: float
) -> SimReplica:
    from sync.replica import Replica  # late: sync.replica may import this package's modules

    return Replica(config, replica_id, loaded, now=now)


class SimCluster(SimRuntime):
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
        super().__init__(
            seed=seed,
            detect_delay=detect_delay,
            latency=latency,
            raise_protocol_errors=raise_protocol_errors,
        )
        self.keys: set[str] = set()
        self._factory = factory
        self._check_compaction = check_compaction
        self._default_config = config if isinstance(config, ReplicaConfig) else ReplicaConfig()
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

    def unforget(self, replica_id: str, peer_id: str) -> None:
        """Operator action on ``replica_id``: undo :meth:`forget` of ``peer_id``. (The
        simulated links are not reset: restart a replica for the handshake a real re-dial
        makes.)"""
        self._node(peer_id)
        self._input(replica_id, lambda r: r.unforget(peer_id, self.now))

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

    def cut(self, a: str | None, b: str | None) -> None:
        """Cut the links between ``a`` and ``b`` (None: any replica) both ways, as between
        two devices behind NAT: nothing crosses, and each sees the other down after
        ``detect_delay``, until :meth:`heal`. Unlike :meth:`partition`, cuts need not split
        the replicas into groups (two devices may each reach a relay, not each other)."""
        pairs = self._pairs(a, b, False)
        self._network.cut(pairs)
        self._schedule_detects(pairs)

    def heal(self) -> None:
        """Remove the partition, the cuts and every message fault (drop, delay, duplicate,
        reorder)."""
        self._network.heal()
        self._schedule_detects(self._all_pairs())

    def crash(self, replica_id: str) -> None:
        """The replica loses its memory and its unexecuted effects; its disk survives."""
        if self._node(replica_id).replica is None:
            raise SimulationError(f"replica {replica_id!r} is already down")
        self._lose(replica_id)

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

    # ---- internals -----------------------------------------------------------------------

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
        self, op: SimOp, call: Callable[[SimReplica], object], wants: Wants | None = None
    ) -> None:
        try:
            self._input(op.replica, call, wants)
        except BaseException:
            self._ledger.withdraw(op)
            raise

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
