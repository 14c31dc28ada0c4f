"""Outbound batching: pushes coalesced per peer, and the sent messages awaiting an ack.

:class:`Outbound` owns

* the **push buffers**: entries queued for a peer (and a ``hint_for``) until the next drain
  become one ``Push`` of at most ``ae_batch`` entries and about :meth:`Outbound.batch_bytes`
  bytes (a full buffer is sent at once and a new one started);
* the **records of sent messages awaiting an ``Ack``** (:class:`AwaitingAck`): for a push,
  the writes and hints it carried; for an anti-entropy batch, only that it is one. A push
  whose ack can no longer matter is forgotten by :meth:`Outbound.sweep`;
* **relay forwarding**: a relay passes entries new to it straight on to the other homes up,
  in pushes that go *before* the drain's ``Persist`` (:meth:`Outbox.emit_early`): they carry
  other origins' entries, signed by them, which depend on nothing this relay makes durable,
  so the next hop does not wait for the relay's commit.

Knows the outbox, the timers and membership.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import HintId, LogEntry, Send
from sync.replica.membership import Membership
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers
from sync.signing import SEAL_WIRE_MAX

__all__ = ["AwaitingAck", "Outbound", "PushBuffer", "entry_size", "text_size", "value_size"]

# Bytes a log entry adds to a message beyond its delta, key and origin (field names, numbers).
_ENTRY_OVERHEAD = 96
_SWEEP = Timer(TimerKind.SWEEP)


def entry_size(e: LogEntry) -> int:
    """About how many bytes ``e`` takes in a message, never less: its delta travels as a JSON
    string (every quote and backslash in it escaped) in UTF-8 (a non-ASCII character is up
    to four bytes); the key is counted the same way."""
    raw, key = e.delta_json, e.key
    size = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
    size += raw.count('"') + raw.count("\\")
    size += len(key) if key.isascii() else 2 * len(key.encode("utf-8", "surrogatepass"))
    origin = e.origin
    size += len(origin) if origin.isascii() else 2 * len(origin.encode("utf-8", "surrogatepass"))
    return size + _ENTRY_OVERHEAD


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def value_size(value: Any) -> int:
    """How many bytes ``value`` adds to a log entry in a message, counted as
    :func:`entry_size` counts a delta: the UTF-8 bytes of its compact JSON text, plus one for
    each quote and backslash in it (escaped again when the delta travels as a string).

    0 for a value that is not JSON: the CRDT refuses it at the write, with its own message.
    """
    if type(value) is str and value.isascii() and value.isprintable():
        # The common case, without encoding: JSON escapes only the quotes and backslashes of
        # such a string, each of which then takes 4 bytes of the entry; and its two quotes.
        return len(value) + 4 + 3 * (value.count('"') + value.count("\\"))
    try:
        text = _dumps(value)
    except (TypeError, ValueError, RecursionError):
        return 0
    return text_size(text)


def text_size(text: str) -> int:
    """How many bytes the JSON text ``text`` adds to a message inside a JSON string (a
    delta's text in an entry): its UTF-8 bytes, plus one for each quote and backslash."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return size + text.count('"') + text.count("\\")


@dataclass(slots=True)
class AwaitingAck:
    """A sent message awaiting its Ack: for a push, the entries it carries (the list the push
    was built from, not a copy), so that an ack tells who holds which log dots."""

    peer: str
    ae: bool  # an anti-entropy Deltas/SnapshotChunk (else a Push)
    ops: list[int] = field(default_factory=list)  # the writes it carries
    hint_ids: list[HintId] = field(default_factory=list)  # the hints it hands off
    hint_for: str | None = None
    sent_at: float = 0.0
    entries: list[LogEntry] = field(default_factory=list)
    # The position in ``entries`` of the entry of each of ``ops`` and of ``hint_ids``.
    op_at: list[int] = field(default_factory=list)
    hint_at: list[int] = field(default_factory=list)

    def without(self, skipped: Iterable[int]) -> AwaitingAck:
        """This record less the entries at the positions ``skipped`` (an ``AckExcept``: the
        receiver set them aside), with their writes and hints."""
        out = set(skipped)
        return AwaitingAck(
            self.peer,
            self.ae,
            [op for op, i in zip(self.ops, self.op_at, strict=True) if i not in out],
            [h for h, i in zip(self.hint_ids, self.hint_at, strict=True) if i not in out],
            self.hint_for,
            self.sent_at,
            [e for i, e in enumerate(self.entries) if i not in out],
        )


@dataclass(slots=True)
class PushBuffer:
    """The entries queued for one ``Push`` to ``peer`` (for ``hint_for``)."""

    push_id: int
    peer: str
    hint_for: str | None
    record: AwaitingAck  # its record among the messages awaiting an ack
    entries: list[LogEntry] = field(default_factory=list)
    size: int = 0  # estimated encoded bytes of entries
    early: bool = False  # a relay's forward: sent before the drain's Persist


class Outbound:
    """Coalesces pushes per peer and tracks every sent message until its ack."""

    __slots__ = (
        "_awaiting",
        "_buffers",
        "_config",
        "_emit",
        "_me",
        "_membership",
        "_outbox",
        "_seal_share",
        "_timers",
    )

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        outbox: Outbox,
        timers: Timers,
        membership: Membership,
        *,
        sealed: bool = False,
    ) -> None:
        self._config = config
        # Sealed entries travel with their seals: each may bring one into a message, so it
        # is counted as that much bigger (at the default limits no batch gets smaller).
        self._seal_share = SEAL_WIRE_MAX if sealed else 0
        self._me = replica_id
        self._outbox = outbox
        self._emit = outbox.emit
        self._timers = timers
        self._membership = membership
        self._awaiting: dict[tuple[str, int], AwaitingAck] = {}  # (peer, message id) ->
        # (peer, hint_for, early) -> the push being filled
        self._buffers: dict[tuple[str, str | None, bool], PushBuffer] = {}

    def batch_bytes(self) -> int:
        """The bytes of entries one message carries at most: half the receiver's limit
        (room for the envelope and JSON escaping of the deltas)."""
        return self._config.max_message_bytes // 2

    def split(self, entries: list[LogEntry]) -> list[list[LogEntry]]:
        """Split ``entries`` into messages of at most ``ae_batch`` entries and about
        :meth:`batch_bytes` bytes (an entry bigger than that travels alone)."""
        out: list[list[LogEntry]] = []
        cur: list[LogEntry] = []
        size = 0
        limit, count = self.batch_bytes(), self._config.ae_batch
        share = self._seal_share
        for e in entries:
            b = entry_size(e) + share
            if cur and (len(cur) >= count or size + b > limit):
                out.append(cur)
                cur, size = [], 0
            cur.append(e)
            size += b
        if cur:
            out.append(cur)
        return out

    # -- pushes ------------------------------------------------------------------------------
    def queue_push(
        self,
        peer: str,
        hint_for: str | None,
        entry: LogEntry,
        op_id: int | None,
        hint_id: HintId | None,
        now: float,
        *,
        early: bool = False,
    ) -> None:
        """Queue ``entry`` for ``peer`` (the entry is its own wire form); its ack completes
        ``op_id`` (a write) and drops ``hint_id`` (a hint handed off). ``early``: a relay's
        forward, sent ahead of the drain's ``Persist`` (in a push of its own)."""
        key = (peer, hint_for, early)
        buf = self._buffers.get(key)
        size = entry_size(entry) + self._seal_share
        if buf is not None and (
            len(buf.entries) >= self._config.ae_batch or buf.size + size > self.batch_bytes()
        ):
            self._send(buf)
            buf = None
        if buf is None:
            record = AwaitingAck(peer, False, hint_for=hint_for, sent_at=now)
            buf = self._buffers[key] = PushBuffer(
                self._outbox.new_id(), peer, hint_for, record, early=early
            )
            record.entries = buf.entries  # the same list: an ack names the entries it carried
            self._awaiting[(peer, buf.push_id)] = record
            if _SWEEP not in self._timers:
                self._timers.set(_SWEEP, now + 2 * self._config.write_timeout)
        at = len(buf.entries)
        buf.entries.append(entry)
        buf.size += size
        if op_id is not None:
            buf.record.ops.append(op_id)
            buf.record.op_at.append(at)
        if hint_id is not None:
            buf.record.hint_ids.append(hint_id)
            buf.record.hint_at.append(at)

    def _send(self, buf: PushBuffer) -> None:
        del self._buffers[(buf.peer, buf.hint_for, buf.early)]
        msg = m.Push.model_construct(
            proto=1, t="push", push_id=buf.push_id, entries=buf.entries, hint_for=buf.hint_for
        )
        if buf.early:
            self._outbox.emit_early(Send(buf.peer, msg, early=True))
        else:
            self._emit(Send(buf.peer, msg))

    def flush(self) -> None:
        """Send every queued push (at the drain)."""
        for buf in list(self._buffers.values()):
            self._send(buf)

    def relay_forward(self, sender: str, applied: list[LogEntry], now: float) -> None:
        """A relay passes new entries straight on to the other homes it is connected to.

        Devices behind NAT reach only the relay; without this they would see each other's
        writes only at the relay's next anti-entropy round. The pushes carry no write (their
        acks complete nothing) and are coalesced like any other; a lost one is repaired by
        anti-entropy. Entries are never sent back to their sender or their origin, and a peer
        that already has them applies nothing, so forwarding between relays terminates.
        """
        if not self._config.relay or not applied:
            return
        ring, up, me = self._membership.ring(), self._membership.up, self._me
        targets: dict[int, tuple[str, ...]] = {}  # per partition: the homes to pass on to
        for e in applied:
            homes = targets.get(e.partition)
            if homes is None:
                homes = targets[e.partition] = tuple(
                    h
                    for h in ring.preference_list(e.partition)
                    if h in up and h not in (sender, me)
                )
            for home in homes:
                if home != e.origin:
                    # Another origin's entry goes ahead of our commit; one of our own (ours
                    # from before a restore, handed back) waits for it like any of ours.
                    self.queue_push(home, None, e, None, None, now, early=e.origin != me)

    # -- acks --------------------------------------------------------------------------------
    def expect_ack(self, peer: str, message_id: int, now: float) -> None:
        """An anti-entropy batch ``message_id`` was sent to ``peer``."""
        self._awaiting[(peer, message_id)] = AwaitingAck(peer, True, sent_at=now)

    def acked(self, peer: str, message_id: int) -> AwaitingAck | None:
        """The record of what ``peer`` acknowledged (None: a duplicate, or given up on)."""
        return self._awaiting.pop((peer, message_id), None)

    def give_up(self, peer: str, message_id: int) -> None:
        self._awaiting.pop((peer, message_id), None)

    def peer_down(self, peer: str) -> None:
        """Forget every message awaiting an ack of ``peer`` and the pushes queued for it."""
        for k in [k for k in self._awaiting if k[0] == peer]:
            del self._awaiting[k]
        for buf_key in [k for k in self._buffers if k[0] == peer]:
            del self._buffers[buf_key]

    def sweep(self, now: float, pending_writes: Container[int]) -> None:
        """Forget pushes whose ack can no longer matter (lost messages on a live link).

        A push is kept while one of its writes is pending; its hints are re-sent by the
        hand-off retry anyway.
        """
        cutoff = now - 2 * self._config.write_timeout
        stale = [
            k
            for k, rec in self._awaiting.items()
            if not rec.ae
            and rec.sent_at <= cutoff
            and not any(op in pending_writes for op in rec.ops)
        ]
        for k in stale:
            del self._awaiting[k]
        if any(not rec.ae for rec in self._awaiting.values()):
            self._timers.set(_SWEEP, now + 2 * self._config.write_timeout)
