"""Causal contexts: the set of dots a replica has seen, stored compactly.

A causal context is a set of dots kept as a version vector ``vv`` (every dot ``(r, n)`` with
``n <= vv[r]``) plus a ``cloud`` of dots beyond it (gaps: dots seen out of order). The
representation is kept *compact* at all times: no cloud dot is covered by ``vv`` and no cloud
dot is ``(r, vv[r] + 1)`` (such dots are folded into ``vv``), so equal sets of dots have equal
representations and byte-equal encodings. Reference: Almeida, Shoker, Baquero, "Delta State
Replicated Data Types" (2018), section 5 ("causal context", compaction).

Besides the causal CRDTs, the replication engine uses a context as a *log summary*: the set
of log dots a peer has applied for a partition (see docs/architecture.md section 3).

Encoding: ``{"vv": {replica: n}, "cloud": [[replica, n], ...]}`` with sorted keys and a cloud
sorted by ``(replica, counter)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from crdt._codec import FORMAT_VERSION, check_header, get_list
from crdt._json import REPLICA_TEXTS
from crdt.dot import MAX_INT, Dot, check_counts, check_replica, dot_from_json, next_counter
from crdt.errors import DecodeError, shown

__all__ = ["CausalContext"]

T = TypeVar("T")

# A merge whose other context holds at most this many dots, or at most this many per entry
# of the receiving state, finds the entries that context covers through the state's reverse
# index (ORSet, ORMap); anything bigger takes one full pass over both sides.
_SMALL_CONTEXT_RATIO = 0.25
_SMALL_CONTEXT_MIN = 8


def context_of(dots: Iterable[Dot]) -> CausalContext:
    """A fresh compact context holding exactly ``dots`` (unchecked: the dots are ours)."""
    ctx: CausalContext = CausalContext.__new__(CausalContext)
    ctx.vv = {}
    ctx.cloud = set()
    for d in dots:
        ctx.add(d)
    return ctx


def context_of_dot(dot: Dot) -> CausalContext:
    """``context_of((dot,))`` without the loop: the context of a one-dot delta."""
    ctx: CausalContext = CausalContext.__new__(CausalContext)
    if dot[1] == 1:
        ctx.vv = {dot[0]: 1}
        ctx.cloud = set()
    else:
        ctx.vv = {}
        ctx.cloud = {dot}
    return ctx


class CausalContext:
    """A compact set of dots.

    >>> c = CausalContext()
    >>> d = c.next_dot("A"); c.add(d); d
    ('A', 1)
    >>> c.add(Dot("A", 3))          # a gap: (A, 2) not seen yet
    >>> c.to_dict()
    {'vv': {'A': 1}, 'cloud': [['A', 3]]}
    >>> c.contains(Dot("A", 2)), c.next_dot("A")
    (False, ('A', 4))
    >>> c.add(Dot("A", 2)); c.to_dict()   # the gap is filled: compacted into the vector
    {'vv': {'A': 3}, 'cloud': []}
    """

    __slots__ = ("cloud", "vv")
    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self, vv: dict[str, int] | None = None, cloud: Iterable[Dot] | None = None
    ) -> None:
        self.vv: dict[str, int] = check_counts(vv)
        self.cloud: set[Dot] = set()
        if cloud:
            for d in cloud:
                self.cloud.add(Dot(check_replica(d[0]), _positive(d[1])))
            self.compact()

    # -- reading ---------------------------------------------------------------------------
    def contains(self, dot: Dot) -> bool:
        """True iff ``dot`` has been seen. O(1)."""
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def __contains__(self, dot: object) -> bool:
        return isinstance(dot, tuple) and len(dot) == 2 and self.contains(dot)  # type: ignore[arg-type]

    def max_counter(self, replica: str) -> int:
        """The largest counter of ``replica`` seen (0 if none)."""
        n = self.vv.get(replica, 0)
        for r, c in self.cloud:
            if r == replica and c > n:
                n = c
        return n

    def next_dot(self, replica: str) -> Dot:
        """The dot for ``replica``'s next event (not added: the mutator adds it);
        ``ValueError`` if its counter is at 2**63-1 already."""
        if type(replica) is not str or not replica:
            check_replica(replica)  # raises
        n = self.max_counter(replica) if self.cloud else self.vv.get(replica, 0)
        return (replica, next_counter(replica, n))  # type: ignore[return-value]

    def size(self) -> int:
        """The number of dots in the context."""
        return sum(self.vv.values()) + len(self.cloud)

    def dots(self) -> Iterator[Dot]:
        """Every dot of the context (``size()`` of them: use on small contexts)."""
        for r, n in self.vv.items():
            for c in range(1, n + 1):
                yield Dot(r, c)
        yield from self.cloud

    def dots_not_in(self, other: CausalContext) -> Iterator[Dot]:
        """The dots of ``self`` that ``other`` lacks, in (replica, counter) order per replica.

        Costs O(number of replicas + what is yielded + cloud sizes), not O(size()).
        """
        ovv = other.vv
        ocl = other.cloud
        for r in sorted(self.vv):
            for c in range(ovv.get(r, 0) + 1, self.vv[r] + 1):
                if (r, c) not in ocl:
                    yield Dot(r, c)
        for d in sorted(self.cloud):
            if not other.contains(d):
                yield d

    def meet(self, other: CausalContext) -> CausalContext:
        """A new context of the dots both ``self`` and ``other`` hold (the intersection).

        Costs O(the smaller vector + both clouds), whatever the counts.

        >>> a = CausalContext({"A": 5, "B": 2}, [Dot("C", 3)])
        >>> b = CausalContext({"A": 3, "C": 4}, [Dot("B", 7)])
        >>> a.meet(b).to_dict()
        {'vv': {'A': 3}, 'cloud': [['C', 3]]}
        """
        vv, ovv = self.vv, other.vv
        small, big = (vv, ovv) if len(vv) <= len(ovv) else (ovv, vv)
        out: CausalContext = CausalContext.__new__(CausalContext)
        out.vv = {r: min(n, big[r]) for r, n in small.items() if r in big}
        out.cloud = {d for d in self.cloud if other.contains(d)}
        out.cloud.update(d for d in other.cloud if self.contains(d))
        out.compact()
        return out

    def is_bottom(self) -> bool:
        return not self.vv and not self.cloud

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CausalContext):
            return NotImplemented
        return self.vv == other.vv and self.cloud == other.cloud

    def __repr__(self) -> str:
        return f"CausalContext({self.to_dict()!r})"

    # -- mutation --------------------------------------------------------------------------
    def add(self, dot: Dot) -> None:
        """Add one dot, keeping the representation compact."""
        r, c = dot
        vv = self.vv
        n = vv.get(r, 0)
        if c <= n:
            return
        if c == n + 1:
            cloud = self.cloud
            if cloud:
                while (r, c + 1) in cloud:
                    c += 1
                    cloud.discard((r, c))
            vv[r] = c
        else:
            self.cloud.add(dot)

    def merge(self, other: CausalContext) -> None:
        """Union with ``other``, in place; compacts only the replicas ``other`` touched."""
        if other is self:
            return
        vv = self.vv
        touched: set[str] = set()
        for r, n in other.vv.items():
            if n > vv.get(r, 0):
                vv[r] = n
                touched.add(r)
        cloud = self.cloud
        ocloud = other.cloud
        if not cloud and len(ocloud) > 1:
            # Our cloud is empty (a compact state's usual form), theirs holds several dots (a
            # delta group's): no dot of ours can go stale, and the dots we lack, when they are
            # one replica's run right after our count of it, fold into the vector at once.
            fresh = [d for d in ocloud if d[1] > vv.get(d[0], 0)]
            replicas = {d[0] for d in fresh}
            if len(replicas) == 1:
                (r,) = replicas
                top = max(fresh)[1]
                if top - vv.get(r, 0) == len(fresh):  # distinct counters: the whole run
                    vv[r] = top
                    return
            cloud.update(fresh)
            self._fold(replicas)
            return
        for d in ocloud:
            r, c = d
            if c > vv.get(r, 0):
                cloud.add(d)
                touched.add(r)
        if touched and cloud:
            self._compact(touched)

    def compact(self) -> None:
        """Restore the compact form over every replica (after direct edits of ``cloud``)."""
        if self.cloud:
            self._compact({d[0] for d in self.cloud})

    def _compact(self, replicas: set[str]) -> None:
        vv = self.vv
        cloud = self.cloud
        stale = [d for d in cloud if d[0] in replicas and d[1] <= vv.get(d[0], 0)]
        for d in stale:
            cloud.discard(d)
        self._fold(replicas)

    def _fold(self, replicas: set[str]) -> None:
        """Fold the cloud dots that continue ``replicas``' counts into the vector."""
        vv = self.vv
        cloud = self.cloud
        for r in replicas:
            c = vv.get(r, 0)
            while (r, c + 1) in cloud:
                c += 1
                cloud.discard((r, c))
            if c:
                vv[r] = c

    def copy(self) -> CausalContext:
        c: CausalContext = CausalContext.__new__(CausalContext)
        c.vv = self.vv.copy()
        c.cloud = self.cloud.copy()
        return c

    # -- codec -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"vv": {replica: n}, "cloud": [[replica, n], ...]}``, sorted."""
        vv = self.vv
        cloud = self.cloud
        if len(cloud) > 1:
            dots = [[r, c] for r, c in sorted(cloud)]
        else:  # a delta's: nothing to sort (a loop of at most one turn)
            dots = []
            for r, c in cloud:
                dots.append([r, c])
        return {"vv": dict(sorted(vv.items())) if len(vv) > 1 else vv.copy(), "cloud": dots}

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))``, written
        without the dict."""
        rj = REPLICA_TEXTS
        vv = self.vv
        cloud = self.cloud
        if not cloud and len(vv) == 1:  # a delta's context, or a one-replica state's
            for r, n in vv.items():
                return f'{{"vv":{{{rj[r]}:{n}}},"cloud":[]}}'
        if not vv and len(cloud) == 1:  # a delta's context
            for r, c in cloud:
                return f'{{"vv":{{}},"cloud":[[{rj[r]},{c}]]}}'
        counts = ",".join([f"{rj[r]}:{vv[r]}" for r in sorted(vv)]) if vv else ""
        if not cloud:
            return f'{{"vv":{{{counts}}},"cloud":[]}}'
        dots = ",".join([f"[{rj[r]},{c}]" for r, c in sorted(cloud)])
        return f'{{"vv":{{{counts}}},"cloud":[{dots}]}}'

    @classmethod
    def from_dict(cls, d: object, path: str = "ctx") -> CausalContext:
        """Decode; DecodeError naming the bad field (the result is compacted)."""
        ctx = small_context(d)
        return ctx if ctx is not None else cls._from_dict_slowly(d, path)

    @classmethod
    def _from_dict_slowly(cls, d: object, path: str) -> CausalContext:
        """``from_dict`` checking field by field, for the error naming the bad one."""
        if type(d) is not dict:
            raise DecodeError(path, f"expected an object, got {type(d).__name__}")
        for key in d:
            if key not in ("vv", "cloud"):
                raise DecodeError(f"{path}.{key}", "unknown field")
        if "vv" not in d:
            raise DecodeError(f"{path}.vv", "missing")
        if "cloud" not in d:
            raise DecodeError(f"{path}.cloud", "missing")
        vv = d["vv"]
        if type(vv) is not dict:
            raise DecodeError(f"{path}.vv", f"expected an object, got {type(vv).__name__}")
        ctx = cls()
        for r, n in vv.items():
            if type(r) is not str or not r:
                raise DecodeError(
                    f"{path}.vv", f"replica id must be a non-empty string, got {shown(r)}"
                )
            if type(n) is not int or not 1 <= n <= MAX_INT:
                raise DecodeError(
                    f"{path}.vv.{r}", f"count must be an integer in 1..2**63-1, got {shown(n)}"
                )
            ctx.vv[r] = n
        cloud = d["cloud"]
        if type(cloud) is not list:
            raise DecodeError(f"{path}.cloud", f"expected an array, got {type(cloud).__name__}")
        if not cloud:
            return ctx
        dots = ctx.cloud
        vv = ctx.vv
        loose = False  # a dot the compact form would fold into vv (or drop)
        dot: Dot
        for i, x in enumerate(cloud):
            if (
                type(x) is list
                and len(x) == 2
                and type(r := x[0]) is str
                and r
                and type(c := x[1]) is int
                and 1 < c <= MAX_INT
            ):
                dot = (r, c)  # type: ignore[assignment]
            else:  # the checked path, for its error message (or a counter of 1)
                dot = dot_from_json(x, f"{path}.cloud[{i}]")
                r, c = dot
            if c <= vv.get(r, 0) + 1:
                loose = True
            dots.add(dot)
        if loose:
            ctx.compact()
        return ctx


def _dot_of(x: object) -> Dot | None:
    """The dot of a well-formed ``[r, c]`` (a non-empty replica id, a counter in 1..2**63-1),
    or None for anything else."""
    if type(x) is not list or len(x) != 2:
        return None
    r, c = x
    if type(r) is not str or not r or type(c) is not int or not 1 <= c <= MAX_INT:
        return None
    return (r, c)  # type: ignore[return-value]


def small_context(d: object) -> CausalContext | None:
    """The context a well-formed ``{"vv": {...}, "cloud": [...]}`` with at most one cloud dot
    encodes (a delta's), or None for anything else (then decode it with ``from_dict``)."""
    if type(d) is not dict or len(d) != 2:
        return None
    vv = d.get("vv")
    cloud = d.get("cloud")
    if type(vv) is not dict or type(cloud) is not list or len(cloud) > 1:
        return None
    for r, n in vv.items():
        if type(r) is not str or not r or type(n) is not int or not 1 <= n <= MAX_INT:
            return None
    ctx: CausalContext = CausalContext.__new__(CausalContext)
    ctx.vv = vv.copy()
    ctx.cloud = set()
    if cloud:
        dot = _dot_of(cloud[0])
        if dot is None:
            return None
        r, c = dot
        if c <= vv.get(r, 0) + 1:
            ctx.add(dot)  # covered, or the next one: compacts into vv
        else:
            ctx.cloud.add(dot)
    return ctx


def _positive(n: object) -> int:
    if type(n) is not int or not 1 <= n <= MAX_INT:
        raise ValueError(f"a dot counter must be an int in 1..2**63-1, got {shown(n)}")
    return n


# -- What the causal containers (ORSet, ORMap) share --------------------------------------------
def is_small(ctx: CausalContext, entries: int) -> bool:
    """Is ``ctx`` small beside a state of ``entries`` entries: is merging it through the
    state's reverse index (O(size of ctx)) cheaper than a full pass?"""
    vv = ctx.vv
    size = len(ctx.cloud) + (sum(vv.values()) if vv else 0)  # ctx.size(), inlined
    return size <= _SMALL_CONTEXT_MIN or size <= entries * _SMALL_CONTEXT_RATIO


def sole_dot(ctx: CausalContext) -> Dot | None:
    """The dot of ``ctx`` if it holds exactly one (the context of a one-dot delta), else None.

    A causal state's store holds only dots of its context, so a non-empty store under such a
    context holds exactly that dot.
    """
    cloud = ctx.cloud
    if cloud:
        if len(cloud) == 1 and not ctx.vv:
            for d in cloud:
                return d
        return None
    vv = ctx.vv
    if len(vv) == 1:
        for r, n in vv.items():
            if n == 1:
                return (r, 1)  # type: ignore[return-value]
    return None


def indexed_dots(index: dict[Dot, T], ctx: CausalContext) -> Iterator[tuple[Dot, T]]:
    """``(dot, index[dot])`` for each dot of ``ctx`` that the reverse index ``index`` holds:
    the entries of a state that a small context covers, in O(size of ctx). The caller may
    delete from ``index`` meanwhile (the loop walks ``ctx``)."""
    get = index.get
    for d in ctx.cloud:
        owner = get(d)
        if owner is not None:
            yield d, owner
    for r, n in ctx.vv.items():
        for c in range(1, n + 1):
            owner = get((r, c))  # type: ignore[call-overload]
            if owner is not None:
                yield (r, c), owner  # type: ignore[misc]


def one_dot_delta(d: object, kind: str, width: int) -> tuple[list[Any], Dot] | None:
    """``(entry, dot)`` if ``d`` is, exactly, ``{"type": kind, "v": 1, "entries": [entry],
    "ctx": ctx}`` with ``ctx`` the context of the one dot ``(r, c)``: ``{"vv": {}, "cloud":
    [[r, c]]}``, or ``{"vv": {r: 1}, "cloud": []}`` (the encoding of the delta of a write of
    one new dot, as its origin makes it) and ``entry`` an array of ``width`` items; None for
    anything else, valid or not. What the items hold is the caller's to check."""
    if type(d) is not dict or len(d) != 4 or d.get("type") != kind:
        return None
    v = d.get("v")
    entries = d.get("entries")
    ctx = d.get("ctx")
    if (
        type(v) is not int
        or v != FORMAT_VERSION
        or type(entries) is not list
        or len(entries) != 1
        or type(entries[0]) is not list
        or len(entries[0]) != width
        or type(ctx) is not dict
        or len(ctx) != 2
    ):
        return None
    vv = ctx.get("vv")
    cloud = ctx.get("cloud")
    if type(vv) is not dict or type(cloud) is not list:
        return None
    if cloud:
        if vv or len(cloud) != 1:
            return None
        dot = _dot_of(cloud[0])
        if dot is None:
            return None
        r, c = dot
    else:
        if len(vv) != 1:
            return None
        ((r, c),) = vv.items()
        if type(r) is not str or not r or type(c) is not int or c != 1:
            return None
    return entries[0], (r, c)  # type: ignore[return-value]


def decode_causal(d: object, kind: str, fields: frozenset[str]) -> tuple[list[Any], CausalContext]:
    """The ``entries`` array and the context of ``{"type": kind, "v": 1, "entries": [...],
    "ctx": {...}}`` (the encoding of MVRegister, ORSet, ORMap); DecodeError naming the bad
    field. ``fields`` are the body fields allowed."""
    body = check_header(d, kind, fields)
    entries = body.get("entries")
    if type(entries) is not list:
        entries = get_list(body, "entries", "entries")  # raises, naming what is wrong
    raw = body.get("ctx")
    if raw is None and "ctx" not in body:
        raise DecodeError("ctx", "missing")
    # CausalContext.from_dict, inlined (a delta's context: one call less per decode)
    ctx = small_context(raw)
    if ctx is None:
        ctx = CausalContext._from_dict_slowly(raw, "ctx")
    return entries, ctx


def claim_dot(dot: Dot, ctx: CausalContext, seen: set[Dot], path: str) -> None:
    """For a decoder: ``dot`` must be in ``ctx`` and not in ``seen`` (the dots decoded so far,
    to which it is added); DecodeError at ``path`` otherwise."""
    if dot in seen:
        raise DecodeError(path, "dot used twice")
    if not ctx.contains(dot):
        raise DecodeError(path, "dot not covered by ctx")
    seen.add(dot)
