"""Whom a peer dials and whose links it refuses, and what its engine hears of the dials.

* **Whom it dials.** The configured URLs (``peers=`` of ``Peer.open``) when it starts;
  with ``dial_learned``, also the address of every peer it learns of (from the store at
  open, and from the engine's ``Persist`` of peer records: :meth:`Dialling.learned`), as
  soon as it is learned or changes. Its own URL, and the address of a replica forgotten
  here, are not dialled.
* **Whom it refuses.** A replica forgotten here (by an operator, or this database's own
  retired id after a rotation): :meth:`Dialling.refuse` is the transport's ``refuse``,
  which closes such a link inside the handshake with
  :data:`~sync.transport.dialstate.FORGOTTEN_REASON`.
* **What the engine hears.** Links still being dialled count as reachable until an
  operation's timeout (``Replica.links_connecting``): :meth:`Dialling.watch` tells the
  engine how many dialled URLs are still connecting and why the failed ones failed,
  whenever that changes, and keeps looking every :data:`DIAL_POLL` seconds while a dial is
  in progress (the transport's dial states change without telling anyone).

It reaches its peer through :class:`DialOwner` only: the transport and the node are
replaced when the peer restarts under a new replica id, so they are looked up each time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from sync.errors import PeerFailed

from .auth import PeerInfo
from .connection import Transport
from .dialstate import FORGOTTEN_REASON
from .node import Node

__all__ = ["CLOSED_REASON", "DIAL_POLL", "DialOwner", "Dialling"]

#: Seconds between two looks at the transport's dial state while a dial is in progress.
DIAL_POLL = 0.02

#: Why a dialled URL is down once this peer closes (as the engine's errors name it).
CLOSED_REASON = "this peer closed"


class DialOwner(Protocol):
    """What :class:`Dialling` needs of its peer (the current transport and node)."""

    @property
    def replica_id(self) -> str: ...

    @property
    def url(self) -> str | None: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def node(self) -> Node | None: ...

    @property
    def dial_learned(self) -> bool: ...


class Dialling:
    """One peer's dialling; see the module docstring. ``closed()``: the peer is closing."""

    def __init__(self, owner: DialOwner, closed: Callable[[], bool]) -> None:
        self._owner = owner
        self._closed = closed
        self.configured: list[str] = []  # the peer URLs given to Peer.open
        self.addresses: dict[str, str] = {}  # replica id -> its address, as learned
        self.forgotten: set[str] = set()
        # What the engine was last told of the dials (links_connecting), and the task that
        # keeps looking while a dial is in progress.
        self._seen: tuple[int, dict[str, str]] | None = None
        self._task: asyncio.Task[None] | None = None

    def learned(self, replica_id: str, address: str | None, forgotten: bool) -> None:
        """A peer record: remember the address (dial it if new and ``dial_learned``), or
        that the replica is forgotten here."""
        owner = self._owner
        if replica_id == owner.replica_id:
            return
        if forgotten:
            self.forgotten.add(replica_id)
            return
        if address and address.startswith(("ws://", "wss://")) and address != owner.url:
            fresh = self.addresses.get(replica_id) != address
            self.addresses[replica_id] = address
            if fresh and owner.dial_learned and owner.node is not None:
                owner.transport.dial([address])
                self.watch()

    def refuse(self, info: PeerInfo) -> str | None:
        """Why a link from ``info`` is refused (None: it is not)."""
        if info.replica_id in self.forgotten:
            return FORGOTTEN_REASON
        return None

    def unforgotten(self, replica_id: str) -> None:
        """``replica_id`` is a member again: accept its links, dial it if we would."""
        self.forgotten.discard(replica_id)
        address = self.addresses.get(replica_id)
        if address is not None and self._owner.dial_learned:
            self._owner.transport.dial([address])

    def restart(self) -> None:
        """A new node: it has been told nothing of the dials yet."""
        self._seen = None

    def dial(self, peers: list[str]) -> None:
        """Dial the configured URLs (``peers``, remembered the first time) and, with
        ``dial_learned``, every address learned of a replica not forgotten; then tell the
        engine, before any operation of the caller reaches it."""
        transport = self._owner.transport
        if not self.configured:
            self.configured = list(peers)
        transport.dial(peers)
        if self._owner.dial_learned:
            transport.dial(a for r, a in self.addresses.items() if r not in self.forgotten)
        self.watch()

    def pending(self) -> tuple[int, dict[str, str]]:
        """(how many dialled URLs are still connecting, {URL: why} of those whose last dial
        failed), from the transport's dial states (this peer's own URL left out)."""
        return self._owner.transport.dials.pending()

    def watch(self) -> None:
        """Tell the engine the dial state if it changed, and keep looking (every
        :data:`DIAL_POLL` seconds) while a dial is in progress."""
        if self._closed() or self._owner.node is None:
            return
        state = self._tell_if_changed()
        if state[0] and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while not self._closed():
            await asyncio.sleep(DIAL_POLL)
            if self._closed() or self._owner.node is None:
                return
            if not self._tell_if_changed()[0]:
                return

    def _tell_if_changed(self) -> tuple[int, dict[str, str]]:
        """The dial state, told to the engine if it changed since it was last told."""
        state = self.pending()
        if state != self._seen:
            self._seen = state
            self._tell(state)
        return state

    def _tell(self, state: tuple[int, dict[str, str]]) -> None:
        node = self._owner.node
        assert node is not None  # (checked by the callers)
        with contextlib.suppress(RuntimeError):  # the node closed: nothing to tell
            node.links_connecting(*state)

    async def aclose(self) -> None:
        """Stop looking (the peer is closing, its links closed), and tell the engine that
        no dial is in progress any more: a write or read still waiting for a link ends now,
        as any that runs out of links does (a write with ``QuorumNotReached``: durable here).
        Left waiting, it was failed with a bare ``RuntimeError`` when the node stopped, and
        an app that retried the write (reopened) applied it twice."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        node = self._owner.node
        if node is None:
            return
        _, failed = self.pending()  # (this peer's own URL left out)
        dials = self._owner.transport.dials.snapshot()
        closed = {url: CLOSED_REASON for url, link in dials.items() if not link.state.failed}
        with contextlib.suppress(RuntimeError, PeerFailed):  # (closed or failed: nothing to tell)
            node.links_connecting(0, {**closed, **failed})
