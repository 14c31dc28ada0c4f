"""Wire messages: pydantic v2 models, one discriminated union, one codec.

(About 700 lines on purpose: every message of the protocol and its one decoder in one place,
so that what crosses the wire can be read, and reviewed, in a single file.)

Every message is a JSON object with a literal type tag ``t`` and the protocol version
``proto`` (currently ``1``); a ``Push`` or ``Deltas`` whose entries are sealed is followed by
a NUL byte and a binary tail, the bytes of its seals (a JSON text has no raw NUL, so the first
one ends it; :mod:`sync.wire_entries`). :func:`decode` is the only way bytes become messages:
it refuses anything oversized, not JSON, of an unknown version or type, or with a field of the wrong
type, by raising :class:`~sync.errors.RemoteProtocolError` with a clear ``reason``, and it has
no side effects. Validation runs once, at this boundary, directly on the bytes
(``TypeAdapter.validate_json``); the engine then checks what only it can (CRDT bodies,
partitions, kinds).

Handshake (used by ``sync/transport`` only, the engine never sees them): ``Hello`` (each side
announces itself and a nonce), ``AuthReply`` (a MAC over the other side's nonce with the group
secret, plus its own nonce when needed), ``Welcome`` (accepted), ``Goodbye`` (closing, with a
code and reason), ``Ping``/``Pong`` (heartbeats).

Replication (the engine, :class:`sync.Replica`):

The log entries of a ``Push`` or ``Deltas`` travel with the seals of their origins
(:mod:`sync.signing`), in the wire form of :mod:`sync.wire_entries`.

* ``Push(push_id, entries, hint_for)`` — log entries for a home replica (``hint_for=None``)
  or, in a sloppy quorum, for a fallback to hold on behalf of ``hint_for``.
* ``Ack(ids)`` — acknowledges ``Push.push_id``, ``Deltas.batch_id`` and
  ``SnapshotChunk.batch_id`` values: the receiver has made them durable.
* ``AckExcept(push_id, skipped)`` — acknowledges the ``Push`` ``push_id`` but for its
  entries at the positions ``skipped``, which the receiver set aside (stamped too far ahead
  of its clock) or, in a push for another replica, did not hold as hints (no home of their
  partition there): the rest is durable there. A type of its own, so that a peer that does not
  know it refuses it rather than read it as an ``Ack`` of every entry.
* ``ReadReq(req_id, key, kind)`` / ``ReadResp(req_id, key, kind, state)`` — quorum reads of
  the object ``(key, kind)`` (an object is named by its key and kind: one key written
  offline as two kinds by two peers holds both).
* ``Repair(key, kind, state)`` — read repair: merge this state into ``(key, kind)``.
* ``Summary(parts, known_peers, reply, more_members, offer)`` — anti-entropy: per
  partition, the causal context of the log dots the sender has applied; the peers it knows;
  ``reply`` asks the receiver to answer with its own summary if it has something the sender
  lacks; ``more_members``: the list of peers goes on in the next summary; ``offer``: the
  sender is no home of these partitions by its ring and asks for nothing of them.
* ``Deltas(batch_id, partition, entries, more, remaining)`` — anti-entropy batch of log
  entries.
* ``SnapshotChunk(batch_id, partition, objects, summary, last, remaining)`` — state transfer
  to a peer behind the compacted log; the last chunk carries the sender's summary of the
  partition. An object is its state's JSON text (``state_json``), or, for a state too big
  for one message, one of the pieces it was split into (``piece``: a delta whose join with
  the other pieces is the state, ``crdt/_split.py``).
* ``remaining`` (``Deltas``, ``SnapshotChunk``): ``[entries, bytes]``, about how much of the
  anti-entropy round the sender still has to send after this message (log entries and
  objects; the bytes of their texts), for the receiver's catch-up progress; absent: not
  said.
* ``Digest(root, members, reply)`` — one anti-entropy round between homes: the digest of the
  summaries of the partitions both share and of the members the sender knows; ``reply`` asks
  the receiver to answer with its own digest when this one taught it something.
* ``PartDigests(parts)`` — the roots differed: per shared partition, the digest of its
  summary; the receiver answers with a ``Summary`` of the partitions whose digests differ.
* ``ReadDigest(req_id, key, kind, digest)`` / ``ReadDigestResp(req_id, key, kind, same, ctx,
  state)`` — a quorum read asks for a digest of the object ``(key, kind)``, giving its own
  (None: holds nothing); the answer says whether they are the same and, if not, carries the
  replier's causal context (causal kinds) or its whole state (the others).
* ``ReadFetch(req_id, key, kind, seen)`` — the part of the replier's object that a state with
  the causal context ``seen`` lacks, answered with a ``ReadResp``.

There is no message to forget a peer: forgetting is an operator's action on each peer
(``peer.forget``, ``shoal forget``), never something a member can ask of another (a
``"forget"`` message is refused as of an unknown type, and its link closed).

>>> msg = decode(encode(Ack(ids=[1, 2])), max_size=1000)
>>> msg
Ack(proto=1, t='ack', ids=[1, 2])
>>> decode(b'{"t": "ack", "proto": 2, "ids": []}', max_size=1000)
Traceback (most recent call last):
...
sync.errors.RemoteProtocolError: unsupported protocol version 2 (this peer speaks 1)
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal, Self, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from sync.config import MAX_KEY_BYTES, MAX_MESSAGE_BYTES
from sync.effects import LogEntry
from sync.errors import RemoteProtocolError
from sync.jsontext import dump, parse_shallow
from sync.wire_entries import attach_seals, entry_in, entry_out, from_wire, to_wire

__all__ = [
    "PROTOCOL_VERSION",
    "REPLICA_ID_PATTERN",
    "SEQ_LIMIT",
    "Ack",
    "AckExcept",
    "AuthReply",
    "Ctx",
    "Deltas",
    "Digest",
    "Entry",
    "Goodbye",
    "Hello",
    "Message",
    "PartDigests",
    "PeerInfo",
    "Ping",
    "Pong",
    "Push",
    "ReadDigest",
    "ReadDigestResp",
    "ReadFetch",
    "ReadReq",
    "ReadResp",
    "Remaining",
    "Repair",
    "SnapObject",
    "SnapshotChunk",
    "Summary",
    "Welcome",
    "decode",
    "encode",
    "is_key",
    "is_replica_id",
    "snap_object",
]

PROTOCOL_VERSION: Final = 1
_WIRE: Final[dict[str, bool]] = {"wire": True}

#: What a replica id looks like (the handshake refuses any other, so no other id can have
#: minted a log dot).
REPLICA_ID_PATTERN: Final = r"^[A-Za-z0-9._:@/+-]{1,128}$"
_REPLICA_ID = re.compile(REPLICA_ID_PATTERN)

#: The largest log-dot counter a peer may send: half the signed 64-bit range of the store's
#: columns. A replica is never made to number its own log dots past it (neither by an entry
#: nor by a summary that claims a dot of its own), so it always keeps 2**62 dots of its own
#: per partition, whatever it is told: nobody can run its numbering into the store's limit.
#: No honest peer comes near it (a billion writes a second into one partition for 146
#: years), so it refuses nothing real, however long a peer was offline.
SEQ_LIMIT: Final = 2**62


def is_replica_id(value: object) -> bool:
    """True if ``value`` is a well-formed replica id (:data:`REPLICA_ID_PATTERN`)."""
    return type(value) is str and _REPLICA_ID.match(value) is not None


def is_key(value: object) -> bool:
    """True if ``value`` is a key every store can hold: a non-empty str without NUL, of at
    most :data:`~sync.config.MAX_KEY_BYTES` bytes of UTF-8 (whatever the store would refuse,
    the link refuses first)."""
    if type(value) is not str or value == "" or "\x00" in value:
        return False
    # (A wire key decoded from JSON has UTF-8 text; a key of a message built in Python may
    # not, which the engine's own checks refuse.)
    return len(value) <= MAX_KEY_BYTES // 4 or len(value.encode("utf-8", "replace")) <= (
        MAX_KEY_BYTES
    )


NonEmpty = Annotated[str, Field(min_length=1)]
ReplicaId = Annotated[str, Field(min_length=1, max_length=128, pattern=REPLICA_ID_PATTERN)]
Key = Annotated[str, Field(min_length=1, pattern=r"^[^\x00]+$")]
_Short = Annotated[str, Field(max_length=512, pattern=r"^[^\x00]*$")]
Count = Annotated[int, Field(ge=1, le=SEQ_LIMIT)]
Index = Annotated[int, Field(ge=0)]
Json = dict[str, Any]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")


# One log entry: the delta of ``key`` with log dot ``(origin, partition, seq)``, as the
# engine logs it (a dataclass validated with the constraints it declares). On the
# wire it is the array ``[origin, partition, seq, key, kind, delta_json]`` (no field names:
# a busy peer sends hundreds per message). ``delta_json`` is the JSON *text* of the delta's
# ``to_dict()``, carried as a string: the receiver stores and forwards it as it is (no
# re-encoding) and parses it only to merge. The engine checks that it decodes to a CRDT of
# ``kind`` before anything changes.
Entry = LogEntry
_WireEntry = Annotated[LogEntry, BeforeValidator(entry_in), PlainSerializer(entry_out)]


class SnapObject(_Model):
    """An object state in a state transfer: its ``to_dict()`` as JSON text (stored and
    sent as it is); ``piece``: one of the deltas a state too big for one message was split
    into (the receiver merges it as a delta and checkpoints the object once the partition's
    last chunk came)."""

    key: Key
    kind: NonEmpty
    state_json: str
    piece: bool = False


# ``[entries, bytes]`` still to come after this message (see the module docstring).
Remaining = tuple[
    Annotated[int, Field(ge=0, le=SEQ_LIMIT)], Annotated[int, Field(ge=0, le=SEQ_LIMIT)]
]


class Ctx(_Model):
    """A causal context of log dots: ``{"vv": {origin: n}, "cloud": [[origin, n], ...]}``."""

    vv: dict[ReplicaId, Count] = {}
    cloud: list[tuple[ReplicaId, Count]] = []


class PeerInfo(_Model):
    """A member of the group as gossiped in summaries; ``home``: it takes a share of the
    ring (a short-lived replica does not: every peer leaves it off the ring). ``key``,
    ``at`` and ``sig``: the member's own signature over the other fields, its *card*
    (:mod:`sync.member_cards`); a listing without them only introduces a member."""

    replica_id: ReplicaId
    address: _Short | None = None
    site: _Short | None = None
    home: bool = True
    key: Annotated[str, Field(max_length=64)] | None = None
    at: Annotated[int, Field(ge=0, le=SEQ_LIMIT)] = 0
    sig: Annotated[str, Field(max_length=128)] | None = None

    @model_serializer(mode="wrap")
    def _card_only_if_signed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An unsigned listing is sent without the card's fields (as before cards)."""
        data: dict[str, Any] = handler(self)
        if self.sig is None:
            for name in ("key", "at", "sig"):
                data.pop(name, None)
        return data


class _Message(_Model):
    # 1 when built in Python; required on the wire. The default is a sentinel (0) turned into
    # 1 by the validator unless the message comes from decode (a model-level validator would
    # make pydantic validate the whole message in Python mode: slower, and stricter on arrays).
    proto: Literal[1] = Field(default=cast(Literal[1], 0), validate_default=True)

    @field_validator("proto", mode="before")
    @classmethod
    def _proto_default(cls, value: Any, info: ValidationInfo) -> Any:
        if value == 0 and type(value) is int:
            if info.context is _WIRE:
                raise ValueError("missing protocol version 'proto'")
            return PROTOCOL_VERSION
        return value

    @classmethod
    def model_construct(  # type: ignore[override]  # the pydantic plugin's synthesized one
        cls, _fields_set: set[str] | None = None, **values: Any
    ) -> Self:
        """Build without validation (for messages we make ourselves); ``proto`` is set."""
        values.setdefault("proto", PROTOCOL_VERSION)
        return cast(Self, super().model_construct(_fields_set, **values))


class Hello(_Message):
    t: Literal["hello"] = "hello"
    group: str
    replica_id: NonEmpty
    nonce: str
    address: str | None = None
    site: str | None = None
    relay: bool = False


class AuthReply(_Message):
    t: Literal["auth"] = "auth"
    mac: str
    nonce: str = ""


class Welcome(_Message):
    t: Literal["welcome"] = "welcome"
    replica_id: str | None = None


class Goodbye(_Message):
    t: Literal["goodbye"] = "goodbye"
    code: int
    reason: str = ""


class Push(_Message):
    t: Literal["push"] = "push"
    push_id: int
    entries: list[_WireEntry]
    hint_for: ReplicaId | None = None


class Ack(_Message):
    t: Literal["ack"] = "ack"
    ids: list[int]


class AckExcept(_Message):
    t: Literal["ack_except"] = "ack_except"
    push_id: int
    skipped: list[Annotated[int, Field(ge=0, lt=2**31)]] = Field(min_length=1, max_length=65536)


class ReadReq(_Message):
    t: Literal["read"] = "read"
    req_id: int
    key: Key
    kind: NonEmpty


class ReadResp(_Message):
    t: Literal["read_resp"] = "read_resp"
    req_id: int
    key: Key
    kind: NonEmpty
    state: Json | None = None


class Repair(_Message):
    t: Literal["repair"] = "repair"
    key: Key
    kind: NonEmpty
    state: Json


class Summary(_Message):
    """``more_members``: the list of members goes on in the next summary (a list too big
    for one message is sent in parts). ``offer``: the sender is no home of ``parts`` (by
    its ring): it offers what it holds of them and is sent nothing of them back (unless the
    receiver counts it a home of them); else it asks, as a home of them by its ring, for
    what it lacks. Each is sent only when true (a peer of an earlier version ignores
    ``offer``)."""

    t: Literal["summary"] = "summary"
    # JSON object keys are strings: the partition number is parsed leniently here only.
    parts: dict[Annotated[int, Strict(False), Field(ge=0)], Ctx] = {}
    known_peers: list[PeerInfo] = []
    reply: bool = False
    more_members: bool = False
    offer: bool = False

    @model_serializer(mode="wrap")
    def _flags_only_if_so(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.more_members:
            data.pop("more_members", None)
        if not self.offer:
            data.pop("offer", None)
        return data


class Deltas(_Message):
    t: Literal["deltas"] = "deltas"
    batch_id: int
    partition: Index
    entries: list[_WireEntry]
    more: bool = False
    remaining: Remaining | None = None


class SnapshotChunk(_Message):
    t: Literal["snapshot"] = "snapshot"
    batch_id: int
    partition: Index
    objects: list[SnapObject]
    summary: Ctx | None = None
    last: bool = False
    remaining: Remaining | None = None


class Ping(_Message):
    t: Literal["ping"] = "ping"
    nonce: int = 0


class Pong(_Message):
    t: Literal["pong"] = "pong"
    nonce: int = 0


class Digest(_Message):
    t: Literal["digest"] = "digest"
    root: str
    members: str
    reply: bool = False


class PartDigests(_Message):
    t: Literal["part_digests"] = "part_digests"
    # JSON object keys are strings: the partition number is parsed leniently here only.
    parts: dict[Annotated[int, Strict(False), Field(ge=0)], str] = {}


class ReadDigest(_Message):
    t: Literal["read_digest"] = "read_digest"
    req_id: int
    key: str
    kind: NonEmpty
    digest: str | None = None


class ReadDigestResp(_Message):
    t: Literal["read_digest_resp"] = "read_digest_resp"
    req_id: int
    key: str
    kind: NonEmpty
    same: bool
    ctx: Ctx | None = None
    state: Json | None = None


class ReadFetch(_Message):
    t: Literal["read_fetch"] = "read_fetch"
    req_id: int
    key: str
    kind: NonEmpty
    seen: Ctx


Message = Annotated[
    Hello
    | AuthReply
    | Welcome
    | Goodbye
    | Push
    | Ack
    | AckExcept
    | ReadReq
    | ReadResp
    | Repair
    | Summary
    | Deltas
    | SnapshotChunk
    | Ping
    | Pong
    | Digest
    | PartDigests
    | ReadDigest
    | ReadDigestResp
    | ReadFetch,
    Field(discriminator="t"),
]

_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)

# -- the fast path of the replication stream --------------------------------------------------
#
# ``Push``, ``Deltas`` and ``Ack`` carry nearly every byte a busy peer exchanges. Their JSON is
# made and read here without pydantic's per-field machinery: encoding hands the fields to
# pydantic-core's serializer as plain dicts (a model's ``__dict__`` is exactly its fields), and
# decoding parses with pydantic-core's JSON parser and checks every field the models declare
# by hand, with the same strict rules (an ``int`` is never a ``bool`` or a ``float``...). Any
# message that fails a check is handed to the pydantic path, which refuses it with its reason;
# so both paths accept exactly the same messages and build equal models.

# The setters of the four slots every model instance has (``BaseModel.__slots__``), taken
# once: what ``object.__setattr__(obj, name, value)`` calls after looking ``name`` up on the
# model's class, each time (a bootstrap builds a model per object, a hundred thousand).
_SLOTS: Final = BaseModel.__dict__
_set_dict: Final = _SLOTS["__dict__"].__set__
_set_fields_set: Final = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra: Final = _SLOTS["__pydantic_extra__"].__set__
_set_private: Final = _SLOTS["__pydantic_private__"].__set__


def _built(cls: type[_Model], fields: dict[str, Any], fields_set: set[str] | None = None) -> Any:
    """A model instance over ``fields`` (already exactly its fields, already checked)."""
    obj = cls.__new__(cls)
    _set_dict(obj, fields)
    _set_fields_set(obj, set(fields) if fields_set is None else fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


def snap_object(key: str, kind: str, state_json: str, piece: bool = False) -> SnapObject:
    """The :class:`SnapObject` ``SnapObject.model_construct(key=..., kind=..., state_json=...,
    [piece=True])`` builds, without its per-field default handling: a state transfer makes
    one per object it sends (a fifth of a bootstrap's serving time went to
    ``model_construct``). Nothing is validated (for objects we read from our own store)."""
    if piece:
        fields = {"key": key, "kind": kind, "state_json": state_json, "piece": True}
        return cast(SnapObject, _built(SnapObject, fields))
    fields = {"key": key, "kind": kind, "state_json": state_json, "piece": False}
    return cast(SnapObject, _built(SnapObject, fields, {"key", "kind", "state_json"}))


# The fields a message decoded without its optional field has set (as pydantic records it).
_PUSH_SET_NO_HINT: Final = frozenset({"proto", "t", "push_id", "entries"})
_DELTAS_SET_BASE: Final = frozenset({"proto", "t", "batch_id", "partition", "entries"})


def _fast_decode(raw: Any, tail: bytes = b"") -> Message | None:
    """The message ``raw`` (parsed JSON) and its binary ``tail`` encode, if it is a
    well-formed fast-path one."""
    if type(raw) is not dict or type(raw.get("proto")) is not int or raw["proto"] != 1:
        return None
    t = raw.get("t")
    if tail and t != "push" and t != "deltas":
        return None
    if t == "ack":
        ids = raw.get("ids")
        if type(ids) is not list or any(type(i) is not int for i in ids):
            return None
        msg: Message = _built(Ack, {"proto": 1, "t": "ack", "ids": ids})
        return msg
    if t == "push":
        push_id = raw.get("push_id")
        hint_for = raw.get("hint_for")
        if type(push_id) is not int or (hint_for is not None and not is_replica_id(hint_for)):
            return None
        entries = from_wire(raw.get("entries"), raw.get("seals"), tail)
        if entries is None:
            return None
        fields = {
            "proto": 1,
            "t": "push",
            "push_id": push_id,
            "entries": entries,
            "hint_for": hint_for,
        }
        msg = _built(Push, fields, None if "hint_for" in raw else set(_PUSH_SET_NO_HINT))
        return msg
    if t == "deltas":
        head = _batch_head(raw, "more")
        if head is None:
            return None
        batch_id, partition, more, remaining = head
        entries = from_wire(raw.get("entries"), raw.get("seals"), tail)
        if entries is None:
            return None
        fields = {
            "proto": 1,
            "t": "deltas",
            "batch_id": batch_id,
            "partition": partition,
            "entries": entries,
            "more": more,
            "remaining": remaining,
        }
        fields_set = set(_DELTAS_SET_BASE)
        fields_set.update(name for name in ("more", "remaining") if name in raw)
        msg = _built(Deltas, fields, fields_set)
        return msg
    if t == "snapshot":
        return _fast_snapshot(raw)
    return None


_SNAPSHOT_FIELDS: Final = frozenset(SnapshotChunk.model_fields)
_SNAP_SET_BASE: Final = frozenset({"key", "kind", "state_json"})


def _fast_snapshot(raw: dict[str, Any]) -> SnapshotChunk | None:
    """A state transfer's chunk (``raw`` parsed JSON) without a summary, checked field by
    field as the models declare; None for anything else: what a bootstrap spends here is the
    objects, a hundred thousand of them."""
    head = _batch_head(raw, "last")
    objects = raw.get("objects")
    if head is None or type(objects) is not list:
        return None
    batch_id, partition, last, remaining = head
    if raw.get("summary") is not None:
        # The chunk that carries its partition's summary (one a partition) goes through the
        # pydantic path: the summary's maps are checked pair by pair there, duplicate keys
        # included, which the parsed form here no longer shows.
        return None
    out: list[SnapObject] = []
    append = out.append
    for o in objects:
        if type(o) is not dict:
            return None
        key, kind, text = o.get("key"), o.get("kind"), o.get("state_json")
        piece = o.get("piece", False)
        if not (
            type(key) is str
            and key != ""
            and "\x00" not in key
            and type(kind) is str
            and kind != ""
            and type(text) is str
            and type(piece) is bool
        ):
            return None
        fields = {"key": key, "kind": kind, "state_json": text, "piece": piece}
        append(_built(SnapObject, fields, None if "piece" in o else set(_SNAP_SET_BASE)))
    fields = {
        "proto": 1,
        "t": "snapshot",
        "batch_id": batch_id,
        "partition": partition,
        "objects": out,
        "summary": None,
        "last": last,
        "remaining": remaining,
    }
    return cast(SnapshotChunk, _built(SnapshotChunk, fields, set(_SNAPSHOT_FIELDS & raw.keys())))


def _batch_head(
    raw: dict[str, Any], flag: str
) -> tuple[int, int, bool, tuple[int, int] | None] | None:
    """``batch_id``, ``partition``, the bool field ``flag`` (False when absent) and
    ``remaining`` of a partition's batch (``Deltas``, ``SnapshotChunk``); None if one is not
    well-formed."""
    batch_id = raw.get("batch_id")
    partition = raw.get("partition")
    value = raw.get(flag, False)
    remaining = _remaining(raw.get("remaining"))
    if (
        type(batch_id) is not int
        or type(partition) is not int
        or partition < 0
        or type(value) is not bool
        or remaining is False
    ):
        return None
    return batch_id, partition, value, remaining  # type: ignore[return-value]


def _remaining(raw: Any) -> tuple[int, int] | bool | None:
    """A decoded ``remaining``: the pair, None (absent or null), False if not well-formed."""
    if raw is None:
        return None
    if (
        type(raw) is not list
        or len(raw) != 2
        or type(raw[0]) is not int
        or type(raw[1]) is not int
        or not 0 <= raw[0] <= SEQ_LIMIT
        or not 0 <= raw[1] <= SEQ_LIMIT
    ):
        return False
    return (raw[0], raw[1])


def encode(msg: Message) -> bytes:
    """The bytes of ``msg``: its JSON, and for sealed entries a NUL and the seals' bytes."""
    t = type(msg)
    if t is Push:
        assert isinstance(msg, Push)
        entries, seals, tail = to_wire(msg.entries)
        body: dict[str, Any] = {
            "proto": 1,
            "t": "push",
            "push_id": msg.push_id,
            "entries": entries,
            "hint_for": msg.hint_for,
        }
        if seals:
            body["seals"] = seals
        return _with_tail(dump(body), tail)
    if t is Deltas:
        assert isinstance(msg, Deltas)
        entries, seals, tail = to_wire(msg.entries)
        body = {
            "proto": 1,
            "t": "deltas",
            "batch_id": msg.batch_id,
            "partition": msg.partition,
            "entries": entries,
            "more": msg.more,
            "remaining": msg.remaining,
        }
        if seals:
            body["seals"] = seals
        return _with_tail(dump(body), tail)
    if t is Ack:
        assert isinstance(msg, Ack)
        return dump({"proto": 1, "t": "ack", "ids": msg.ids})
    return _ADAPTER.dump_json(msg)


def _with_tail(text: bytes, tail: bytes) -> bytes:
    return b"".join((text, b"\x00", tail)) if tail else text


def decode(data: bytes | str, *, max_size: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse and validate one message; ``RemoteProtocolError`` (with a reason) on anything bad."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_size:
        raise RemoteProtocolError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    end = data.find(0)
    tail = b""
    if end >= 0:  # the JSON ends at the first NUL; the seals' bytes follow
        data, tail = data[:end], data[end + 1 :]
        if not tail:
            raise RemoteProtocolError("a NUL ends the message's JSON, and no binary tail follows")
    try:
        raw = parse_shallow(data)
    except ValueError:
        raw = None  # the pydantic path reports it
    if raw is not None:
        fast = _fast_decode(raw, tail)
        if fast is not None:
            return fast
    try:
        msg = _ADAPTER.validate_json(data, context=_WIRE)
    except ValidationError as exc:
        raise RemoteProtocolError(_reason(data, exc)) from exc
    if isinstance(msg, Push | Deltas):
        attach_seals(msg.entries, raw, msg.t, tail)
    elif end >= 0:
        raise RemoteProtocolError(f"a {msg.t!r} message has no binary tail; this one has a NUL")
    return msg


def _reason(data: bytes, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else None
    if first is not None and first["type"] == "json_invalid":
        return f"invalid JSON: {first['msg']}"
    # Slow path (errors only): look at the raw object to report the version first, since a
    # future version may use types and fields this one does not know.
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raw = None
    if not isinstance(raw, dict):
        return f"a message must be a JSON object, got {type(raw).__name__}"
    if "proto" not in raw:
        return "missing protocol version 'proto'"
    if raw.get("proto") != PROTOCOL_VERSION:
        return (
            f"unsupported protocol version {raw.get('proto')!r} "
            f"(this peer speaks {PROTOCOL_VERSION})"
        )
    if first is None:  # pragma: no cover - pydantic always lists an error
        return "invalid message"
    if first["type"] == "union_tag_not_found":
        return "message has no type tag 't'"
    if first["type"] == "union_tag_invalid":
        return f"unknown message type {raw.get('t')!r}"
    where = ".".join(str(x) for x in first["loc"][1:]) or "message"
    extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"bad field {where!r} in {raw.get('t')!r} message: {first['msg']}{extra}"
