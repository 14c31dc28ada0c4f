"""Log entries and their seals as a ``Push`` or ``Deltas`` carries them (:mod:`sync.messages`).

An entry is the array ``[origin, partition, seq, key, kind, delta_json]`` (no field names: a
busy peer sends hundreds per message), with a seventh element when it is sealed: the index
of its seal in the message's ``seals``, which lists each distinct seal once as ``[origin,
key, digests, signature]`` (:mod:`sync.signing`).

A seal's random bytes, its signature and its digests, travel as bytes in the message's binary
tail (:func:`sync.messages.encode`), not as base64 inside the JSON, where a deflated frame
spends about eight bits on each of their characters (a lone change's signature: 88
characters, 64 bytes). In the JSON, a seal's ``signature`` is ``""`` when its 64 bytes are
in the tail, or the number ``g`` (2 or more) of its group's hashes when its ``64 + 16 g``
bytes are (a seal of a group, :mod:`sync.signing`), and its ``digests`` the number ``n`` of
digests whose ``16 n`` bytes are; the tail holds, seal after seal in the order of
``seals``, each one's digests then its signature, and nothing else. Text (base64) is
accepted in either field as well. A seal that covers one entry, named by one entry of the
message, travels without its digests (``""``): they are that entry's digest, which the
decoder computes, so a lone change is a signature and a few fields; such a seal named by
more than one entry is malformed. Whether a seal is valid is the engine's check, not this
module's.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from sync.effects import MAX_SEQ, LogEntry
from sync.errors import RemoteProtocolError
from sync.signing import (
    DIGEST_BYTES,
    GROUP_MAX,
    SEAL_MAX,
    SIGNATURE_BYTES,
    Seal,
    entry_digest,
    seal_from_wire,
)

__all__ = ["attach_seals", "entry_in", "entry_out", "from_wire", "to_wire"]

_ENTRY_FIELDS: Final = ("origin", "partition", "seq", "key", "kind", "delta_json")
_ENTRY_SHAPE: Final = "an entry is the array [origin, partition, seq, key, kind, delta_json]"


def entry_in(value: Any) -> Any:
    """What pydantic validates as a ``LogEntry`` from a wire array (its seal index left for
    :func:`attach_seals`), or the entry itself when a message is built in Python."""
    if type(value) is list:
        if len(value) == len(_ENTRY_FIELDS) + 1:
            # A seal's index: checked and attached by decode, once the message is valid.
            if type(value[-1]) is not int or value[-1] < 0:
                raise ValueError(_ENTRY_SHAPE + ", and a seal index")
            value = value[:-1]
        if len(value) != len(_ENTRY_FIELDS):
            raise ValueError(_ENTRY_SHAPE)
        return dict(zip(_ENTRY_FIELDS, value, strict=True))
    if isinstance(value, LogEntry):
        return value
    raise ValueError(_ENTRY_SHAPE)


def entry_out(e: LogEntry) -> tuple[str, int, int, str, str, str]:
    """An entry's wire array, without its seal (pydantic's serializer for one entry)."""
    return (e.origin, e.partition, e.seq, e.key, e.kind, e.delta_json)


def to_wire(entries: list[LogEntry]) -> tuple[list[tuple[Any, ...]], list[Any], bytes]:
    """The entries of a Push or Deltas as pydantic-core encodes fastest (plain tuples), each
    with the index of its seal when it has one, the seals they index in their wire form (a
    seal of one entry, named once, without its digests) and the message's binary tail (the
    seals' digests and signatures, as bytes; empty when no entry is sealed)."""
    seals: dict[Seal, int] = {}
    named: list[int] = []  # how many entries name each seal
    out: list[tuple[Any, ...]] = []
    append = out.append
    last: Seal | None = None
    index = 0
    for e in entries:
        seal = e.seal
        if seal is None:
            append((e.origin, e.partition, e.seq, e.key, e.kind, e.delta_json))
            continue
        if seal is not last:  # (consecutive entries usually share their seal)
            found = seals.get(seal)
            if found is None:
                found = seals[seal] = len(seals)
                named.append(0)
            last, index = seal, found
        named[index] += 1
        append((e.origin, e.partition, e.seq, e.key, e.kind, e.delta_json, index))
    wire: list[Any] = []
    tail: list[bytes] = []
    for i, seal in enumerate(seals):
        origin, key, text, signature = seal
        digests: str | int = text
        if named[i] == 1 and len(text) == _ONE_DIGEST_B64:
            digests = ""
        else:
            raw = _bytes_of(text)
            count, rest = divmod(len(raw or b""), DIGEST_BYTES)
            if raw is not None and not rest and 1 <= count <= SEAL_MAX:
                digests = count
                tail.append(raw)
        raw = _bytes_of(signature)
        sig: str | int = signature
        if raw is not None:
            hashes, odd = divmod(len(raw) - SIGNATURE_BYTES, DIGEST_BYTES)
            if hashes == 0 and not odd:
                sig = ""
                tail.append(raw)
            elif 2 <= hashes <= GROUP_MAX and not odd:
                sig = hashes
                tail.append(raw)
        wire.append((origin, key, digests, sig))
    return out, wire, b"".join(tail)


def _bytes_of(text: str) -> bytes | None:
    """The bytes of the base64 ``text`` (None: it is not base64; it travels as it is)."""
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


# The base64 length of one digest: a seal of that length covers one entry.
_ONE_DIGEST_B64: Final = 4 * ((DIGEST_BYTES + 2) // 3)


def _full_seals(entries: list[LogEntry]) -> bool:
    """Give each seal that came without its digests (one per entry that names it) the digest
    of its entry; False if such a seal is named by more than one entry."""
    done: set[int] = set()
    for e in entries:
        seal = e.seal
        if seal is not None and seal.digests == "":
            if id(seal) in done:
                return False
            done.add(id(seal))
            e.seal = seal._replace(digests=base64.b64encode(entry_digest(e)).decode())
    return True


def _seals_in(raw: Any, tail: bytes) -> list[Seal] | None:
    """The seals of a decoded message's ``seals`` field (absent: none) with what they have in
    its binary ``tail``, or None if malformed (a tail that their fields do not use up
    exactly included)."""
    if raw is None:
        return [] if not tail else None
    if type(raw) is not list:
        return None
    out: list[Seal] = []
    at = 0
    b64 = base64.b64encode
    for v in raw:
        if type(v) is not list or len(v) != 4:
            return None
        origin, key, digests, signature = v
        if type(digests) is int:
            end = at + digests * DIGEST_BYTES
            if not 1 <= digests <= SEAL_MAX or end > len(tail):
                return None
            digests = b64(tail[at:end]).decode("ascii")
            at = end
        size = 0  # the signature's bytes in the tail (none: its text is in the JSON)
        if type(signature) is int:  # a seal of a group of that many
            if not 2 <= signature <= GROUP_MAX:
                return None
            size = SIGNATURE_BYTES + signature * DIGEST_BYTES
        elif signature == "":
            size = SIGNATURE_BYTES
        if size:
            end = at + size
            if end > len(tail):
                return None
            signature = b64(tail[at:end]).decode("ascii")
            at = end
        try:
            out.append(seal_from_wire((origin, key, digests, signature)))
        except ValueError:
            return None
    return out if at == len(tail) else None


def from_wire(raw: Any, raw_seals: Any, tail: bytes = b"") -> list[LogEntry] | None:
    """The checked entries of a decoded message, or None if any is not well-formed.

    Each ``[origin, partition, seq, key, kind, delta_json]`` array is checked field by field
    with the rules :class:`~sync.effects.LogEntry` declares and built as a ``LogEntry``; a
    seventh element is the index of its seal in ``raw_seals`` (whose bytes are in the
    message's binary ``tail``)."""
    if type(raw) is not list:
        return None
    seals = _seals_in(raw_seals, tail)
    if seals is None:
        return None
    count = len(seals)
    out: list[LogEntry] = []
    append = out.append
    for e in raw:
        if type(e) is not list:
            return None
        seal = None
        if len(e) == 7:
            index = e[6]
            if type(index) is not int or not 0 <= index < count:
                return None
            seal = seals[index]
            origin, partition, seq, key, kind, text, _ = e
        elif len(e) == 6:
            origin, partition, seq, key, kind, text = e
        else:
            return None
        if not (
            type(origin) is str
            and origin != ""
            and type(partition) is int
            and partition >= 0
            and type(seq) is int
            and 1 <= seq <= MAX_SEQ
            and type(key) is str
            and key != ""
            and type(kind) is str
            and kind != ""
            and type(text) is str
        ):
            return None
        append(LogEntry(origin, partition, seq, key, kind, text, seal))
    if any(seal.digests == "" for seal in seals) and not _full_seals(out):
        return None
    return out


def attach_seals(entries: list[LogEntry], raw: Any, t: str, tail: bytes = b"") -> None:
    """Set the seal of each of ``entries``, a ``t`` message's that pydantic validated from
    the parsed JSON ``raw`` and its binary ``tail`` (the fast path refused the message for
    another reason, or sets the seals itself); RemoteProtocolError if the seals or an
    entry's index into them are malformed."""
    seals = _seals_in(raw.get("seals"), tail) if type(raw) is dict else None
    if seals is None:
        raise RemoteProtocolError(
            f"bad field 'seals' in {t!r} message: a list of [origin, key, digests, signature]"
            ", with exactly their bytes in the binary tail"
        )
    for i, (e, wire) in enumerate(zip(entries, raw["entries"], strict=True)):
        if len(wire) == 7:
            if not wire[6] < len(seals):
                raise RemoteProtocolError(f"entry {i} of a {t!r} names no seal")
            e.seal = seals[wire[6]]
    if not _full_seals(entries):
        raise RemoteProtocolError(f"a seal without digests is named by two entries of a {t!r}")
