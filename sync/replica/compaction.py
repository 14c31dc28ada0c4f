"""Compaction: dropping the log entries every home of their partition has applied.

Causal stability, never a timer alone: for partition ``p`` and origin ``o`` the watermark
is the minimum of ``vv[o]`` over our own summary and the last reported summary of every
other home of ``p``; nothing is compacted while a home has never reported. A replica that
is not a home of ``p`` logs only its own writes there, each also held as a hint for every
home; an entry goes once no hint for it is pending (and never while ``p`` has no home at
all: nobody else has it yet). Local data drops the entries in a ``Persist`` that also
checkpoints their keys.

**A home gone for long** (not seen for ``home_down_window``, see
:meth:`~sync.replica.membership.Membership.gone`) no longer holds compaction back: the
watermark is taken over the other homes. Membership reports it, and hints drop those of our
own writes held for it once the other homes have them. Nothing removed while it was away comes
back when it returns, and it needs neither to discard its state nor to have its dots
refused, because compaction drops *log entries*, never causal knowledge:

* every object state keeps its causal context whole (``crdt.CausalContext`` folds dots into
  its vector, it never drops one: there are no tombstones to expire, unlike the grace
  periods of Cassandra, Riak or Ditto). A remove is recorded as the removed dots being in
  the context with no element carrying them, so joining any state or delta that still
  carries them, however old (the returning home's, a stale hint, a read reply), leaves them
  removed: the join keeps an element's dot only if the other side has not seen it;
* the returning home's summary lacks log dots the others no longer have in their logs, so
  anti-entropy sends it a state transfer (states with their contexts) instead of the log:
  it applies every remove it missed as it joins them;
* what it sends back is only what the others' summaries lack: its own writes they never saw
  (which survive, as any add concurrent with a remove would: add-wins), never a dot they
  have seen.

:class:`Compaction` owns no state; the façade runs it on a timer (a partition whose homes
went quiet would otherwise keep its log for ever), anti-entropy when a peer's summary
changed, and the façade again when a peer is forgotten.

Knows local data, membership and hints.
"""

from __future__ import annotations

from collections.abc import Mapping

from crdt import CausalContext
from sync.config import ReplicaConfig
from sync.replica.hints import Hints
from sync.replica.local_data import LocalData
from sync.replica.log import Logged
from sync.replica.membership import Membership

__all__ = ["COMPACT_EVERY", "Compaction"]

# Seconds between compaction passes when anti-entropy is off (else its interval).
COMPACT_EVERY = 30.0


class Compaction:
    """Computes the watermarks of causal stability and has local data compact below them."""

    __slots__ = ("_config", "_data", "_hints", "_me", "_membership")

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        data: LocalData,
        membership: Membership,
        hints: Hints,
    ) -> None:
        self._config = config
        self._me = replica_id
        self._data = data
        self._membership = membership
        self._hints = hints

    def interval(self) -> float:
        """Seconds between two compaction passes."""
        return float(self._config.anti_entropy_interval or 0.0) or COMPACT_EVERY

    def compact_all(self, now: float) -> None:
        gone = set(self._membership.gone(now))
        for p in self._data.log.partitions():
            self.compact(p, now, gone)

    def compact(self, p: int, now: float, gone: set[str] | None = None) -> None:
        """Compact partition ``p`` as far as causal stability allows (``gone``: the homes
        gone for long at ``now``, computed if not given)."""
        homes = self._membership.ring().preference_list(p)
        mine = self._data.summary_if_any(p)
        log_p = self._data.log.of(p)
        if mine is None or not log_p:
            return
        if self._me in homes:
            if gone is None:
                gone = set(self._membership.gone(now))
            marks = self._home_watermarks(p, homes, mine, log_p, gone)
        elif not homes:
            return  # no home at all (a lone non-home): nobody else has our writes yet
        elif self._config.relay:
            # A relay logs every partition its peers are homes of (it takes part in their
            # anti-entropy): what every home has applied goes, as at a home; our own
            # entries also wait for their hints.
            if gone is None:
                gone = set(self._membership.gone(now))
            marks = self._home_watermarks(p, homes, mine, log_p, gone)
            if marks is None:
                return
            own = self._own_watermark(p, log_p)
            if self._me in own:
                marks[self._me] = min(marks.get(self._me, 0), own[self._me])
        else:
            marks = self._own_watermark(p, log_p)
        if marks is None:
            return
        self._data.compact(p, marks)

    def _home_watermarks(
        self,
        p: int,
        homes: tuple[str, ...],
        mine: CausalContext,
        log_p: Mapping[str, Mapping[int, Logged]],
        gone: set[str],
    ) -> dict[str, int] | None:
        """Per origin, what every home of ``p`` (but the ``gone`` ones) has applied (causal
        stability); None while such a home never reported its summary.

        A home we do not reach, while a relay is up here (not being one ourselves), counts
        as holding what that relay holds of ``p``: devices behind NAT never hear each other,
        and the relay, which holds every partition its peers are homes of, takes what it
        holds to them (and compacts its own log only once they have it)."""
        membership = self._membership
        up = membership.up
        stand_in: CausalContext | None = None
        if not self._config.relay:
            for relay in membership.up_relays():
                stand_in = membership.reported_summary(relay, p)
                if stand_in is not None:
                    break
        ctxs = [mine]
        for h in homes:
            if h == self._me or h in gone:
                continue
            theirs = membership.peer_summary(h, p)
            if stand_in is not None and h not in up:
                theirs = stand_in
            if theirs is None:
                return None  # a home that never reported: nothing is stable yet
            ctxs.append(theirs)
        return {origin: min(c.vv.get(origin, 0) for c in ctxs) for origin in log_p}

    def _own_watermark(self, p: int, log_p: Mapping[str, Mapping[int, Logged]]) -> dict[str, int]:
        """A replica that is not a home of ``p`` logs only its own writes there, each also held
        as a hint for every home; an entry may go once no hint for it is pending (every home
        acknowledged it). Entries of other origins (left from a ring change) stay."""
        own = log_p.get(self._me)
        if not own:
            return {}
        pending = self._hints.own_pending(p)
        return {self._me: min(pending) - 1 if pending else max(own)}
