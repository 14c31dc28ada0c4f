"""The stored text: encoding a ``to_dict()`` form, and decoding and checking what is read.

Every CRDT blob (an object's ``state``, a delta, a hint's delta) is the compact JSON text of
a crdt ``to_dict()`` form (:func:`encode`). Reads decode every blob and check it is a valid
encoding of its kind (:func:`decode_blob`, through ``crdt.from_dict``); a blob that is not
JSON, or not a valid encoding of its kind, raises :class:`~store.errors.CorruptBlob` naming
the key and table. The same goes for the other stored texts: an encoded ``CausalContext``
(:func:`check_context`: summaries, a peer's summary), a log entry's seal, and a log
segment's ``entries`` and ``seals`` (:func:`_parse_segment`, :func:`_with_seals`; the layout
is :mod:`store.schema`'s), and a row of ``seals`` (:func:`_stored_seal`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic_core import from_json, to_json

import crdt
from crdt.dot import MAX_INT

from .errors import CorruptBlob, InvalidInput
from .schema import log_segments, seal_id

__all__ = ["check_card", "check_context", "decode_blob", "encode"]


def encode(value: Mapping[str, Any]) -> str:
    """Compact JSON text of a ``to_dict()`` form (pydantic-core's serializer: ~6x faster than
    the stdlib's; key order is kept as given, which the canonical forms already fix).

    Values are not re-validated here: ``to_dict()`` forms are JSON by construction (the
    crdt mutators refuse non-JSON values). An object with no JSON form at all raises
    ``ValueError`` (``PydanticSerializationError``); a set or tuple becomes a list.
    """
    return to_json(value if type(value) is dict else dict(value), inf_nan_mode="constants").decode()


def decode_blob(table: str, key: str, kind: str | None, blob: str) -> dict[str, Any]:
    """Decode a stored CRDT blob, checking it is a valid encoding of ``kind``."""
    try:
        value: Any = json.loads(blob)
    except ValueError as exc:
        raise CorruptBlob(key, table, f"not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise CorruptBlob(key, table, f"expected a JSON object, found {type(value).__name__}")
    if kind is not None and value.get("type") != kind:
        raise CorruptBlob(
            key, table, f"stored kind is {kind!r} but the blob encodes a {value.get('type')!r}"
        )
    try:
        crdt.from_dict(value)
    except crdt.DecodeError as exc:
        raise CorruptBlob(key, table, str(exc)) from exc
    return value


def check_context(value: Any, what: str) -> dict[str, Any]:
    """Check the shape of an encoded CausalContext; return a clean copy or raise
    ``ValueError``."""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValueError(
            f"{what}: expected {{'vv': ..., 'cloud': ...}}, found {type(value).__name__}"
        )
    vv, cloud = value.get("vv", {}), value.get("cloud", [])
    if type(vv) is not dict and not isinstance(vv, Mapping):
        raise ValueError(f"{what}: 'vv' must map replica ids to non-negative integers")
    for origin, n in vv.items():
        if type(origin) is not str or not _is_count(n):
            raise ValueError(
                f"{what}: 'vv' must map replica ids to integers in 0..{MAX_INT} (2**63-1)"
            )
    if type(cloud) is not list and type(cloud) is not tuple:
        raise ValueError(f"{what}: 'cloud' must be a list of [replica, counter] pairs")
    pairs = []
    for dot in cloud:
        if (
            (type(dot) is not list and type(dot) is not tuple)
            or len(dot) != 2
            or type(dot[0]) is not str
            or not _is_count(dot[1])
        ):
            raise ValueError(
                f"{what}: 'cloud' must be a list of [replica, counter] pairs, counters in "
                f"0..{MAX_INT} (2**63-1)"
            )
        pairs.append([dot[0], dot[1]])
    return {"vv": dict(vv), "cloud": pairs}


def check_card(text: Any, replica_id: str, what: str) -> None:
    """Check that ``text`` is the JSON text of a member card of ``replica_id`` (an object
    naming it, with a string ``key`` and ``sig`` and an integer ``at``: see
    :class:`~store.records.PeerLike`), or None; raise ``ValueError`` if not. The signature
    is the engine's to verify."""
    if text is None:
        return
    if type(text) is not str:
        raise ValueError(f"{what} must be the JSON text of a card or None, got {text!r}")
    try:
        card: Any = json.loads(text)
    except ValueError:
        raise ValueError(f"{what} is not JSON: {_preview(text)}") from None
    if type(card) is not dict or card.get("replica_id") != replica_id:
        raise ValueError(f"{what} is not a card of {replica_id!r}: {_preview(text)}")
    if type(card.get("key")) is not str or type(card.get("sig")) is not str:
        raise ValueError(f"{what} has no key or signature: {_preview(text)}")
    if type(card.get("at")) is not int:
        raise ValueError(f"{what} has no integer 'at': {_preview(text)}")


def _is_count(n: Any) -> bool:
    """A seq, a counter, a watermark: what a BIGINT column holds (``crdt.dot.MAX_INT`` at
    most: a larger one was a driver's overflow, not a clear refusal)."""
    return type(n) is int and 0 <= n <= MAX_INT


def _decode_context(table: str, key: str, blob: str) -> dict[str, Any]:
    try:
        return check_context(json.loads(blob), "stored context")
    except ValueError as exc:
        raise CorruptBlob(key, table, str(exc)) from exc


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _seal(value: Any, what: str) -> tuple[str, str, str, str]:
    """A log entry's seal as stored: four strings (``sync.signing.Seal``); the store keeps it
    and does not verify it."""
    if isinstance(value, tuple | list) and len(value) == 4:
        origin, key, digests, signature = value
        if (
            type(origin) is str
            and type(key) is str
            and type(digests) is str
            and type(signature) is str
        ):
            return (origin, key, digests, signature)
    raise InvalidInput(f"{what} must be four strings [origin, key, digests, signature]")


_SEGMENTS = log_segments.name


def _parse_segment(seg_id: int, text: str) -> list[list[Any]]:
    """A segment's ``entries``, checked to be a list of ``[seq, key, kind, delta_text]``
    (the delta texts are decoded later, by :func:`decode_blob`)."""
    try:
        value: Any = from_json(text)  # (Rust: a third of the stdlib's time on a segment)
    except ValueError:
        try:  # what only the stdlib reads (a lone surrogate's escape): still a valid segment
            value = json.loads(text)
        except ValueError as exc:
            raise CorruptBlob(f"segment {seg_id}", _SEGMENTS, f"not valid JSON ({exc})") from exc
    if type(value) is not list:
        raise CorruptBlob(f"segment {seg_id}", _SEGMENTS, "entries are not a JSON array")
    for entry in value:
        if (
            type(entry) is not list
            or not 4 <= len(entry) <= 5
            or (len(entry) == 5 and (type(entry[4]) is not int or entry[4] < 0))
            or type(entry[0]) is not int
            or entry[0] < 1
            or type(entry[1]) is not str
            or type(entry[2]) is not str
            or type(entry[3]) is not str
        ):
            key = entry[1] if type(entry) is list and len(entry) > 1 else None
            raise CorruptBlob(
                key if type(key) is str else f"segment {seg_id}",
                _SEGMENTS,
                f"entry {_preview(entry)} is not [seq, key, kind, delta_text(, seal)]",
            )
    return value


def _seal_ids(seg_id: int, seals_text: str) -> list[str]:
    """A segment's ``seals``: the ids of its seals (see :mod:`store.schema`)."""
    if seals_text == "[]":
        return []
    try:
        raw: Any = json.loads(seals_text)
    except ValueError:
        raw = None
    if type(raw) is not list or not all(type(sid) is str for sid in raw):
        raise CorruptBlob(f"segment {seg_id}", _SEGMENTS, "seals are not a list of seal ids")
    return raw


def _stored_seal(sid: str, stored: str) -> tuple[str, str, str, str]:
    """A row of ``seals``, checked to be the text its id names and decoded as four strings."""
    if seal_id(stored) != sid:
        raise CorruptBlob(sid, "seals", "its text is not the seal its id names")
    try:
        return _seal(json.loads(stored), "seal")
    except (ValueError, InvalidInput) as exc:
        raise CorruptBlob(sid, "seals", f"malformed seal ({exc})") from exc


def _with_seals(
    seg_id: int,
    entries: list[list[Any]],
    seals_text: str,
    found: Mapping[str, tuple[str, str, str, str]],
) -> list[list[Any]]:
    """A parsed segment's entries, each with its seal (a tuple of four strings, or None) as a
    fifth element in place of its index into the segment's ``seals``; ``found`` holds the
    seals by id (read from ``seals``: at least the ones the segment names)."""
    if seals_text == "[]":
        return [e if len(e) == 5 and e[4] is None else [*e[:4], None] for e in entries]
    seals = []
    for sid in _seal_ids(seg_id, seals_text):
        seal = found.get(sid)
        if seal is None:
            raise CorruptBlob(f"segment {seg_id}", _SEGMENTS, f"names seal {sid} not stored")
        seals.append(seal)
    out: list[list[Any]] = []
    for e in entries:
        if len(e) == 5:
            if e[4] >= len(seals):
                raise CorruptBlob(e[1], _SEGMENTS, f"entry {e[0]} names a seal it lacks")
            out.append([e[0], e[1], e[2], e[3], seals[e[4]]])
        else:
            out.append([*e, None])
    return out
