"""JSON text on the replication paths: parsed and written by msgspec, with pydantic-core's answers.

Every log entry a peer receives is parsed twice (the message, then its delta's text), and a
bootstrap parses every object's state: msgspec's parser and encoder do that work in fewer
instructions than pydantic-core's (``benchmarks/README.md``, "Eighteenth session", counts
them for the engines). What a peer accepts must not change with it, so :func:`parse` gives
pydantic-core's answer wherever the two could differ:

* **Depth.** pydantic-core refuses JSON that nests arrays and objects more than about 200
  deep, and the rest of shoal relies on that bound (``crdt._json.MAX_DEPTH``: a state every
  peer's reader takes). msgspec has no such bound, so a text with more than
  :data:`_BRACKETS` opening brackets, which alone could nest that deep, is parsed by
  pydantic-core. A delta or a small state has a few dozen; one shorter than twice that
  many characters cannot nest that deep and is not counted.
* **Errors.** Whatever msgspec refuses (malformed JSON, ``NaN``, a number out of range, a
  lone surrogate's escape) is parsed again by pydantic-core, which refuses it with its own
  reason or, for ``1e400``, reads infinity as it always did. Both raise ``ValueError``.

On everything else the two agree: duplicate keys (the last one wins), integers of any size
(kept exact, where orjson would round them to floats), strings. :func:`dump` writes the
same bytes as ``pydantic_core.to_json(value, inf_nan_mode="null")`` for the values messages
are made of (str, int, bool, None, lists, tuples and dicts of them), checked by
``tests/sync/test_jsontext.py``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from pydantic_core import from_json

__all__ = ["dump", "parse", "parse_shallow"]

#: More opening brackets than this and the text is pydantic-core's to parse (its depth bound
#: is about 200: a text with at most this many brackets cannot nest deeper).
_BRACKETS: Final = 200

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def parse(text: str) -> Any:
    """The value of the JSON ``text``; ``ValueError`` if it is not JSON, or nests deeper than
    pydantic-core reads (``NaN`` and ``Infinity`` are not JSON here)."""
    # (A JSON text nesting d levels is at least 2 d characters long: a short one, as most
    # deltas are, is not counted.)
    if len(text) <= 2 * _BRACKETS or text.count("[") + text.count("{") <= _BRACKETS:
        try:
            return _decode(text)
        except (ValueError, RecursionError):
            pass  # (pydantic-core's answer, below)
    return from_json(text, allow_inf_nan=False)


def parse_shallow(text: str | bytes) -> Any:
    """:func:`parse` for a text whose caller takes only a fixed, shallow shape from it (a
    message's envelope: anything deeper fails the caller's own checks), so its brackets go
    uncounted: msgspec parses it whatever its size, and pydantic-core only what msgspec
    refuses."""
    try:
        return _decode(text)
    except (ValueError, RecursionError):
        return from_json(text, allow_inf_nan=False)


def dump(value: Any) -> bytes:
    """The compact JSON text of ``value`` as UTF-8 (``ValueError`` for a string with a lone
    surrogate, ``TypeError`` for a value of no JSON type)."""
    return _encode(value)
