"""Wire messages: pydantic v2 models, one discriminated union, one codec.

Every message is a JSON object with a literal type tag ``t`` and the protocol version
``proto`` (currently ``1``). :func:`decode` is the only way bytes become messages: it refuses
anything oversized, not JSON, of an unknown version or type, or with a field of the wrong
type, by raising :class:`~sync.errors.RemoteProtocolError` with a clear ``reason``, and it has
no side effects. Validation runs once, at this boundary, directly on the bytes
(``TypeAdapter.validate_json``); the engine then checks what only it can (CRDT bodies,
partitions, kinds).

Handshake (used by ``sync/transport`` only, the engine never sees them): ``Hello`` (each side
announces itself and a nonce), ``AuthReply`` (a MAC over the other side's nonce with the group
secret, plus its own nonce when needed), ``Welcome`` (accepted), ``Goodbye`` (closing, with a
code and reason), ``Ping``/``Pong`` (heartbeats).

Replication (the engine, :class:`sync.Replica`):

* ``Push(push_id, entries, hint_for)`` — log entries for a home replica (``hint_for=None``)
  or, in a sloppy quorum, for a fallback to hold on behalf of ``hint_for``.
* ``Ack(ids)`` — acknowledges ``Push.push_id``, ``Deltas.batch_id`` and
  ``SnapshotChunk.batch_id`` values: the receiver has made them durable.
* ``ReadReq(req_id, key)`` / ``ReadResp(req_id, key, state)`` — quorum reads.
* ``Repair(key, kind, state)`` — read repair: merge this state.
* ``Summary(parts, known_peers, reply)`` — anti-entropy: per partition, the causal context of
  the log dots the sender has applied; the peers it knows; ``reply`` asks the receiver to
  answer with its own summary if it has something the sender lacks.
* ``Deltas(batch_id, partition, entries, more)`` — anti-entropy batch of log entries.
* ``SnapshotChunk(batch_id, partition, objects, summary, last)`` — state transfer to a peer
  behind the compacted log; the last chunk carries the sender's summary of the partition.
* ``Forget(replica_id)`` — an operator forgot this peer for good.

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
from typing import Annotated, Any, Final, Literal, Self, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from sync.config import MAX_MESSAGE_BYTES
from sync.errors import RemoteProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "Ack",
    "AuthReply",
    "Ctx",
    "Deltas",
    "Entry",
    "Forget",
    "Goodbye",
    "Hello",
    "Message",
    "PeerInfo",
    "Ping",
    "Pong",
    "Push",
    "ReadReq",
    "ReadResp",
    "Repair",
    "SnapObject",
    "SnapshotChunk",
    "Summary",
    "Welcome",
    "decode",
    "encode",
]

PROTOCOL_VERSION: Final = 1
_WIRE: Final[dict[str, bool]] = {"wire": True}

NonEmpty = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Field(ge=1)]
Index = Annotated[int, Field(ge=0)]
Json = dict[str, Any]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")


class Entry(_Model):
    """One log entry: the delta ``delta`` (a CRDT ``to_dict()``) of ``key`` with log dot
    ``(origin, partition, seq)``."""

    origin: NonEmpty
    partition: Index
    seq: Count
    key: str
    kind: NonEmpty
    delta: Json


class SnapObject(_Model):
    """A whole object state in a state transfer."""

    key: str
    kind: NonEmpty
    state: Json


class Ctx(_Model):
    """A causal context of log dots: ``{"vv": {origin: n}, "cloud": [[origin, n], ...]}``."""

    vv: dict[NonEmpty, Count] = {}
    cloud: list[tuple[NonEmpty, Count]] = []


class PeerInfo(_Model):
    """A member of the group as gossiped in summaries."""

    replica_id: NonEmpty
    address: str | None = None
    site: str | None = None


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
    entries: list[Entry]
    hint_for: str | None = None


class Ack(_Message):
    t: Literal["ack"] = "ack"
    ids: list[int]


class ReadReq(_Message):
    t: Literal["read"] = "read"
    req_id: int
    key: str


class ReadResp(_Message):
    t: Literal["read_resp"] = "read_resp"
    req_id: int
    key: str
    state: Json | None = None


class Repair(_Message):
    t: Literal["repair"] = "repair"
    key: str
    kind: NonEmpty
    state: Json


class Summary(_Message):
    t: Literal["summary"] = "summary"
    # JSON object keys are strings: the partition number is parsed leniently here only.
    parts: dict[Annotated[int, Strict(False), Field(ge=0)], Ctx] = {}
    known_peers: list[PeerInfo] = []
    reply: bool = False


class Deltas(_Message):
    t: Literal["deltas"] = "deltas"
    batch_id: int
    partition: Index
    entries: list[Entry]
    more: bool = False


class SnapshotChunk(_Message):
    t: Literal["snapshot"] = "snapshot"
    batch_id: int
    partition: Index
    objects: list[SnapObject]
    summary: Ctx | None = None
    last: bool = False


class Forget(_Message):
    t: Literal["forget"] = "forget"
    replica_id: NonEmpty


class Ping(_Message):
    t: Literal["ping"] = "ping"
    nonce: int = 0


class Pong(_Message):
    t: Literal["pong"] = "pong"
    nonce: int = 0


Message = Annotated[
    Hello
    | AuthReply
    | Welcome
    | Goodbye
    | Push
    | Ack
    | ReadReq
    | ReadResp
    | Repair
    | Summary
    | Deltas
    | SnapshotChunk
    | Forget
    | Ping
    | Pong,
    Field(discriminator="t"),
]

_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)


def encode(msg: Message) -> bytes:
    """The JSON bytes of ``msg``."""
    return _ADAPTER.dump_json(msg)


def decode(data: bytes | str, *, max_size: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse and validate one message; ``RemoteProtocolError`` (with a reason) on anything bad."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_size:
        raise RemoteProtocolError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        return _ADAPTER.validate_json(data, context=_WIRE)
    except ValidationError as exc:
        raise RemoteProtocolError(_reason(data, exc)) from exc


def _reason(data: bytes, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else None
    if first is not None and first["type"] == "json_invalid":
        return f"invalid JSON: {first['msg']}"
    # Slow path (errors only): look at the raw object to report the version first, since a
    # future version may use types and fields this one does not know.
    try:
        raw = json.loads(data)
    except ValueError:
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
