"""The dialler tasks of a transport: one per URL it keeps a link to, and how one stops.

A :class:`~sync.transport.connection.Transport` runs one task per dialled URL, its dial
loop, which dials, runs the link it opened, and redials with backoff once that link ended.
:class:`Diallers` holds those tasks: :meth:`~Diallers.start` starts one for a URL not dialled
yet, :meth:`~Diallers.keeps` tells a dial loop whether it is still the dialler of its URL
(it asks before each dial and after each link), :meth:`~Diallers.stop` stops one
(``Transport.undial``) and :meth:`~Diallers.aclose` all of them.

Stopping a URL (its peer moved: the address is dead, or is someone else's now):

* a dial in progress, a wait before a redial, or a wait for a link to the same replica that
  the other side dialled is cancelled at once;
* a link that the dialler opened over that URL and still runs (:meth:`~Diallers.carrying`)
  is left open: the peer at the other end authenticated as a replica of the group, and the
  link ends on its own if that replica is gone (heartbeats). Once it ended, the loop
  returns without dialling again.

A stopped task is kept until it returned, so that :meth:`~Diallers.aclose` waits for it too.
The same URL may be dialled again later: a new task, the stopped one never redials.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

__all__ = ["Diallers"]


class Diallers:
    """The dialler task of every dialled URL (see the module docstring)."""

    def __init__(self) -> None:
        self._by_url: dict[str, asyncio.Task[None]] = {}
        self._carrying: set[asyncio.Task[Any]] = set()  # running a link they opened
        self._stopped: set[asyncio.Task[None]] = set()  # stopped, not returned yet

    def __contains__(self, url: object) -> bool:
        return url in self._by_url

    def urls(self) -> list[str]:
        """The URLs dialled, in the order they were first dialled."""
        return list(self._by_url)

    def running(self) -> int:
        """How many dialler tasks have not returned yet (stopped ones included)."""
        return sum(not t.done() for t in self._by_url.values()) + len(self._stopped)

    def start(self, url: str, loop: Callable[[str], Coroutine[Any, Any, None]]) -> bool:
        """Run ``loop(url)`` as the dialler of ``url``, unless it has one. True if started."""
        if url in self._by_url:
            return False
        self._by_url[url] = asyncio.get_running_loop().create_task(loop(url))
        return True

    def keeps(self, url: str) -> bool:
        """True while the calling task is the dialler of ``url`` (not stopped)."""
        return self._by_url.get(url) is asyncio.current_task()

    @contextlib.contextmanager
    def carrying(self) -> Iterator[None]:
        """The calling dialler runs a link it opened: :meth:`stop` leaves it running."""
        task = asyncio.current_task()
        assert task is not None
        self._carrying.add(task)
        try:
            yield
        finally:
            self._carrying.discard(task)

    def stop(self, url: str) -> bool:
        """``url`` is not dialled any more: its dialler is cancelled, unless it runs a link
        (then it returns once that ended). False if ``url`` had no dialler."""
        task = self._by_url.pop(url, None)
        if task is None:
            return False
        if task not in self._carrying:
            task.cancel()
        if not task.done():
            self._stopped.add(task)
            task.add_done_callback(self._stopped.discard)
        return True

    async def aclose(self, timeout: float) -> None:
        """Nothing is dialled any more: wait at most ``timeout`` seconds for every dialler
        to return (each does once its link ended), then cancel the others (a dial in
        progress) and wait for them."""
        tasks = [*self._by_url.values(), *self._stopped]
        self._by_url.clear()
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
