"""Splitting a state's JSON text into pieces that fit a byte budget, without decoding it whole.

:meth:`CRDT.split` cuts a state held as an object; a peer serving a state transfer holds
the state as its stored text, and decoding a big one whole (an ORMap of 100k entries: about
10 MB of text, ten times that as objects) only to cut it costs far more memory than the text.
:func:`split_text` cuts the text itself, one entry at a time, into pieces that follow the
rules of ``crdt/_split.py`` (a piece of entries under the context of exactly their dots; the
dots the context covers but no entry holds in pieces of their own, those below every live
dot of their replica as one number per replica, the others one by one), so that the pieces
are what ``split`` would send, in another order:

* the causal kinds (MVRegister, ORSet, ORMap) in their canonical layout (``to_json``'s:
  ``{"type":K,"v":1,"entries":[...],"ctx":{...}}``) are read entry by entry: each entry is
  parsed alone (``json.JSONDecoder.raw_decode`` at its offset), decoded by its kind to learn
  its dots, and its text, as it stands, goes into the piece being filled; an ORMap entry too
  big for one piece is decoded and cut by its kind's ``split`` (as ``ORMap.split`` does), so
  only a nested value that big is ever held whole;
* the live dots seen so far are kept as one bit per counter of the context's version vector
  (a replica whose count is far beyond the text's length, and the cloud's dots, in a set),
  which is what the pieces of removed dots are computed from once the entries are done;
* anything else (counters, LWW registers, a text in another layout) is decoded whole and
  cut by its ``split``: such states are small (a value, or one count per replica).

Pieces are produced lazily (a generator): a caller holds the text, the bitmap and the piece
being filled, whatever the number of entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from crdt._json import causal_state_json
from crdt._map_codec import decode_map, entry_json, map_units
from crdt._setstore import decode_set_entries, set_dots
from crdt._split import (
    CAUSAL_OVERHEAD,
    check_budget,
    dot_bytes,
    dots_bytes,
    fits,
    iter_removed_contexts,
    utf8_len,
)
from crdt.base import from_dict
from crdt.causal_context import CausalContext, context_of
from crdt.dot import Dot
from crdt.emlww import _one_write
from crdt.errors import DecodeError
from crdt.mvregister import decode_dotfun

__all__ = ["split_text"]

_DECODER = json.JSONDecoder()
_CTX_KEY = '],"ctx":'

# One unit of a piece: its text (an entry of the ``entries`` array), what must not appear
# twice in one piece (an ORMap's (key, kind); None: nothing), its dots, its weight in bytes
# (text, comma and dots as a context's cloud).
_Unit = tuple[str, Any, list[Dot], int]
_Units = Callable[[Any, str, CausalContext, int], list[_Unit]]


def split_text(text: str, max_bytes: int) -> Iterator[str]:
    """The JSON texts of deltas of at most ``max_bytes`` bytes each (UTF-8) whose join is the
    state ``text`` encodes: ``text`` itself if it fits, else pieces (see the module
    docstring). A single entry too big alone is a piece over the budget, as with ``split``.
    DecodeError (a ValueError) if ``text`` is not a state."""
    budget = check_budget(max_bytes)
    if fits(text, budget):
        yield text
        return
    layout = _layout(text)
    if layout is None:
        for piece in from_dict(json.loads(text)).split(budget):
            yield piece.to_json()
        return
    kind, start, end, ctx = layout
    yield from _causal_pieces(text, kind, start, end, ctx, max(1, budget - CAUSAL_OVERHEAD))


def _layout(text: str) -> tuple[str, int, int, CausalContext] | None:
    """For a causal state in the canonical layout: its kind, where its entries start and end
    (the offsets of the first entry and of the ``]`` closing them), and its context."""
    for kind in _UNITS:
        head = causal_state_json(kind, "", "")[: -len(_CTX_KEY) - 1]  # "...entries":[
        if text.startswith(head):
            break
    else:
        return None
    start = len(head)
    # ``],"ctx":`` is never inside a JSON string (there its quotes would be escaped): it is
    # an array closing before a key "ctx", which a value of an entry may hold too (an LWW
    # register's object); the state's own is the one whose value ends the text.
    i = text.rfind(_CTX_KEY)
    while i >= start:
        try:
            raw, stop = _DECODER.raw_decode(text, i + len(_CTX_KEY))
        except ValueError:
            raw, stop = None, -1
        if stop == len(text) - 1 and text[stop] == "}":
            return kind, start, i, CausalContext.from_dict(raw)
        i = text.rfind(_CTX_KEY, start, i)
    return None


def _causal_pieces(
    text: str, kind: str, start: int, end: int, ctx: CausalContext, room: int
) -> Iterator[str]:
    units = _UNITS[kind]
    live = _LiveDots(ctx, len(text))
    texts: list[str] = []
    dots: list[Dot] = []
    keys: set[Any] = set()
    size = 0
    for entry, etext in _entries(text, start, end):
        for utext, key, udots, weight in units(entry, etext, ctx, room):
            for d in udots:
                live.add(d)
            if texts and (size + weight > room or (key is not None and key in keys)):
                yield causal_state_json(kind, ",".join(texts), context_of(dots).to_json())
                texts, dots, size = [], [], 0
                keys.clear()
            texts.append(utext)
            dots.extend(udots)
            size += weight
            if key is not None:
                keys.add(key)
    if texts:
        yield causal_state_json(kind, ",".join(texts), context_of(dots).to_json())
    empty = not live.lowest  # no entry: the text is a context alone
    for c in iter_removed_contexts(ctx, live.lowest, live.__contains__, room):
        empty = False
        yield causal_state_json(kind, "", c.to_json())
    if empty:
        yield text  # a bottom: one piece


def _entries(text: str, start: int, end: int) -> Iterator[tuple[Any, str]]:
    """Each entry of the array between ``start`` and ``end``, parsed, with its text."""
    pos = start
    if pos == end:
        return
    while True:
        entry, stop = _DECODER.raw_decode(text, pos)
        yield entry, text[pos:stop]
        if stop == end:
            return
        if stop > end or text[stop] != ",":
            raise DecodeError("entries", f"expected ',' or ']' at offset {stop}")
        pos = stop + 1


class _LiveDots:
    """The dots of the entries seen so far, and each replica's lowest: one bit per counter
    up to the context's count for a replica (a few KB for 100k dots), in a set for counters
    beyond it (the cloud's) and for a replica whose count exceeds ``limit`` bits."""

    __slots__ = ("_bits", "_others", "lowest")

    def __init__(self, ctx: CausalContext, limit: int) -> None:
        self._bits = {r: bytearray((n >> 3) + 1) for r, n in ctx.vv.items() if n <= 8 * limit}
        self._others: set[Dot] = set()
        self.lowest: dict[str, int] = {}

    def add(self, dot: Dot) -> None:
        r, c = dot
        bits = self._bits.get(r)
        if bits is not None and c >> 3 < len(bits):
            bits[c >> 3] |= 1 << (c & 7)
        else:
            self._others.add(dot)
        if c < self.lowest.get(r, c + 1):
            self.lowest[r] = c

    def __contains__(self, dot: Dot) -> bool:
        r, c = dot
        bits = self._bits.get(r)
        if bits is not None and c >> 3 < len(bits):
            return bool(bits[c >> 3] >> (c & 7) & 1)
        return dot in self._others


# -- each causal kind's entries ----------------------------------------------------------------
def _map_entry(entry: Any, etext: str, ctx: CausalContext, room: int) -> list[_Unit]:
    """An ORMap entry ``[key, kind, body]``: itself, or the parts its kind cuts it into when
    it weighs more than ``room`` (``ORMap.split``'s units)."""
    if type(entry) is list and len(entry) == 3 and entry[1] == "lww":
        # The common entry, a register of one write under a plain key, as its unit without
        # decoding the map around it (what the general path finds for it, and as checked).
        k, _, body = entry
        one = _one_write(body[0], ctx, set()) if type(body) is list and len(body) == 1 else None
        if one is not None and type(k) is str and k.isascii():
            dot = Dot(one[0], one[1])
            weight = utf8_len(etext) + 1 + dot_bytes(dot)
            if weight <= room:
                return [(etext, (k, "lww"), [dot], weight)]
    store = decode_map([entry], ctx, "entries", set())
    (ek, whole), *_ = store.items()
    out: list[_Unit] = []
    for _, st, sd, weight in map_units(store, room, {ek: utf8_len(etext) + 1}):
        out.append((etext if st is whole else entry_json(ek, st), ek, sd, weight))
    return out


def _set_entry(entry: Any, etext: str, ctx: CausalContext, room: int) -> list[_Unit]:
    """An ORSet entry ``[element, [dot, ...]]``: one unit (an element is not cut)."""
    dots = set_dots(decode_set_entries([entry], ctx, "entries", set()))
    return [(etext, None, dots, utf8_len(etext) + 1 + dots_bytes(dots))]


def _register_entry(entry: Any, etext: str, ctx: CausalContext, room: int) -> list[_Unit]:
    """An MVRegister entry ``[dot, value]``: one unit (a value is not cut)."""
    (dot,) = decode_dotfun([entry], ctx, "entries")
    return [(etext, None, [dot], utf8_len(etext) + 1 + dot_bytes(dot))]


_UNITS: dict[str, _Units] = {
    "ormap": _map_entry,
    "orset": _set_entry,
    "mvregister": _register_entry,
}
