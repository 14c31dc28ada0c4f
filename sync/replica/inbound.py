"""Inbound validation: every received message is checked whole before anything changes.

:class:`Inbound` turns a message into what its application needs, or raises
:class:`~sync.errors.RemoteProtocolError` naming what is wrong; it changes no state (only
caches: the partition of a key). For a ``Push`` or ``Deltas``: every entry is in range (a
partition of ours, the key's own, a non-empty key, a seq in 1..2**63-1), its delta decodes to
a CRDT of the declared kind. A key may hold objects of two kinds (an object is named by its
key and kind: two peers that wrote one key offline as two kinds both keep theirs), so a
kind other than the one held here is no error. While checking, the deltas of one object that
this replica lacks are joined into one *delta group*
(:class:`~sync.replica.local_data.CheckedBatch`), so the state takes one merge per object
per message; a delta spelled otherwise than our compact form is re-encoded, so the
store's prefix check always holds. An entry of a ``Push`` for another replica (``hint_for``)
is only held as a hint unless this replica is a home of its key. States (read replies,
repairs, snapshots), summaries and the contexts of digest reads are decoded and checked the
same way; a read digest's reply carries a context only for a kind that has one.

Knows local data, membership and reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pydantic_core import from_json

import crdt
from crdt import CRDT, CausalContext, Dot
from sync import messages as m
from sync.config import ReplicaConfig
from sync.digest import causal_context
from sync.effects import MAX_SEQ, LogEntry
from sync.errors import RemoteProtocolError
from sync.replica.local_data import CheckedBatch, LocalData
from sync.replica.membership import Membership
from sync.replica.reads import Reads
from sync.ring import partition_of

__all__ = ["Inbound"]

_EMPTY_CTX = CausalContext()
# How the compact JSON text of a delta of each kind begins (to_dict() puts "type" first).
_TYPE_PREFIX = {kind: f'{{"type":"{kind}"' for kind in crdt.KINDS}


class Inbound:
    """Checks received messages against what this replica holds; changes nothing."""

    __slots__ = ("_config", "_data", "_me", "_membership", "_reads")

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        data: LocalData,
        membership: Membership,
        reads: Reads,
    ) -> None:
        self._config = config
        self._me = replica_id
        self._data = data
        self._membership = membership
        self._reads = reads

    def push(self, peer: str, msg: m.Push) -> CheckedBatch:
        return self._entries(peer, msg.entries, msg.hint_for)

    def deltas(self, peer: str, msg: m.Deltas) -> CheckedBatch:
        for i, e in enumerate(msg.entries):
            if e.partition != msg.partition:
                raise RemoteProtocolError(
                    f"entry {i} of a Deltas for partition {msg.partition} is in {e.partition}",
                    peer,
                )
        return self._entries(peer, msg.entries)

    def _entries(
        self, peer: str, entries: Iterable[LogEntry], hint_for: str | None = None
    ) -> CheckedBatch:
        """Check and decode every entry (its delta decodes, partition and kind agree) and
        build the delta groups; nothing changes. An entry of a ``Push`` for ``hint_for``
        (another replica) is only held as a hint unless this replica is a home of its key."""
        parts = self._config.partitions
        out = CheckedBatch([], [], {})
        home, groups = out.home, out.groups
        from_dict = crdt.from_dict
        me = self._me
        ring = self._membership.ring() if hint_for is not None and hint_for != me else None
        data = self._data
        partition, summary_if_any = data.partition, data.summary_if_any
        for i, e in enumerate(entries):
            if e.partition >= parts:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: partition out of range 0..{parts - 1}", peer
                )
            if not e.key or not 1 <= e.seq <= MAX_SEQ:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: a log entry needs a non-empty key and a seq in 1..2**63-1",
                    peer,
                )
            if partition(e.key) != e.partition:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: key {e.key!r} is not in that partition", peer
                )
            try:
                delta = from_dict(from_json(e.delta_json, allow_inf_nan=False))
            except (TypeError, ValueError) as exc:  # DecodeError and bad JSON: ValueErrors
                raise RemoteProtocolError(f"{_where(i, e)}: bad CRDT state: {exc}", peer) from exc
            kind = delta.kind
            if kind != e.kind:
                raise RemoteProtocolError(
                    f"{_where(i, e)}: says kind {e.kind!r} but its delta is a {kind}", peer
                )
            # The wire's text is logged, stored and forwarded as it is when it is in our own
            # compact form (it is, from shoal peers); any other spelling is encoded afresh.
            if not e.delta_json.startswith(_TYPE_PREFIX[kind]):
                e = replace(e, delta_json=delta.to_json())
            if ring is not None and me not in ring.preference_list(e.partition):
                out.hints.append(e)
                continue
            home.append(e)
            summ = summary_if_any(e.partition)
            if summ is None:
                summ = _EMPTY_CTX
            if e.seq <= summ.vv.get(e.origin, 0) or (e.origin, e.seq) in summ.cloud:
                continue  # known here: its delta is in the state already
            oid = (e.key, kind)
            group = groups.get(oid)
            if group is None:
                groups[oid] = (e.partition, delta)  # freshly decoded: the group to join into
            else:
                group[1].merge(delta)
        return out

    def read_reply(self, peer: str, msg: m.ReadResp) -> CRDT | None:
        """The state a ``ReadResp`` carries (None: the replier does not hold the key)."""
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
        return state

    def repair(self, peer: str, msg: m.Repair) -> CRDT:
        """The state a ``Repair`` carries."""
        state = _decode_crdt(peer, msg.state, f"state of {msg.key!r}")
        if state.kind != msg.kind:
            raise RemoteProtocolError(
                f"repair of {msg.key!r} says kind {msg.kind!r} but carries a {state.kind}", peer
            )
        return state

    def summary(self, peer: str, msg: m.Summary) -> dict[int, CausalContext]:
        """The summaries a ``Summary`` carries, by partition."""
        parts: dict[int, CausalContext] = {}
        for p, ctx in msg.parts.items():
            if p >= self._config.partitions:
                raise RemoteProtocolError(
                    f"summary of partition {p}, out of range 0..{self._config.partitions - 1}",
                    peer,
                )
            try:
                parts[p] = CausalContext(dict(ctx.vv), [Dot(r, c) for r, c in ctx.cloud])
            except (TypeError, ValueError) as exc:
                raise RemoteProtocolError(f"summary of partition {p}: {exc}", peer) from exc
        return parts

    def snapshot(
        self, peer: str, msg: m.SnapshotChunk
    ) -> tuple[list[tuple[str, CRDT]], CausalContext | None]:
        """The states of a ``SnapshotChunk`` by key, and the summary it carries (if last)."""
        parts = self._config.partitions
        if msg.partition >= parts:
            raise RemoteProtocolError(f"snapshot of partition {msg.partition}: out of range", peer)
        states: list[tuple[str, CRDT]] = []
        for i, o in enumerate(msg.objects):
            where = f"snapshot object {i} ({o.key!r})"
            if partition_of(o.key, parts) != msg.partition:
                raise RemoteProtocolError(f"{where}: not in partition {msg.partition}", peer)
            state = _decode_crdt(peer, o.state, where)
            if state.kind != o.kind:
                raise RemoteProtocolError(f"{where}: says {o.kind!r}, is a {state.kind}", peer)
            states.append((o.key, state))
        ctx = None
        if msg.summary is not None:
            try:
                ctx = CausalContext(dict(msg.summary.vv), [Dot(r, c) for r, c in msg.summary.cloud])
            except (TypeError, ValueError) as exc:
                raise RemoteProtocolError(f"snapshot summary: {exc}", peer) from exc
        return states, ctx

    def part_digests(self, peer: str, msg: m.PartDigests) -> None:
        """A ``PartDigests`` names partitions in range."""
        for p in msg.parts:
            if p >= self._config.partitions:
                raise RemoteProtocolError(
                    f"digest of partition {p}, out of range 0..{self._config.partitions - 1}",
                    peer,
                )

    def read_digest_reply(
        self, peer: str, msg: m.ReadDigestResp
    ) -> tuple[CausalContext | None, CRDT | None]:
        """The causal context or the state a ``ReadDigestResp`` carries (both None: the
        same digest, or the replier holds nothing)."""
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
            if msg.kind not in crdt.KINDS or causal_context(crdt.new(msg.kind)) is None:
                raise RemoteProtocolError(
                    f"read digest of {msg.key!r}: a context for the kind {msg.kind!r}, "
                    "which has none",
                    peer,
                )
            return _ctx(peer, msg.ctx, f"context of {msg.key!r}"), None
        if msg.state is None:
            return None, None
        state = _decode_crdt(peer, msg.state, f"state of {msg.key!r}")
        if state.kind != msg.kind:
            raise RemoteProtocolError(
                f"read digest of {msg.key!r} says kind {msg.kind!r} but carries a {state.kind}",
                peer,
            )
        return None, state

    def read_fetch(self, peer: str, msg: m.ReadFetch) -> CausalContext:
        """The causal context a ``ReadFetch`` carries."""
        return _ctx(peer, msg.seen, f"context of {msg.key!r}")


def _ctx(peer: str, model: m.Ctx, where: str) -> CausalContext:
    try:
        return CausalContext(dict(model.vv), [Dot(r, c) for r, c in model.cloud])
    except (TypeError, ValueError) as exc:
        raise RemoteProtocolError(f"{where}: {exc}", peer) from exc


def _where(i: int, e: LogEntry) -> str:
    return f"entry {i} ({e.origin}, {e.partition}, {e.seq})"


def _decode_crdt(peer: str, d: dict[str, Any], where: str) -> CRDT:
    try:
        obj: CRDT = crdt.from_dict(d)
    except (TypeError, ValueError) as exc:  # DecodeError is a ValueError
        raise RemoteProtocolError(f"{where}: bad CRDT state: {exc}", peer) from exc
    return obj
