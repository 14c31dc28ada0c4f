"""Inbound: every received message, read before anything changes: checked whole, and the
objects it needs loaded named first.

:class:`Inbound` turns a message into what its application needs, or raises
:class:`~sync.errors.RemoteProtocolError` naming what is wrong; it changes no state (only
caches: the partition of a key). Whatever the store would refuse is refused here first (a
refused commit stops a peer: that is for local disk failures only), and so is whatever
would make a later commit of ours fail.

For a ``Push`` or ``Deltas``: every entry is in range (a partition of ours, the key's own, a
key the store can hold, an origin that is a replica id, a seq in 1..2**62, the wire's
:data:`~sync.messages.SEQ_LIMIT`), its delta decodes to a CRDT of the declared kind. A key
may hold objects of two kinds (an object is named by its key and kind: two peers that wrote
one key offline as two kinds both keep theirs), so a kind other than the one held here is no
error. An entry that claims *this* replica's origin is refused unless this replica issued
that log dot: it is the only one that mints its dots, and taking one above its numbering
would make it number on from there (a forged ``seq=2**63-1`` would leave no room for its
next write, after every restart). The one exception is a dot at or below the highest we
issued that we lack: after a restore from a backup (``IdentityConflict``) peers hand back
the writes of our previous incarnation. A hint (``hint_for`` another replica) is never of
our own origin. The same holds inside the CRDTs: no delta or state of another origin that
is to be joined here may raise one of *our* counters (a dot of ours in a context, our count
in a counter: ``max_counter``) more than :data:`OWN_COUNTER_SLACK` (2**32) past the object
we hold. Only we raise them, by our own writes; one raised to 2**63-1 by a member would have
left our next write a dot (or a count) that no peer, nor our own store, accepts. The slack
takes what peers rightly have of ours that we lack (our writes since the backup we were
restored from, and their removes of them, before our id rotates).

Signed origins (:mod:`sync.signing`). A replica that signs (the façade was given a
:class:`~sync.signing.Signer`) also requires every entry, applied or held as a hint, to be
covered by a valid seal of its origin: the seal's key is the one the origin's id is derived
from, its signature verifies, and it lists the entry's digest. An entry that is not signed,
or whose seal fails, is refused with the whole message (nothing applied, nothing acked, the
link closed): a member cannot forge another's writes. Its delta text must also be in our
compact form, since the signed text is what we store and forward.

While checking, the deltas of one object that this replica lacks are joined into one *delta
group* (:class:`~sync.replica.local_data.CheckedBatch`), so the state takes one merge per
object per message. The first is decoded; each next one that is a write of one new dot, not
ours, is joined from its parsed JSON without a state of its own (:func:`crdt.merge_dict`,
which takes only what ``from_dict`` accepts: every delta of a busy peer's writes), any other
is decoded and merged. A delta spelled otherwise than our compact form is re-encoded, so the
store's prefix check always holds. An entry of a ``Push`` for another replica (``hint_for``)
is only held as a hint unless this replica is a home of its key; none is held for a
forgotten replica, nor for one that is no home of the entry's partition here (any id would
do: a member naming as many made-up targets as it liked was held ``hint_max_per_target``
hints for each), and those not held are counted (:attr:`CheckedBatch.not_held`) and left out
of the push's ack (``AckExcept``), their writes left to anti-entropy: acked, they counted at
the sender as held here (a write's sloppy-quorum ack, a hint's whereabouts), as when the
rings differ (a fallback that learned of a new home before its sender). An entry or a state
stamped too far ahead of our clock is set aside (:class:`~sync.replica.membership.Skewed`,
counted by membership; see "Clock skew" in :mod:`sync.replica.theory`), a known dot whose
delta is joined again included. States (read replies, repairs, snapshots) and summaries are
decoded and checked the same way: keys the store can hold, log-dot contexts of replica ids
counting at most 2**62 (a summary's dot of ours above our numbering is an identity conflict,
which moves our numbering up to it: never past the limit).

The messages of digest anti-entropy and digest reads are checked whole the same way: a
digest is :data:`~sync.digest.DIGEST_BYTES` bytes in lowercase hex; a ``PartDigests`` names
only partitions of ours; a ``ReadDigest`` or ``ReadFetch`` names a key the store can hold
and a kind we know, a fetch's context is a log-dot context as above; a ``ReadDigestResp``
answers the read that asked it (same key and kind), says "the same" with no body, or carries
either a context (only for a kind that has one) or a state of its kind, never both.

Before a message is received, :meth:`Inbound.wants` names the keys it needs loaded (the
objects it names that are not in memory; see "A bounded cache of objects" in
:mod:`sync.replica.theory`).

Knows the checked batch it makes, local data, membership and reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import Any

import crdt
from crdt import CRDT, CausalContext, Dot
from sync import messages as m
from sync.config import MAX_KEY_BYTES, ReplicaConfig
from sync.digest import causal_context, is_digest
from sync.effects import LogEntry
from sync.errors import RemoteProtocolError
from sync.jsontext import parse
from sync.replica.checked import CheckedBatch
from sync.replica.local_data import LocalData
from sync.replica.membership import Membership, Skewed
from sync.replica.reads import Reads
from sync.signing import NOT_COVERED, Seal, Verifier, entry_digest

__all__ = ["OWN_COUNTER_SLACK", "Inbound", "latest_stamp"]

_EMPTY_CTX = CausalContext()
_ORIGINS_MEMO = 4096  # origins remembered as checked (cleared when full)
#: How far past our own counter in an object a received state may count it (see
#: ``Inbound._own_counters``).
OWN_COUNTER_SLACK = 2**32
_NOT_A_KEY = f"not a key (empty, with NUL, or over {MAX_KEY_BYTES} bytes)"
# How the compact JSON text of a delta of each kind begins (to_dict() puts "type" first).
_TYPE_PREFIX = {kind: f'{{"type":"{kind}"' for kind in crdt.KINDS}


class Inbound:
    """Checks received messages against what this replica holds; changes nothing."""

    __slots__ = (
        "_config",
        "_data",
        "_me",
        "_membership",
        "_origins",
        "_reads",
        "_verifier",
        "wall_offset",
    )

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        data: LocalData,
        membership: Membership,
        reads: Reads,
        verifier: Verifier | None = None,
    ) -> None:
        self._config = config
        self._verifier = verifier  # None: origins are not checked (a replica that does not sign)
        self._me = replica_id
        self._data = data
        self._membership = membership
        self._reads = reads
        self._origins: set[str] = set()  # origins already checked to be replica ids
        #: Seconds the wall clock (what timestamps are stamped with) reads ahead of ``now``
        #: (``Replica.wall_offset``).
        self.wall_offset = 0.0

    def wants(self, msg: m.Message) -> list[str]:
        """The keys whose objects are to be loaded before ``msg`` is received (objects on
        demand: those it names that are not in memory). Pure; a bad message wants nothing
        (its check reports it)."""
        data = self._data
        if data.complete:  # every object is in memory: nothing is ever missing
            return []
        match msg:
            case m.Push() | m.Deltas():
                return data.missing(e.key for e in msg.entries)
            case (
                m.ReadReq()
                | m.ReadResp()
                | m.Repair()
                | m.ReadDigest()
                | m.ReadDigestResp()
                | m.ReadFetch()
            ):
                return data.missing((msg.key,))
            case m.SnapshotChunk():
                # Every key in the chunk's partition, or the check refuses the chunk.
                return data.missing((o.key for o in msg.objects), msg.partition)
        return []

    def push(self, peer: str, msg: m.Push, now: float) -> tuple[CheckedBatch, list[Skewed]]:
        hint_for = msg.hint_for
        if hint_for is not None and not m.is_replica_id(hint_for):
            raise RemoteProtocolError(f"a push for {hint_for!r}, not a replica id", peer)
        return self._entries(peer, msg.entries, now, hint_for, rejoin=True)

    def deltas(self, peer: str, msg: m.Deltas, now: float) -> tuple[CheckedBatch, list[Skewed]]:
        for i, e in enumerate(msg.entries):
            if e.partition != msg.partition:
                raise RemoteProtocolError(
                    f"entry {i} of a Deltas for partition {msg.partition} is in {e.partition}",
                    peer,
                )
        return self._entries(peer, msg.entries, now)

    def _entries(
        self,
        peer: str,
        entries: Iterable[LogEntry],
        now: float,
        hint_for: str | None = None,
        *,
        rejoin: bool = False,
    ) -> tuple[CheckedBatch, list[Skewed]]:
        """Check and decode every entry (its delta decodes, partition and kind agree, its
        origin signed it) and build the delta groups; nothing changes. An entry of a ``Push``
        for ``hint_for`` (another replica) is only held as a hint unless this replica is a
        home of its key. An entry stamped too far ahead of ``now`` is set aside (returned as
        skewed). ``rejoin``: the deltas of entries whose log dots our summary has but our log
        lacks are grouped too (:attr:`CheckedBatch.rejoin`), to be joined before an ack."""
        skewed: list[Skewed] = []
        now_ms, limit_ms = self._horizon(now)
        parts = self._config.partitions
        out = CheckedBatch([], [], {})
        home, groups = out.home, out.groups
        merge_dict = crdt.merge_dict
        me = self._me
        ring = self._membership.ring() if hint_for is not None and hint_for != me else None
        hold = ring is not None and not self._membership.is_forgotten(hint_for or "")
        data = self._data
        partition, summary_if_any = data.partition, data.summary_if_any
        origins = self._origins
        verifier = self._verifier
        log_entry = data.log.entry
        # Per message: the partition of each key and the summary of each partition (a push
        # carries many entries of a few keys), looked up once.
        key_parts: dict[str, int] = {}
        summaries: dict[int, CausalContext] = {}
        last_seal: Seal | None = None
        digests: frozenset[bytes] | str = ""
        ours_held: dict[tuple[str, str], int] = {}  # per object, our counter in what we hold
        # The entries taken here, by origin, partition and seq (nested: no tuple made per
        # entry, which the collector would track while the message is checked).
        taken: dict[str, dict[int, dict[int, LogEntry]]] = {}
        for i, e in enumerate(entries):
            # (The reasons name the fault first: a close reason is cut at 120 bytes.)
            key, origin, seq, p = e.key, e.origin, e.seq, e.partition
            if p >= parts:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: partition out of range 0..{parts - 1}", peer
                )
            if not 1 <= seq <= m.SEQ_LIMIT:
                raise RemoteProtocolError(f"seq not in 1..2**62: {_where(i, e)}", peer)
            kp = key_parts.get(key)
            if kp is None:
                if not m.is_key(key):
                    raise RemoteProtocolError(f"{_NOT_A_KEY}: {_where(i, e)}", peer)
                kp = key_parts[key] = partition(key)
            if origin not in origins:
                if not m.is_replica_id(origin):
                    raise RemoteProtocolError(f"origin is not a replica id: {_where(i, e)}", peer)
                self._checked(origin)
            if verifier is not None:
                # Verifier.covers, with the seal's digests looked up once per run of entries
                # of one seal (a push carries hundreds of each).
                seal = e.seal
                if seal is None or seal.origin != origin:
                    why = verifier.covers(seal, e)
                    raise RemoteProtocolError(f"{why}: refused {_where(i, e)}", peer)
                if seal is not last_seal:
                    last_seal, digests = seal, verifier.digests(seal)
                if type(digests) is str:
                    raise RemoteProtocolError(f"{digests}: refused {_where(i, e)}", peer)
                if entry_digest(e) not in digests:
                    raise RemoteProtocolError(f"{NOT_COVERED}: refused {_where(i, e)}", peer)
            if kp != p:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: key {key!r} is not in that partition", peer
                )
            try:
                raw = parse(e.delta_json)
            except ValueError as exc:
                raise RemoteProtocolError(f"{_where(i, e)}: bad CRDT state: {exc}", peer) from exc
            kind = e.kind
            delta: CRDT | None = None
            prefix = _TYPE_PREFIX.get(kind)
            if prefix is None or type(raw) is not dict or raw.get("type") != kind:
                # (it raises, or it is a delta of another kind)
                delta = _decode_crdt(peer, raw, partial(_where, i, e))
                raise RemoteProtocolError(
                    f"{_where(i, e)}: says kind {e.kind!r} but its delta is a {delta.kind}", peer
                )
            # The wire's text is logged, stored and forwarded as it is when it is in our own
            # compact form (it is, from shoal peers); any other spelling is encoded afresh.
            if not e.delta_json.startswith(prefix):
                if verifier is not None:  # the signed text is what we store and forward
                    raise RemoteProtocolError(f"{_where(i, e)}: delta not in compact form", peer)
                delta = _decode_crdt(peer, raw, partial(_where, i, e))
                e = replace(e, delta_json=delta.to_json())
            summ = summaries.get(p)
            if summ is None:
                summ = summaries[p] = summary_if_any(p) or _EMPTY_CTX
            known = seq <= summ.vv.get(origin, 0) or (origin, seq) in summ.cloud
            # A dot we were told of (a state transfer's summary) or compacted: its delta is
            # joined all the same (below), so it is checked for skew as a new one is.
            rejoining = known and rejoin and log_entry(p, origin, seq) is None
            # A log dot twice in one message: the first one taken counts, as it would if
            # each came in a message of its own (the log keeps one entry per dot, so a
            # second delta joined would be in the state and in no log).
            by_p = taken.get(origin)
            if by_p is None:
                by_p = taken[origin] = {}
            by_seq = by_p.get(p)
            if by_seq is None:
                by_seq = by_p[p] = {}
            first = by_seq.get(seq) if not known or rejoining else None
            if first is not None:  # (a rejoined dot's second copy is not joined either)
                known, rejoining = True, False
            if not known or rejoining:
                # (Read off the delta before it is decoded, which a delta joined by
                # merge_dict never is: a malformed one, which the reading may choke on, is
                # decoded here for the error that names it; one set aside is decoded too.)
                try:
                    stamp = _ahead(raw, kind, limit_ms)
                except (TypeError, ValueError, LookupError):
                    delta = _decode_crdt(peer, raw, partial(_where, i, e))  # raises
                    stamp = _ahead(raw, kind, limit_ms)  # (a valid state reads cleanly)
                if stamp is not None:
                    if delta is None:  # set aside, it must decode all the same
                        delta = _decode_crdt(peer, raw, partial(_where, i, e))
                    skewed.append(Skewed(stamp[1], stamp[0] - now_ms, _where(i, e)))
                    out.set_aside.append(i)
                    continue
            if not known or rejoining:  # taken (not set aside): a later copy is known
                by_seq[seq] = e
            if ring is not None and me not in (homes := ring.preference_list(p)):
                if origin == me:
                    raise RemoteProtocolError(f"a hint of our own entry: {_where(i, e)}", peer)
                if delta is None:  # held or not, it must decode
                    delta = _decode_crdt(peer, raw, partial(_where, i, e))
                if hold and hint_for in homes:
                    out.hints.append(e)
                else:
                    out.not_held.append(i)
                continue
            if origin == me and not known and seq > data.last_seq(p):
                raise RemoteProtocolError(
                    f"a log dot of ours we never issued (we are at "
                    f"{data.last_seq(p)}): {_where(i, e)}",
                    peer,
                )
            oid = (key, kind)
            group = groups.get(oid)
            if group is not None and delta is None and not known and merge_dict(group[1], raw, me):
                # Joined as it is, undecoded: one new dot, not ours (so no counter of ours
                # rises), as a busy peer's writes all are (crdt.merge_dict).
                home.append(e)
                continue
            if delta is None:
                delta = _decode_crdt(peer, raw, partial(_where, i, e))
            if origin != me:  # (ours carry our counters: their log dots are checked above)
                self._own_counters(peer, key, delta, ours_held, partial(_where, i, e))
            home.append(e)
            if known:
                held = first if first is not None or rejoining else log_entry(p, origin, seq)
                if held is not None and (
                    held.key != key
                    or held.kind != kind
                    or (
                        held.delta_json != e.delta_json  # (then as parsed: not its spelling)
                        and parse(held.delta_json) != raw
                    )
                ):
                    out.equivocal.append(i)  # (joined or not, as for any known dot)
                if rejoining:
                    # Join its delta all the same, so that an ack means applied, whatever we
                    # were told (and a delta already in the state changes nothing).
                    found = out.rejoin.get(oid)
                    if found is None:
                        out.rejoin[oid] = (p, delta)
                    else:
                        found[1].merge(delta)
                continue  # known here: its delta is in the state already
            if group is None:
                groups[oid] = (p, delta)  # freshly decoded: the group to join into
            else:
                group[1].merge(delta)
        return out, skewed

    def _horizon(self, now: float) -> tuple[int, int]:
        """The wall clock at ``now`` in ms, and the latest wall time (ms) a received
        timestamp may carry."""
        now_ms = int((now + self.wall_offset) * 1000)
        return now_ms, now_ms + int(self._config.max_clock_skew * 1000)

    def _own_counters(
        self,
        peer: str,
        key: str,
        state: CRDT,
        held: dict[tuple[str, str], int] | None,
        where: Callable[[], str],
    ) -> None:
        """``state`` (received for ``key``, to be joined here) may not raise one of our own
        counters (a dot of ours, our count in a counter) more than :data:`OWN_COUNTER_SLACK`
        past the object we hold: only we raise them, by our own writes, one at a time. A
        member that raised one to 2**63-1 left our next write a dot (or a count) that no
        peer, nor our own store, accepts. The slack lets through what peers may rightly
        have of ours that we lack (our writes since a backup we were restored from, before
        our id is rotated, and their removes of them, in any order) while it takes some
        2**31 messages to raise a counter to its limit. ``held``: per object, our counter
        in what we hold, filled here (one look per object per message)."""
        me = self._me
        theirs = state.max_counter(me)
        if theirs <= OWN_COUNTER_SLACK:
            return  # (the common case: the check costs one look at the state)
        oid = (key, state.kind)
        ours = held.get(oid) if held is not None else None
        if ours is None:
            obj = self._data.get(key, state.kind)
            ours = obj.max_counter(me) if obj is not None else 0
            if held is not None:
                held[oid] = ours
        if theirs > ours + OWN_COUNTER_SLACK:
            raise RemoteProtocolError(
                f"raises our own counter to {theirs} (we are at {ours}): {where()}", peer
            )

    def skewed_state(self, state: dict[str, Any], now: float, what: str) -> Skewed | None:
        """The timestamp of a (checked) state too far ahead of ``now``, if it has one."""
        now_ms, limit_ms = self._horizon(now)
        stamp = _ahead(state, state.get("type"), limit_ms)
        return None if stamp is None else Skewed(stamp[1], stamp[0] - now_ms, what)

    def read_request(self, peer: str, msg: m.ReadReq) -> None:
        """A ``ReadReq`` names a key."""
        if not m.is_key(msg.key):
            raise RemoteProtocolError(f"read request {msg.req_id}: {_NOT_A_KEY}", peer)

    def read_reply(self, peer: str, msg: m.ReadResp) -> CRDT | None:
        """The state a ``ReadResp`` carries (None: the replier does not hold the key)."""
        if not m.is_key(msg.key):
            raise RemoteProtocolError(f"read reply {msg.req_id}: {_NOT_A_KEY}", peer)
        rd = self._reads.expected(peer, msg.req_id)
        if rd is not None and (rd.key, rd.kind) != (msg.key, msg.kind):
            raise RemoteProtocolError(
                f"read reply {msg.req_id} is for the {msg.kind} {msg.key!r}, "
                f"asked the {rd.kind} {rd.key!r}",
                peer,
            )
        if msg.state is None:
            return None
        state = _decode_crdt(peer, msg.state, f"state of {msg.key!r}")
        if state.kind != msg.kind:
            raise RemoteProtocolError(
                f"read reply for {msg.key!r} says kind {msg.kind!r} but carries a {state.kind}",
                peer,
            )
        self._own_counters(peer, msg.key, state, None, lambda: f"read reply {msg.req_id}")
        return state

    def repair(self, peer: str, msg: m.Repair) -> CRDT:
        """The state a ``Repair`` carries."""
        if not m.is_key(msg.key):
            raise RemoteProtocolError(f"repair of {msg.key[:40]!r}: {_NOT_A_KEY}", peer)
        state = _decode_crdt(peer, msg.state, f"state of {msg.key!r}")
        if state.kind != msg.kind:
            raise RemoteProtocolError(
                f"repair of {msg.key!r} says kind {msg.kind!r} but carries a {state.kind}", peer
            )
        self._own_counters(peer, msg.key, state, None, lambda: f"repair of {msg.key!r}")
        return state

    def digest(self, peer: str, msg: m.Digest) -> None:
        """A ``Digest`` carries two digests."""
        for name, value in (("root", msg.root), ("members", msg.members)):
            if not is_digest(value):
                raise RemoteProtocolError(f"digest: the {name} digest {value!r} is malformed", peer)

    def part_digests(self, peer: str, msg: m.PartDigests) -> None:
        """A ``PartDigests`` names partitions in range, each with a digest."""
        for p, digest in msg.parts.items():
            if type(p) is not int or not 0 <= p < self._config.partitions:
                raise RemoteProtocolError(
                    f"digest of partition {p}, out of range 0..{self._config.partitions - 1}",
                    peer,
                )
            if not is_digest(digest):
                raise RemoteProtocolError(f"digest of partition {p} is malformed", peer)

    def _object(self, peer: str, what: str, key: str, kind: str) -> None:
        if not m.is_key(key):
            raise RemoteProtocolError(f"{what}: {_NOT_A_KEY}", peer)
        if kind not in crdt.KINDS:
            raise RemoteProtocolError(f"{what} of {key!r}: no kind {kind!r}", peer)

    def read_digest(self, peer: str, msg: m.ReadDigest) -> None:
        """A ``ReadDigest`` names an object, and our digest of it if any."""
        self._object(peer, f"read digest {msg.req_id}", msg.key, msg.kind)
        if msg.digest is not None and not is_digest(msg.digest):
            raise RemoteProtocolError(f"read digest of {msg.key!r}: a malformed digest", peer)

    def read_digest_reply(
        self, peer: str, msg: m.ReadDigestResp
    ) -> tuple[CausalContext | None, CRDT | None]:
        """The causal context or the state a ``ReadDigestResp`` carries (both None: the
        same digest, or the replier holds nothing)."""
        self._object(peer, f"read digest reply {msg.req_id}", msg.key, msg.kind)
        rd = self._reads.expected(peer, msg.req_id)
        if rd is not None and (rd.key, rd.kind) != (msg.key, msg.kind):
            raise RemoteProtocolError(
                f"read digest {msg.req_id} is for the {msg.kind} {msg.key!r}, "
                f"asked the {rd.kind} {rd.key!r}",
                peer,
            )
        if msg.same and (msg.ctx is not None or msg.state is not None):
            raise RemoteProtocolError(f"read digest of {msg.key!r}: the same, with a body", peer)
        if msg.ctx is not None and msg.state is not None:
            raise RemoteProtocolError(f"read digest of {msg.key!r}: a context and a state", peer)
        if msg.ctx is not None:
            if causal_context(crdt.new(msg.kind)) is None:
                raise RemoteProtocolError(
                    f"read digest of {msg.key!r}: a context for a {msg.kind}, which has none",
                    peer,
                )
            return self._context(peer, msg.ctx, f"context of {msg.key!r}"), None
        if msg.state is None:
            return None, None
        state = _decode_crdt(peer, msg.state, f"state of {msg.key!r}")
        if state.kind != msg.kind:
            raise RemoteProtocolError(
                f"read digest of {msg.key!r} says kind {msg.kind!r} but carries a {state.kind}",
                peer,
            )
        self._own_counters(peer, msg.key, state, None, lambda: f"read digest {msg.req_id}")
        return None, state

    def read_fetch(self, peer: str, msg: m.ReadFetch) -> CausalContext:
        """The causal context a ``ReadFetch`` carries (of an object it names)."""
        self._object(peer, f"read fetch {msg.req_id}", msg.key, msg.kind)
        return self._context(peer, msg.seen, f"context of {msg.key!r}")

    def summary(self, peer: str, msg: m.Summary) -> dict[int, CausalContext]:
        """The summaries a ``Summary`` carries, by partition."""
        parts: dict[int, CausalContext] = {}
        for p, ctx in msg.parts.items():
            if p >= self._config.partitions:
                raise RemoteProtocolError(
                    f"summary of partition {p}, out of range 0..{self._config.partitions - 1}",
                    peer,
                )
            parts[p] = self._context(peer, ctx, f"summary of partition {p}")
        cards = self._membership.cards
        for info in msg.known_peers:
            why = cards.check(info)
            if why is not None:
                raise RemoteProtocolError(f"member card of {info.replica_id}: {why}", peer)
        return parts

    def _context(self, peer: str, ctx: m.Ctx, where: str) -> CausalContext:
        """A wire context as a :class:`CausalContext`: every log dot names a replica id and
        counts at most :data:`~sync.messages.SEQ_LIMIT` (the decoder checks both; a message
        built in Python is checked here)."""
        origins = self._origins
        dots = [*ctx.vv.items(), *ctx.cloud]
        for origin, n in dots:
            if type(n) is not int or not 1 <= n <= m.SEQ_LIMIT:
                raise RemoteProtocolError(f"{where}: log dot ({origin}, {n}) out of range", peer)
            if origin not in origins:
                if not m.is_replica_id(origin):
                    raise RemoteProtocolError(f"{where}: {origin!r} is not a replica id", peer)
                self._checked(origin)
        try:
            return CausalContext(dict(ctx.vv), [Dot(r, c) for r, c in ctx.cloud])
        except (TypeError, ValueError) as exc:
            raise RemoteProtocolError(f"{where}: {exc}", peer) from exc

    def _checked(self, origin: str) -> None:
        """Remember ``origin`` as a well-formed replica id."""
        if len(self._origins) >= _ORIGINS_MEMO:
            self._origins.clear()
        self._origins.add(origin)

    def snapshot(
        self, peer: str, msg: m.SnapshotChunk, now: float, *, asked: bool
    ) -> tuple[list[tuple[str, CRDT]], CausalContext | None, list[Skewed]]:
        """The states of a ``SnapshotChunk`` by key (whole, or pieces of a split state: a
        delta either way, checked as any state), the summary it carries (if last), and its
        states stamped too far ahead of ``now``. ``asked``: we sent ``peer`` our summary of
        the chunk's partition (a transfer answers one); a chunk nobody asked for is
        refused."""
        skewed: list[Skewed] = []
        parts = self._config.partitions
        if msg.partition >= parts:
            raise RemoteProtocolError(f"snapshot of partition {msg.partition}: out of range", peer)
        if not asked:
            raise RemoteProtocolError(
                f"snapshot of partition {msg.partition} not asked for (we sent no summary of it)",
                peer,
            )
        states: list[tuple[str, CRDT]] = []
        now_ms, limit_ms = self._horizon(now)
        partition = self._data.partition
        ours_held: dict[tuple[str, str], int] = {}

        def where(i: int) -> str:  # (a chunk holds hundreds: named only when it is needed)
            return f"snapshot object {i} ({msg.objects[i].key!r})"

        # (Per object, the common case inline: a bootstrap checks a hundred thousand.)
        me, is_key, from_dict, p = self._me, m.is_key, crdt.from_dict, msg.partition
        for i, o in enumerate(msg.objects):
            key = o.key
            if not is_key(key):
                raise RemoteProtocolError(f"{where(i)}: {_NOT_A_KEY}", peer)
            if partition(key) != p:
                raise RemoteProtocolError(f"{where(i)}: not in partition {p}", peer)
            try:
                decoded = parse(o.state_json)
            except ValueError as exc:
                raise RemoteProtocolError(f"{where(i)}: bad CRDT state: {exc}", peer) from exc
            if type(decoded) is not dict:
                raise RemoteProtocolError(f"{where(i)}: bad CRDT state: not a JSON object", peer)
            try:
                state = from_dict(decoded)
            except (TypeError, ValueError) as exc:  # DecodeError is a ValueError
                raise RemoteProtocolError(f"{where(i)}: bad CRDT state: {exc}", peer) from exc
            kind = state.kind
            if kind != o.kind:
                raise RemoteProtocolError(f"{where(i)}: says {o.kind!r}, is a {kind}", peer)
            if state.max_counter(me) > OWN_COUNTER_SLACK:  # (_own_counters' common case)
                self._own_counters(peer, key, state, ours_held, partial(where, i))
            states.append((key, state))
            if kind in _STAMPED:
                stamp = _ahead(decoded, kind, limit_ms)
                if stamp is not None:
                    skewed.append(Skewed(stamp[1], stamp[0] - now_ms, where(i)))
        ctx = None
        if msg.summary is not None:
            ctx = self._context(peer, msg.summary, "snapshot summary")
        return states, ctx, skewed


# The kinds whose encoding carries hybrid-logical-clock timestamps (an LWW register, and a
# map that may embed some).
_STAMPED = frozenset({"lww", "ormap"})


def latest_stamp(state: dict[str, Any]) -> tuple[int, str] | None:
    """``(wall_ms, replica)`` of the latest timestamp in a checked ``to_dict()`` form (None:
    it has none): the ``ts`` of an ``lww``, the entries of every register an ``ormap``
    embeds, at any depth (their canonical encodings, see ``crdt/lww.py``, ``crdt/emlww.py``
    and ``crdt/ormap.py``)."""
    kind = state.get("type")
    if kind == "lww":
        ts = state.get("ts")
        return (ts[0], ts[2]) if ts else None
    if kind == "ormap":
        return _latest_in_entries(state.get("entries") or ())
    return None


def _latest_in_entries(entries: Iterable[Any]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for _key, kind, body in entries:
        if kind == "lww":
            for _dot, ts, _value in body:
                if best is None or ts[0] > best[0]:
                    best = (ts[0], ts[2])
        elif kind == "ormap":
            found = _latest_in_entries(body)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
    return best


def _where(i: int, e: LogEntry) -> str:
    return f"entry {i} ({e.origin}, {e.partition}, {e.seq})"


def _decode_crdt(peer: str, d: dict[str, Any], where: str | Callable[[], str]) -> CRDT:
    """The CRDT of a checked JSON object; ``RemoteProtocolError`` naming ``where`` (or what
    it returns: a chunk's objects are named only when one is refused) if it is not one."""
    try:
        obj: CRDT = crdt.from_dict(d)
    except (TypeError, ValueError) as exc:  # DecodeError is a ValueError
        name = where if isinstance(where, str) else where()
        raise RemoteProtocolError(f"{name}: bad CRDT state: {exc}", peer) from exc
    return obj


def _ahead(state: dict[str, Any], kind: object, limit_ms: int) -> tuple[int, str] | None:
    """``(wall_ms, replica)`` of the latest timestamp of a checked ``to_dict()`` form of
    ``kind`` if it is later than ``limit_ms`` (None otherwise, or if it carries none)."""
    if kind not in _STAMPED:
        return None
    stamp = latest_stamp(state)
    return stamp if stamp is not None and stamp[0] > limit_ms else None
