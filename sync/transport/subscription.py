"""``Subscription``: an async iterator of one key's new values, or of ``(key, value)`` for
every key under a prefix, with a bounded backlog for a reader that falls behind.

:meth:`Peer.subscribe <sync.transport.peer.Peer.subscribe>` makes one; the peer pushes every
new value (a local or a remote change) with :meth:`Subscription.push`. The promise
(docs/api.md) is that a slow reader gets the latest state of each key; how much it holds
while the reader is behind is bounded by ``maxsize``:

* **A key** (``peer.subscribe(key)``): its values in order, at most ``maxsize``; past that
  the oldest is dropped (counted in :attr:`Subscription.dropped`). The last value queued is
  always the latest, so the promise holds.
* **A prefix** (``peer.subscribe(prefix="cart:")``, :attr:`Subscription.prefix` set): one
  entry per key changed and not read yet, holding its latest value; a newer change of a key
  replaces the value it waits with (the older one counted in ``dropped``) and keeps its
  place. The backlog grows with the number of distinct keys changed, not of changes.
* **Overflow.** When more than ``maxsize`` distinct keys wait, no bounded backlog keeps the
  promise (it would have to name every key). The subscription says so rather than forget
  keys in silence: it drops what it holds, unregisters (so a forgotten one holds nothing
  more) and its next read raises :class:`SubscriptionOverflow`. The reader subscribes again,
  then reads the keys under the prefix: the "410 Gone: list, then watch again" of a
  Kubernetes watch.

:meth:`Subscription.close` (or leaving ``async with``) unregisters it; what is queued is
still delivered, then the iteration ends.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from sync.errors import SubscriptionOverflow

__all__ = ["Subscription"]


class Subscription:
    """An async iterator of a key's new values; ``close()`` (or ``aclose()``) ends it.

    ``on_close`` is called once, by the first ``close()`` (or the overflow), so that the
    owner stops pushing. ``key`` is the key, or ``None`` for a subscription to every key
    that starts with ``prefix`` (whose items are ``(key, value)`` pairs). ``dropped``
    counts the values never delivered; ``overflowed`` is true once a prefix subscription
    fell more than ``maxsize`` keys behind (see the module docstring).
    """

    def __init__(
        self,
        key: str | None,
        maxsize: int,
        on_close: Callable[[Subscription], None],
        *,
        prefix: str | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        if (key is None) == (prefix is None):
            raise ValueError("a subscription is to a key or to a prefix, not both or neither")
        self.key = key
        self.prefix = prefix
        self.dropped = 0
        self.overflowed = False
        self._maxsize = maxsize
        self._on_close = on_close
        self._values: deque[Any] = deque()  # a key's values, oldest first
        # A prefix's keys waiting, each with its latest value, in the order of their first
        # change not read. (An OrderedDict: taking the first entry of a plain dict again
        # and again scans the holes left at its front, quadratic in the backlog.)
        self._latest: OrderedDict[str, Any] = OrderedDict()
        self._wake = asyncio.Event()  # set by push and close for a waiting reader
        self._closed = False

    def push(self, item: Any) -> None:
        """Queue a value of the key, or a ``(key, value)`` pair of a key under the prefix;
        ignored once closed."""
        if self._closed:
            return
        if self.prefix is None:
            if len(self._values) >= self._maxsize:
                self._values.popleft()
                self.dropped += 1
            self._values.append(item)
        elif not self._coalesce(*item):
            return
        self._wake.set()

    def _coalesce(self, key: str, value: Any) -> bool:
        """Hold ``value`` as ``key``'s latest; False if that overflowed the subscription."""
        latest = self._latest
        if key in latest:
            # The key keeps its place (the place of its first change not read) rather than
            # moving to the end: moved, a key changed more often than the reader reads
            # would be pushed back behind every key changed after it, and could wait for
            # ever; kept, it is read within maxsize reads, with its value as of then.
            latest[key] = value
            self.dropped += 1
            return True
        if len(latest) < self._maxsize:
            latest[key] = value
            return True
        self.dropped += len(latest) + 1
        latest.clear()  # stale once the reader must read the keys again: freed now
        self.overflowed = True
        self.close()
        return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        self._wake.set()

    async def aclose(self) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._values:
                return self._values.popleft()
            if self._latest:
                return self._latest.popitem(last=False)
            if self.overflowed:
                assert self.prefix is not None  # (only a prefix subscription overflows)
                raise SubscriptionOverflow(self.prefix, self._maxsize)
            if self._closed:
                raise StopAsyncIteration
            # Nothing to read: wait for a push or the close. (No await between looking
            # and clearing, so no wake-up is lost; several readers each look again.)
            self._wake.clear()
            await self._wake.wait()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
