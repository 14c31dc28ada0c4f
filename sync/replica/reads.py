"""Reads: asking replicas of a key for a digest, fetching what differs, and read repair.

:meth:`Reads.start` reads one object, named by its key and kind, from ``required``
replicas. This replica answers at once when its reply counts (the rule of writes: it is a
home, or the read is sloppy; and of the read's site); the others are asked only as many as
the read still needs: ``r=1`` at a replica that counts is local, no message. They are the
up homes of the key in preference order (sloppy mode: for a home that is down, a fallback),
and, under ``LOCAL_QUORUM``, only replicas of the read's site.

Each one is asked for a *digest* of its state of the object (``ReadDigest``, carrying ours:
:mod:`sync.digest`) and answers (``ReadDigestResp``) whether it is the same; if not,
with its causal context (the causal kinds: sets, multi-value registers, maps) or its whole
state (counters, LWW registers). From a replica that sent its context we fetch the part of
its state that ours has not seen (``ReadFetch`` carrying our context, answered by a
``ReadResp``), even when its context holds no dot ours lacks: a remove makes no dot, so a
replica that removed what we hold has our context, and only the part says so (it carries
the removed dots: :func:`~sync.digest.part_holds`). The replies are joined as they come;
the read completes with ``ReadDone`` at ``required`` replies, and every replier whose state
differs from the join (a context short of it, or a dot held that the join removed) is sent
a ``Repair``: the part of the join it has not seen (from its context) for the causal kinds,
the whole join for the others. Late repliers are repaired too, until all replied or the
deadline passed; the join is merged here and checkpointed. A replier that goes down is
replaced by the next replica that counts, if any. Fewer than ``required`` replies at the
deadline, or once nobody else can reply: ``ReadFailed`` with what came. As a write does
(:mod:`sync.replica.writes`), a read short of replies waits while links are still being
dialled (:meth:`Reads.dials_changed`) and asks a peer that comes up if it counts now
(:meth:`Reads.peer_up`).

It also answers the ``ReadDigest``, ``ReadFetch`` and ``ReadReq`` (the whole state) of
other replicas, and reads the objects held here (:meth:`Reads.local`, and
:meth:`Reads.kind_to_read` for a read that names no kind).

Knows the outbox, the timers, local data, membership and outbound batching (how a state
is sized for a message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crdt import CRDT, CausalContext, Dot
from sync import messages as m
from sync.config import ReplicaConfig
from sync.consistency import Level
from sync.digest import (
    causal_context,
    ctx_model,
    held_dots,
    part_holds,
    state_digest,
    unseen_part,
)
from sync.effects import Alarm, ReadDone, ReadFailed, Send
from sync.errors import KeyNotFound, KindClash, LocalProtocolError
from sync.replica.local_data import LocalData
from sync.replica.membership import Membership
from sync.replica.outbound import text_size
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers

__all__ = ["Fetched", "Known", "PendingRead", "Reads"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a read knows of a replier whose part it fetched: its causal context and the dots
    its store holds (:func:`~sync.digest.part_holds`), which is its state but the values."""

    ctx: CausalContext
    held: frozenset[Dot]


#: What a read knows of a replier's state: the state itself, its context and the dots it
#: holds, or None (it holds nothing).
Known = CRDT | Fetched | None


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
    local: CRDT | None = None  # our state when the read started
    digest: str | None = None  # its digest
    asked: set[str] = field(default_factory=set)  # remote peers still expected to reply
    tried: set[str] = field(default_factory=set)  # every remote peer asked
    reqs: list[tuple[str, int]] = field(default_factory=list)  # (peer, req_id) sent
    fetching: dict[str, CausalContext] = field(default_factory=dict)  # peer -> its context
    known: dict[str, Known] = field(default_factory=dict)  # replier -> what we know of it
    counted: list[str] = field(default_factory=list)
    joined: CRDT | None = None
    done: bool = False
    repaired: list[str] = field(default_factory=list)
    covered: dict[str, str] = field(default_factory=dict)  # home down -> fallback asked


class Reads:
    """The reads coordinated here, and the requests they sent."""

    __slots__ = (
        "_config",
        "_data",
        "_emit",
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

    def __len__(self) -> int:
        return len(self._pending)

    def options(
        self, op_id: int, r: Level | None, strict: bool | None, timeout: float | None
    ) -> tuple[Level, bool, float]:
        """A new read's level, strictness and timeout (the configuration's where None),
        before anything changes: ``LocalProtocolError`` if read ``op_id`` is pending still,
        ``TypeError``/``ValueError`` for a bad option."""
        if op_id in self._pending:
            raise LocalProtocolError(f"read op_id {op_id} is still pending")
        return self._config.read_options(r, strict, timeout)

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
        """Read the object ``(key, kind)``: answer locally when it counts, ask as many
        others as the read still needs."""
        me = self._me
        rd = PendingRead(op_id, key, kind, required, site, timeout, partition, strict)
        self._pending[op_id] = rd
        local = self._data.get(key, kind)
        rd.local = local.copy() if local is not None else None
        rd.digest = state_digest(rd.local)
        if (me in homes or not strict) and self._membership.site_ok(site, me):
            rd.known[me] = rd.local
            rd.counted.append(me)
            rd.joined = rd.local.copy() if rd.local is not None else None
        self._timers.set(Timer(TimerKind.READ, op_id), now + timeout)
        self._ask_more(rd)
        self._progress(rd)

    def _ask_more(self, rd: PendingRead) -> None:
        """Ask the next replicas that count until the read could reach ``required``."""
        site_ok, site = self._membership.site_ok, rd.site
        while not rd.done:
            could = sum(1 for p in rd.asked if site_ok(site, p))
            if len(rd.counted) + could >= rd.required:
                return
            peer = self._next_replica(rd)
            if peer is None:
                return
            self._ask(rd, peer)

    def _next_replica(self, rd: PendingRead) -> str | None:
        """The next replica to ask: an up home of the key not asked yet, in preference
        order; in sloppy mode, a fallback for a home that is down; of the read's site."""
        me, membership = self._me, self._membership
        homes = membership.ring().preference_list(rd.partition)
        up = membership.up
        for home in homes:
            if home == me or home in rd.tried:
                continue
            if home in up:
                if membership.site_ok(rd.site, home):
                    return home
            elif not rd.strict and home not in rd.covered:
                chosen = set(homes) | rd.tried | {me}
                fallback = membership.pick_fallback(rd.partition, chosen)
                if fallback is not None and membership.site_ok(rd.site, fallback):
                    rd.covered[home] = fallback
                    return fallback
        return None

    def _ask(self, rd: PendingRead, peer: str) -> None:
        req_id = self._request(rd, peer)
        rd.asked.add(peer)
        rd.tried.add(peer)
        self._emit(
            Send(
                peer,
                m.ReadDigest.model_construct(
                    t="read_digest", req_id=req_id, key=rd.key, kind=rd.kind, digest=rd.digest
                ),
            )
        )

    def _request(self, rd: PendingRead, peer: str) -> int:
        req_id = self._outbox.new_id()
        self._requests[(peer, req_id)] = rd.op_id
        rd.reqs.append((peer, req_id))
        return req_id

    def dials_changed(self) -> None:
        """The dial state changed (:meth:`Membership.links_connecting`). A read
        with nobody left to ask waits while links are being dialled, and fails now
        once none is."""
        if not self._membership.connecting:
            for rd in sorted(self._pending.values(), key=lambda r: r.op_id):
                if not rd.asked:
                    self._progress(rd)

    def peer_up(self, peer: str) -> None:
        """``peer`` came up: every read short of replies asks it if it counts now (a home of
        the key, or in sloppy mode the fallback of a home that is down)."""
        if not self._pending:
            return
        for rd in sorted(self._pending.values(), key=lambda r: r.op_id):
            if not rd.done and peer not in rd.tried:
                self._ask_more(rd)

    def expected(self, peer: str, req_id: int) -> PendingRead | None:
        """The pending read that asked ``peer`` with ``req_id`` (None: late or unknown)."""
        op_id = self._requests.get((peer, req_id))
        return self._pending.get(op_id) if op_id is not None else None

    # -- reading here ----------------------------------------------------------------------------
    def kind_to_read(self, key: str) -> str:
        """The one kind ``key`` holds here, for a read that names none (its object must be in
        memory): :class:`~sync.errors.KeyNotFound` if it holds none,
        :class:`~sync.errors.KindClash` if several (name the kind)."""
        data = self._data
        data.require((key,))
        held = data.kinds_of(key)
        if not held:
            raise KeyNotFound(key)
        if len(held) > 1:
            raise KindClash(key, held)
        return held[0]

    def local(self, key: str, kind: str | None) -> CRDT | None:
        """The object ``(key, kind)`` held here, not a copy (None: not held, or not in memory:
        read it through :meth:`start`). ``kind=None``: the key's one object
        (:class:`~sync.errors.KindClash` if it holds several)."""
        data = self._data
        if not data.resident(key):
            return None
        if kind is not None:
            return data.get(key, kind)
        objs = data.objects_of(key)
        if not objs:
            return None
        if len(objs) == 1:
            return next(iter(objs.values()))
        # Several kinds, one of them maybe deleted (a clash ended, a key reused as another
        # kind): the one live kind is the key's object; two live kinds are a clash.
        live = data.kinds_of(key)
        if len(live) != 1:
            raise KindClash(key, live or tuple(sorted(objs)))
        return objs[live[0]]

    # -- answering other replicas --------------------------------------------------------------
    def _state_to_send(self, peer: str, key: str, obj: CRDT, what: str) -> dict[str, Any] | None:
        """``obj.to_dict()`` if its text fits in one message; else None, with an alarm. Reads
        and read repair send a state whole; one bigger than a message (a set or map grown by
        many writes, each of which fit) would close the link with 1009 at the receiver, so it
        is not sent: anti-entropy brings it, cut into pieces (``CRDT.split``)."""
        limit = self._config.entry_limit
        size = text_size(obj.to_json())
        if size <= limit:
            return obj.to_dict()
        self._emit(
            Alarm(
                "state_too_big",
                peer,
                f"{what} of {key!r} to {peer} would take {size} bytes, over what one message "
                f"carries ({limit}): not sent (anti-entropy brings the state in pieces)",
            )
        )
        return None

    def answer(self, peer: str, msg: m.ReadReq) -> None:
        """Reply to another replica's ``ReadReq`` with our state of the object it names (no
        reply when that state is too big for a message: the asker counts us as silent)."""
        obj = self._data.get(msg.key, msg.kind)
        state = None
        if obj is not None:
            state = self._state_to_send(peer, msg.key, obj, "a read reply")
            if state is None:
                return
        reply = m.ReadResp(req_id=msg.req_id, key=msg.key, kind=msg.kind, state=state)
        self._emit(Send(peer, reply))

    def answer_digest(self, peer: str, msg: m.ReadDigest) -> None:
        """Reply to a ``ReadDigest``: the same digest, else our context or whole state."""
        obj = self._data.get(msg.key, msg.kind)
        same = state_digest(obj) == msg.digest
        ctx = state = None
        if not same and obj is not None:
            seen = causal_context(obj)
            if seen is not None:
                ctx = ctx_model(seen)
            else:
                state = self._state_to_send(peer, msg.key, obj, "a read reply")
                if state is None:
                    return
        reply = m.ReadDigestResp.model_construct(
            t="read_digest_resp",
            req_id=msg.req_id,
            key=msg.key,
            kind=msg.kind,
            same=same,
            ctx=ctx,
            state=state,
        )
        self._emit(Send(peer, reply))

    def answer_fetch(self, peer: str, msg: m.ReadFetch, seen: CausalContext) -> None:
        """Reply to a ``ReadFetch`` (``seen`` checked) with the part of our object it lacks."""
        obj = self._data.get(msg.key, msg.kind)
        state = None
        if obj is not None:
            part = unseen_part(obj, seen)
            state = self._state_to_send(
                peer, msg.key, obj if part is None else part, "a read reply"
            )
            if state is None:
                return
        reply = m.ReadResp(req_id=msg.req_id, key=msg.key, kind=msg.kind, state=state)
        self._emit(Send(peer, reply))

    # -- replies -------------------------------------------------------------------------------
    def on_digest_reply(
        self,
        peer: str,
        msg: m.ReadDigestResp,
        ctx: CausalContext | None,
        state: CRDT | None,
    ) -> None:
        """``peer`` answered our ``ReadDigest`` (``ctx`` and ``state`` checked)."""
        op_id = self._requests.pop((peer, msg.req_id), None)
        rd = self._pending.get(op_id) if op_id is not None else None
        if rd is None:
            return  # late, after the read ended
        local = rd.local
        if msg.same:
            self._replied(rd, peer, local, local)
            return
        if ctx is None:  # its whole state (a kind without a context), or nothing
            self._replied(rd, peer, state, state)
            return
        # Fetched even if its context holds no dot ours lacks: it may have removed a dot we
        # hold (a remove makes no dot), and only the part it sends carries that remove.
        ours = causal_context(local) if local is not None else None
        rd.fetching[peer] = ctx
        req_id = self._request(rd, peer)
        seen = ctx_model(ours if ours is not None else CausalContext())
        fetch = m.ReadFetch.model_construct(
            t="read_fetch", req_id=req_id, key=rd.key, kind=rd.kind, seen=seen
        )
        self._emit(Send(peer, fetch))

    def on_reply(self, peer: str, msg: m.ReadResp, state: CRDT | None) -> None:
        """``peer`` sent ``state`` (checked): the part of its state we fetched (or, for a
        ``ReadReq``, its whole state)."""
        op_id = self._requests.pop((peer, msg.req_id), None)
        rd = self._pending.get(op_id) if op_id is not None else None
        if rd is None:
            return  # late, after the read ended
        ctx = rd.fetching.pop(peer, None)
        if ctx is None:
            self._replied(rd, peer, state, state)
            return
        # The part of its state our own lacks: joined with ours it gives the join of both.
        if rd.local is not None:
            self._join(rd, rd.local)
        known = None if state is None else Fetched(ctx, frozenset(part_holds(ctx, state)))
        self._replied(rd, peer, known, state)

    def _replied(self, rd: PendingRead, peer: str, known: Known, state: CRDT | None) -> None:
        """``peer``'s reply is in: what we know of its state, and ``state`` to join."""
        rd.asked.discard(peer)
        rd.known[peer] = known
        if self._membership.site_ok(rd.site, peer):
            rd.counted.append(peer)
        if state is not None:
            self._join(rd, state)
        if rd.done:
            self._repair(rd)
        self._progress(rd)

    def _join(self, rd: PendingRead, state: CRDT) -> None:
        if rd.joined is None:
            rd.joined = state.copy()
        else:
            rd.joined.merge(state)

    def peer_down(self, peer: str) -> None:
        """Stop waiting for ``peer``: ask the next replica that counts instead, if any; a
        read that can no longer reach its replies fails now."""
        for rd in sorted(self._pending.values(), key=lambda r: r.op_id):
            if peer in rd.asked:
                rd.asked.discard(peer)
                rd.fetching.pop(peer, None)
                for home, fallback in list(rd.covered.items()):
                    if fallback == peer:
                        del rd.covered[home]
                self._ask_more(rd)
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
            elif not self._membership.connecting:
                self._fail(rd, self._membership.unreachable("can reply"))

    def _repair(self, rd: PendingRead) -> None:
        joined = rd.joined
        if joined is None:
            return
        me = self._me
        self._data.merge_state(rd.key, joined)
        if me in rd.known:
            rd.known[me] = joined.copy()
        behind = _Behind(joined)
        for peer, known in list(rd.known.items()):
            if peer == me or not behind(known):
                continue
            if isinstance(known, Fetched):
                seen: CausalContext | None = known.ctx
            else:
                seen = causal_context(known) if known is not None else None
            part = unseen_part(joined, seen) if seen is not None else None
            body = self._state_to_send(
                peer, rd.key, joined if part is None else part, "a read repair"
            )
            if body is None:
                continue  # (anti-entropy repairs it)
            self._emit(Send(peer, m.Repair(key=rd.key, kind=rd.kind, state=body)))
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


class _Behind:
    """Whether a replier's state, as a read knows it, is below ``joined`` (the join of every
    reply, so at most equal to it): it needs a repair unless it equals the join. A replier
    whose context has every dot of the join may still hold a dot the join removed."""

    __slots__ = ("_after", "_held", "_joined")

    def __init__(self, joined: CRDT) -> None:
        self._joined = joined
        self._after = causal_context(joined)
        self._held: set[Dot] | None = None

    def __call__(self, known: Known) -> bool:
        if known is None:
            return True
        if not isinstance(known, Fetched):
            return known != self._joined
        if self._after is None or next(self._after.dots_not_in(known.ctx), None) is not None:
            return True  # the join holds dots it has not seen
        if self._held is None:
            self._held = held_dots(self._joined) or set()
        return not known.held <= self._held  # it holds a dot the join removed
