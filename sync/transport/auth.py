"""Link authentication: a versioned handshake, then every frame authenticated with a link key.

Theory of operation. A link starts with exactly six frames; nothing else may precede them::

    dialler (client)                         listener (server)
      Hello(proto, group, replica, key, nonce_c, address, site, relay, role, home)  ─▶
                                             checks proto, group, replica id (of the key)
      ◀─ Hello(proto, group, replica, key, nonce_s, address, site, relay, role="peer", home)
      Auth(proof_c, sig_c)                                               ─▶
                                             checks proof_c (constant time), sig_c
      ◀─ Auth(proof_s, sig_s)
    checks proof_s (constant time), sig_s
      seal_c(b"")                                                        ─▶
                                             checks it: the link is open
      ◀─ seal_s(b"")
    checks it: the link is open

**Replica keys.** A replica's id is derived from its Ed25519 public key
(:func:`crdt.replica_id_for`), and its hello carries that key (``key``, base64): the other
side checks that the id is the key's. Its ``Auth`` carries ``sig``, its Ed25519 signature of
the transcript (below) and its role, which proves it holds the private key: a member with the
group secret cannot take another replica's id on a link (and, say, acknowledge writes in its
name), just as it cannot sign entries in its name (``sync.signing``). A side that has a key
(``Identity.signer``: every ``Peer``) requires one of a replica it links with; an admin
(``shoal forget``) has none and needs none.

**Key schedule** (HKDF with HMAC-SHA256, RFC 5869, written on the standard library's
:mod:`hmac`): the *transcript* is ``SHA-256("shoal-link/5" 0x00 || len(H_c) || H_c ||
len(H_s) || H_s)`` over the two hello frames exactly as they crossed the wire (lengths as 4
bytes big-endian), so every field of both hellos (nonces, ids, group, address, site, relay,
home, role, key, version) is covered. ``prk = HKDF-Extract(salt=transcript, ikm=secret)``,
and four 32-byte values are expanded from it, one per label::

    proof_c = HKDF-Expand(prk, "shoal-link/5 proof client")
    proof_s = HKDF-Expand(prk, "shoal-link/5 proof server")
    key_cs  = HKDF-Expand(prk, "shoal-link/5 frames client->server")
    key_sc  = HKDF-Expand(prk, "shoal-link/5 frames server->client")

and ``sig_c``/``sig_s`` sign ``transcript || "client"``/``"server"`` with the replica's key.

Both sides contribute a fresh 32-byte nonce, so every link has its own keys: a proof or a
frame can neither be reflected back, nor replayed on another link. The secret never crosses
the wire. The listener sends its proof only after checking the dialler's, so a dialler
without the secret learns nothing but the listener's hello; a listener without the secret
cannot produce ``proof_s`` and the dialler closes. A relay in the middle that rewrites any
hello field makes the two transcripts differ, and the proofs fail. (A captured handshake lets
an attacker test guesses of the secret offline: use a long random secret.)

**Frames after the handshake** (:class:`Session`): every websocket message in either
direction is ``flag || body || tag``. ``flag`` is one byte: ``0`` when ``body`` is the
payload as it is, ``1`` when it is the payload compressed (below). ``tag =
HMAC-SHA256(key_dir, seq || flag || body)`` cut to its first :data:`TAG_BYTES` (16) bytes,
where ``key_dir`` is the key of that direction and ``seq`` is the number of frames sent
before it in that direction, as 8 bytes big-endian, starting at 0. The sequence number is
implicit (the websocket is reliable and ordered), so a frame that was injected, altered,
replayed, reordered, dropped (detected at the next frame), moved between directions or
spliced in from another link fails its check; the link is then closed with 1008 and the frame
reaches nothing of the engine. The tag is computed once per frame over the bytes sent,
whatever the frame holds, and checked before anything of the frame is read. Not covered:
websocket control frames (ping, pong, close), so a party in the middle can still cut a link,
as any network fault can; and nothing is encrypted: use TLS (``wss://``) for
confidentiality.

**Frames are compressed with a context per link and direction.** Every payload is
compressed with raw deflate (RFC 1951; a 2 KiB window, level 1, memory level 4) on one
stream per direction that lives as long as the link: each frame is the stream's output up
to a sync flush, without the flush's last four bytes (``00 00 ff ff``, put back by the
receiver), as permessage-deflate (RFC 7692) with context takeover does. So what a frame
repeats of itself and of the frames before it (ids, keys, field names, a seal's key) costs a
few bytes: one change to a set travels in about 110 bytes, not 520 (its signature as bytes
after the message's JSON, :mod:`sync.wire_entries`), and a batch of a
thousand changes in about a seventh of its JSON. A frame with ``flag`` 0 (its payload as it
is) is accepted too; this side sends none. A compressed frame that does not inflate closes
the link with 1002, one that inflates to more than the link's message limit with 1009
(:class:`FrameFormatError`). The two streams cost at most 40 KiB of memory on each side of
a link (measured with ``tracemalloc`` in ``tests/transport/test_frame_auth.py``), and CPU in
proportion to the bytes (zlib's fastest level; what it costs end to end is in
``benchmarks/README.md``, "Bytes per change").

The first frame each way, ``seal(b"")``, confirms the keys and moves the frame limit: until
it, every frame is limited to :data:`HANDSHAKE_MAX_BYTES`, so a connection that has not
authenticated cannot make this process buffer more than a few KiB. Each side raises its own
limit (``on_authenticated``) as soon as the other has proved the secret: the listener before
it sends its proof, the dialler before it sends its empty frame. websockets checks a frame
against the limit in force when the previous frame ended, so the frame right after the last
small one of the other side is still checked against the small limit: that is why that
frame is the empty one, each way, and why the listener sends its own empty frame only after
receiving the dialler's. Every frame after the empty ones may be as big as a message.

Failures close the websocket with a code and a reason a person can read:

* another protocol version (``"protocol version 5 is not supported; this peer speaks 6"``),
  a frame that is not the expected handshake frame, a malformed frame: ``1002``;
* wrong group, wrong secret, bad replica id, an id that is not its key's, a missing key or
  a signature that fails, a frame that fails its check, a handshake that does not finish
  within its timeout: ``1008``;
* a handshake frame bigger than :data:`HANDSHAKE_MAX_BYTES`: ``1009``.

:data:`PROTO_VERSION` is the version of this link protocol (handshake and frame format). The
replication messages inside the frames carry their own schema version
(``sync.messages.PROTOCOL_VERSION``). Version 5 is the first whose messages may end in a
binary tail (a sealed ``Push`` or ``Deltas`` carries its seals' signatures and digests as
bytes, :mod:`sync.wire_entries`), so a peer of version 4 is refused at its hello, with the
reason above, rather than at its first sealed message. Version 6 adds ``run`` to the hello: a
random id of the peer's process run (:attr:`Identity.run`), by which a link from a new run
of a replica that replaces one still open (the old run ended without closing it: a machine
that lost power) is told from a reconnection of the same run (see
``sync.transport.connection``). Version 7 sends seals of a group (one signature over several
seals, :mod:`sync.signing`), which a peer of version 6 would refuse as malformed, closing
the link at the first busy push: it is refused at its hello instead.

Handshake frames are small JSON objects (pydantic models, validated once here), transport-only
and deliberately separate from the replication messages of :mod:`sync.messages`: nothing of
the engine is reachable before :func:`server_handshake` / :func:`client_handshake` return.

An *admin* dialler (``role="admin"``, used by ``shoal forget``) authenticates the same way but
is not a replica: it may send one sealed :class:`AdminRequest` and gets one sealed
:class:`AdminReply` (:func:`admin_call` does all of it).

Errors::

    HandshakeError          the link could not be authenticated (code, reason)
     └── FrameAuthError     a frame after the handshake failed its check (1008)
          └── FrameFormatError  an authenticated frame that does not decode (1002, 1009)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from crdt import replica_id_for
from sync.config import MAX_MESSAGE_BYTES
from sync.signing import Signer, public_key_of

__all__ = [
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL",
    "CLOSE_TOO_BIG",
    "DEFLATE_WBITS",
    "FRAME_OVERHEAD",
    "HANDSHAKE_MAX_BYTES",
    "PROTO_VERSION",
    "TAG_BYTES",
    "AdminReply",
    "AdminRequest",
    "AuthFrame",
    "FrameAuthError",
    "FrameFormatError",
    "HandshakeError",
    "HelloFrame",
    "Identity",
    "LinkKeys",
    "PeerInfo",
    "Session",
    "admin_call",
    "client_handshake",
    "compute_proof",
    "decode_frame",
    "derive_keys",
    "encode_frame",
    "server_handshake",
    "verify_proof",
]

log = logging.getLogger("shoal.transport.auth")

PROTO_VERSION: Final = 7
#: Close codes (RFC 6455 section 7.4.1).
CLOSE_PROTOCOL: Final = 1002
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
#: The frame limit until the other side has authenticated. The biggest valid hello (every
#: field at its length limit, every character escaped as \u0000) is 6,723 bytes.
HANDSHAKE_MAX_BYTES: Final = 8192
#: Bytes of the tag appended to every frame after the handshake (HMAC-SHA256 cut to 128
#: bits, as RFC 2104 section 5 allows).
TAG_BYTES: Final = 16
#: Bytes a frame adds to its payload after the handshake: the flag and the tag.
FRAME_OVERHEAD: Final = 1 + TAG_BYTES
_DEFLATED: Final = b"\x01"
#: Raw deflate (negative), a 2 KiB window.
DEFLATE_WBITS: Final = -11
_MEM_LEVEL: Final = 5
# zlib's fastest level: every batch goes through it; a lone change is a few bytes bigger than
# at a higher level (benchmarks/README.md, "Bytes per change").
_LEVEL: Final = 1
_FLUSH_TAIL: Final = b"\x00\x00\xff\xff"
_LABEL: Final = b"shoal-link/5"
_READY: Final = b""
_SEQ = struct.Struct(">Q").pack
_REPLICA_ID = re.compile(r"^[A-Za-z0-9._:@/+-]{1,128}$")
_F = TypeVar("_F")


class _Frame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HelloFrame(_Frame):
    """First frame each way: who I am and my fresh nonce."""

    t: Literal["hello"] = "hello"
    proto: int
    group: str = Field(max_length=256)
    replica: str = Field(max_length=128)
    key: str | None = Field(default=None, max_length=64)  # base64 Ed25519 public key
    nonce: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
    address: str | None = Field(default=None, max_length=512)
    site: str | None = Field(default=None, max_length=128)
    relay: bool = False
    role: Literal["peer", "admin"] = "peer"
    home: bool = True  # False: a short-lived replica, which peers leave off the ring
    run: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")  # this process run's id


class AuthFrame(_Frame):
    """Second frame each way: the proof of holding the group secret."""

    t: Literal["auth"] = "auth"
    proof: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
    sig: str = Field(default="", max_length=128)  # base64 Ed25519 signature (a keyed side)


class AdminRequest(_Frame):
    """What an authenticated admin link may ask (``shoal forget``): to forget a replica, or
    to take a forgotten one back (``unforget``); with ``dry_run`` only whether it can be done
    and what it would do. ``operator`` says who asks (for the peer's log)."""

    t: Literal["admin"] = "admin"
    op: Literal["forget", "unforget"]
    replica: str = Field(max_length=128)
    dry_run: bool = False
    operator: str = Field(default="", max_length=256)


class AdminReply(_Frame):
    """The answer to an :class:`AdminRequest`."""

    t: Literal["admin_reply"] = "admin_reply"
    ok: bool
    detail: str = Field(default="", max_length=1000)


_AnyFrame = Annotated[HelloFrame | AuthFrame | AdminRequest | AdminReply, Field(discriminator="t")]
_FRAMES: TypeAdapter[HelloFrame | AuthFrame | AdminRequest | AdminReply] = TypeAdapter(_AnyFrame)


class HandshakeError(Exception):
    """The link could not be authenticated; ``code`` and ``reason`` are what it is closed with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason


class FrameAuthError(HandshakeError):
    """A frame after the handshake failed its check: forged, altered, replayed, reordered,
    preceded by a dropped frame, or from another link or direction."""

    def __init__(self, reason: str, code: int = CLOSE_POLICY) -> None:
        super().__init__(code, reason)


class FrameFormatError(FrameAuthError):
    """A frame whose tag is right (so its sender is the other side) but whose body does not
    decode: an unknown flag or a compressed body that does not inflate (1002), or one that
    inflates past the message limit (1009, as a frame that big would be refused)."""

    def __init__(self, reason: str, code: int = CLOSE_PROTOCOL) -> None:
        super().__init__(reason, code)


def encode_frame(frame: _Frame) -> bytes:
    """Encode a handshake/admin frame as compact JSON bytes."""
    return frame.model_dump_json(exclude_none=False).encode()


def decode_frame(data: bytes | str) -> HelloFrame | AuthFrame | AdminRequest | AdminReply:
    """Decode one frame; :class:`HandshakeError` (1002 / 1009) if it is not a valid one.

    A hello of another protocol version is refused by its version alone, before its fields
    are validated (they may differ between versions).
    """
    if len(data) > HANDSHAKE_MAX_BYTES:
        raise HandshakeError(CLOSE_TOO_BIG, f"handshake frame too big ({len(data)} bytes)")
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:  # (a few KiB of "[" nest past the stack)
        raise HandshakeError(CLOSE_PROTOCOL, "malformed handshake frame: not JSON") from exc
    if isinstance(raw, dict) and raw.get("t") == "hello" and raw.get("proto") != PROTO_VERSION:
        raise HandshakeError(
            CLOSE_PROTOCOL,
            f"protocol version {raw.get('proto')!r} is not supported; "
            f"this peer speaks {PROTO_VERSION}",
        )
    try:
        return _FRAMES.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "frame"
        raise HandshakeError(
            CLOSE_PROTOCOL, f"malformed handshake frame: {where}: {first.get('msg', '')}"
        ) from exc


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkKeys:
    """What both ends of one link derive from the secret and the two hellos (32 bytes each)."""

    proof_client: bytes = field(repr=False)
    proof_server: bytes = field(repr=False)
    client_to_server: bytes = field(repr=False)
    server_to_client: bytes = field(repr=False)


def _transcript(client_hello: bytes, server_hello: bytes) -> bytes:
    h = hashlib.sha256(_LABEL + b"\x00")
    for part in (client_hello, server_hello):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def _expand(prk: bytes, label: bytes) -> bytes:
    # HKDF-Expand (RFC 5869 section 2.3) for L = 32: the first block, T(1).
    return hmac.digest(prk, _LABEL + b" " + label + b"\x01", "sha256")


def derive_keys(secret: bytes, client_hello: bytes, server_hello: bytes) -> LinkKeys:
    """The proofs and frame keys of a link whose hellos were these bytes (module docstring)."""
    prk = hmac.digest(_transcript(client_hello, server_hello), secret, "sha256")  # Extract
    return LinkKeys(
        _expand(prk, b"proof client"),
        _expand(prk, b"proof server"),
        _expand(prk, b"frames client->server"),
        _expand(prk, b"frames server->client"),
    )


def compute_proof(secret: bytes, role: str, client_hello: bytes, server_hello: bytes) -> str:
    """The hex proof that the ``role`` side (``"client"`` or ``"server"``) holds the secret."""
    keys = derive_keys(secret, client_hello, server_hello)
    if role == "client":
        return keys.proof_client.hex()
    if role == "server":
        return keys.proof_server.hex()
    raise ValueError(f"role must be 'client' or 'server', got {role!r}")


def verify_proof(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex proofs."""
    return hmac.compare_digest(expected.encode(), given.encode())


class Session:
    """Authenticates the frames of one open link: one key, one counter and one compression
    stream per direction.

    :meth:`seal` makes the next outgoing frame of a payload, :meth:`unseal` checks an incoming
    one and returns its payload, or raises :class:`FrameAuthError`. Frames must be sealed in
    the order they are sent and unsealed in the order they arrive; neither ever blocks.
    """

    __slots__ = ("_deflate", "_inflate", "_recv", "_send", "max_payload", "received", "sent")

    def __init__(
        self, send_key: bytes, recv_key: bytes, max_payload: int = MAX_MESSAGE_BYTES
    ) -> None:
        # Keyed once; each frame copies the keyed state (cheaper than keying again).
        self._send = hmac.new(send_key, digestmod=hashlib.sha256)
        self._recv = hmac.new(recv_key, digestmod=hashlib.sha256)
        self.sent = 0
        self.received = 0
        #: The most a received frame may inflate to (the link's message limit).
        self.max_payload = max_payload
        self._deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, DEFLATE_WBITS, _MEM_LEVEL)
        self._inflate = zlib.decompressobj(DEFLATE_WBITS)

    def _failed(self, why: str) -> FrameAuthError:
        return FrameAuthError(f"frame {self.received} failed authentication: {why}")

    @classmethod
    def for_client(cls, keys: LinkKeys, max_payload: int = MAX_MESSAGE_BYTES) -> Session:
        return cls(keys.client_to_server, keys.server_to_client, max_payload)

    @classmethod
    def for_server(cls, keys: LinkKeys, max_payload: int = MAX_MESSAGE_BYTES) -> Session:
        return cls(keys.server_to_client, keys.client_to_server, max_payload)

    def seal(self, payload: bytes) -> bytes:
        """``flag || body || tag`` for the next frame sent: the payload deflated."""
        z = self._deflate
        body = (z.compress(payload) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
        mac = self._send.copy()
        mac.update(_SEQ(self.sent))
        mac.update(_DEFLATED)
        mac.update(body)
        self.sent += 1
        return b"".join((_DEFLATED, body, mac.digest()[:TAG_BYTES]))

    def unseal(self, frame: bytes | str) -> bytes:
        """The payload of the next frame received, if its tag is right."""
        if isinstance(frame, str):
            raise self._failed("a text frame")
        if len(frame) < FRAME_OVERHEAD:
            raise self._failed("shorter than a flag and a tag")
        signed = memoryview(frame)[:-TAG_BYTES]
        mac = self._recv.copy()
        mac.update(_SEQ(self.received))
        mac.update(signed)
        if not hmac.compare_digest(mac.digest()[:TAG_BYTES], frame[-TAG_BYTES:]):
            raise self._failed("forged, altered, replayed, reordered or after a dropped frame")
        n = self.received
        self.received += 1
        flag = frame[0]
        if flag == 0:
            return bytes(signed[1:])
        if flag != 1:
            raise FrameFormatError(f"frame {n}: unknown flag {flag}")
        z, limit = self._inflate, self.max_payload
        try:
            payload = z.decompress(bytes(signed[1:]) + _FLUSH_TAIL, limit + 1)
        except zlib.error as exc:
            raise FrameFormatError(f"frame {n}: does not inflate ({exc})") from None
        if len(payload) > limit or z.unconsumed_tail:
            raise FrameFormatError(f"frame {n}: inflates to more than {limit} bytes", CLOSE_TOO_BIG)
        if z.eof:  # a sender flushes its stream and never ends it: nothing may follow
            raise FrameFormatError(f"frame {n}: its deflate stream ended")
        return payload


# -- the handshake ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """This peer's side of the handshake. ``secret`` never leaves the process."""

    replica_id: str
    group: str
    secret: bytes = field(repr=False)
    address: str | None = None
    site: str | None = None
    relay: bool = False
    home: bool = True
    #: The replica's key (its id must be the key's); None for an admin, or in tests of the
    #: link alone. A side with a key requires one of the replicas it links with.
    signer: Signer | None = field(default=None, repr=False, compare=False)
    #: A random id of this process run (32 hex digits; None: an admin, tests of the link).
    run: str | None = None


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What an authenticated remote side told us about itself (every field was covered by its
    proof), and the :class:`Session` that authenticates the frames of the link."""

    replica_id: str
    address: str | None
    site: str | None
    relay: bool
    role: str
    session: Session | None = field(default=None, repr=False, compare=False)
    home: bool = True
    run: str | None = None  # its process run's id (Identity.run)


class _Socket(Protocol):
    async def send(self, message: bytes) -> None: ...

    async def recv(self) -> Any: ...


def _hello(me: Identity, nonce: str, role: str) -> bytes:
    frame = HelloFrame(
        proto=PROTO_VERSION,
        group=me.group,
        replica=me.replica_id,
        nonce=nonce,
        address=me.address,
        site=me.site,
        relay=me.relay,
        role=role,
        home=me.home,
        key=None if me.signer is None else me.signer.public_key_text,
        run=me.run,
    )
    return encode_frame(frame)


def _signature(me: Identity, transcript: bytes, role: bytes) -> str:
    if me.signer is None:
        return ""
    return base64.b64encode(me.signer.sign(transcript + role)).decode("ascii")


def _check_signature(
    me: Identity, hello: HelloFrame, auth: AuthFrame, transcript: bytes, role: bytes
) -> None:
    """A replica with a key proves it holds the key of its id (required by a keyed side)."""
    if hello.role != "peer" or (hello.key is None and me.signer is None):
        return
    if hello.key is None:
        raise HandshakeError(CLOSE_POLICY, "replica without a key (an older shoal?)")
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key_of(hello.key))
        key.verify(base64.b64decode(auth.sig.encode("ascii"), validate=True), transcript + role)
    except (ValueError, InvalidSignature) as exc:
        raise HandshakeError(CLOSE_POLICY, "the replica's key signature does not verify") from exc


async def _recv(ws: _Socket, deadline: float) -> bytes:
    try:
        async with asyncio.timeout_at(deadline):
            data = await ws.recv()
    except TimeoutError as exc:
        raise HandshakeError(CLOSE_POLICY, "handshake timed out") from exc
    return data.encode() if isinstance(data, str) else bytes(data)


def _expect(frame: Any, kind: type[_F], what: str) -> _F:
    if not isinstance(frame, kind):
        raise HandshakeError(CLOSE_PROTOCOL, f"expected {what}, got {frame.t}")
    return frame


def _check_hello(me: Identity, hello: HelloFrame) -> None:
    if hello.group != me.group:
        raise HandshakeError(CLOSE_POLICY, f"wrong group {hello.group[:40]!r}")
    if hello.role == "peer" and not _REPLICA_ID.match(hello.replica):
        raise HandshakeError(CLOSE_POLICY, "bad replica id")
    if hello.role == "peer" and hello.key is not None:
        try:
            derived = replica_id_for(public_key_of(hello.key))
        except ValueError:
            derived = None
        if derived != hello.replica:
            raise HandshakeError(CLOSE_POLICY, "replica id is not the id of its key")
    elif hello.role == "peer" and me.signer is not None:
        raise HandshakeError(CLOSE_POLICY, "replica without a key (an older shoal?)")


def _info(hello: HelloFrame, session: Session) -> PeerInfo:
    return PeerInfo(
        hello.replica,
        hello.address,
        hello.site,
        hello.relay,
        hello.role,
        session,
        hello.home,
        hello.run,
    )


def _deadline(timeout: float) -> float:
    return asyncio.get_running_loop().time() + timeout


async def server_handshake(
    ws: _Socket,
    me: Identity,
    *,
    timeout: float = 10.0,
    on_authenticated: Callable[[], None] | None = None,
    admit: Callable[[HelloFrame], str | None] | None = None,
    max_payload: int = MAX_MESSAGE_BYTES,
) -> PeerInfo:
    """Run the listener's side; return the authenticated dialler or raise HandshakeError.

    ``timeout`` bounds the whole handshake. ``on_authenticated`` is called once the dialler
    has proved the secret, before anything else is sent (the transport raises its frame
    limit there). ``admit(hello)``, called at the same point, may return a reason to refuse
    the authenticated dialler (a replica the group forgot): the handshake then fails with
    1008 and that reason, before this side proves anything. ``max_payload``: the most a
    frame received on the link may inflate to (:class:`Session`).
    """
    deadline = _deadline(timeout)
    client_raw = await _recv(ws, deadline)
    hello = _expect(decode_frame(client_raw), HelloFrame, "hello")
    _check_hello(me, hello)
    server_raw = _hello(me, secrets.token_hex(32), "peer")
    await ws.send(server_raw)
    keys = derive_keys(me.secret, client_raw, server_raw)
    auth = _expect(decode_frame(await _recv(ws, deadline)), AuthFrame, "auth")
    if not verify_proof(keys.proof_client.hex(), auth.proof):
        raise HandshakeError(
            CLOSE_POLICY, "authentication failed: wrong group secret, or a hello altered on the way"
        )
    transcript = _transcript(client_raw, server_raw)
    _check_signature(me, hello, auth, transcript, b"client")
    refused = admit(hello) if admit is not None else None
    if refused is not None:
        raise HandshakeError(CLOSE_POLICY, refused)
    if on_authenticated is not None:
        on_authenticated()
    sig = _signature(me, transcript, b"server")
    await ws.send(encode_frame(AuthFrame(proof=keys.proof_server.hex(), sig=sig)))
    session = Session.for_server(keys, max_payload)
    if session.unseal(await _recv(ws, deadline)) != _READY:
        raise HandshakeError(CLOSE_PROTOCOL, "expected the empty first frame")
    await ws.send(session.seal(_READY))
    return _info(hello, session)


async def client_handshake(
    ws: _Socket,
    me: Identity,
    *,
    role: str = "peer",
    timeout: float = 10.0,
    on_authenticated: Callable[[], None] | None = None,
    max_payload: int = MAX_MESSAGE_BYTES,
) -> PeerInfo:
    """Run the dialler's side; return the authenticated listener or raise HandshakeError.

    The returned :attr:`PeerInfo.session` seals what this side sends on the link and
    unseals what it receives. ``timeout``, ``on_authenticated`` and ``max_payload`` as in
    :func:`server_handshake`.
    """
    deadline = _deadline(timeout)
    client_raw = _hello(me, secrets.token_hex(32), role)
    await ws.send(client_raw)
    server_raw = await _recv(ws, deadline)
    hello = _expect(decode_frame(server_raw), HelloFrame, "hello")
    _check_hello(me, hello)
    if hello.role != "peer":
        raise HandshakeError(CLOSE_PROTOCOL, "listener must have role 'peer'")
    keys = derive_keys(me.secret, client_raw, server_raw)
    transcript = _transcript(client_raw, server_raw)
    sig = _signature(me, transcript, b"client") if role == "peer" else ""
    await ws.send(encode_frame(AuthFrame(proof=keys.proof_client.hex(), sig=sig)))
    auth = _expect(decode_frame(await _recv(ws, deadline)), AuthFrame, "auth")
    if not verify_proof(keys.proof_server.hex(), auth.proof):
        raise HandshakeError(
            CLOSE_POLICY,
            "listener failed authentication: wrong group secret, or a hello altered on the way",
        )
    _check_signature(me, hello, auth, transcript, b"server")
    if on_authenticated is not None:
        on_authenticated()
    session = Session.for_client(keys, max_payload)
    await ws.send(session.seal(_READY))
    if session.unseal(await _recv(ws, deadline)) != _READY:
        raise HandshakeError(CLOSE_PROTOCOL, "expected the empty first frame")
    return _info(hello, session)


async def admin_call(
    ws: _Socket, me: Identity, request: AdminRequest, *, timeout: float = 10.0
) -> AdminReply:
    """Authenticate as an admin, send ``request`` and return the listener's reply, both
    sealed; :class:`HandshakeError` if the handshake or a frame fails."""
    deadline = _deadline(timeout)
    info = await client_handshake(ws, me, role="admin", timeout=timeout)
    assert info.session is not None  # client_handshake always makes one
    await ws.send(info.session.seal(encode_frame(request)))
    reply = decode_frame(info.session.unseal(await _recv(ws, deadline)))
    return _expect(reply, AdminReply, "admin reply")
