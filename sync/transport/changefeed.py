"""What a peer tells its application (and its log) as the engine changes things.

* **Subscriptions.** :meth:`ChangeFeed.subscribe` makes a
  :class:`~sync.transport.subscription.Subscription` of one key's new values, or of
  ``(key, value)`` for every key starting with a prefix; :meth:`ChangeFeed.changed` (the
  node's ``on_changed``, once per changed key per round) pushes the key's new value to
  both kinds; each subscription bounds its own backlog (a prefix one that overflows
  unregisters itself, through the same callback as its ``close``). A key holding objects
  of two kinds (a kind clash) has no one value: nothing is pushed for it.
  :meth:`ChangeFeed.close` (the peer's) ends them all and refuses new ones. The feed holds
  its subscriptions by weak reference: one that nothing refers to any more (its reader left
  an ``async for`` by ``break``, an error or a cancelled task, without closing it) could
  never be read again, and is dropped, instead of being pushed every later change for as
  long as the peer runs.
* **Siblings.** A multi-value register with more than ``sibling_warning`` siblings is
  logged at WARNING, once until it comes back under: a sign that writers never read before
  they write. Siblings are reported, never dropped: dropping one would lose a write.
* **Kind clashes.** :meth:`ChangeFeed.clash_found` logs a key that two peers wrote as two
  types, at WARNING, once per key.
* **Where a write is.** :meth:`ChangeFeed.follow` (behind ``Peer.watch``) yields a write's
  whereabouts now and again each time it changes: its iterators look again after each
  engine round (:meth:`ChangeFeed.round`, the node's ``on_round``, wakes them only if there
  are any).

Logged on the ``shoal.peer`` logger, as the rest of the peer.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from sync.config import check_key
from sync.effects import KindClashFound
from sync.replica import Whereabouts, live_kinds

from .subscription import Subscription

__all__ = ["ChangeFeed"]

log = logging.getLogger("shoal.peer")


#: The distinct keys a prefix subscription holds, by default, for a reader that is behind
#: (or ``subscriber_queue``, if larger): one write of many keys (a bulk import, a state
#: transfer's page) changes them all in one round, before any reader can run, so a bound
#: of about the one of a key's values ended every prefix subscriber at each such burst.
PREFIX_KEYS = 10_000


class ChangeFeed:
    """One peer's subscriptions, warnings and watchers; see the module docstring.

    ``maxsize``: the queue bound of a subscription made without one.
    """

    def __init__(self, maxsize: int, sibling_warning: int) -> None:
        self.maxsize = maxsize
        self.sibling_warning = sibling_warning
        # Subscriptions by weak reference (see the module docstring); the dead ones are
        # pruned as a key's list is used.
        self._by_key: dict[str, list[weakref.ref[Subscription]]] = {}
        self._by_prefix: list[weakref.ref[Subscription]] = []
        self._many_siblings: set[str] = set()  # registers over the warning, reported once
        self._clashes_logged: set[str] = set()  # keys whose kind clash was logged
        # The watchers' iterators wait on this event, set after each engine round.
        self._round_done = asyncio.Event()
        self._watchers = 0
        self.closed = False  # (see close)

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(
        self, key: str | None = None, *, prefix: str | None = None, maxsize: int | None = None
    ) -> Subscription:
        """A subscription of ``key``'s new values, or of ``(key, value)`` under ``prefix``.
        ``RuntimeError`` once the peer is closed (:meth:`close`): nothing would end it."""
        if self.closed:
            raise RuntimeError("the peer is closed")
        if prefix is not None:
            if key is not None:
                raise TypeError("subscribe takes a key or a prefix, not both")
            check_key(prefix, "prefix", empty_ok=True)
            limit = maxsize or max(self.maxsize, PREFIX_KEYS)
            sub = Subscription(None, limit, self._unsubscribe, prefix=prefix)
            self._by_prefix = [*_alive(self._by_prefix), weakref.ref(sub)]
            return sub
        key = check_key(key)
        sub = Subscription(key, maxsize or self.maxsize, self._unsubscribe)
        self._by_key[key] = [*_alive(self._by_key.get(key, ())), weakref.ref(sub)]
        return sub

    @property
    def by_key(self) -> dict[str, list[Subscription]]:
        """The subscriptions of each key (those still referred to), now."""
        live = {key: _live(refs) for key, refs in list(self._by_key.items())}
        return {key: subs for key, subs in live.items() if subs}

    @property
    def by_prefix(self) -> list[Subscription]:
        """The prefix subscriptions (those still referred to), now."""
        return _live(self._by_prefix)

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub.key is None:
            self._by_prefix = [r for r in _alive(self._by_prefix) if r() is not sub]
            return
        refs = [r for r in _alive(self._by_key.get(sub.key, ())) if r() is not sub]
        if refs:
            self._by_key[sub.key] = refs
        else:
            self._by_key.pop(sub.key, None)

    def _subscribers(self, key: str) -> list[Subscription]:
        """The subscriptions of ``key`` still referred to (the list pruned of the others)."""
        refs = self._by_key.get(key)
        if not refs:
            return []
        subs = _live(refs)
        if len(subs) < len(refs):
            if subs:
                self._by_key[key] = [weakref.ref(s) for s in subs]
            else:
                del self._by_key[key]
        return subs

    def changed(self, key: str, objects: Any) -> None:
        """``key`` changed; ``objects``: its objects by kind at the change (the engine may
        have evicted them from its cache since; they are still the latest of this change)."""
        if not objects:
            return
        register = objects.get("mvregister")
        if register is not None:
            self._check_siblings(key, register)
        subs = self._subscribers(key)
        matching = (
            [s for s in self._prefixed() if s.prefix is not None and key.startswith(s.prefix)]
            if self._by_prefix
            else ()
        )
        if not subs and not matching:
            return
        if len(objects) == 1:
            obj = next(iter(objects.values()))
        else:  # a deleted kind beside the live one is no clash (the engine's rule)
            live = live_kinds(objects)
            if len(live) != 1:
                return  # (a clashed key has no one value: its clash was logged)
            obj = objects[live[0]]
        value = obj.value  # a fresh structure: no copy of the state
        for sub in subs or ():
            sub.push(value)
        for sub in matching:
            sub.push((key, value))

    def close(self) -> None:
        """The peer closed: wake the watchers (they see it closed), end every subscription,
        refuse new ones."""
        self.closed = True
        self._round_done.set()
        for subs in [*self.by_key.values(), self.by_prefix]:
            for sub in subs:
                sub.close()

    def _prefixed(self) -> list[Subscription]:
        """The prefix subscriptions still referred to (the list pruned of the others)."""
        subs = _live(self._by_prefix)
        if len(subs) < len(self._by_prefix):
            self._by_prefix = [weakref.ref(s) for s in subs]
        return subs

    # -- warnings ----------------------------------------------------------------------------

    def _check_siblings(self, key: str, register: Any) -> None:
        """Warn (once) when a register piles up siblings: a sign that writers never read
        before they write. They are reported, never dropped: dropping one would lose a write.
        (Counted without copying them: every change of a register passes here.)"""
        count = register.sibling_count
        if count <= self.sibling_warning:
            self._many_siblings.discard(key)
            return
        if key in self._many_siblings:
            return
        self._many_siblings.add(key)
        shown = ", ".join(repr(v)[:40] for v in register.value[:3])
        log.warning(
            "register %r has %d siblings (warning above %d); first of them: %s. Resolve them "
            "with a set() made after reading them all.",
            key,
            count,
            self.sibling_warning,
            shown,
        )

    def clash_found(self, effect: KindClashFound) -> None:
        """The engine found a kind clash: log it, once per key."""
        if effect.key in self._clashes_logged:
            return
        self._clashes_logged.add(effect.key)
        log.warning(
            "key %r holds %s: two peers wrote it concurrently as different types. "
            "Both are kept; writes to it fail until one is deleted with "
            "peer.delete(%r, kind=...)",
            effect.key,
            " and ".join(effect.kinds),
            effect.key,
        )

    # -- where a write is --------------------------------------------------------------------

    def round(self) -> None:
        """After each engine round: wake the watchers (if any) to look again."""
        if self._watchers:
            done, self._round_done = self._round_done, asyncio.Event()
            done.set()

    async def follow(
        self,
        look: Callable[[], Whereabouts],
        closed: Callable[[], bool],
        timeout: float | None,
        write: object,
    ) -> AsyncIterator[Whereabouts]:
        """Yield ``look()`` now and again each time it changes, until ``everywhere`` or
        ``closed()``; ``TimeoutError`` naming ``write`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last: Whereabouts | None = None
        self._watchers += 1
        try:
            while True:
                changed = self._round_done  # taken before looking: no change is missed
                now = look()
                if now != last:
                    yield now
                    last = now
                if now.everywhere or closed():
                    return
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    raise TimeoutError(f"{write!r} is not at every home after {timeout}s")
                try:
                    await asyncio.wait_for(changed.wait(), left)
                except TimeoutError:
                    raise TimeoutError(f"{write!r} is not at every home after {timeout}s") from None
        finally:
            self._watchers -= 1


def _live(refs: Iterable[weakref.ref[Subscription]]) -> list[Subscription]:
    """The subscriptions ``refs`` still refer to."""
    return [s for s in map(_deref, tuple(refs)) if s is not None]


def _alive(refs: Iterable[weakref.ref[Subscription]]) -> list[weakref.ref[Subscription]]:
    """The references of ``refs`` whose subscription is still referred to."""
    return [r for r in tuple(refs) if r() is not None]


def _deref(ref: weakref.ref[Subscription]) -> Subscription | None:
    return ref()
