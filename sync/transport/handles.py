"""Typed handles: one key of one CRDT type, with the CRDT's mutators minus the replica.

``peer.orset("cart")`` gives an :class:`ORSetHandle`; ``gcounter``, ``pncounter``, ``lww``,
``mvregister`` and ``ormap`` give the others. Every mutator takes ``w=``, ``timeout=`` and
``strict=`` and returns a future of the write's :class:`~sync.effects.WriteResult` (a missed
quorum raises :class:`~sync.errors.QuorumNotReached` from it: durable here, replicates
later); reads take ``r=``, ``timeout=`` and ``strict=``. A key holds one type: a handle of
another type raises ``TypeError`` when it is made (if this replica knows the key) or at the
write. A key that two peers wrote offline as two types holds both (a *kind clash*): a
handle of either type reads its own object, and its writes raise
:class:`~sync.errors.KindClash` naming both types until one object is deleted. A handle
reaches its peer through :class:`HandleOwner` only (the replica id and the node), so this
module does not depend on :mod:`sync.transport.peer`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from functools import partial
from operator import methodcaller
from typing import Any, Protocol

import crdt
from crdt import CRDT
from sync.effects import WriteResult
from sync.errors import named_kinds

from .node import Node

__all__ = [
    "GCounterHandle",
    "HandleOwner",
    "LWWHandle",
    "MVRegisterHandle",
    "ORMapHandle",
    "ORSetHandle",
    "PNCounterHandle",
]


class HandleOwner(Protocol):
    """What a handle needs of its peer: the replica id its mutators act as, and the node
    that runs its reads and writes (:class:`~sync.transport.peer.Peer` is one)."""

    @property
    def replica_id(self) -> str: ...

    @property
    def node(self) -> Node: ...


class _Handle:
    """A key of one CRDT type. Mutators queue their write when called and return a future
    of its :class:`WriteResult` (``await cart.add("milk")``): the write is on its way even
    if the future is never awaited, and a burst of writes costs a future each, not a task.
    Bad input (a wrong type, a non-JSON value) raises from the ``await``; the key is unchanged.
    Await the future (or ``asyncio.gather`` many) to see its outcome: an error nobody awaits
    (``QuorumNotReached``, bad input) only shows as asyncio's "exception was never
    retrieved" log line once the future is garbage-collected.
    """

    kind: str = ""

    def __init__(self, peer: HandleOwner, key: str) -> None:
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        if not key:
            raise ValueError("key must not be empty")
        self.peer = peer
        self.key = key
        self._check_kind()

    def _check_kind(self) -> None:
        held = self.peer.node.replica.kinds_of(self.key)  # O(1): no copy of the state
        if held and self.kind not in held:
            raise TypeError(
                f"key {self.key!r} holds {named_kinds(held)}, not {named_kinds([self.kind])}"
            )

    @property
    def _rid(self) -> str:
        return self.peer.replica_id

    def _write(
        self,
        fn: Callable[[Any], Any],
        w: Any,
        timeout: float | None,
        strict: bool | None,
    ) -> asyncio.Future[WriteResult]:
        # The engine refuses a key of another kind (TypeError), or of this kind and another
        # (KindClash), without copying the state.
        # The write is queued now and its future returned as it is: no coroutine or task
        # per write (see the class docstring).
        return self.peer.node.write(self.key, self.kind, fn, w=w, strict=strict, timeout=timeout)

    async def state(
        self, *, r: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> CRDT | None:
        """The joined CRDT state of the key's object of this type (None if no replica asked
        holds it)."""
        node = self.peer.node
        done = await node.read(self.key, kind=self.kind, r=r, strict=strict, timeout=timeout)
        if done.state is not None and done.state.kind != self.kind:
            raise TypeError(
                f"key {self.key!r} holds {named_kinds([done.state.kind])}, "
                f"not {named_kinds([self.kind])}"
            )
        return done.state

    async def value(
        self, *, r: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> Any:
        """The key's value, joined from ``r`` replicas (read repair on the way)."""
        state = await self.state(r=r, timeout=timeout, strict=strict)
        if state is None:
            return crdt.new(self.kind).value
        return state.value


class GCounterHandle(_Handle):
    """A grow-only counter: ``increment(n=1)``; ``value()`` is an int."""

    kind = "gcounter"

    def increment(
        self, n: int = 1, *, w: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> asyncio.Future[WriteResult]:
        rid = self._rid
        return self._write(methodcaller("increment", rid, n), w, timeout, strict)


class PNCounterHandle(GCounterHandle):
    """A counter: ``increment(n=1)``, ``decrement(n=1)``; ``value()`` is an int."""

    kind = "pncounter"

    def decrement(
        self, n: int = 1, *, w: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> asyncio.Future[WriteResult]:
        rid = self._rid
        return self._write(methodcaller("decrement", rid, n), w, timeout, strict)


_ACCEPTS: dict[tuple[type, str, str], bool] = {}


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    """Does the (bound) method ``fn`` take a parameter ``name``? Cached per class."""
    owner = type(getattr(fn, "__self__", None))
    cache_key = (owner, getattr(fn, "__name__", ""), name)
    hit = _ACCEPTS.get(cache_key)
    if hit is None:
        try:
            hit = name in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            hit = False
        _ACCEPTS[cache_key] = hit
    return hit


class LWWHandle(_Handle):
    """A last-writer-wins register: ``set(value)``; ``value()`` is the latest value."""

    kind = "lww"

    def set(
        self,
        value: Any,
        timestamp: Any = None,
        *,
        w: Any = None,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> asyncio.Future[WriteResult]:
        rid = self._rid

        def fn(reg: Any) -> Any:
            return reg.set(rid, value, timestamp, now_ms=int(time.time() * 1000))

        return self._write(fn, w, timeout, strict)


class MVRegisterHandle(_Handle):
    """A multi-value register: ``set(value)`` supersedes what it has seen; ``values()``
    lists the concurrent values (siblings)."""

    kind = "mvregister"

    def set(
        self, value: Any, *, w: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> asyncio.Future[WriteResult]:
        rid = self._rid
        return self._write(methodcaller("set", rid, value), w, timeout, strict)

    async def values(
        self, *, r: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> list[Any]:
        """Every concurrent value (siblings), in the register's stable order."""
        return list(await self.value(r=r, timeout=timeout, strict=strict))


class ORSetHandle(_Handle):
    """An add-wins set: ``add(element)``, ``remove(element)``; ``value()`` is a frozenset."""

    kind = "orset"

    def add(
        self,
        element: Any,
        *,
        w: Any = None,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> asyncio.Future[WriteResult]:
        rid = self._rid
        return self._write(methodcaller("add", rid, element), w, timeout, strict)

    def remove(
        self,
        element: Any,
        *,
        w: Any = None,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> asyncio.Future[WriteResult]:
        return self._write(methodcaller("remove", element), w, timeout, strict)


_REPLICA_FIRST = frozenset({"increment", "decrement", "set", "add"})


class _Bound:
    """An embedded CRDT whose mutators take no replica argument (for ``ORMap.update``)."""

    __slots__ = ("_inner", "_replica")

    def __init__(self, inner: Any, replica: str) -> None:
        self._inner = inner
        self._replica = replica

    def __getattr__(self, name: str) -> Any:
        inner = self._inner
        attr = getattr(inner, name)
        how = _BINDING.get((type(inner), name))
        if how is None:
            how = _binding(name, attr)
            _BINDING[(type(inner), name)] = how
        replica = self._replica
        if how == _AS_IS:
            return attr
        if how == _NESTED:
            return lambda key, kind, fn: attr(
                replica, key, kind, lambda sub: fn(_Bound(sub, replica))
            )
        if how == _WITH_CLOCK:

            def stamped(*a: Any, **k: Any) -> Any:
                if "now_ms" not in k:
                    k["now_ms"] = int(time.time() * 1000)
                return attr(replica, *a, **k)

            return stamped
        return partial(attr, replica)


class _BoundLWW(_Bound):
    """``_Bound`` of an embedded LWW register, with ``set`` written out (the common case)."""

    __slots__ = ()

    def set(self, value: Any, timestamp: Any = None, **kw: Any) -> Any:
        if "now_ms" not in kw:
            kw["now_ms"] = int(time.time() * 1000)
        return self._inner.set(self._replica, value, timestamp, **kw)


_AS_IS, _NESTED, _WITH_CLOCK, _REPLICA = range(4)
# How _Bound hands out a view's attribute, per (view type, name): decided once.
_BINDING: dict[tuple[type, str], int] = {}


def _binding(name: str, attr: Any) -> int:
    if name == "update":
        return _NESTED
    if name in _REPLICA_FIRST and callable(attr):
        return _WITH_CLOCK if name == "set" and _accepts(attr, "now_ms") else _REPLICA
    return _AS_IS


class _MapUpdate:
    """``lambda m: m.update(rid, key, kind, lambda sub: fn(_Bound(sub, rid)))`` as one small
    object (a window of concurrent writes keeps one per write until the engine runs it)."""

    __slots__ = ("fn", "key", "kind", "rid")

    def __init__(self, rid: str, key: str, kind: str, fn: Callable[[Any], Any]) -> None:
        self.rid, self.key, self.kind, self.fn = rid, key, kind, fn

    def __call__(self, m: Any) -> Any:
        return m.update(self.rid, self.key, self.kind, self._inner)

    def _inner(self, sub: Any) -> Any:
        return self.fn((_BoundLWW if self.kind == "lww" else _Bound)(sub, self.rid))


class ORMapHandle(_Handle):
    """A map of embedded CRDTs: ``update(key, kind, fn)``, ``remove(key)``; ``value()`` is
    a dict."""

    kind = "ormap"

    def update(
        self,
        key: str,
        kind: str,
        fn: Callable[[Any], Any],
        *,
        w: Any = None,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> asyncio.Future[WriteResult]:
        """Apply ``fn`` to the embedded CRDT of ``kind`` at ``key``, e.g.
        ``await prefs.update("theme", "lww", lambda reg: reg.set("dark"))``."""
        rid = self._rid
        return self._write(
            _MapUpdate(rid, key, kind, fn),
            w,
            timeout,
            strict,
        )

    def remove(
        self, key: str, *, w: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> asyncio.Future[WriteResult]:
        return self._write(methodcaller("remove", key), w, timeout, strict)
