"""The store of an add-wins set: element -> flat dots, its join and its codec.

An add-wins set is a DotMap from elements to DotSets under a causal context (Almeida,
Shoker, Baquero, "Delta State Replicated Data Types", 2018, section 7.2): an element is in
the set while it has a live dot. The store is a ``dict`` from an element's internal key
(``crdt._json.freeze``) to its dots as one flat tuple (``crdt/_flat.py``), so a big set is a
handful of objects for the garbage collector. Both :class:`~crdt.orset.ORSet` (a store and
its own context) and the set embedded in an ORMap (a store under the map's context) are
made of it, and share everything here: the join, the reverse index ``dot -> element``, and
the codec ``[[element, [[r, n], ...]], ...]``, elements sorted by their canonical JSON text,
dots sorted.
"""

from __future__ import annotations

from typing import Any, cast

from crdt._flat import Dots, dot_pairs, flat_dots, join_dots, unseen_dots
from crdt._json import (
    REPLICA_TEXTS,
    Key,
    decode_key,
    key_json_text,
    key_text,
    key_to_json,
    plain_strings,
    sorted_keys,
    str_text,
    thaw,
)
from crdt.causal_context import CausalContext, claim_dot
from crdt.dot import Dot, dot_from_json, dot_or_none
from crdt.errors import DecodeError

__all__: list[str] = []

SetStore = dict[Key, Dots]


def set_value(store: SetStore) -> frozenset[Any]:
    """The elements of ``store`` (arrays as tuples)."""
    return frozenset(thaw(k) for k in store)


def set_dots(store: SetStore) -> list[Dot]:
    """Every dot of ``store``."""
    return [d for dots in store.values() for d in dot_pairs(dots)]


def index_of(store: SetStore) -> dict[Dot, Key]:
    """The reverse index ``dot -> element`` of ``store``."""
    index: dict[Dot, Key] = {}
    for k, dots in store.items():
        if len(dots) == 2:
            index[dots] = k  # type: ignore[index]
        else:
            for d in dot_pairs(dots):
                index[d] = k
    return index


def discard_set(store: SetStore, ctx: CausalContext) -> SetStore:
    """A new store: ``store`` without the dots ``ctx`` holds."""
    vv, cloud = ctx.vv, ctx.cloud
    out: SetStore = {}
    for k, dots in store.items():
        keep = unseen_dots(dots, vv, cloud)
        if keep:
            out[k] = keep
    return out


def join_set_into(
    mine: SetStore, ctx: CausalContext, theirs: SetStore, octx: CausalContext
) -> bool:
    """Join ``theirs`` (its context ``octx``) into ``mine`` (its context ``ctx``), in place,
    element by element; True if ``mine`` changed. The contexts are left alone (the caller
    joins them after). One pass over both sides."""
    vv, cloud = ctx.vv, ctx.cloud
    ovv, ocloud = octx.vv, octx.cloud
    changed = False
    for key, d2 in theirs.items():
        d1 = mine.get(key)
        if d1 is None:
            if len(d2) == 2:  # one dot: unseen_dots, inlined (ORSet's full merge, crdt_bench)
                if d2[1] > vv.get(d2[0], 0) and d2 not in cloud:
                    mine[key] = d2
                    changed = True
                continue
            new = unseen_dots(d2, vv, cloud)
            if new:
                mine[key] = new
                changed = True
            continue
        new = join_dots(d1, d2, vv, cloud, ovv, ocloud)
        if new is not d1:
            changed = True
            if new:
                mine[key] = new
            else:
                del mine[key]
    if ovv or ocloud:
        # Ours only: drop the dots the other side has seen (it removed them).
        for key in [k for k in mine if k not in theirs]:
            dots = mine[key]
            if len(dots) == 2:  # one dot, inlined as above
                if dots[1] <= ovv.get(dots[0], 0) or dots in ocloud:
                    del mine[key]
                    changed = True
                continue
            keep = unseen_dots(dots, ovv, ocloud)
            if keep is not dots:
                changed = True
                if keep:
                    mine[key] = keep
                else:
                    del mine[key]
    return changed


# -- codec ----------------------------------------------------------------------------------
def _element_json(k: Key) -> Any:
    return k if type(k) is str or type(k) is int else key_to_json(k)


def _dots_list(dots: Dots) -> list[list[Any]]:
    return [list(dots)] if len(dots) == 2 else [list(d) for d in dot_pairs(dots)]


def encode_set_entries(store: SetStore) -> list[list[Any]]:
    """``[[element, [[r, n], ...]], ...]`` sorted by the elements' canonical text."""
    if len(store) == 1:  # a delta: nothing to sort
        for k, dots in store.items():
            return [[_element_json(k), _dots_list(dots)]]
    return [[_element_json(k), _dots_list(store[k])] for k in sorted_keys(list(store))]


def set_entries_json(store: SetStore) -> str:
    """The text of ``encode_set_entries(store)`` inside its brackets, from string fragments.

    No tuple, list or dict is made per element (only the one list of sorted keys and the one
    list of fragments), so nothing here gives the cyclic collector work per element.
    """
    rj = REPLICA_TEXTS
    if len(store) <= 1:  # a delta (or empty): nothing to sort
        for k, dots in store.items():
            text = str_text(k) if type(k) is str else key_json_text(k)
            if len(dots) == 2:
                return f"[{text},[[{rj[dots[0]]},{dots[1]}]]]"
            return f"[{text},[{_dots_json(dots)}]]"
        return ""
    how = plain_strings(store)
    out: list[str] = []
    append = out.append
    if how == 1:
        # '"' + k + '"' sorts as k + '"' does (see plain_strings); the sort key is the text
        # without its opening quote, so the text is one concatenation away.
        quoted = [k + '"' for k in cast("dict[str, Dots]", store)]
        quoted.sort()
        for q in quoted:
            dots = store[q[:-1]]
            if len(dots) == 2:
                append(f'["{q},[[{rj[dots[0]]},{dots[1]}]]]')
            else:
                append(f'["{q},[{_dots_json(dots)}]]')
        return ",".join(out)
    if how == 2:
        for k in sorted(cast("dict[str, Dots]", store)):
            dots = store[k]
            if len(dots) == 2:
                append(f'["{k}",[[{rj[dots[0]]},{dots[1]}]]]')
            else:
                append(f'["{k}",[{_dots_json(dots)}]]')
        return ",".join(out)
    for k in sorted(store, key=key_text):
        append(f"[{key_json_text(k)},[{_dots_json(store[k])}]]")
    return ",".join(out)


def _dots_json(dots: Dots) -> str:
    """The text of a flat ``Dots`` as ``[r, n], ...`` (inside the brackets of its list)."""
    rj = REPLICA_TEXTS
    if len(dots) == 2:
        return f"[{rj[dots[0]]},{dots[1]}]"
    return ",".join([f"[{rj[dots[i]]},{dots[i + 1]}]" for i in range(0, len(dots), 2)])


def decode_set_entries(
    entries: list[Any], ctx: CausalContext, path: str, seen: set[Dot]
) -> SetStore:
    """The store ``entries`` (at ``path``) encodes, every dot checked to be in ``ctx`` and not
    in ``seen`` (to which it is added); DecodeError naming the bad field."""
    out: SetStore = {}
    contains = ctx.contains
    for i, entry in enumerate(entries):
        # Error paths are formatted only when something is wrong (the hot loop of every
        # delta received).
        if type(entry) is not list or len(entry) != 2:
            raise DecodeError(f"{path}[{i}]", "expected [element, [dot, ...]]")
        el, raw = entry
        if type(el) is str and el.isascii():
            key: Key = el
        else:
            key = decode_key(el, f"{path}[{i}][0]")
        if key in out:
            raise DecodeError(f"{path}[{i}][0]", "duplicate element")
        if type(raw) is not list or not raw:
            raise DecodeError(f"{path}[{i}][1]", "expected a non-empty array of dots")
        dots: list[Dot] = []
        for j, x in enumerate(raw):
            dot = dot_or_none(x)
            if dot is None:
                dot = dot_from_json(x, f"{path}[{i}][1][{j}]")  # raises
            if dot in seen or not contains(dot):
                claim_dot(dot, ctx, seen, f"{path}[{i}][1][{j}]")  # raises
            seen.add(dot)
            dots.append(dot)
        if len(dots) > 1:
            dots.sort()
        out[key] = flat_dots(dots)
    return out
