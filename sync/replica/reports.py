"""Reports: what a replica says of itself, read from its components; changes nothing.

:class:`Reports` answers the two questions an operator or an application asks of a
replica, neither of which any one component can answer alone:

* **Health** (:meth:`Reports.status`, behind ``Replica.status`` and the adapters'
  ``/status`` and metrics): objects and log size (local data), hints per target (and the
  pushed entries for another replica not held as hints, the bytes of the hints held for
  others and of our own, and those dropped past their bounds), the peers known and up, how far
  behind each peer's last summary is (its *lag*: the log entries of the partitions we share
  that it lacks), siblings and kind clashes, the writes and reads pending, the writes set
  aside for clock skew, our own entries not yet known to be at every home (propagation), the
  catch-ups under way and the homes gone for long.
* **Whereabouts** (:meth:`Reports.whereabouts`, behind ``Replica.whereabouts``): where a
  write, or every write of a key still in the log, is durable now; the log dots are found
  in local data, and propagation says who holds them
  (:class:`~sync.replica.propagation.Whereabouts`).

The status dictionary is what :mod:`sync.transport.status` reports as ``engine`` (in
``peer.status()`` and ``GET /status``), and its metrics read it: its shape is behaviour.

Knows local data, membership, equivocation, propagation, hints, writes, reads, transfer and
anti-entropy.
"""

from __future__ import annotations

from typing import Any

from crdt import CausalContext, Dot
from sync.effects import LogDot
from sync.replica.anti_entropy import AntiEntropy
from sync.replica.equivocation import Equivocations
from sync.replica.hints import Hints
from sync.replica.local_data import LocalData
from sync.replica.membership import Membership
from sync.replica.propagation import Propagation, Whereabouts
from sync.replica.reads import Reads
from sync.replica.transfer import Progress
from sync.replica.writes import Writes

__all__ = ["Reports"]

_EMPTY_CTX = CausalContext()


class Reports:
    """A replica's health and where its writes are, read from its components."""

    __slots__ = (
        "_anti_entropy",
        "_data",
        "_equivocations",
        "_hints",
        "_me",
        "_membership",
        "_progress",
        "_propagation",
        "_reads",
        "_writes",
    )

    def __init__(
        self,
        replica_id: str,
        data: LocalData,
        membership: Membership,
        propagation: Propagation,
        hints: Hints,
        writes: Writes,
        reads: Reads,
        progress: Progress,
        anti_entropy: AntiEntropy,
        equivocations: Equivocations,
    ) -> None:
        self._me = replica_id
        self._equivocations = equivocations
        self._data = data
        self._membership = membership
        self._propagation = propagation
        self._hints = hints
        self._writes = writes
        self._reads = reads
        self._progress = progress
        self._anti_entropy = anti_entropy

    def status(self, now: float) -> dict[str, Any]:
        """The health snapshot of ``Replica.status`` (see the module docstring)."""
        data, membership = self._data, self._membership
        lag: dict[str, int] = {}
        for pid, theirs in membership.reported_summaries():
            lag[pid] = sum(
                _count_not_in(data.summary(p), theirs.get(p, _EMPTY_CTX))
                for p in membership.shared_partitions(pid)
            )
        siblings = data.siblings()
        return {
            "replica_id": self._me,
            "objects": len(data),
            "log_size": data.log.size,
            "hints": self._hints.counts(),
            "hints_not_held": self._hints.not_held,
            "hint_bytes": self._hints.held_bytes,
            "hints_dropped": self._hints.dropped,
            "own_hint_bytes": self._hints.own_bytes,
            "peers_up": membership.up_peers(),
            "peers_known": membership.members(),
            "members_not_learned": membership.not_learned,
            "lag": lag,
            "siblings": siblings,
            "cache_bytes": data.cache_bytes,
            "kind_clashes": {k: list(kinds) for k, kinds in data.clashes().items()},
            "pending_writes": len(self._writes),
            "pending_reads": len(self._reads),
            "clock_skew": membership.skews(),
            "equivocations": self._equivocations.counts(),
            "pending_propagation": self._propagation.pending(data.log.own_seqs()),
            "catching_up": self._progress.status(),
            "transfer_buffered": self._anti_entropy.buffered(),
            "forgotten": membership.forgotten(),
            "non_homes": membership.non_homes(),
            "homes_down": {p: round(d, 3) for p, d in membership.gone(now).items()},
        }

    def whereabouts(self, key: str, dot: LogDot | None) -> Whereabouts:
        """Where the write ``dot`` of ``key`` (or, None, every write of ``key`` still in the
        log) is durable now; ``KeyError``/``ValueError`` as ``Replica.whereabouts`` says."""
        data = self._data
        p = data.partition(key)
        if dot is not None:
            origin, partition, seq = dot
            if partition != p:
                raise ValueError(f"{dot!r} is not a log dot of {key!r} (partition {p})")
            if not data.summary(p).contains(Dot(origin, seq)):
                raise KeyError(f"{dot!r} was never applied here")
            found = data.log.entry(p, origin, seq)
            if found is not None and found.key != key:
                raise ValueError(f"{dot!r} is a write to {found.key!r}, not to {key!r}")
            dots = (LogDot(origin, p, seq),)
            return self._propagation.whereabouts(key, p, dots, True, found is None)
        logged = data.log.keys_of(p)
        mine = tuple(
            LogDot(origin, p, seq)
            for origin in sorted(logged)
            for seq, k in sorted(logged[origin].items())
            if k == key
        )
        if not mine and not data.kinds_of(key):
            raise KeyError(f"{key!r} is not held here (or not in memory: name a write)")
        return self._propagation.whereabouts(key, p, mine, True, not mine)


def _count_not_in(ours: CausalContext, theirs: CausalContext) -> int:
    """How many dots of ``ours`` ``theirs`` lacks: ``sum(1 for _ in ours.dots_not_in(theirs))``
    in O(replicas + cloud sizes).

    Counted, not walked: a summary may claim any run of dots (a snapshot's may lie, up to
    ``2**63 - 1`` of them), and status runs on the adapter's event loop. Per replica, ours
    holds every counter up to ``ours.vv[r]``: theirs lacks those above ``theirs.vv[r]``, less
    their cloud dots in that range; then each of our cloud dots theirs lacks.
    """
    ovv = ours.vv
    tvv = theirs.vv
    count = sum(n - tvv.get(r, 0) for r, n in ovv.items() if n > tvv.get(r, 0))
    for r, c in theirs.cloud:
        if tvv.get(r, 0) < c <= ovv.get(r, 0):
            count -= 1
    return count + sum(1 for d in ours.cloud if not theirs.contains(d))
