"""Typed handles: one key of one CRDT type, with the CRDT's mutators minus the replica.

``peer.orset("cart")`` gives an :class:`ORSetHandle`; ``gcounter``, ``pncounter``, ``lww``,
``mvregister`` and ``ormap`` give the others. Every mutator takes ``w=``, ``timeout=`` and
``strict=`` and returns a future of the write's :class:`~sync.effects.WriteResult` (a missed
quorum raises :class:`~sync.errors.QuorumNotReached` from it: durable here, replicates
later); reads take ``r=``, ``timeout=`` and ``strict=``. A bad key (empty, with a NUL, or
not UTF-8 text: :func:`~sync.config.check_key`) raises when the handle is made, and a bad
option (a level impossible with ``n``, ``LOCAL_QUORUM`` without a site, a timeout <= 0) at
the call (a read's: its ``await``), as ``TypeError`` or ``ValueError``, before anything is
queued (:meth:`~sync.config.ReplicaConfig.write_options`). A key holds one type: a handle of
another type raises ``TypeError`` when it is made (if this replica knows the key) or at the
write. A key that two peers wrote offline as two types holds both (a *kind clash*): a
handle of either type reads its own object, and its writes raise
:class:`~sync.errors.KindClash` naming both types until one object is deleted. A handle
reaches its peer through :class:`HandleOwner` only (the replica id, the node and the
configuration), so this module does not depend on :mod:`sync.transport.peer`.

Sizes. A value that could not travel in one message is refused at the call, before anything
changes here or anywhere, with :class:`~sync.errors.ValueTooLarge`: what a write carries
(the key of the object, the value, and in a map the keys it sits under) may take at most
``max_value_bytes`` (:class:`~sync.config.ReplicaConfig`; half a message by default),
counted as the engine sizes log entries (:func:`~sync.replica.outbound.value_size`: UTF-8
bytes of the JSON text, escapes included). A mutator of a handle checks its value when it is
called; a map's ``update`` checks its key when called and, as ``fn`` runs, every value and
nested key given to the embedded mutators (and the size of what a nested ``remove`` or
``clear`` removes), so the write raises from its ``await``; and, since one ``fn`` may make
any number of changes, each adding a dot (perhaps a timestamp, a replaced dot) beside its
value, it counts those too (:func:`_change_bytes`), values and changes together within what
a log entry holds less :data:`~sync.replica.updates.LIVE_SLACK`. Checked so, a write runs on the
live object (``checked=True``, the engine's fast path); a map's ``remove(key)`` and a
``delete()``, whose size depends on what they remove, let the engine check the delta itself.

``delete()`` (and ``peer.delete(key)``) writes the kind's ``clear``, an observed reset: a
concurrent update survives it; an LWW register gets a timestamped tombstone instead (a later
``set`` wins). Afterwards the value reads as the empty one. Deleting what holds nothing live
here raises ``KeyError`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from operator import methodcaller
from typing import Any, Protocol

import crdt
from crdt import CRDT, ClockSkewError
from sync.config import ReplicaConfig, check_key
from sync.effects import WriteResult
from sync.errors import ValueTooLarge, named_kinds
from sync.replica.outbound import text_size, value_size
from sync.replica.updates import LIVE_SLACK

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
    """What a handle needs of its peer: the replica id its mutators act as, the node that
    runs its reads and writes, and the configuration (for ``max_value_bytes``);
    :class:`~sync.transport.peer.Peer` is one."""

    @property
    def replica_id(self) -> str: ...

    @property
    def node(self) -> Node: ...

    @property
    def config(self) -> ReplicaConfig: ...


_SMALL = (int, float, bool, type(None))  # a scalar takes a few bytes at most
_SCALAR_BYTES = 32


class _Room:
    """What is left for one write to the object ``name``: for its values, ``max_value_bytes``
    less what its keys and values took so far (:meth:`take` refuses a value that does not
    fit); for its values and what the changes of a map update add beside them (dots,
    timestamps: :meth:`take_change`) together, ``spare``, what a log entry holds less
    :data:`~sync.replica.updates.LIVE_SLACK`. Both within bounds, the delta fits in one
    message."""

    __slots__ = ("left", "limit", "name", "skew_ms", "spare", "spare_limit")

    def __init__(
        self, name: str, left: int, limit: int, skew_ms: int, spare: int, spare_limit: int
    ) -> None:
        self.name = name
        self.left = left
        self.limit = limit
        self.skew_ms = skew_ms  # how far ahead a timestamp given to a register may be
        self.spare = spare
        self.spare_limit = spare_limit

    def take(self, value: Any) -> None:
        self.take_size(_SCALAR_BYTES if type(value) in _SMALL else value_size(value))

    def take_size(self, size: int) -> None:
        if size > self.left:
            raise ValueTooLarge(_what(self.name), self.limit - self.left + size, self.limit)
        self.take_change(size)
        self.left -= size

    def take_change(self, size: int) -> None:
        """``size`` bytes more in the delta (a value, or what one change inside a map update
        adds beside its value: :func:`_change_bytes`): refused past ``spare``, so that many
        small changes in one update count for what they carry, not for their values alone."""
        if size > self.spare:
            what = (
                f"this update to {self.name[:80]!r} (its values, and the dots and timestamps "
                "each change adds beside its value)"
            )
            limit = self.spare_limit
            raise ValueTooLarge(what, limit - self.spare + size, limit)
        self.spare -= size


def _change_bytes(replica: str) -> int:
    """What one change by ``replica`` inside a map update (a set's add, a register's set, a
    counter's increment) adds to the delta beside its value, at most: four replica ids with
    a number each (its dot in the entry and in the context, the dot it replaces, a register's
    timestamp: each ``["replica id",counter]`` with its quotes escaped again in a message)
    and an amount. (An element or a register written concurrently by several replicas
    replaces one dot per writer: the engine's :data:`~sync.replica.updates.LIVE_SLACK`
    holds some 80 more in one update.)"""
    return 4 * (value_size(replica) + 24) + 24


def _given_stamp(timestamp: Any, now_ms: int, skew_ms: int) -> None:
    """A timestamp given to an LWW write more than the peer's ``max_clock_skew`` ahead of
    ``now_ms``: ``ClockSkewError`` at the call (every peer would set the write aside; the
    register's own bound, a minute, only refuses past it). A malformed one is left to the
    register, which names what is wrong."""
    if (
        type(timestamp) is tuple
        and len(timestamp) == 3
        and type(timestamp[0]) is int
        and timestamp[0] - now_ms > skew_ms
    ):
        raise ClockSkewError(timestamp[0], now_ms, skew_ms)


def _what(key: str) -> str:
    return f"this write to {key[:80]!r} (its key, values and map keys; max_value_bytes)"


class _Clear:
    """The ``fn`` of a delete: the kind's ``clear``, refused (``KeyError``) when the object
    holds nothing live here. ``resets`` tells the engine it is a delete, allowed on a key in a
    kind clash (see ``Replica.local_update``)."""

    __slots__ = ("clear", "key")
    resets = True

    def __init__(self, key: str, clear: Callable[[Any], Any]) -> None:
        self.key = key
        self.clear = clear

    def __call__(self, obj: Any) -> Any:
        if not obj.is_live():
            raise KeyError(f"nothing to delete: {self.key!r} holds no {obj.kind} here")
        return self.clear(obj)


class _Handle:
    """A key of one CRDT type. Mutators queue their write when called and return a future
    of its :class:`WriteResult` (``await cart.add("milk")``): the write is on its way even
    if the future is never awaited, and a burst of writes costs a future each, not a task.
    A bad key, a bad option (``w``, ``strict``, ``timeout``) and a value too large raise at
    the call, before anything is queued; other bad input (a wrong type, a non-JSON value)
    raises from the ``await``. Either way the key is unchanged.
    Await the future (or ``asyncio.gather`` many) to see its outcome: an error nobody awaits
    (``QuorumNotReached``, bad input) only shows as asyncio's "exception was never
    retrieved" log line once the future is garbage-collected.
    """

    kind: str = ""

    def __init__(self, peer: HandleOwner, key: str) -> None:
        check_key(key)
        self.peer = peer
        self.key = key
        self._check_kind()
        limit = peer.config.value_limit
        used = value_size(key)
        if used > limit:
            raise ValueTooLarge(f"the key {key[:80]!r}", used, limit)
        self._limit = limit
        self._left = limit - used  # room for the values of one write
        # ...and for them and what a map update's changes add beside them: an entry's.
        self._spare_limit = max(peer.config.entry_limit - LIVE_SLACK, limit)
        self._spare = self._spare_limit - used

    def _room(self) -> _Room:
        return _Room(
            self.key, self._left, self._limit, self._skew_ms(), self._spare, self._spare_limit
        )

    def _skew_ms(self) -> int:
        """How far ahead of this clock a timestamp given to a register may be (ms)."""
        return int(self.peer.config.max_clock_skew * 1000)

    def _check(self, value: Any) -> None:
        """Refuse (ValueTooLarge) a value that does not fit beside the key."""
        if type(value) in _SMALL:
            return
        size = value_size(value)
        if size > self._left:
            raise ValueTooLarge(_what(self.key), self._limit - self._left + size, self._limit)

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
        checked: bool = True,
    ) -> asyncio.Future[WriteResult]:
        # The engine refuses a key of another kind (TypeError), or of this kind and another
        # (KindClash), without copying the state.
        # The write is queued now and its future returned as it is: no coroutine or task
        # per write (see the class docstring). ``checked``: the values were checked (see
        # the module docstring), so fn may run on the live object. Bad options raise here,
        # before anything is queued (the engine checks them again, as its own input).
        if w is not None or strict is not None or timeout is not None:
            self.peer.config.write_options(w, strict, timeout)
        return self.peer.node.write(
            self.key, self.kind, fn, w=w, strict=strict, timeout=timeout, checked=checked
        )

    def _clear(self) -> Callable[[Any], Any]:
        """What a delete calls on the object (the kind's observed reset)."""
        return methodcaller("clear")

    def delete(
        self, *, w: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> asyncio.Future[WriteResult]:
        """Delete the object: an observed reset that replicates like any write (a concurrent
        update survives it); the value then reads as the empty one. ``KeyError`` (from the
        ``await``) if it holds nothing live here: nothing changes."""
        return self._write(_Clear(self.key, self._clear()), w, timeout, strict, checked=False)

    async def state(
        self, *, r: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> CRDT | None:
        """The joined CRDT state of the key's object of this type (None if no replica asked
        holds it)."""
        if r is not None or strict is not None or timeout is not None:
            self.peer.config.read_options(r, strict, timeout)  # bad options: before any I/O
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
        self._check(value)
        rid = self._rid
        if timestamp is not None:
            now_ms = int(time.time() * 1000)
            _given_stamp(timestamp, now_ms, self._skew_ms())

        def fn(reg: Any) -> Any:
            return reg.set(rid, value, timestamp, now_ms=int(time.time() * 1000))

        return self._write(fn, w, timeout, strict)

    def _clear(self) -> Callable[[Any], Any]:
        rid = self._rid
        # A tombstone timestamped as a set is (wall time): a later set wins over it.
        return lambda reg: reg.clear(rid, now_ms=int(time.time() * 1000))


class MVRegisterHandle(_Handle):
    """A multi-value register: ``set(value)`` supersedes what it has seen; ``values()``
    lists the concurrent values (siblings)."""

    kind = "mvregister"

    def set(
        self, value: Any, *, w: Any = None, timeout: float | None = None, strict: bool | None = None
    ) -> asyncio.Future[WriteResult]:
        self._check(value)
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
        self._check(element)
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
    """An embedded CRDT whose mutators take no replica argument (for ``ORMap.update``),
    checking what they are given against the write's :class:`_Room`: the value of ``set``
    and ``add``, the key of a nested ``update``, and the delta of a nested ``remove`` or
    ``clear`` (what it removes travels too). A refusal raises inside ``fn``, so the map
    is unchanged (``ORMap.update`` applies nothing when ``fn`` raises)."""

    __slots__ = ("_inner", "_replica", "_room")

    def __init__(self, inner: Any, replica: str, room: _Room) -> None:
        self._inner = inner
        self._replica = replica
        self._room = room

    def __getattr__(self, name: str) -> Any:
        inner = self._inner
        attr = getattr(inner, name)
        how = _BINDING.get((type(inner), name))
        if how is None:
            how = _binding(name, attr)
            _BINDING[(type(inner), name)] = how
        replica, room = self._replica, self._room
        change = _change_bytes(replica)
        if how == _AS_IS:
            return attr
        if how == _NESTED:

            def nested(key: Any, kind: str, fn: Callable[[Any], Any]) -> Any:
                room.take(key)
                room.take_change(value_size(kind) + 16)  # its entry (contents: as fn goes)
                return attr(replica, key, kind, lambda sub: fn(_Bound(sub, replica, room)))

            return nested
        if how == _REMOVING:

            def removing(*a: Any, **k: Any) -> Any:
                delta = attr(*a, **k)
                to_json = getattr(delta, "to_json", None)
                if to_json is not None:  # what it drops travels in the map's delta
                    room.take_size(text_size(to_json()))
                return delta

            return removing
        if how == _WITH_CLOCK:

            def stamped(*a: Any, **k: Any) -> Any:
                if a:
                    room.take(a[0])
                room.take_change(change)  # its dot and timestamp
                if "now_ms" not in k:
                    k["now_ms"] = int(time.time() * 1000)
                return attr(replica, *a, **k)

            return stamped
        if name in _VALUED:

            def valued(*a: Any, **k: Any) -> Any:
                if a:
                    room.take(a[0])
                room.take_change(change)  # its dots (in the entry, the context: replaced)
                return attr(replica, *a, **k)

            return valued

        def changing(*a: Any, **k: Any) -> Any:
            room.take_change(change)  # (a counter's increment: its dots, new and replaced)
            return attr(replica, *a, **k)

        return changing


class _BoundLWW(_Bound):
    """``_Bound`` of an embedded LWW register, with ``set`` written out (the common case)."""

    __slots__ = ()

    def set(self, value: Any, timestamp: Any = None, **kw: Any) -> Any:
        self._room.take(value)
        self._room.take_change(_change_bytes(self._replica))  # its dot and timestamp
        if "now_ms" not in kw:
            kw["now_ms"] = int(time.time() * 1000)
        if timestamp is not None:
            _given_stamp(timestamp, kw["now_ms"], self._room.skew_ms)
        return self._inner.set(self._replica, value, timestamp, **kw)


_AS_IS, _NESTED, _WITH_CLOCK, _REPLICA, _REMOVING = range(5)
_VALUED = frozenset({"set", "add"})  # mutators whose first argument is a value
# How _Bound hands out a view's attribute, per (view type, name): decided once.
_BINDING: dict[tuple[type, str], int] = {}


def _binding(name: str, attr: Any) -> int:
    if name == "update":
        return _NESTED
    if name in ("remove", "clear") and callable(attr):
        return _REMOVING
    if name in _REPLICA_FIRST and callable(attr):
        return _WITH_CLOCK if name == "set" and _accepts(attr, "now_ms") else _REPLICA
    return _AS_IS


class _MapUpdate(_Room):
    """``lambda m: m.update(rid, key, kind, lambda sub: fn(_Bound(sub, rid, room)))`` as one
    small object (a window of concurrent writes keeps one per write until the engine runs
    it), which is also the write's :class:`_Room`: what is left of ``max_value_bytes`` for
    the object ``name`` once its key and the map's key took their share."""

    __slots__ = ("fn", "key", "kind", "rid")

    def __init__(
        self,
        rid: str,
        key: str,
        kind: str,
        fn: Callable[[Any], Any],
        name: str,
        left: int,
        limit: int,
        skew_ms: int,
        spare: int,
        spare_limit: int,
    ) -> None:
        super().__init__(name, left, limit, skew_ms, spare, spare_limit)
        self.rid, self.key, self.kind, self.fn = rid, key, kind, fn

    def __call__(self, m: Any) -> Any:
        return m.update(self.rid, self.key, self.kind, self._inner)

    def _inner(self, sub: Any) -> Any:
        return self.fn((_BoundLWW if self.kind == "lww" else _Bound)(sub, self.rid, self))


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
        room = self._room()
        room.take(key)
        rid = self._rid
        return self._write(
            _MapUpdate(
                rid,
                key,
                kind,
                fn,
                self.key,
                room.left,
                room.limit,
                room.skew_ms,
                room.spare,
                room.spare_limit,
            ),
            w,
            timeout,
            strict,
        )

    def remove(
        self,
        key: str,
        *,
        kind: str | None = None,
        w: Any = None,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> asyncio.Future[WriteResult]:
        """Remove the entry ``key`` (every kind it holds; ``kind``: that kind only, which
        ends a kind clash keeping the other: see :class:`~crdt.ORMap`)."""
        if kind is not None:
            crdt.embedded_kind(kind)  # ValueError for an unknown kind, before anything queues
        # What a remove's delta carries is the key's dots, as big as its value was: the
        # engine sizes the delta itself (checked=False).
        return self._write(methodcaller("remove", key, kind), w, timeout, strict, checked=False)
