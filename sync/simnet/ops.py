"""What a simulation test holds: operation handles (and the ledger of those issued), message
counters and the error type.

Knows the engine's API (:class:`~sync.replica.ReplicaAPI`) and its effects only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from crdt import CRDT
from sync.config import ReplicaConfig
from sync.effects import Loaded, ReadDone, ReadFailed, WriteDone, WriteFailed, WriteResult
from sync.errors import SyncError
from sync.replica import ReplicaAPI

__all__ = [
    "MessageStats",
    "OpLedger",
    "OpStatus",
    "ReplicaFactory",
    "SimOp",
    "SimReplica",
    "SimulationError",
]


class SimulationError(SyncError):
    """The simulation was asked for something impossible (unknown replica, bad partition,
    a replica that is down) or saw its own bound exceeded. Nothing changed."""


# What the simulator needs of a replica: the engine API (stand-ins implement it too).
SimReplica = ReplicaAPI

ReplicaFactory = Callable[[ReplicaConfig, str, Loaded | None, float], SimReplica]
"""Builds a replica: ``factory(config, replica_id, loaded, now)``."""


OpStatus = Literal["pending", "done", "failed", "lost"]


@dataclass(slots=True)
class SimOp:
    """A handle on one ``update`` or ``read``.

    ``status``: ``pending`` until the engine answers; ``done`` (``WriteDone``/``ReadDone``),
    ``failed`` (``WriteFailed``/``ReadFailed``), or ``lost`` (the coordinator crashed first:
    the caller never heard back, so the operation is *not* acknowledged).
    """

    op_id: int
    kind: Literal["write", "read"]
    replica: str
    key: str
    issued_at: float
    status: OpStatus = "pending"
    outcome: WriteDone | WriteFailed | ReadDone | ReadFailed | None = None
    completed_at: float | None = None

    @property
    def done(self) -> bool:
        """The operation is over (whatever the outcome)."""
        return self.status != "pending"

    @property
    def ok(self) -> bool:
        """The operation reached its quorum (an acknowledged write, a successful read)."""
        return self.status == "done"

    @property
    def result(self) -> WriteResult | None:
        """For a write that completed or failed: who acknowledged it."""
        if isinstance(self.outcome, WriteDone | WriteFailed):
            return self.outcome.result
        return None

    @property
    def state(self) -> CRDT | None:
        """For a read that completed or failed: the joined state (None if nobody had the key)."""
        if isinstance(self.outcome, ReadDone | ReadFailed):
            return self.outcome.state
        return None


Outcome = WriteDone | WriteFailed | ReadDone | ReadFailed


class OpLedger:
    """Every operation issued (``ops``, in order) and those still waiting for the engine's
    answer. Completing an operation that is not pending is the engine's mistake: it is
    reported (as text, for the cluster's ``anomalies``), never raised."""

    def __init__(self) -> None:
        self.ops: list[SimOp] = []
        self._pending: dict[int, SimOp] = {}
        self._next_id = 1

    @property
    def idle(self) -> bool:
        """No operation is pending."""
        return not self._pending

    def open(self, kind: Literal["write", "read"], replica_id: str, key: str, now: float) -> SimOp:
        """A new pending operation of ``replica_id``."""
        op = SimOp(self._next_id, kind, replica_id, key, now)
        self._next_id += 1
        self._pending[op.op_id] = op
        self.ops.append(op)
        return op

    def withdraw(self, op: SimOp) -> None:
        """Forget ``op`` as if it had never been issued (the engine refused the call)."""
        if op.status == "pending":
            del self._pending[op.op_id]
        self.ops.remove(op)

    def finish(self, replica_id: str, effect: Outcome, status: OpStatus, now: float) -> str | None:
        """Complete the operation ``effect`` answers; what is wrong with it, if anything."""
        op = self._pending.get(effect.op_id)
        if op is None or op.replica != replica_id:
            return f"{replica_id}: {type(effect).__name__} for no pending op"
        expected = "write" if isinstance(effect, WriteDone | WriteFailed) else "read"
        self._complete(op, status, effect, now)
        if op.kind != expected:
            return f"{replica_id}: {type(effect).__name__} for a {op.kind}"
        return None

    def lose(self, replica_id: str, now: float) -> None:
        """``replica_id`` crashed: the operations it coordinated are lost."""
        for op in sorted(self._pending.values(), key=lambda o: o.op_id):
            if op.replica == replica_id:
                self._complete(op, "lost", None, now)

    def _complete(self, op: SimOp, status: OpStatus, effect: Outcome | None, now: float) -> None:
        op.status = status
        op.outcome = effect
        op.completed_at = now
        del self._pending[op.op_id]


@dataclass(slots=True)
class MessageStats:
    """Message counters by message type name (``"Push"``, ``"Summary"``...)."""

    sent: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    bytes_sent: int = 0
    effects_lost: int = 0
    loads: int = 0  # inputs that needed objects loaded from the disk first
    pages_read: int = 0  # ReadPage effects answered from a disk (state transfers)

    def total_sent(self) -> int:
        return sum(self.sent.values())
