"""JSON values: validation, canonical text, and hashable keys for set elements / map keys.

A JSON value is ``None``, ``bool``, ``int``, a finite ``float``, ``str``, a ``list`` (or
``tuple``) of JSON values, or a ``dict`` with ``str`` keys and JSON values, recursively, at
most :data:`MAX_DEPTH` arrays and objects deep. :func:`check_json` refuses anything else with
a ``TypeError`` naming the offending type (a ``ValueError`` for the depth).

Set elements and map keys must be *hashable* JSON values: scalars, or arrays of hashable
JSON values. Internally they are stored as a *key*: ``str`` and ``int`` as themselves (the
fast path), everything else as :class:`_Key` wrapping its canonical JSON text, so that
``True``, ``1`` and ``1.0`` stay three different elements (Python would make them one).
Arrays come back from ``value`` as tuples (:func:`thaw`); JSON objects are refused as
elements or keys (they have no hashable form).

Also here: the pieces of ``to_json()``'s text (:data:`json_dumps`, :func:`json_text`,
:data:`str_text`, :data:`REPLICA_TEXTS`, :func:`key_json_text`), made with the standard
library's json module and nothing else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from json.encoder import encode_basestring
from operator import itemgetter
from typing import Any, cast

from crdt._codec import FORMAT_VERSION
from crdt.errors import DecodeError

__all__ = [
    "MAX_DEPTH",
    "REPLICA_TEXTS",
    "Key",
    "canonical",
    "check_json",
    "decode_key",
    "encoding_rank",
    "first_item",
    "freeze",
    "json_dumps",
    "json_text",
    "key_json_text",
    "key_text",
    "key_to_json",
    "normalize",
    "plain_strings",
    "read_json",
    "same_json",
    "sorted_keys",
    "sorted_pairs",
    "str_text",
    "thaw",
]


# Python refuses to write an int of more than 4300 digits as text (sys.int_info); JSON
# readers choke far earlier. 13,000 bits is about 3,900 digits.
_MAX_INT_BITS = 13_000

#: The most arrays and objects a value nests within one another. The JSON reader every peer
#: loads states and messages with stops at about 200 levels, and a value sits a few levels
#: down in its CRDT's encoding (an ORMap adds two per nested map, ``crdt.ormap.MAX_NESTING``
#: of them at most), so a deeper value was taken, then made the database unopenable and the
#: links that carried it drop for good. 64 leaves that reader more than 60 levels to spare.
MAX_DEPTH = 64
# What a value decoded from a state may nest: a JSON text that deep was read by no JSON reader
# a peer uses (they stop at about 200); the bound keeps a state built in Python from
# recursing without end. A peer of an older version took values deeper than MAX_DEPTH: its
# states still load.
_READ_DEPTH = 256


def plain(value: object) -> bool:
    """True for the JSON atoms that need no further check (the mutators' fast path): an
    ASCII str, an int of fewer than _MAX_INT_BITS bits, a bool, None."""
    t = type(value)
    if t is str:
        return value.isascii()  # type: ignore[attr-defined, no-any-return]
    if t is int:
        return value.bit_length() <= _MAX_INT_BITS  # type: ignore[attr-defined, no-any-return]
    return t is bool or value is None


def plain_key(value: object) -> bool:
    """True for the set elements and map keys that are their own key: an ASCII str, or an
    int of fewer than _MAX_INT_BITS bits (anything else goes through :func:`freeze`)."""
    t = type(value)
    if t is str:
        return value.isascii()  # type: ignore[attr-defined, no-any-return]
    return t is int and value.bit_length() <= _MAX_INT_BITS  # type: ignore[attr-defined]


def check_json(
    value: object, path: str = "value", depth: int = 0, max_depth: int = MAX_DEPTH
) -> None:
    """Raise TypeError naming the type (and where) if ``value`` is not a JSON value, and
    ValueError if it nests more than ``max_depth`` arrays and objects (a value that contains
    itself included). ``depth``: the containers ``value`` is in."""
    t = type(value)
    if t is str:
        if not cast(str, value).isascii():
            try:
                cast(str, value).encode("utf-8")
            except UnicodeEncodeError:
                raise TypeError(
                    f"a string with a lone surrogate has no UTF-8 (JSON) text (at {path})"
                ) from None
        return
    if t is int:
        if cast(int, value).bit_length() > _MAX_INT_BITS:
            raise TypeError(
                f"an int of more than 4000 digits is not a portable JSON value (at {path})"
            )
        return
    if t is bool or value is None:
        return
    if t is float:
        if not math.isfinite(cast(float, value)):
            raise TypeError(f"non-finite float {value!r} is not a JSON value (at {path})")
        return
    if (t is list or t is tuple or t is dict) and depth >= max_depth:
        raise ValueError(
            f"a value may nest at most {max_depth} arrays and objects deep (at {path[:80]}...)"
        )
    if t is list or t is tuple:
        for i, x in enumerate(cast("list[object]", value)):
            check_json(x, f"{path}[{i}]", depth + 1, max_depth)
        return
    if t is dict:
        for k, x in cast("dict[object, object]", value).items():
            if type(k) is not str:
                raise TypeError(
                    f"JSON object keys must be str, got {type(k).__name__} {k!r} (at {path})"
                )
            if not k.isascii():
                check_json(k, f"{path} key {k!r}", depth + 1, max_depth)  # UTF-8 text too
            check_json(x, f"{path}[{k!r}]", depth + 1, max_depth)
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


def freeze(element: object, what: str = "element", max_depth: int = MAX_DEPTH) -> Key:
    """Check ``element`` is a hashable JSON value and return its internal key.

    Raises TypeError (naming the type) for non-JSON values and for JSON objects, ValueError
    for one nested deeper than ``max_depth``.
    """
    t = type(element)
    if (t is str and element.isascii()) or (t is int and element.bit_length() <= _MAX_INT_BITS):  # type: ignore[attr-defined]
        return element  # type: ignore[return-value]
    check_json(element, what, 0, max_depth)
    if t is str or t is int:
        return element  # type: ignore[return-value]
    if _has_object(element):
        raise TypeError(
            f"a JSON object (dict) cannot be a set element or map key ({what}); "
            "use a string or an array"
        )
    return _Key(canonical(element))


def decode_key(raw: object, path: str, what: str = "element") -> Key:
    """The internal key of a set element or map key read from JSON: :func:`freeze`'s, with
    its TypeError as a DecodeError at ``path``."""
    if plain_key(raw):
        return raw  # type: ignore[return-value]
    try:
        return freeze(raw, what, _READ_DEPTH)
    except (TypeError, ValueError) as exc:
        raise DecodeError(path, str(exc)) from exc


def read_json(value: object, path: str) -> None:
    """:func:`check_json` for a value decoded from a state (at ``path``), nested at most a
    JSON reader's depth, not :data:`MAX_DEPTH` (a write's bound); DecodeError if it is not
    one."""
    try:
        check_json(value, path, 0, _READ_DEPTH)
    except (TypeError, ValueError) as exc:
        raise DecodeError(path, str(exc)) from exc


def encoding_rank(value: Any) -> tuple[str, str]:
    """How two values are ordered where one must be kept everywhere (two values of one dot,
    two register values at one timestamp): by canonical text, then, for two values alike but
    for an object's key order (which ``canonical`` sorts), by the text ``to_json`` writes. Two
    values of one rank have one text."""
    return canonical(value), json_text(value)


def same_json(a: object, b: object) -> bool:
    """Do ``a`` and ``b`` have the same JSON text (``json_text``)? ``==`` with the types of
    every item alike, floats by their sign too and objects by the order of their keys:
    Python takes ``1``, ``1.0`` and ``True``, ``0.0`` and ``-0.0``, and an object and the
    same one with its keys reordered, as equal; JSON writes them apart. Tuples (flat
    stores) and lists compare item by item; dicts and their keys are compared in order."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is tuple or t is list:
        xs, ys = cast("list[object]", a), cast("list[object]", b)
        return len(xs) == len(ys) and all(map(same_json, xs, ys))
    if t is dict:
        da, db = cast("dict[object, object]", a), cast("dict[object, object]", b)
        return list(da) == list(db) and all(same_json(x, db[k]) for k, x in da.items())
    if t is float:
        fa, fb = cast(float, a), cast(float, b)
        return fa == fb and math.copysign(1.0, fa) == math.copysign(1.0, fb)
    return a == b


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
    """Canonical JSON text of an internal key: the sort key of canonical encodings.

    A plain ASCII string (the common key) is written without ``json.dumps``.
    """
    if type(key) is str:
        if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key:
            return '"' + key + '"'  # exactly what json.dumps gives for such a string
    elif type(key) is _Key:
        return key.text
    elif type(key) is int:
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


first_item = itemgetter(0)  # the sort key of (text or key, value) pairs, called from C


def sorted_keys(keys: list[Key]) -> list[Key]:
    """``keys`` sorted by their canonical JSON text (the order of canonical encodings).

    Plain string keys (the common case) are sorted without computing a text per key (see
    :func:`plain_strings`).
    """
    how = plain_strings(keys)
    if how == 2:
        return sorted(keys)  # type: ignore[type-var]
    if how == 1:
        quoted = [k + '"' for k in cast("list[str]", keys)]
        quoted.sort()
        return [q[:-1] for q in quoted]
    items = [(key_text(k), k) for k in keys]
    items.sort(key=first_item)
    return [k for _, k in items]


def sorted_pairs(pairs: Iterable[tuple[Key, str]]) -> list[tuple[Key, str]]:
    """``(key, name)`` pairs (unique) sorted by the key's canonical JSON text, then name:
    the order of an ORMap's canonical entries, ``(key, kind)``."""
    pairs = list(pairs)
    how = plain_strings(map(first_item, pairs))
    if how == 2:  # str keys sorting as their texts do: the tuple order is the text order
        return sorted(pairs)
    return sorted(pairs, key=_pair_text)


def _pair_text(pair: tuple[Key, str]) -> str:
    """A string sorting as ``(key's canonical text, name)`` does: no text holds a NUL."""
    return f"{key_text(pair[0])}\x00{pair[1]}"


def key_to_json(key: Key) -> Any:
    """The JSON form of an internal key (arrays as lists)."""
    if type(key) is _Key:
        return json.loads(key.text)
    return key


# -- The JSON text of to_json() --------------------------------------------------------------
# ``to_json()`` is ``json.dumps(x.to_dict(), ensure_ascii=False, separators=(",", ":"),
# allow_nan=False)``, and ORSet and ORMap write that text from string fragments. Their leaves
# go through the json module's own pieces, so that every byte is the one json.dumps writes:
# strings through ``encode_basestring`` (the C function json.dumps calls for them when
# ``ensure_ascii`` is false), ints through ``int.__repr__`` (as the json module: an int too long
# for it raises the same ValueError), floats through ``float.__repr__`` (finite ones; the
# others go to the encoder, which raises as json.dumps does), arrays and objects through one
# preconstructed encoder with json.dumps's settings.

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_INF = math.inf
_int_repr = int.__repr__
_float_repr = float.__repr__

json_dumps = _ENCODER.encode
"""``json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``."""


def causal_state_json(kind: str, entries: str, ctx_json: str) -> str:
    """``to_json()`` of an MVRegister, ORSet or ORMap of ``kind``: its header, the text of its
    entries (``entries``, without the brackets) and its context's text (``ctx_json``)."""
    return causal_state_json_of_parts(kind, [entries], ctx_json)


def causal_state_json_of_parts(kind: str, parts: list[str], ctx_json: str) -> str:
    """``causal_state_json(kind, "".join(parts), ctx_json)``, joined once: the entries' text
    is not made apart from the state's (for a big state, a copy of its size less at the
    peak)."""
    head = f'{{"type":"{kind}","v":{FORMAT_VERSION},"entries":['
    return "".join([head, *parts, f'],"ctx":{ctx_json}}}'])


str_text = encode_basestring
"""The JSON text of a ``str``, as ``json_dumps`` writes it (the C function it calls)."""


def json_text(value: Any) -> str:
    """``json_dumps(value)`` for a JSON value (tuples as arrays), scalars without the encoder.

    ValueError as ``json_dumps`` raises it: for a non-finite float, or an int too long for
    ``str`` (the mutators and decoders refuse non-finite floats: no state holds one).
    """
    t = type(value)
    if t is str:
        return encode_basestring(value)
    if t is int:
        return _int_repr(value)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if t is float and -_INF < value < _INF:
        return _float_repr(value)
    return _ENCODER.encode(value)


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
        text = self[replica] = encode_basestring(replica)
        return text


REPLICA_TEXTS = _ReplicaTexts()


def key_json_text(key: Key) -> str:
    """``json_dumps(key_to_json(key))``: the JSON text of an internal key's JSON form.

    A ``_Key`` holds its canonical text, written with ``ensure_ascii``: where that wrote no
    ``\\u`` escape it is already the text without it (the two differ only in characters
    from U+007F up, which ``ensure_ascii`` writes as ``\\uXXXX``; and keys hold no JSON
    object, so ``sort_keys`` changes nothing).
    """
    if type(key) is _Key:
        text = key.text
        return text if "\\u" not in text else _ENCODER.encode(json.loads(text))
    return json_text(key)
