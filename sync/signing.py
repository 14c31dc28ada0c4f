"""Signed origins: a replica signs the log entries it originates, receivers verify them.

Theory of operation. A replica's id is derived from its Ed25519 public key
(:func:`crdt.replica_id_for`), so an id and a key can be checked to belong together by
anyone, with no directory of keys. Each replica signs what it originates, and every
receiver checks the signature before it applies an entry, whoever relayed it: a member
holding the group secret can still send anything on its own links, but it cannot make an
entry claiming another replica's origin verify, so it can no longer forge another's writes
(issue 12 item 5).

The unit of signature is a :class:`Seal`: the origin signs, once, the list of the *digests*
of a batch of its entries (up to :data:`SEAL_MAX`), ``Ed25519(key, "shoal-seal/1" 0x00 ||
origin 0x00 || d_1 || ... || d_k)`` with ``d_i = BLAKE2b-128(origin 0x00 partition 0x00 seq
0x00 key 0x00 kind 0x00 delta_json)`` (keys and ids hold no NUL; the delta is last). The
seal carries the public key, the digests and the signature; an entry is covered by a seal of
its origin that lists its digest. So any subset of a seal's entries verifies with the seal
alone: a relay, a hint holder or anti-entropy forwards the entries it has with the seals
that cover them, however the origin's batch was split on the way. A replica seals its
entries when they first leave it: at the end of each drain of its engine, the entries of
its origin that the drain's messages carry unsealed, in seals of at most :data:`SEAL_MAX`
(:meth:`sync.replica.drain.Drain.seal_sent`). So a busy replica signs once per many writes,
and one writing offline signs nothing until it syncs. A receiver checks each seal once
(:class:`Verifier` remembers the seals it checked) and each entry with one hash.

**Groups.** The seals of one drain (up to :data:`GROUP_MAX` of them) share one signature:
``Ed25519(key, "shoal-seal-group/1" 0x00 || origin 0x00 || h_1 || ... || h_g)`` with ``h_i =
BLAKE2b-128(d_1 || ... || d_k)`` of seal ``i``'s digests, and each seal of the group carries
that signature followed by the ``g`` hashes (its ``signature`` field: ``64 + 16 g`` bytes,
``2 <= g <= GROUP_MAX``). A seal of a group is valid if the hash of its own digests is one
of the ``h_i`` and the signature verifies; a receiver verifies a group's signature once,
however many of its seals arrive. An Ed25519 verification costs what hashing more than a
hundred entries does, so a drain of thousands of entries is verified a few times, not once
per ``SEAL_MAX`` (``benchmarks/README.md``, "Eighteenth session"); a seal still travels
alone, with ``16 g`` bytes more, and a lone change is sealed alone, its signature the 64
bytes of before. Stored seals keep their four strings: a group's is a longer
``signature``.

What a seal does not cover: whole states (state transfer, read repair), which are joins of
many origins' writes and carry no signature. See ``docs/concepts.md`` ("Threat model").

>>> signer = Signer.generate()
>>> from sync.effects import LogEntry
>>> e = LogEntry(signer.replica_id, 0, 1, "k", "gcounter", '{"type":"gcounter"}')
>>> seal = signer.seal([e])
>>> Verifier().covers(seal, e) is None
True
>>> forged = LogEntry(signer.replica_id, 0, 1, "k", "gcounter", '{"type":"gcounter","v":1}')
>>> Verifier().covers(seal, forged)
'the seal of its origin does not cover it'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from crdt import REPLICA_KEY_BYTES, replica_id_for

__all__ = [
    "DIGEST_BYTES",
    "GROUP_MAX",
    "NOT_COVERED",
    "SEAL_MAX",
    "SEAL_WIRE_MAX",
    "SIGNATURE_BYTES",
    "Seal",
    "Signed",
    "Signer",
    "Verifier",
    "check_seal",
    "entry_digest",
    "new_private_key",
    "public_key_of",
    "seal_from_wire",
    "seals_of",
]

#: The most entries one seal covers: a seal carries 16 bytes per entry it covers, and it
#: travels whole with any of them (128: 2 KiB of digests, 2.7 KiB as base64).
SEAL_MAX: Final = 128
#: Bytes of one entry's digest in a seal, and of one seal's hash in a group.
DIGEST_BYTES: Final = 16
#: The most seals one signature covers (a group): a seal of a group carries 16 bytes per
#: seal of its group (128 bytes at 8, 1 a covered entry).
GROUP_MAX: Final = 8
#: Bytes of an Ed25519 signature.
SIGNATURE_BYTES: Final = 64
#: An upper bound of the bytes one seal adds to a message (its four base64 strings, an id
#: of up to 128 characters, the JSON around them).
SEAL_WIRE_MAX: Final = (
    128
    + 44
    + 4 * ((SEAL_MAX * DIGEST_BYTES + 2) // 3)
    + 4 * ((SIGNATURE_BYTES + GROUP_MAX * DIGEST_BYTES + 2) // 3)
    + 32
)
_DOMAIN: Final = b"shoal-seal/1\x00"
_GROUP_DOMAIN: Final = b"shoal-seal-group/1\x00"
_MEMO: Final = 4096  # seals remembered as checked (cleared when full)
_BLANK: Final = hashlib.blake2b(digest_size=DIGEST_BYTES)  # entry_digest's, copied
#: Why an entry is refused whose origin's (valid) seal does not list it.
NOT_COVERED: Final = "the seal of its origin does not cover it"


class Signed(Protocol):
    """What a seal covers: a log entry's log dot, key, kind and delta text."""

    @property
    def origin(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def delta_json(self) -> str: ...


class Seal(NamedTuple):
    """An origin's signature over the digests of a batch of its entries, as it travels and
    is stored: four text fields (``key``, ``digests``, ``signature`` in base64)."""

    origin: str
    key: str
    digests: str
    signature: str


def entry_digest(e: Signed) -> bytes:
    """The 16-byte digest by which a seal covers ``e``."""
    text = f"{e.origin}\x00{e.partition}\x00{e.seq}\x00{e.key}\x00{e.kind}\x00{e.delta_json}"
    h = _BLANK.copy()  # (a copy of a set-up hash is cheaper than setting one up)
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.digest()


def _payload(origin: str, digests: bytes, domain: bytes = _DOMAIN) -> bytes:
    return domain + origin.encode("utf-8", "surrogatepass") + b"\x00" + digests


def _group_hash(digests: bytes) -> bytes:
    """A seal's hash in its group: of the bytes of its digests."""
    return hashlib.blake2b(digests, digest_size=DIGEST_BYTES).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"{what} is not base64") from exc


def public_key_of(text: str) -> bytes:
    """The raw public key of its base64 ``text`` (ValueError if it is not one)."""
    key = _unb64(text, "the key")
    if len(key) != REPLICA_KEY_BYTES:
        raise ValueError(f"a public key is {REPLICA_KEY_BYTES} bytes, got {len(key)}")
    return key


class Signer:
    """A replica's private key: its id, and seals over the entries it originates.

    ``Signer(private_key)`` takes the 32 raw bytes the store keeps; :meth:`generate` makes a
    new key (a new replica).
    """

    __slots__ = ("_key", "public_key", "public_key_text", "replica_id")

    def __init__(self, private_key: bytes) -> None:
        if type(private_key) is not bytes or len(private_key) != 32:
            raise ValueError("an Ed25519 private key is 32 raw bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self.public_key: bytes = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key_text = _b64(self.public_key)
        self.replica_id: str = replica_id_for(self.public_key)

    @classmethod
    def generate(cls) -> Signer:
        """A signer over a fresh random key."""
        return cls(new_private_key())

    def private_bytes(self) -> bytes:
        """The 32 raw bytes of the private key (what the store keeps)."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, data: bytes) -> bytes:
        """An Ed25519 signature of ``data`` (64 bytes)."""
        return self._key.sign(data)

    def seal(self, entries: Sequence[Signed]) -> Seal:
        """One seal over ``entries`` (all of this replica's origin, at most SEAL_MAX), with a
        signature of its own."""
        if not 1 <= len(entries) <= SEAL_MAX:
            raise ValueError(f"a seal covers 1..{SEAL_MAX} entries, got {len(entries)}")
        digests = self._digests(entries)
        signature = self.sign(_payload(self.replica_id, digests))
        return Seal(self.replica_id, self.public_key_text, _b64(digests), _b64(signature))

    def seal_all(self, entries: Sequence[Signed]) -> list[Seal]:
        """The seals of ``entries`` (all of this replica's origin), in order: one per
        ``SEAL_MAX`` of them, each ``GROUP_MAX`` in a row sharing one signature (a group);
        the seal of ``entries[i]`` is ``seals[i // SEAL_MAX]``. One seal alone (at most
        ``SEAL_MAX`` entries, or the last of a run of groups) is signed alone."""
        runs = [entries[i : i + SEAL_MAX] for i in range(0, len(entries), SEAL_MAX)]
        seals: list[Seal] = []
        for g in range(0, len(runs), GROUP_MAX):
            group = runs[g : g + GROUP_MAX]
            if len(group) == 1:
                seals.append(self.seal(group[0]))
                continue
            digests = [self._digests(run) for run in group]
            hashes = b"".join(_group_hash(d) for d in digests)
            signed = self.sign(_payload(self.replica_id, hashes, _GROUP_DOMAIN))
            signature = _b64(signed + hashes)
            me, key = self.replica_id, self.public_key_text
            seals.extend(Seal(me, key, _b64(d), signature) for d in digests)
        return seals

    def _digests(self, entries: Sequence[Signed]) -> bytes:
        if any(e.origin != self.replica_id for e in entries):
            raise ValueError("a replica seals only the entries it originates")
        return b"".join(entry_digest(e) for e in entries)


def new_private_key() -> bytes:
    """32 raw bytes of a fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )


def seal_from_wire(value: object) -> Seal:
    """A seal from its wire or stored form ``[origin, key, digests, signature]`` (four
    strings); ValueError if it has another shape. Nothing is verified here."""
    if (
        type(value) not in (list, tuple)
        or len(value) != 4  # type: ignore[arg-type]
        or any(type(v) is not str for v in value)  # type: ignore[attr-defined]
    ):
        raise ValueError("a seal is [origin, key, digests, signature], four strings")
    return Seal(*value)  # type: ignore[misc]


def check_seal(
    seal: Seal,
    keys: dict[str, Ed25519PublicKey] | None = None,
    groups: dict[tuple[str, str, str], None] | None = None,
) -> frozenset[bytes] | str:
    """The digests a valid ``seal`` covers, or the reason it is not valid: its key must be
    the one its origin's id is derived from, and its signature must verify (a seal of a
    group: its digests' hash must be one of the group's, and the group's signature must
    verify). ``keys``: the keys already checked to belong to their origins, by ``origin
    0x00 key``; ``groups``: the groups whose signature verified, by origin, key and
    signature text (both read and filled: a key is checked once, a group's signature
    verified once)."""
    try:
        digests = _unb64(seal.digests, "the digests")
        signature = _unb64(seal.signature, "the signature")
    except ValueError as exc:
        return f"malformed seal: {exc}"
    count, rest = divmod(len(digests), DIGEST_BYTES)
    hashes, odd = divmod(len(signature) - SIGNATURE_BYTES, DIGEST_BYTES)
    if rest or odd or not 1 <= count <= SEAL_MAX or hashes == 1 or not 0 <= hashes <= GROUP_MAX:
        return "malformed seal: wrong length of digests or signature"
    if hashes:
        listed = signature[SIGNATURE_BYTES:]
        if _group_hash(digests) not in _digest_set(listed):
            return "the seal's digests are not in its group"
        group = (seal.origin, seal.key, seal.signature)
        if groups is not None and group in groups:
            return _digest_set(digests)
        signed = _payload(seal.origin, listed, _GROUP_DOMAIN)
        signature = signature[:SIGNATURE_BYTES]
    else:
        signed = _payload(seal.origin, digests)
    memo = f"{seal.origin}\x00{seal.key}"
    public = None if keys is None else keys.get(memo)
    if public is None:
        try:
            key = public_key_of(seal.key)
        except ValueError as exc:
            return f"malformed seal: {exc}"
        if replica_id_for(key) != seal.origin:
            return f"the seal's key is not the key of {seal.origin!r}"
        public = Ed25519PublicKey.from_public_bytes(key)
        if keys is not None:
            if len(keys) >= _MEMO:
                keys.clear()
            keys[memo] = public
    try:
        public.verify(signature, signed)
    except InvalidSignature:
        return f"the signature of {seal.origin!r} does not verify"
    if hashes and groups is not None:
        if len(groups) >= _MEMO:
            groups.clear()
        groups[group] = None
    return _digest_set(digests)


def _digest_set(digests: bytes) -> frozenset[bytes]:
    return frozenset(digests[i : i + DIGEST_BYTES] for i in range(0, len(digests), DIGEST_BYTES))


class Verifier:
    """Checks that entries are covered by valid seals of their origins; remembers the seals
    it found valid (at most a few thousand), so a seal is verified once however many of its
    entries arrive, and in however many messages, the origins' keys it checked, and the
    groups whose signature verified, so a group's signature is verified once for all its
    seals."""

    __slots__ = ("_groups", "_keys", "_valid")

    def __init__(self) -> None:
        self._valid: dict[Seal, frozenset[bytes]] = {}
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._groups: dict[tuple[str, str, str], None] = {}

    def covers(self, seal: Seal | None, e: Signed) -> str | None:
        """None if ``seal`` is a valid seal of ``e``'s origin listing ``e``; else why not."""
        if seal is None:
            return "it is not signed"
        if seal.origin != e.origin:
            return f"it is sealed by {seal.origin!r}, not its origin"
        digests = self.digests(seal)
        if isinstance(digests, str):
            return digests
        if entry_digest(e) not in digests:
            return NOT_COVERED
        return None

    def digests(self, seal: Seal) -> frozenset[bytes] | str:
        """The digests ``seal`` lists if it is valid (its key is its origin's, its signature
        verifies), else why it is not: what :meth:`covers` checks of the seal alone, for a
        caller that checks many entries of one seal in a row."""
        digests = self._valid.get(seal)
        if digests is None:
            checked = check_seal(seal, self._keys, self._groups)
            if isinstance(checked, str):
                return checked
            if len(self._valid) >= _MEMO:
                self._valid.clear()
            digests = self._valid[seal] = checked
        return digests


def seals_of(entries: Iterable[object]) -> list[Seal]:
    """The distinct seals of ``entries`` (objects with a ``seal`` attribute), in order."""
    seen: dict[Seal, None] = {}
    for e in entries:
        seal = getattr(e, "seal", None)
        if seal is not None:
            seen[seal] = None
    return list(seen)
