"""Propagation: which peers are known to hold which log dots, and where a write is now.

What this replica knows of another peer's log comes from two sources, and is kept per peer
and partition as causal contexts of log dots, never per write:

* its **reported summary** (anti-entropy), which membership keeps: the log dots it had
  applied when it sent it;
* the **acks** it sent since: a peer that acknowledged a ``Push`` has made its entries
  durable, as a home (it applied them) or, for a push with ``hint_for``, as a fallback
  holding them as hints for that home (a relay, usually).

:class:`Propagation` owns the second: per peer and partition the dots it acknowledged and
its last summary does not hold (a summary that covers them replaces them), and per holder,
target and partition the dots it acknowledged holding as hints (forgotten once the target is
known to hold them). Both are compact contexts whose size is that of their gaps, so the
memory they take does not grow with the number of writes.

:meth:`Propagation.whereabouts` answers "where is this write durable now" for a set of log
dots of one key: here, at which of the key's homes, at which hint holders
(:class:`Whereabouts`); :meth:`Propagation.pending` counts this replica's own log entries
not yet known to be at every home of their partition. A log entry that compaction dropped
was, by construction, at every home (causal stability; a replica that is not a home drops
its own entries once every home acknowledged them).

Knows membership.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from crdt import CausalContext, Dot
from crdt.causal_context import context_of
from sync.effects import LogDot, LogEntry
from sync.replica.membership import Membership

__all__ = ["Propagation", "Whereabouts"]


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """Where a write (or every write of a key still in the log) is durable, as this replica
    knows it now.

    ``dots``: the log dots described (empty: compacted long ago, so at every home). ``here``:
    applied (and so durable) on this replica. ``homes``: the key's home replicas in this
    replica's view of the ring; ``at_homes``: those known to hold every dot (this replica
    included when it is a home). ``hints``: other peers known to hold them as hints for a
    home that lacks them (a relay or another fallback). ``everywhere``: every home holds
    them, so nothing is left to propagate.
    """

    key: str
    dots: tuple[LogDot, ...]
    here: bool
    homes: tuple[str, ...]
    at_homes: tuple[str, ...]
    hints: tuple[str, ...]

    @property
    def everywhere(self) -> bool:
        return len(self.at_homes) == len(self.homes)


class Propagation:
    """What peers acknowledged holding, since their last summaries; where dots are."""

    __slots__ = ("_acked", "_hinted", "_me", "_membership")

    def __init__(self, replica_id: str, membership: Membership) -> None:
        self._me = replica_id
        self._membership = membership
        # peer -> partition -> dots it acknowledged (applied) beyond its last summary
        self._acked: dict[str, dict[int, CausalContext]] = {}
        # holder -> target -> partition -> dots it acknowledged holding as hints for target
        self._hinted: dict[str, dict[str, dict[int, CausalContext]]] = {}

    # -- what peers tell us --------------------------------------------------------------
    def acked(self, peer: str, entries: Iterable[LogEntry], hint_for: str | None) -> None:
        """``peer`` acknowledged a push of ``entries`` (as hints for ``hint_for``, if set)."""
        if hint_for is None:
            parts = self._acked.get(peer)
            if parts is None:
                parts = self._acked[peer] = {}
        else:
            parts = self._hinted.setdefault(peer, {}).setdefault(hint_for, {})
        for e in entries:
            origin, seq, p = e.origin, e.seq, e.partition
            ctx = parts.get(p)
            if ctx is None:
                ctx = parts[p] = CausalContext()
            vv = ctx.vv
            if not ctx.cloud and seq == vv.get(origin, 0) + 1:
                vv[origin] = seq  # the common case of CausalContext.add: the next dot
            else:
                ctx.add(Dot(origin, seq))

    def reported(self, peer: str, theirs: Mapping[int, CausalContext]) -> None:
        """``peer`` reported summaries ``theirs`` (stored by membership): the dots they hold
        need no record of their own any more, nor as hints held for ``peer``."""
        acked = self._acked.get(peer)
        if acked:
            for p, ctx in theirs.items():
                _forget(acked, p, ctx)
            if not acked:
                del self._acked[peer]
        for holder in list(self._hinted):
            targets = self._hinted[holder]
            held = targets.get(peer)
            if held:
                for p, ctx in theirs.items():
                    _forget(held, p, ctx)
                if not held:
                    del targets[peer]
            if not targets:
                del self._hinted[holder]

    def forget(self, peer: str) -> None:
        """``peer`` is forgotten: nothing it holds counts any more."""
        self._acked.pop(peer, None)
        self._hinted.pop(peer, None)
        for holder in list(self._hinted):
            self._hinted[holder].pop(peer, None)
            if not self._hinted[holder]:
                del self._hinted[holder]

    # -- questions -------------------------------------------------------------------------
    def holds(self, peer: str, partition: int, dots: Iterable[Dot]) -> bool:
        """Is ``peer`` known to have applied every one of ``dots`` of ``partition``?"""
        summary = self._membership.peer_summary(peer, partition)
        acked = self._acked.get(peer, {}).get(partition)
        for d in dots:
            if (summary is None or not summary.contains(d)) and (
                acked is None or not acked.contains(d)
            ):
                return False
        return True

    def whereabouts(
        self,
        key: str,
        partition: int,
        dots: tuple[LogDot, ...],
        here: bool,
        compacted: bool,
    ) -> Whereabouts:
        """Where ``dots`` (log dots of ``key`` in ``partition``) are known to be durable.

        ``here``: this replica applied them all. ``compacted``: they are no longer in the
        log, so every home holds them.
        """
        homes = self._membership.ring().preference_list(partition)
        me = self._me
        if compacted:
            return Whereabouts(key, dots, here, homes, homes, ())
        pairs = [Dot(d.origin, d.seq) for d in dots]
        at_homes = tuple(h for h in homes if (here if h == me else self.holds(h, partition, pairs)))
        lacking = [h for h in homes if h not in at_homes]
        hints = tuple(
            sorted(
                holder
                for holder, targets in self._hinted.items()
                if any(_has(targets.get(h, {}).get(partition), pairs) for h in lacking)
            )
        )
        return Whereabouts(key, dots, here, homes, at_homes, hints)

    def pending(self, own: Mapping[int, Iterable[int]]) -> int:
        """How many of this replica's own log entries (``own``: per partition, the seqs
        still in the log) are not yet known to be at every home of their partition."""
        me, ring = self._me, self._membership.ring()
        count = 0
        for p, seqs in own.items():
            others = [h for h in ring.preference_list(p) if h != me]
            if not others:
                continue
            floor = min(self._floor(h, p) for h in others)
            for seq in seqs:
                if seq > floor and not all(self.holds(h, p, [Dot(me, seq)]) for h in others):
                    count += 1
        return count

    def _floor(self, peer: str, partition: int) -> int:
        """Every seq of ours up to this is known to be held by ``peer`` in ``partition``."""
        summary = self._membership.peer_summary(peer, partition)
        acked = self._acked.get(peer, {}).get(partition)
        me = self._me
        return max(
            summary.vv.get(me, 0) if summary is not None else 0,
            acked.vv.get(me, 0) if acked is not None else 0,
        )


def _forget(parts: dict[int, CausalContext], partition: int, covered: CausalContext) -> None:
    """Leave in ``parts[partition]`` only what ``covered`` (a newer summary) does not hold.

    The summary first fills the record's gaps (so it stays compact), then every origin the
    summary holds up to the record's highest dot is dropped; the entry goes once empty.
    """
    ctx = parts.get(partition)
    if ctx is None:
        return
    top: dict[str, int] = dict(ctx.vv)
    for r, c in ctx.cloud:
        if c > top.get(r, 0):
            top[r] = c
    seen = covered.vv
    fill = context_of(d for d in covered.cloud if d[0] in top)
    for r, n in seen.items():
        if r in top and n > fill.vv.get(r, 0):
            fill.vv[r] = n
    fill.compact()
    ctx.merge(fill)
    for r, c in top.items():
        if seen.get(r, 0) >= c:
            ctx.vv.pop(r, None)
            ctx.cloud = {d for d in ctx.cloud if d[0] != r}
    if ctx.is_bottom():
        del parts[partition]


def _has(ctx: CausalContext | None, dots: list[Dot]) -> bool:
    return ctx is not None and all(ctx.contains(d) for d in dots)
