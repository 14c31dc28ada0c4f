"""JSON values: validation, canonical text, and hashable keys for set elements / map keys.

A JSON value is ``None``, ``bool``, ``int``, a finite ``float``, ``str``, a ``list`` (or
``tuple``) of JSON values, or a ``dict`` with ``str`` keys and JSON values, recursively.
:func:`check_json` refuses anything else with a ``TypeError`` naming the offending type.

Set elements and map keys must be *hashable* JSON values: scalars, or arrays of hashable
JSON values. Internally they are stored as a *key*: ``str`` and ``int`` as themselves (the
fast path), everything else as :class:`_Key` wrapping its canonical JSON text, so that
``True``, ``1`` and ``1.0`` stay three different elements (Python would make them one).
Arrays come back from ``value`` as tuples (:func:`thaw`); JSON objects are refused as
elements or keys (they have no hashable form).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, cast

from pydantic_core import to_json

__all__ = [
    "REPLICA_TEXTS",
    "Key",
    "canonical",
    "check_json",
    "freeze",
    "json_text",
    "key_json_text",
    "key_text",
    "key_to_json",
    "normalize",
    "plain_strings",
    "thaw",
]


def check_json(value: object, path: str = "value") -> None:
    """Raise TypeError naming the type (and where) if ``value`` is not a JSON value."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return
    if t is float:
        if not math.isfinite(cast(float, value)):
            raise TypeError(f"non-finite float {value!r} is not a JSON value (at {path})")
        return
    if t is list or t is tuple:
        for i, x in enumerate(cast("list[object]", value)):
            check_json(x, f"{path}[{i}]")
        return
    if t is dict:
        for k, x in cast("dict[object, object]", value).items():
            if type(k) is not str:
                raise TypeError(
                    f"JSON object keys must be str, got {type(k).__name__} {k!r} (at {path})"
                )
            check_json(x, f"{path}[{k!r}]")
        return
    raise TypeError(f"{t.__name__} is not a JSON value (at {path})")


def canonical(value: Any) -> str:
    """The canonical JSON text of a JSON value (sorted keys, compact separators)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def normalize(value: Any) -> Any:
    """A deep copy of a JSON value with tuples turned into lists (what a decoder gives back)."""
    t = type(value)
    if t is list or t is tuple:
        return [normalize(x) for x in value]
    if t is dict:
        return {k: normalize(x) for k, x in value.items()}
    return value


class _Key:
    """A hashable stand-in for a non-str, non-int element: its canonical JSON text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __hash__(self) -> int:
        return hash(self.text) ^ 0x5BD1E995

    def __eq__(self, other: object) -> bool:
        return type(other) is _Key and other.text == self.text

    def __repr__(self) -> str:
        return f"_Key({self.text})"


Key = str | int | _Key


def freeze(element: object, what: str = "element") -> Key:
    """Check ``element`` is a hashable JSON value and return its internal key.

    Raises TypeError (naming the type) for non-JSON values and for JSON objects.
    """
    t = type(element)
    if t is str or t is int:
        return element  # type: ignore[return-value]
    check_json(element, what)
    if _has_object(element):
        raise TypeError(
            f"a JSON object (dict) cannot be a set element or map key ({what}); "
            "use a string or an array"
        )
    return _Key(canonical(element))


def _has_object(value: object) -> bool:
    t = type(value)
    if t is dict:
        return True
    if t is list or t is tuple:
        return any(_has_object(x) for x in value)  # type: ignore[attr-defined]
    return False


def _tuples(value: Any) -> Any:
    if type(value) is list:
        return tuple(_tuples(x) for x in value)
    return value


def thaw(key: Key) -> Any:
    """The user-facing element of an internal key (arrays as tuples)."""
    if type(key) is _Key:
        return _tuples(json.loads(key.text))
    return key


def key_text(key: Key) -> str:
    """Canonical JSON text of an internal key: the sort key of canonical encodings."""
    if type(key) is _Key:
        return key.text
    if type(key) is int:
        return str(key)
    return json.dumps(key)


def plain_strings(keys: Iterable[object]) -> int:
    """How the keys sort by their canonical JSON text (checked in one pass, in C).

    2: they are all strs and sorting them as they are gives the order of their texts;
    1: they are all strs and sorting ``s + '"'`` does; 0: neither (compute the texts).
    A string JSON writes as itself between quotes (printable ASCII without ``"`` or
    backslash) has the text ``'"' + s + '"'``. Every text begins with the quote, and no
    string holds one, so the closing quote decides exactly where one string is a prefix of
    another: ``s + '"'`` sorts as the texts do; and when no string holds a character below
    the quote (space, ``!``), a prefix sorts first either way.
    """
    try:
        joined = "".join(keys)  # type: ignore[arg-type]
    except TypeError:  # not all strs
        return 0
    if not (joined.isascii() and joined.isprintable()) or '"' in joined or "\\" in joined:
        return 0
    return 1 if " " in joined or "!" in joined else 2


def key_to_json(key: Key) -> Any:
    """The JSON form of an internal key (arrays as lists)."""
    if type(key) is _Key:
        return json.loads(key.text)
    return key


# -- JSON text as pydantic-core writes it ---------------------------------------------------
# The ``to_json()`` encoders write the text of ``pydantic_core.to_json(x.to_dict())`` from
# string fragments. Leaves go through pydantic-core itself (its escaping, its UTF-8 output
# of non-ASCII text, its float formatting), except ints, written with ``str`` as it does;
# an int too long for ``str`` raises ValueError, and the callers then fall back on
# ``to_dict()`` (see ``ORSet.to_json``).


def json_text(value: Any) -> str:
    """``pydantic_core.to_json(value).decode()`` for a JSON value (tuples as arrays)."""
    t = type(value)
    if t is int:
        return str(value)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    return to_json(value).decode()


class _ReplicaTexts(dict[str, str]):
    """Replica id -> its JSON text, computed on first use (``texts[replica]``).

    Replica ids are few and repeat in every dot: the encoders look their text up here (a
    subscript, cheaper than a call). A bound keeps a process that sees ids come and go from
    growing the table without end.
    """

    __slots__ = ()
    limit = 4096

    def __missing__(self, replica: str) -> str:
        if len(self) >= self.limit:
            self.clear()
        text = self[replica] = to_json(replica).decode()
        return text


REPLICA_TEXTS = _ReplicaTexts()


def key_json_text(key: Key) -> str:
    """The pydantic-core JSON text of an internal key's JSON form (``key_to_json``)."""
    if type(key) is _Key:
        return to_json(json.loads(key.text)).decode()
    return json_text(key)
