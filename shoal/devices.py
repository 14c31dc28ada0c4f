"""The demo's devices: one peer per device, taken on and off line, and bounded waits.

A :class:`Device` is a name and a SQLite file; :meth:`Device.open` opens a
:class:`~sync.transport.peer.Peer` on it (listening on 127.0.0.1 and dialling others when
online, neither when offline: an embedded app without network), :meth:`Device.close` closes
it; reopening resumes the same replica id and data. :func:`until` polls a condition with a
timeout, so a broken network or a bug shows up as a :class:`StepFailed`, never as a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sync.transport.peer import Peer

__all__ = ["POLL_INTERVAL", "STEP_TIMEOUT", "Device", "StepFailed", "contains", "until"]

# The whole demo normally takes a few seconds; these bound every wait so that a broken
# network or a bug shows up as a failed step, never as a hang.
STEP_TIMEOUT = 10.0
POLL_INTERVAL = 0.02


class StepFailed(Exception):
    """A step of the demo did not do what it narrates (a timeout, an unexpected result)."""


async def until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = STEP_TIMEOUT
) -> float:
    """Poll ``check`` until it is true; return the seconds it took, or raise StepFailed."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout
    while True:
        remaining = deadline - loop.time()
        try:
            done = await asyncio.wait_for(check(), timeout=max(remaining, 0.01))
        except TimeoutError:
            done = False
        if done:
            return loop.time() - start
        if loop.time() >= deadline:
            raise StepFailed(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)


@dataclass
class Device:
    """One peer of the demo and its database; ``open``/``close`` take it on and off line."""

    name: str
    path: Path
    relay: bool = False
    online: bool = False
    _peer: Peer | None = field(default=None, repr=False)
    _stack: AsyncExitStack | None = field(default=None, repr=False)

    @property
    def peer(self) -> Peer:
        if self._peer is None:
            raise StepFailed(f"{self.name} is not running")
        return self._peer

    async def open(self, *, listen: bool, dial: Sequence[str], secret: bytes, n: int) -> None:
        """(Re)open this device's database; online if it listens or dials (``n`` homes)."""
        await self.close()
        stack = AsyncExitStack()
        self._peer = await stack.enter_async_context(
            Peer.open(
                str(self.path),
                listen="127.0.0.1:0" if listen else None,
                peers=list(dial),
                n=n,
                w=1,
                r=1,
                secret=secret,
                relay=self.relay,
            )
        )
        self._stack = stack
        self.online = listen or bool(dial)

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._peer = None
        self.online = False
        if stack is not None:
            await stack.aclose()

    @property
    def replica_id(self) -> str:
        return self.peer.replica_id

    @property
    def url(self) -> str:
        return self.peer.url or ""

    async def connected(self) -> set[str]:
        return set((await self.peer.status())["connected"])

    async def hints_for(self, target: str) -> int:
        peers = (await self.peer.status())["peers"]
        return int(peers.get(target, {}).get("pending_hints", 0))

    async def pending_hints(self) -> int:
        return int((await self.peer.status())["pending_hints"])


async def contains(found: Awaitable[set[str]], wanted: set[str]) -> bool:
    return wanted <= await found
