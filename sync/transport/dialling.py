"""Whom a peer dials and whose links it refuses, and what its engine hears of the dials.

* **Whom it dials.** The configured URLs (``peers=`` of ``Peer.open``) when it starts,
  for as long as it runs; with ``dial_learned``, also the address of every peer it learns
  of (from the store at open, and from the engine's ``Persist`` of peer records:
  :meth:`Dialling.learned`), as soon as it is learned or changes. Its own URL, and the
  address of a replica forgotten here, are not dialled. When a replica's address changes
  (its newer card says it listens elsewhere, or nowhere) or it is forgotten, its old
  address is no longer dialled (``Transport.undial``: a link open over it stays until it
  ends), unless it is a configured URL or another known replica has it: a peer that moved
  (a new port after a restart, a new IP) leaves no dialler behind, redialling a dead
  address with backoff and counted as connecting.
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
        """A peer record: remember its address (None, or not a ``ws://``/``wss://`` URL: it
        has none) and whether the replica is forgotten here; with ``dial_learned``, dial
        the address it has now and stop dialling the one it had (:meth:`_retarget`)."""
        owner = self._owner
        if replica_id == owner.replica_id:
            return
        before = self._target(replica_id)
        if forgotten:
            self.forgotten.add(replica_id)
        if address and address.startswith(("ws://", "wss://")) and address != owner.url:
            self.addresses[replica_id] = address
        else:
            self.addresses.pop(replica_id, None)
        self._retarget(before, self._target(replica_id))

    def _target(self, replica_id: str) -> str | None:
        """The learned address dialled for ``replica_id`` (None: none, or it is forgotten)."""
        return None if replica_id in self.forgotten else self.addresses.get(replica_id)

    def _retarget(self, old: str | None, new: str | None) -> None:
        """A replica's learned address was ``old`` and is ``new`` now (either None: none):
        with ``dial_learned``, dial ``new``, and stop dialling ``old`` unless the operator
        asked for it (a configured URL) or another replica still has it; then tell the
        engine."""
        owner = self._owner
        if old == new or not owner.dial_learned or owner.node is None:
            return
        if new is not None:
            owner.transport.dial([new])
        kept = old in self.configured or any(self._target(r) == old for r in self.addresses)
        if old is not None and not kept:
            owner.transport.undial(old)
        self.watch()

    def refuse(self, info: PeerInfo) -> str | None:
        """Why a link from ``info`` is refused (None: it is not)."""
        if info.replica_id in self.forgotten:
            return FORGOTTEN_REASON
        return None

    def unforgotten(self, replica_id: str) -> None:
        """``replica_id`` is a member again: accept its links, dial it if we would."""
        self.forgotten.discard(replica_id)
        self._retarget(None, self._target(replica_id))

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
