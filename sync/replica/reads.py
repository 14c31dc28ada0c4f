"""Reads: asking the homes of a key, joining their replies, and read repair.

:meth:`Reads.start` reads one object, named by its key and kind. It asks this replica (when
its reply counts: the rule of writes) and each home up (sloppy mode: a fallback for each
home down), joins the replies as they come, and
completes with ``ReadDone`` at ``required`` replies. From then on every replier whose state
differs from the join is repaired (``Repair``), late repliers too, until all replied or the
deadline passed; the join is merged here and checkpointed. Fewer than ``required`` replies
at the deadline, or once nobody else can reply: ``ReadFailed`` with what came. As a write
does (:mod:`sync.replica.writes`), a read short of replies waits while links are still
being dialled (:meth:`Reads.links_connecting`) and asks a peer that comes up if it counts
now (:meth:`Reads.peer_up`).

It also answers the ``ReadReq`` of other replicas.

Knows the outbox, the timers, local data and membership.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crdt import CRDT
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import ReadDone, ReadFailed, Send
from sync.replica.local_data import LocalData
from sync.replica.membership import Membership
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers

__all__ = ["PendingRead", "Reads"]


def _nobody(failures: Mapping[str, str]) -> str:
    """Why no other replica that counts can reply, with the dials that failed (if any)."""
    why = "; ".join(f"the link to {url} failed: {cause}" for url, cause in failures.items())
    return "no other replica that counts can reply" + (f" ({why})" if why else "")


@dataclass(slots=True)
class PendingRead:
    """A read waiting for replies (or, once done, for the late repliers to repair)."""

    op_id: int
    key: str
    kind: str
    required: int
    site: str | None
    timeout: float
    partition: int = 0
    strict: bool = False
    asked: set[str] = field(default_factory=set)  # remote peers still expected to reply
    reqs: list[tuple[str, int]] = field(default_factory=list)  # (peer, req_id) sent
    known: dict[str, CRDT | None] = field(default_factory=dict)  # replier -> its state
    counted: list[str] = field(default_factory=list)
    joined: CRDT | None = None
    done: bool = False
    repaired: list[str] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)  # homes down that a fallback stands in for


class Reads:
    """The reads coordinated here, and the requests they sent."""

    __slots__ = (
        "_config",
        "_connecting",
        "_data",
        "_emit",
        "_failures",
        "_me",
        "_membership",
        "_outbox",
        "_pending",
        "_requests",
        "_timers",
        "pending",
    )

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        outbox: Outbox,
        timers: Timers,
        data: LocalData,
        membership: Membership,
    ) -> None:
        self._config = config
        self._me = replica_id
        self._outbox = outbox
        self._emit = outbox.emit
        self._timers = timers
        self._data = data
        self._membership = membership
        self._pending: dict[int, PendingRead] = {}
        #: The reads pending, by op id (read only: a view of what this owns).
        self.pending: Mapping[int, PendingRead] = self._pending
        self._requests: dict[tuple[str, int], int] = {}  # (peer, req_id) -> op id
        self._connecting = 0  # links the adapter is still dialling
        self._failures: dict[str, str] = {}  # dialled URLs known down, with why

    def __len__(self) -> int:
        return len(self._pending)

    def start(
        self,
        op_id: int,
        key: str,
        kind: str,
        partition: int,
        homes: tuple[str, ...],
        required: int,
        site: str | None,
        strict: bool,
        timeout: float,
        now: float,
    ) -> None:
        """Read the object ``(key, kind)``: answer locally when it counts, ask the others."""
        me, membership = self._me, self._membership
        rd = PendingRead(op_id, key, kind, required, site, timeout, partition, strict)
        self._pending[op_id] = rd
        if (me in homes or not strict) and membership.site_ok(site, me):
            local = self._data.get(key, kind)
            rd.known[me] = local.copy() if local is not None else None
            rd.counted.append(me)
            rd.joined = local.copy() if local is not None else None
        chosen = set(homes) | {me}
        for home in homes:
            if home == me:
                continue
            ask = home if home in membership.up else None
            if ask is None and not strict:
                ask = membership.pick_fallback(partition, chosen)
                if ask is not None:
                    chosen.add(ask)
                    rd.covered.add(home)
            if ask is not None:
                self._ask(rd, ask)
        self._timers.set(Timer(TimerKind.READ, op_id), now + timeout)
        self._progress(rd)

    def _ask(self, rd: PendingRead, peer: str) -> None:
        req_id = self._outbox.new_id()
        self._requests[(peer, req_id)] = rd.op_id
        rd.reqs.append((peer, req_id))
        rd.asked.add(peer)
        self._emit(Send(peer, m.ReadReq(req_id=req_id, key=rd.key, kind=rd.kind)))

    def links_connecting(self, count: int, failures: Mapping[str, str]) -> None:
        """The adapter is dialling ``count`` links whose replicas are not up yet; the dials
        in ``failures`` failed (URL -> why). A read with nobody left to ask waits while
        ``count`` is above 0, and fails now once it drops to 0."""
        self._connecting = count
        self._failures = dict(failures)
        if not count:
            for rd in sorted(self._pending.values(), key=lambda r: r.op_id):
                if not rd.asked:
                    self._progress(rd)

    def peer_up(self, peer: str) -> None:
        """``peer`` came up: every read short of replies asks it if it counts now (a home of
        the key, or in sloppy mode the fallback of a home that is down)."""
        membership = self._membership
        for rd in sorted(self._pending.values(), key=lambda r: r.op_id):
            if rd.done or peer in rd.asked or peer in rd.known:
                continue
            could = sum(1 for p in rd.asked if membership.site_ok(rd.site, p))
            if len(rd.counted) + could >= rd.required or not membership.site_ok(rd.site, peer):
                continue
            homes = membership.ring().preference_list(rd.partition)
            if peer not in homes:
                if rd.strict:
                    continue
                up = membership.up
                down = [h for h in homes if h != self._me and h not in up and h not in rd.covered]
                if not down:
                    continue
                rd.covered.add(down[0])
            self._ask(rd, peer)

    def expected(self, peer: str, req_id: int) -> PendingRead | None:
        """The pending read that asked ``peer`` with ``req_id`` (None: late or unknown)."""
        op_id = self._requests.get((peer, req_id))
        return self._pending.get(op_id) if op_id is not None else None

    def answer(self, peer: str, msg: m.ReadReq) -> None:
        """Reply to another replica's ``ReadReq`` with our state of the object it names."""
        obj = self._data.get(msg.key, msg.kind)
        state = obj.to_dict() if obj is not None else None
        reply = m.ReadResp(req_id=msg.req_id, key=msg.key, kind=msg.kind, state=state)
        self._emit(Send(peer, reply))

    def on_reply(self, peer: str, msg: m.ReadResp, state: CRDT | None) -> None:
        """``peer`` replied ``state`` (checked) to one of our requests."""
        op_id = self._requests.pop((peer, msg.req_id), None)
        rd = self._pending.get(op_id) if op_id is not None else None
        if rd is None:
            return  # late, after the read ended
        rd.asked.discard(peer)
        rd.known[peer] = state
        if self._membership.site_ok(rd.site, peer):
            rd.counted.append(peer)
        if state is not None:
            if rd.joined is None:
                rd.joined = state.copy()
            else:
                rd.joined.merge(state)
        if rd.done:
            self._repair(rd)
        self._progress(rd)

    def peer_down(self, peer: str) -> None:
        """Stop waiting for ``peer``: a read that can no longer reach its replies fails now."""
        for rd in list(self._pending.values()):
            if peer in rd.asked:
                rd.asked.discard(peer)
                self._progress(rd)

    def expire(self, op_id: int) -> None:
        """Read ``op_id`` reached its deadline (if still pending)."""
        rd = self._pending.get(op_id)
        if rd is not None:
            if rd.done:
                self._end(rd)
            else:
                self._fail(rd, f"timed out after {rd.timeout:g}s")

    def _progress(self, rd: PendingRead) -> None:
        if not rd.done and len(rd.counted) >= rd.required:
            rd.done = True
            self._repair(rd)
            state = rd.joined.copy() if rd.joined is not None else None
            self._emit(ReadDone(rd.op_id, rd.key, state, len(rd.counted), tuple(rd.repaired)))
        if not rd.asked:
            if rd.done:
                self._end(rd)
            elif not self._connecting:
                self._fail(rd, _nobody(self._failures))

    def _repair(self, rd: PendingRead) -> None:
        joined = rd.joined
        if joined is None:
            return
        me = self._me
        self._data.merge_state(rd.key, joined)
        if me in rd.known:
            rd.known[me] = joined.copy()
        for peer, state in list(rd.known.items()):
            if peer == me or state == joined:
                continue
            self._emit(Send(peer, m.Repair(key=rd.key, kind=rd.kind, state=joined.to_dict())))
            rd.known[peer] = joined.copy()
            if peer not in rd.repaired:
                rd.repaired.append(peer)

    def _fail(self, rd: PendingRead, why: str) -> None:
        self._end(rd)
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

    def _end(self, rd: PendingRead) -> None:
        self._pending.pop(rd.op_id, None)
        self._timers.cancel(Timer(TimerKind.READ, rd.op_id))
        for req in rd.reqs:
            self._requests.pop(req, None)
