"""Splitting a state into deltas that fit a byte budget: what every kind's ``split`` shares.

A state bigger than one message travels as *pieces*: states of the same kind, each at most
a byte budget when encoded (``to_json`` in UTF-8), whose join is the state. A piece is a
valid delta whatever the receiver holds and whatever else it received: every piece is below
the state in the lattice order, so joining any subset of the pieces, in any order, with
duplicates, into any replica state gives at most what joining the whole state gives, and
joining all of them gives exactly that.

For the causal kinds (a dot store under a causal context: MVRegister, ORSet, ORMap) the
context is the delicate part. A piece ``(entries E, context K)`` removes, at the receiver,
every entry whose dot ``K`` holds and ``E`` lacks; with ``K`` the whole context, a piece
would remove what the other pieces carry. So (Almeida, Shoker, Baquero 2018, section 5: a
delta is any ``(store, context)`` below the state):

* a piece of entries carries the context of exactly their dots (the state restricted to a
  set of its dots, under that set, is below the state: it removes nothing the state holds);
* the dots the state's context covers but no entry holds (removed elements, overwritten
  values) go in pieces of their own, with no entries: first, per replica, the counters below
  its lowest live dot, which the compact form writes as one number (``vv``), then the rest
  one by one (``cloud``), in pieces cut to the budget.

Those removed dots that are not below every live dot of their replica are written out one
by one, so a large state with many such removals costs, split, about ``len(replica id) + 8``
bytes per removed dot beyond its own encoding. A state that fits the budget is one piece, a
copy of itself.

Sizes are computed from upper bounds (a context's dots counted as a cloud, the longest
form), so a piece is never bigger than estimated. ``crdt/_split_text.py`` cuts a state's
stored JSON text by these rules without decoding it whole (what a state transfer sends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from crdt._json import REPLICA_TEXTS
from crdt.causal_context import CausalContext, context_of
from crdt.dot import Dot

__all__: list[str] = []

T = TypeVar("T")

#: Bytes of a causal state's encoding beyond its entries and its context's dots, at most:
#: ``{"type":"ormap","v":1,"entries":[],"ctx":{"vv":{},"cloud":[]}}`` and a little slack.
CAUSAL_OVERHEAD = 80


def utf8_len(text: str) -> int:
    """The UTF-8 length of ``text`` (its length when ASCII, without encoding it)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def dot_bytes(dot: Dot) -> int:
    """At most how many bytes ``dot`` takes in a context's encoding: ``["r",n],``."""
    return utf8_len(REPLICA_TEXTS[dot[0]]) + len(str(dot[1])) + 4


def dots_bytes(dots: Iterable[Dot]) -> int:
    """:func:`dot_bytes` of every dot of ``dots``."""
    return sum(dot_bytes(d) for d in dots)


def pack(units: Iterable[tuple[T, int]], budget: int) -> list[list[T]]:
    """``units`` (each with its size in bytes, a separator included) in order, cut into
    groups of at most ``budget`` bytes; a unit bigger than that is a group of its own."""
    return list(packed(units, budget))


def packed(units: Iterable[tuple[T, int]], budget: int) -> Iterator[list[T]]:
    """:func:`pack`, one group at a time (only the group being filled is held)."""
    cur: list[T] = []
    size = 0
    for unit, n in units:
        if cur and size + n > budget:
            yield cur
            cur, size = [], 0
        cur.append(unit)
        size += n
    if cur:
        yield cur


def removed_contexts(ctx: CausalContext, live: Iterable[Dot], budget: int) -> list[CausalContext]:
    """The dots of ``ctx`` that are not in ``live`` (the state's entries'), as contexts of at
    most ``budget`` bytes of dots each: first one holding, per replica, every counter below
    its lowest live dot (compact: one number per replica), then the others one by one."""
    lowest: dict[str, int] = {}
    live_set: set[Dot] = set()
    for d in live:
        live_set.add(d)
        r, c = d
        if c < lowest.get(r, c + 1):
            lowest[r] = c
    return list(iter_removed_contexts(ctx, lowest, live_set.__contains__, budget))


def iter_removed_contexts(
    ctx: CausalContext, lowest: dict[str, int], is_live: Callable[[Dot], bool], budget: int
) -> Iterator[CausalContext]:
    """:func:`removed_contexts` one context at a time, the live dots given by ``is_live`` and
    ``lowest`` (per replica, its lowest live counter), so that a caller streaming a state's
    entries need not hold a set of them (``crdt/_split_text.py``)."""
    prefix: dict[str, int] = {}
    for r, n in ctx.vv.items():
        below = min(n, lowest.get(r, n + 1) - 1)
        if below > 0:
            prefix[r] = below
    if prefix:
        head: CausalContext = CausalContext.__new__(CausalContext)
        head.vv = prefix
        head.cloud = set()
        yield head
    for group in packed(((d, dot_bytes(d)) for d in _others(ctx, prefix, is_live)), budget):
        yield context_of(group)


def _others(
    ctx: CausalContext, prefix: dict[str, int], is_live: Callable[[Dot], bool]
) -> Iterator[Dot]:
    """The dots of ``ctx`` above ``prefix`` that are not live, in (replica, counter) order."""
    for r in sorted(ctx.vv):
        for c in range(prefix.get(r, 0) + 1, ctx.vv[r] + 1):
            d: Dot = (r, c)  # type: ignore[assignment]
            if not is_live(d):
                yield d
    for d in sorted(ctx.cloud):
        if not is_live(d):
            yield d


def fits(text: str, budget: int) -> bool:
    """Whether the encoding ``text`` is at most ``budget`` bytes."""
    return len(text) <= budget and (text.isascii() or utf8_len(text) <= budget)


def check_budget(max_bytes: Any) -> int:
    """``max_bytes`` if it is an int >= 1; TypeError or ValueError otherwise."""
    if type(max_bytes) is not int:
        raise TypeError(f"max_bytes must be an int, got {type(max_bytes).__name__}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    return max_bytes
