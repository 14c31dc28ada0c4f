"""Helpers shared by the ``from_dict`` decoders: checked field access with error paths.

Every helper raises :class:`~crdt.errors.DecodeError` naming the path of the bad field.
"""

from __future__ import annotations

from typing import Any

from crdt.errors import DecodeError

__all__ = ["FORMAT_VERSION", "check_header", "field", "get_dict", "get_list"]

FORMAT_VERSION = 1


# allowed -> allowed | {"type", "v"}: the callers pass module constants, so this stays tiny.
_WITH_HEADER: dict[frozenset[str], frozenset[str]] = {}


def check_header(d: object, kind: str, allowed: frozenset[str]) -> dict[str, Any]:
    """Check ``{"type": kind, "v": 1, ...}`` with only the ``allowed`` body keys.

    The well-formed case costs a few dict lookups and one C-level key-set comparison (the
    decoders of deltas run it once per message); anything else goes through the checks
    one by one, for the error naming the bad field.
    """
    if type(d) is dict and d.get("type") == kind:
        v = d.get("v")
        if type(v) is int and v == FORMAT_VERSION:
            full = _WITH_HEADER.get(allowed)
            if full is None:
                full = _WITH_HEADER[allowed] = allowed | {"type", "v"}
            if d.keys() <= full:
                return d
    return _check_header_slowly(d, kind, allowed)


def _check_header_slowly(d: object, kind: str, allowed: frozenset[str]) -> dict[str, Any]:
    if type(d) is not dict:
        raise DecodeError("$", f"expected a JSON object, got {type(d).__name__}")
    if "type" not in d:
        raise DecodeError("type", "missing")
    if d["type"] != kind:
        raise DecodeError("type", f"expected {kind!r}, got {d['type']!r}")
    if "v" not in d:
        raise DecodeError("v", "missing")
    if type(d["v"]) is not int or d["v"] != FORMAT_VERSION:
        raise DecodeError("v", f"unsupported format version {d['v']!r} (supported: 1)")
    for key in d:
        if key not in allowed and key not in ("type", "v"):
            raise DecodeError(str(key), "unknown field")
    return d


def field(d: dict[str, Any], name: str, path: str) -> Any:
    """``d[name]``, or DecodeError(``path``, "missing")."""
    if name not in d:
        raise DecodeError(path, "missing")
    return d[name]


def get_dict(d: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    x = field(d, name, path)
    if type(x) is not dict:
        raise DecodeError(path, f"expected an object, got {type(x).__name__}")
    return x


def get_list(d: dict[str, Any], name: str, path: str) -> list[Any]:
    x = field(d, name, path)
    if type(x) is not list:
        raise DecodeError(path, f"expected an array, got {type(x).__name__}")
    return x
