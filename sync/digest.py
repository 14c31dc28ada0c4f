"""Digests: small fixed-size stand-ins for summaries, member lists and object states.

Two replicas compare digests before they exchange what the digests stand for, as Riak's
active anti-entropy and Cassandra's repair compare hashes before data, and Cassandra's
digest reads compare a hash of the replicas' answers before fetching them:

* :func:`part_digest` of one partition's *summary* (the canonical JSON text of its causal
  context, ``CausalContext.to_json``, which equal contexts spell byte for byte) and
  :func:`root_digest` of the partitions two homes share: equal roots mean equal summaries of
  every shared partition, so a round between converged peers costs one root each way at
  most, whatever the number of keys;
* :func:`members_digest` of the members a replica knows (itself included): equal digests
  mean the same membership, so the list itself travels only when they differ;
* :func:`state_digest` of an object's state (its canonical JSON text): equal digests mean
  equal states.

A digest is the first 8 bytes of BLAKE2b, in hex (16 characters): a collision between two
different summaries or states compared by one pair has probability about ``2**-64``.

For the *causal* kinds (``orset``, ``mvregister``, ``ormap``: a dot store under a causal
context) :func:`unseen_part` is the delta-state join decomposition a read repair needs:
given the causal context of another replica's state, the part of ours it has not seen.
Joining that part into the other's state gives exactly the join of both states (for any
pair of states; ``tests/sync/test_digest.py`` checks it as a property), and it costs what
differs, not the whole state. It keeps, of our dot store, the dots ``seen`` lacks, and, of
our context, every dot but those our store holds and ``seen`` has (a dot that we hold and
they have seen is left for them to keep, or to have removed; a dot we have seen and no
longer hold travels, so that they remove it too). It uses only the embedded-kind interface
of :mod:`crdt.embedded` (``store_of``, ``dots``, ``discard``, ``view``), never the kind's
name. The part is an optimisation, and where it would cost more than the whole state (a
context whose run of dots runs far past what its store holds, even ``2**62`` dots claimed by
a member of its own: the part's cloud would spell out that run) it is the whole state
instead, which joins to the same result. The other kinds (counters, LWW registers) have no
causal context: a replica behind gets the whole state, which is small for them.

A replica's context alone never says that its state is below ours: a remove makes no dot, so
a replica that removed an element has the context of one still holding it. The part it sends
says it, though (:func:`part_holds`): with its context, the part tells exactly which dots its
store holds, so a read learns whether a replier holds a dot the join removed.

Also here: :func:`ctx_model`, a causal context as its wire model, and :func:`is_digest`, what
the engine's inbound validation accepts as a digest.

Pure functions, beside :mod:`sync.ring`: the engine's components use them.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b
from typing import Any

from crdt import CRDT, CausalContext, Dot, ViewedKind, embedded_kind
from sync import messages as m

__all__ = [
    "DIGEST_BYTES",
    "causal_context",
    "ctx_model",
    "held_dots",
    "is_digest",
    "members_digest",
    "part_digest",
    "part_holds",
    "root_digest",
    "state_digest",
    "unseen_part",
]

DIGEST_BYTES = 8
# The dots the cloud of an unseen part may hold beyond those the whole state spells out: a set
# emptied of a few dozen elements still sends the part, as it always did; far beyond, the
# state is smaller than its part (a cloud dot costs about what a held dot does on the wire).
_CLOUD_MARGIN = 64
_EMPTY_CTX_JSON = CausalContext().to_json()


def ctx_model(ctx: CausalContext) -> m.Ctx:
    """``ctx`` as its wire model (sorted, as its canonical form)."""
    return m.Ctx.model_construct(
        vv={r: ctx.vv[r] for r in sorted(ctx.vv)}, cloud=[(d[0], d[1]) for d in sorted(ctx.cloud)]
    )


_HEX = frozenset("0123456789abcdef")


def is_digest(value: object) -> bool:
    """Whether ``value`` is a digest as this module spells them (lowercase hex)."""
    return isinstance(value, str) and len(value) == 2 * DIGEST_BYTES and _HEX.issuperset(value)


def _hex(data: bytes) -> str:
    return blake2b(data, digest_size=DIGEST_BYTES).hexdigest()


def part_digest(partition: int, ctx: CausalContext | None) -> str:
    """The digest of one partition's summary (``None``: never had one, as an empty one)."""
    text = _EMPTY_CTX_JSON if ctx is None else ctx.to_json()
    return _hex(f"{partition}:{text}".encode())


def root_digest(parts: Iterable[str]) -> str:
    """The digest of the part digests of the shared partitions, in partition order."""
    return _hex(",".join(parts).encode())


def members_digest(members: Iterable[str]) -> str:
    """The digest of a set of replica ids (any order)."""
    return _hex("\n".join(sorted(members)).encode("utf-8", "surrogatepass"))


def state_digest(state: CRDT | None) -> str | None:
    """The digest of an object's state (None: the object is not held)."""
    if state is None:
        return None
    return _hex(state.to_json().encode("utf-8", "surrogatepass"))


def _viewed(state: CRDT) -> Any:
    """The embedded kind whose views are ``state``'s type (a causal kind), else None."""
    try:
        impl = embedded_kind(state.kind)
    except ValueError:
        return None
    if not isinstance(impl, ViewedKind) or type(impl.view(None, CausalContext())) is not type(
        state
    ):
        return None
    return impl


def causal_context(state: CRDT) -> CausalContext | None:
    """``state``'s causal context if its kind is causal (None for counters and registers
    ordered by timestamp)."""
    if _viewed(state) is None:
        return None
    ctx: CausalContext = getattr(state, "context")  # noqa: B009  # the views' property
    return ctx


def held_dots(state: CRDT) -> set[Dot] | None:
    """The dots ``state``'s dot store holds (None if its kind is not causal)."""
    impl = _viewed(state)
    if impl is None:
        return None
    store = impl.store_of(state)
    return set(impl.dots(store)) if store else set()


def unseen_part(state: CRDT, seen: CausalContext) -> CRDT | None:
    """The part of ``state`` that a replica whose state has the causal context ``seen``
    lacks (see the module docstring), as a state of the same kind, or a copy of the whole
    ``state`` when that part would cost more; None when the kind is not causal (the whole
    state is then what it lacks)."""
    impl = _viewed(state)
    if impl is None:
        return None
    ctx: CausalContext = getattr(state, "context")  # noqa: B009
    store = impl.store_of(state)
    held = list(impl.dots(store)) if store else []
    held_seen = [d for d in held if seen.contains(d)]
    # The whole state spells out its held dots and its cloud: a part whose new cloud holds
    # more dots than those (plus a margin that leaves small states' parts as they are) would
    # be bigger than the state, and unbounded when a context claims a run of 2**62 dots.
    rest = _without(ctx, held_seen, len(held) + len(ctx.cloud) + _CLOUD_MARGIN)
    if rest is None:
        whole: CRDT = state.copy()  # a superset of the part: joined, it gives the same state
        return whole
    if held_seen:
        store = impl.discard(store, seen)
    part: CRDT = impl.view(store or None, rest)
    return part


def part_holds(ctx: CausalContext, part: CRDT) -> set[Dot]:
    """The dots held by the store of the state whose context is ``ctx`` and whose
    :func:`unseen_part` (for any ``seen``) is ``part``: those of the part's store, and those
    of ``ctx`` the part's context leaves out (held there and seen: see :func:`unseen_part`;
    none when the part is the whole state). Costs what the part costs."""
    held = held_dots(part) or set()
    rest: CausalContext | None = causal_context(part)
    if rest is not None:
        held.update(ctx.dots_not_in(rest))
    return held


def _without(ctx: CausalContext, dots: list[Dot], budget: int) -> CausalContext | None:
    """A new context: ``ctx`` less ``dots`` (each one of its dots); None if that takes more
    than ``budget`` new cloud dots (counted before any is built)."""
    if not dots:
        return ctx.copy()
    drop: dict[str, set[int]] = {}
    for r, c in dots:
        drop.setdefault(r, set()).add(c)
    # Dropping (r, low) from the run 1..vv[r] leaves the rest of the run, less what is
    # dropped, to spell out as cloud dots: count them first.
    runs: list[tuple[str, int, int, set[int]]] = []
    size = 0
    for r, counters in drop.items():
        n = ctx.vv.get(r, 0)
        low = min(counters)
        if low > n:
            continue  # only cloud dots of r are dropped
        runs.append((r, low, n, counters))
        size += n - low - sum(1 for c in counters if low < c <= n)
    if size > budget:
        return None
    vv = dict(ctx.vv)
    cloud: list[Dot] = []
    for r, low, n, counters in runs:
        if low > 1:
            vv[r] = low - 1
        else:
            del vv[r]
        cloud.extend(Dot(r, c) for c in range(low + 1, n + 1) if c not in counters)
    cloud.extend(d for d in ctx.cloud if d[1] not in drop.get(d[0], ()))
    return CausalContext(vv, cloud)
