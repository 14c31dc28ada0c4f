"""An ORMap's store as JSON and in pieces: the encoding of its entries, each body through its
kind (:mod:`crdt.embedded`), their decoding, and the units a split packs into pieces.

Apart from :mod:`crdt.ormap` so that the map module holds the map (its state, mutators and
join) and :mod:`crdt._split_text`, which cuts a stored map's text into pieces, reads the same
functions without reaching into the map's privates.
"""

from __future__ import annotations

from typing import Any

from crdt._json import (
    Key,
    decode_key,
    first_item,
    key_json_text,
    key_to_json,
    plain_strings,
    sorted_pairs,
    str_text,
)
from crdt._split import dots_bytes, utf8_len
from crdt.causal_context import CausalContext
from crdt.dot import Dot
from crdt.embedded import REGISTRY
from crdt.errors import DecodeError

__all__ = [
    "EntryKey",
    "MapStore",
    "Unit",
    "decode_map",
    "encode_map",
    "entry_json",
    "map_json",
    "map_json_parts",
    "map_units",
    "pack_map",
]

EntryKey = tuple[Key, str]
MapStore = dict[EntryKey, Any]

# The registry's table of kinds (crdt/embedded.py updates it in place as kinds register).
_KINDS = REGISTRY.by_kind


def encode_map(store: MapStore) -> list[Any]:
    kinds = _KINDS
    return [
        [k if type(k) is str or type(k) is int else key_to_json(k), kind, kinds[kind].encode(s)]
        for (k, kind), s in (
            store.items() if len(store) <= 1 else [(ek, store[ek]) for ek in sorted_pairs(store)]
        )
    ]


#: The entries :func:`map_json_parts` writes into one part: a part of a map of registers
#: weighs some 100 KB, so the fragments of one part are all that is held beside the parts.
PART_ENTRIES = 1024


def map_json(store: MapStore) -> str:
    """The text of ``encode_map(store)`` inside its brackets, from string fragments."""
    if len(store) <= 1:  # a delta (or empty): nothing to sort
        return "".join([entry_json(ek, s) for ek, s in store.items()])
    parts = map_json_parts(store)
    return parts[0] if len(parts) == 1 else "".join(parts)


def map_json_parts(store: MapStore) -> list[str]:
    """``map_json(store)`` as parts whose concatenation is it, each the text of at most
    :data:`PART_ENTRIES` entries (the first without its leading comma).

    Only the list of sorted entry keys (tuples the map holds already), the parts and the
    fragments of one part are made: no tuple, list or dict per entry, and the fragments of
    all the entries (a string object each, 50 bytes of header apiece) are never held at
    once. Joined once with what surrounds them (``ORMap.to_json``), a big map's text takes
    its parts and itself, about twice its size, at the peak (``tests/crdt/test_map_memory.py``).
    """
    kinds = _KINDS
    # Keys all str whose text is '"' + k + '"' (see plain_strings): written as they are.
    quoted = plain_strings(map(first_item, store)) != 0
    parts: list[str] = []
    out: list[str] = []
    append = out.append
    for ek in sorted_pairs(store):
        k, kind = ek
        text = f'"{k}"' if quoted else key_json_text(k)
        append(f'[{text},"{kind}",{kinds[kind].to_json(store[ek])}]')
        if len(out) == PART_ENTRIES:
            parts.append(("," if parts else "") + ",".join(out))
            out.clear()
    if out or not parts:
        parts.append(("," if parts else "") + ",".join(out))
    return parts


def entry_json(ek: EntryKey, store: Any) -> str:
    """The text of one entry of ``map_json``: ``[key, "kind", body]``."""
    k, kind = ek
    text = str_text(k) if type(k) is str else key_json_text(k)
    return f'[{text},"{kind}",{_KINDS[kind].to_json(store)}]'


# One unit of a split map: an entry (or a part of one), its dots, its weight in bytes.
Unit = tuple[EntryKey, Any, list[Dot], int]


def map_units(store: MapStore, budget: int, texts: dict[EntryKey, int] | None = None) -> list[Unit]:
    """The entries of ``store`` as units of a split, by their lowest dot (so that a piece's
    context is a run of dots where it can); an entry heavier than ``budget`` cut by its
    kind's ``split``. ``texts``: each entry's encoded bytes (and comma), if known."""
    kinds = _KINDS
    units: list[tuple[Dot, Unit]] = []
    for ek, st in store.items():
        impl = kinds[ek[1]]
        dots = impl.dots(st)
        text = texts[ek] if texts is not None else utf8_len(entry_json(ek, st)) + 1
        weight = text + dots_bytes(dots)
        if weight > budget:
            head = text - utf8_len(impl.to_json(st))  # [key, "kind", ] and the comma
            subs = impl.split(st, max(1, budget - head))
            if len(subs) > 1:
                for sub in subs:
                    sd = impl.dots(sub)
                    w = head + utf8_len(impl.to_json(sub)) + dots_bytes(sd)
                    units.append((min(sd), (ek, sub, sd, w)))
                continue
        units.append((min(dots), (ek, st, dots, weight)))
    units.sort(key=_first)
    return [u for _, u in units]


def _first(item: tuple[Dot, Unit]) -> Dot:
    return item[0]


def pack_map(units: list[Unit], budget: int) -> list[tuple[MapStore, list[Dot]]]:
    """``units`` in order cut into stores of at most ``budget`` bytes, with their dots; two
    parts of one entry never share a store."""
    out: list[tuple[MapStore, list[Dot]]] = []
    cur: MapStore = {}
    dots: list[Dot] = []
    size = 0
    for ek, st, sd, w in units:
        if cur and (size + w > budget or ek in cur):
            out.append((cur, dots))
            cur, dots, size = {}, [], 0
        cur[ek] = st
        dots.extend(sd)
        size += w
    if cur:
        out.append((cur, dots))
    return out


def decode_map(entries: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> MapStore:
    # Error paths are formatted only when something is wrong (the hot loop of every delta
    # received), but a body's (each kind's decoder formats its own paths from it).
    kinds = _KINDS
    got: MapStore = {}
    for i, entry in enumerate(entries):
        if type(entry) is not list or len(entry) != 3:
            raise DecodeError(f"{path}[{i}]", "expected [key, kind, body]")
        raw_key, kind, body = entry
        if type(raw_key) is str and raw_key.isascii():
            k: Key = raw_key
        else:
            k = decode_key(raw_key, f"{path}[{i}][0]", "key")
        impl = kinds.get(kind) if type(kind) is str else None
        if impl is None:
            raise DecodeError(f"{path}[{i}][1]", f"unknown kind {kind!r}")
        if (k, kind) in got:
            raise DecodeError(f"{path}[{i}]", "duplicate (key, kind)")
        if type(body) is not list or not body:
            raise DecodeError(f"{path}[{i}][2]", "expected a non-empty array")
        got[(k, kind)] = impl.decode(body, ctx, f"{path}[{i}][2]", seen)
    return got
