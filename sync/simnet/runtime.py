"""How the simulated cluster runs (:class:`SimRuntime`): one fake clock, one event queue,
and each replica's inputs with their effects executed at once, messages delivered through the
network's faults, timers fired and failures detected.

:class:`~sync.simnet.SimCluster` is this runtime plus what a test holds: the constructor's
checks, operations, the reading of states, fault and crash controls, and runs until a
condition. The split is by responsibility, and the dependency points one way: this module
never calls the controls. Each concern behind both owns its state: the fault model
(:mod:`sync.simnet.network`), the event queue (:mod:`sync.simnet.events`), the operation
handles (:mod:`sync.simnet.ops`), the failure detector's beliefs
(:mod:`sync.simnet.detector`) and the disks (:mod:`sync.simnet.disk`).

Knows them, the engine's API and effects and the wire codec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sync import messages as wire
from sync.effects import (
    Changed,
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
from sync.simnet.events import Deliver, EventQueue, Fetch, Node, Tick
from sync.simnet.network import SimNetwork
from sync.simnet.ops import (
    MessageStats,
    OpLedger,
    OpStatus,
    SimReplica,
    SimulationError,
)

__all__ = ["SimRuntime", "Wants"]

Wants = Callable[[SimReplica], tuple[list[str], list[int]]]
"""What an input needs loaded first: ``wants(replica) -> (keys, partitions)``."""


class SimRuntime:
    """The state of a simulation and the loop that advances it, one event at a time (see
    the module docstring). Starts with no replica: the cluster adds them to ``_nodes``."""

    def __init__(
        self,
        *,
        seed: int,
        detect_delay: float,
        latency: tuple[float, float],
        raise_protocol_errors: bool,
    ) -> None:
        self.now = 0.0
        self.seed = seed
        self.detect_delay = detect_delay
        self.stats = MessageStats()
        self.changed: Counter[str] = Counter()
        self.protocol_errors: list[tuple[str, str, RemoteProtocolError]] = []
        self.anomalies: list[str] = []
        self.other_effects: list[tuple[str, Any]] = []
        self._raise_protocol_errors = raise_protocol_errors
        self._network = SimNetwork(seed, latency)
        self._queue = EventQueue()
        self._ledger = OpLedger()
        self._detector = FailureDetector(self._queue)
        self._nodes: dict[str, Node] = {}

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

    # ---- inputs and effects --------------------------------------------------------------

    def _node(self, replica_id: str) -> Node:
        try:
            return self._nodes[replica_id]
        except KeyError:
            raise SimulationError(f"unknown replica {replica_id!r}") from None

    def _input(
        self,
        replica_id: str,
        call: Callable[[SimReplica], object],
        wants: Wants | None = None,
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
        self._lose(replica_id)

    def _lose(self, replica_id: str) -> None:
        """``replica_id`` crashes: its memory, timers, armed crash and pending operations
        are gone, and so are its beliefs; its disk survives."""
        node = self._nodes[replica_id]
        node.replica = None
        node.life += 1
        node.timers.clear()
        node.trap = None
        self._ledger.lose(replica_id, self.now)
        self._detector.forget(replica_id)
        self._schedule_detects(self._pairs_of(replica_id))

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

    # ---- the network ---------------------------------------------------------------------

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

    # ---- timers and failure detection ----------------------------------------------------

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
        if reachable != self._detector.believes_up(observer, peer):
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
                    node = self._nodes[peer]
                    replica.peer_up(
                        peer, self.now, address=f"sim://{peer}", site=node.site, **_said(node)
                    )
        finally:
            self._drain(observer)

    def _set_believed(self, observer: str, peer: str, up: bool) -> None:
        self._detector.believe(observer, peer, up)
        if up:
            site = self._nodes[peer].site
            extra = _said(self._nodes[peer])
            self._input(
                observer,
                lambda r: r.peer_up(peer, self.now, address=f"sim://{peer}", site=site, **extra),
            )
        else:
            self._input(observer, lambda r: r.peer_down(peer, self.now))


def _said(node: Any) -> dict[str, bool]:
    """What ``node``'s handshake says of it beyond its address and site: a non-home and a
    relay say so (the defaults are a home, not a relay)."""
    said = {} if node.config.home else {"home": False}
    if node.config.relay:
        said["relay"] = True
    return said
