"""The shoal handshake: versioned hello, then mutual HMAC challenge-response on the group secret.

Theory of operation. A link starts with exactly four frames, nothing else may precede them::

    dialler (client)                         listener (server)
      Hello(proto, group, replica, nonce_c, address, site, relay, role)  ─▶
                                             checks proto, group, replica id
      ◀─ Hello(proto, group, replica, nonce_s, address, site, relay, role="peer")
      Auth(proof_c)                                                      ─▶
                                             checks proof_c (constant time)
      ◀─ Auth(proof_s)
    checks proof_s (constant time); the link is open

``proof_role = HMAC-SHA256(secret, canonical JSON of [label, role, group, client id,
server id, client nonce, server nonce])`` with ``role`` ``"client"`` or ``"server"``, so a proof
can neither be reflected back nor replayed on another link (each side contributes a fresh
32-byte nonce). The secret never crosses the wire. The listener sends its proof only after
checking the dialler's, so a dialler without the secret learns nothing but the listener's
hello; a listener without the secret cannot produce ``proof_s`` and the dialler closes.

Failures close the websocket with a code and a reason a person can read:

* unknown protocol version, a frame that is not a handshake frame, a malformed frame:
  ``1002`` (protocol error);
* wrong group, wrong secret, bad replica id: ``1008`` (policy violation).

Frames are small JSON objects (pydantic models, validated once here). They are transport-only
and deliberately separate from the replication messages of :mod:`sync.messages`: nothing of
the engine is reachable before :func:`server_handshake` / :func:`client_handshake` return.

An *admin* dialler (``role="admin"``, used by ``shoal forget``) authenticates the same way but
is not a replica: it may send one :class:`AdminRequest` and gets one :class:`AdminReply`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL",
    "CLOSE_TOO_BIG",
    "HANDSHAKE_MAX_BYTES",
    "PROTO_VERSION",
    "AdminReply",
    "AdminRequest",
    "AuthFrame",
    "HandshakeError",
    "HelloFrame",
    "Identity",
    "PeerInfo",
    "client_handshake",
    "compute_proof",
    "decode_frame",
    "encode_frame",
    "server_handshake",
    "verify_proof",
]

log = logging.getLogger("shoal.transport.auth")

PROTO_VERSION = 1
#: Close codes (RFC 6455 section 7.4.1).
CLOSE_PROTOCOL = 1002
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
#: No handshake frame is anywhere near this; a bigger one is refused before parsing.
HANDSHAKE_MAX_BYTES = 4096
_LABEL = "shoal-auth/1"
_REPLICA_ID = re.compile(r"^[A-Za-z0-9._:@/+-]{1,128}$")


class _Frame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HelloFrame(_Frame):
    """First frame each way: who I am and my fresh nonce."""

    t: Literal["hello"] = "hello"
    proto: int
    group: str = Field(max_length=256)
    replica: str = Field(max_length=128)
    nonce: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
    address: str | None = Field(default=None, max_length=512)
    site: str | None = Field(default=None, max_length=128)
    relay: bool = False
    role: Literal["peer", "admin"] = "peer"


class AuthFrame(_Frame):
    """Second frame each way: the HMAC proof of holding the group secret."""

    t: Literal["auth"] = "auth"
    proof: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")


class AdminRequest(_Frame):
    """What an authenticated admin link may ask (``shoal forget``)."""

    t: Literal["admin"] = "admin"
    op: Literal["forget"]
    replica: str = Field(max_length=128)


class AdminReply(_Frame):
    """The answer to an :class:`AdminRequest`."""

    t: Literal["admin_reply"] = "admin_reply"
    ok: bool
    detail: str = Field(default="", max_length=1000)


_AnyFrame = Annotated[HelloFrame | AuthFrame | AdminRequest | AdminReply, Field(discriminator="t")]
_FRAMES: TypeAdapter[HelloFrame | AuthFrame | AdminRequest | AdminReply] = TypeAdapter(_AnyFrame)


class HandshakeError(Exception):
    """The handshake failed; ``code`` and ``reason`` are what the websocket is closed with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason


def encode_frame(frame: _Frame) -> bytes:
    """Encode a handshake/admin frame as compact JSON bytes."""
    return frame.model_dump_json(exclude_none=False).encode()


def decode_frame(data: bytes | str) -> HelloFrame | AuthFrame | AdminRequest | AdminReply:
    """Decode one frame; :class:`HandshakeError` (1002 / 1009) if it is not a valid one."""
    if len(data) > HANDSHAKE_MAX_BYTES:
        raise HandshakeError(CLOSE_TOO_BIG, f"handshake frame too big ({len(data)} bytes)")
    try:
        return _FRAMES.validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "frame"
        raise HandshakeError(
            CLOSE_PROTOCOL, f"malformed handshake frame: {where}: {first.get('msg', '')}"
        ) from exc


@dataclass(frozen=True, slots=True)
class Identity:
    """This peer's side of the handshake. ``secret`` never leaves the process."""

    replica_id: str
    group: str
    secret: bytes
    address: str | None = None
    site: str | None = None
    relay: bool = False


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What an authenticated remote side told us about itself."""

    replica_id: str
    address: str | None
    site: str | None
    relay: bool
    role: str


def compute_proof(
    secret: bytes,
    role: str,
    group: str,
    client_id: str,
    server_id: str,
    client_nonce: str,
    server_nonce: str,
) -> str:
    """HMAC-SHA256 over both nonces, both replica ids, the group and the prover's role."""
    msg = json.dumps(
        [_LABEL, role, group, client_id, server_id, client_nonce, server_nonce],
        separators=(",", ":"),
    ).encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def verify_proof(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex proofs."""
    return hmac.compare_digest(expected.encode(), given.encode())


class _Socket(Protocol):
    async def send(self, message: bytes) -> None: ...

    async def recv(self) -> Any: ...


def _hello(me: Identity, nonce: str, role: str) -> HelloFrame:
    return HelloFrame(
        proto=PROTO_VERSION,
        group=me.group,
        replica=me.replica_id,
        nonce=nonce,
        address=me.address,
        site=me.site,
        relay=me.relay,
        role=role,
    )


async def _recv(ws: _Socket, timeout: float) -> HelloFrame | AuthFrame | AdminRequest | AdminReply:
    try:
        data = await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError as exc:
        raise HandshakeError(CLOSE_POLICY, "handshake timed out") from exc
    return decode_frame(data)


def _check_hello(me: Identity, hello: HelloFrame) -> None:
    if hello.proto != PROTO_VERSION:
        raise HandshakeError(
            CLOSE_PROTOCOL,
            f"unsupported protocol version {hello.proto}; this peer speaks {PROTO_VERSION}",
        )
    if hello.group != me.group:
        raise HandshakeError(CLOSE_POLICY, f"wrong group {hello.group[:40]!r}")
    if hello.role == "peer" and not _REPLICA_ID.match(hello.replica):
        raise HandshakeError(CLOSE_POLICY, "bad replica id")


def _info(hello: HelloFrame) -> PeerInfo:
    return PeerInfo(hello.replica, hello.address, hello.site, hello.relay, hello.role)


async def server_handshake(ws: _Socket, me: Identity, *, timeout: float = 10.0) -> PeerInfo:
    """Run the listener's side; return the authenticated dialler or raise HandshakeError."""
    hello = await _recv(ws, timeout)
    if not isinstance(hello, HelloFrame):
        raise HandshakeError(CLOSE_PROTOCOL, f"expected hello, got {hello.t}")
    _check_hello(me, hello)
    nonce = secrets.token_hex(32)
    await ws.send(encode_frame(_hello(me, nonce, "peer")))
    auth = await _recv(ws, timeout)
    if not isinstance(auth, AuthFrame):
        raise HandshakeError(CLOSE_PROTOCOL, f"expected auth, got {auth.t}")
    args = (me.group, hello.replica, me.replica_id, hello.nonce, nonce)
    if not verify_proof(compute_proof(me.secret, "client", *args), auth.proof):
        raise HandshakeError(CLOSE_POLICY, "authentication failed: wrong group secret")
    await ws.send(encode_frame(AuthFrame(proof=compute_proof(me.secret, "server", *args))))
    return _info(hello)


async def client_handshake(
    ws: _Socket, me: Identity, *, role: str = "peer", timeout: float = 10.0
) -> PeerInfo:
    """Run the dialler's side; return the authenticated listener or raise HandshakeError."""
    nonce = secrets.token_hex(32)
    await ws.send(encode_frame(_hello(me, nonce, role)))
    hello = await _recv(ws, timeout)
    if not isinstance(hello, HelloFrame):
        raise HandshakeError(CLOSE_PROTOCOL, f"expected hello, got {hello.t}")
    _check_hello(me, hello)
    if hello.role != "peer":
        raise HandshakeError(CLOSE_PROTOCOL, "listener must have role 'peer'")
    args = (me.group, me.replica_id, hello.replica, nonce, hello.nonce)
    await ws.send(encode_frame(AuthFrame(proof=compute_proof(me.secret, "client", *args))))
    auth = await _recv(ws, timeout)
    if not isinstance(auth, AuthFrame):
        raise HandshakeError(CLOSE_PROTOCOL, f"expected auth, got {auth.t}")
    if not verify_proof(compute_proof(me.secret, "server", *args), auth.proof):
        raise HandshakeError(CLOSE_POLICY, "listener failed authentication: wrong group secret")
    return _info(hello)
