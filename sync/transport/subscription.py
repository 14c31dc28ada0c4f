"""``Subscription``: an async iterator of one key's new values, with a bounded queue.

:meth:`Peer.subscribe <sync.transport.peer.Peer.subscribe>` makes one; the peer pushes every
new value of the key (a local or a remote change) with :meth:`Subscription.push`. A prefix
subscription (``peer.subscribe(prefix="cart:")``, :attr:`Subscription.prefix` set) gets a
``(key, value)`` pair for every key that starts with the prefix. The queue
holds at most ``maxsize`` values: when a slow consumer falls behind, the oldest queued value
is dropped (and counted in :attr:`Subscription.dropped`), so the latest value is always
delivered and a forgotten subscription never grows without bound. :meth:`Subscription.close`
(or leaving ``async with``) unregisters it; the values already queued are still delivered,
then the iteration ends (on a full queue the oldest one makes room for the end).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["Subscription"]

_END = object()


class Subscription:
    """An async iterator of a key's new values; ``close()`` (or ``aclose()``) ends it.

    ``on_close`` is called once, by the first ``close()``, so that the owner stops pushing.
    ``key`` is the key, or ``None`` for a subscription to every key that starts with
    ``prefix`` (whose items are ``(key, value)`` pairs).
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
        self._on_close = on_close
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._closed = False

    def push(self, value: Any) -> None:
        """Queue ``value`` (dropping the oldest queued one if full); ignored once closed."""
        if self._closed:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(value)

    def close(self) -> None:
        if self._closed:
            return
        self._on_close(self)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)
        self._closed = True

    async def aclose(self) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            raise StopAsyncIteration
        return item

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
