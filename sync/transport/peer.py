"""``Peer``: the embedding API — one replica, its store and its links, in this process.

>>> async def main() -> None:                                      # doctest: +SKIP
...     async with Peer.open("phone.db", listen="127.0.0.1:0",
...                          peers=["ws://127.0.0.1:8765"], secret=b"group secret") as peer:
...         cart = peer.orset("cart:alice")
...         await cart.add("milk")                  # durable here; replicates in the background
...         await cart.add("eggs", w=2, timeout=2)  # or QuorumNotReached (durable here anyway)
...         print(await cart.value(r=2))            # joined from 2 replicas, read repair

Contract.

* ``Peer.open(...)`` is awaitable *and* an async context manager; :meth:`Peer.aclose` (or
  leaving the ``async with``) commits what is pending, closes every link (1001) and the
  store; a write still waiting for acks then ends with ``QuorumNotReached`` (durable
  here). Opening an existing database resumes it: same replica id, data, hints, peers.
* Handles (``gcounter``, ``pncounter``, ``lww``, ``mvregister``, ``orset``, ``ormap``, in
  :mod:`sync.transport.handles`) expose the CRDT's mutators without the replica argument,
  each taking ``w=``, ``timeout=`` and ``strict=`` and returning a
  :class:`~sync.effects.WriteResult`; a missed quorum raises
  :class:`~sync.errors.QuorumNotReached` (carrying the result: durable here, replicates
  later). Reads take ``r=``, ``timeout=``, ``strict=``; a missed read quorum raises
  :class:`~sync.errors.ReadQuorumNotReached`. A key holds one type: a handle of another
  type raises ``TypeError`` (when it is made if this replica knows the key, else at the
  write). Values that are not JSON raise ``TypeError`` and change nothing.
* Kind clashes: two peers that wrote one key offline as two types both keep their object
  (an object is named by its key and type), and the group converges on both. The clash is
  logged once per key (WARNING), listed by ``peer.status()`` (``kind_clashes``; ``GET
  /status`` shows the count) and by ``shoal inspect``; a handle of either type reads its
  object, and writes to the key raise :class:`~sync.errors.KindClash` naming both types.
* ``peer.delete(key)`` (or a handle's ``delete()``) deletes an object everywhere: the kind's
  observed reset, written and replicated like any write (a concurrent update survives it; an
  LWW register gets a timestamped tombstone, which a later ``set`` beats). Afterwards the
  key reads as the empty value and ``Replica.keys()`` leaves it out. A key that holds nothing
  here raises ``KeyError`` and nothing changes.
* Sizes: a value that could not travel in one message is refused at the call with
  :class:`~sync.errors.ValueTooLarge`, before anything changes (``max_value_bytes``, a
  :class:`~sync.config.ReplicaConfig` field that ``Peer.open`` takes: half of
  ``max_message_bytes`` by default, i.e. 2 MiB; see :mod:`sync.transport.handles`).
* Where a write is: each :class:`~sync.effects.WriteResult` carries its log dot;
  ``peer.whereabouts(result)`` (or ``(key)``) says where it is durable now (here, at which
  homes, held as hints by which relays), ``peer.watch(result)`` yields that record again at
  each change until every home has the write, and the status counts our writes not yet known
  to be at every home (``pending_propagation``).
* Writes and reads right after ``open``: links still being dialled count as reachable until
  the operation's timeout (a write with ``w=2`` waits for the peer it is dialling); an
  operation fails fast only once every dial it could wait for has failed, its error naming
  them.
* ``peer.subscribe(key)`` is an async iterator of the key's new values, local or remote
  (``peer.subscribe(prefix=P)``: ``(key, value)`` pairs for every key starting with ``P``),
  with a bounded backlog for a reader that falls behind: the latest value of each key is
  always delivered (a prefix subscription that falls too many keys behind ends with
  ``SubscriptionOverflow``; see :mod:`sync.transport.subscription`).
* Health: ``peer.status()`` (:mod:`sync.transport.status`); with ``listen``, the same
  figures on ``GET /status`` and ``GET /metrics`` of the websocket port
  (:mod:`sync.transport.http`; ``/metrics`` needs the ``cli`` extra), open to anyone who
  can reach the port, turned off (``http=False``) or behind a bearer token (``http=TOKEN``).
* Why a peer is offline: ``peer.links()`` gives, per configured URL, a
  :class:`~sync.transport.dialstate.PeerLink` (its :class:`~sync.transport.dialstate.DialState`
  (connected, connecting, unreachable, wrong secret, TLS failed, forgotten, version
  mismatch, refused...) and the last error); ``await peer.connected(timeout=...)`` waits
  until each configured peer is connected or has failed with a reason and returns a
  :class:`~sync.transport.dialstate.Connectivity` (which are up, why the others are not).
  Listen addresses and peer URLs are checked by ``Peer.open`` (``ValueError`` naming the
  value) before anything starts, and the listen address is bound before the database is
  opened (a busy port is an ``OSError`` naming it, and the database is left untouched).
* Failure: when the store refuses a commit the peer stops serving (``PeerFailed``, see
  :mod:`sync.transport.node`); :attr:`Peer.failure` holds the error and ``await
  peer.wait_failed()`` returns it, so that a supervisor can exit and restart.
* Membership: ``peer.forget(id)`` forgets a replica for good *on this peer* (an operator's
  decision, logged at WARNING with who asked; forget it on each peer: no peer tells
  another), refusing an id it does not know; ``peer.unforget(id)`` undoes it
  (:mod:`sync.transport.operator`, also behind ``shoal forget``). ``Peer.open(...,
  home=False)`` opens a short-lived replica (a script, a test client) that every peer
  leaves off the ring; a device is a home (the default).
* Identity: a database the store finds copied or restored at open (without its
  ``.shoal-id`` sidecar, or onto another file) gets a new replica id, logged at WARNING
  with the old one; if peers show that this database was restored or copied (the engine's
  ``IdentityConflict``), the peer rotates its replica id in the store and restarts its node
  and links under the new id in place (logged at CRITICAL); operations in flight at that
  moment fail with ``RuntimeError`` and may be retried. The old id is refused here; other
  peers keep it as a home that went down until their operators forget it (or
  ``home_down_window`` passes).
* LWW timestamps: wall time from ``time.time()`` in the handles, passed to the CRDT as
  ``now_ms``; the engine's own clock is the node's monotonic clock (see :mod:`sync.transport.node`).

Structure. ``Peer`` wires the parts together and owns the lifecycle (open, restart under a
new id, fail-stop, close); each part has a module: ``open``'s checks and configuration
(:mod:`sync.transport.opening`), subscriptions, warnings and watchers
(:mod:`sync.transport.changefeed`), whom it dials and refuses
(:mod:`sync.transport.dialling`), listing and deleting keys (:mod:`sync.transport.keyops`),
the node, transport, handles and status in theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from store import Store
from sync.config import ReplicaConfig, check_key
from sync.effects import IdentityConflict, KindClashFound, Persist, WriteResult
from sync.errors import PeerFailed
from sync.replica import Replica, Whereabouts
from sync.ring import PartitionMemo
from sync.signing import Signer

from .addresses import bind_listen, parse_listen
from .auth import AdminReply, AdminRequest, Identity, PeerInfo
from .changefeed import ChangeFeed
from .codec import WireCodec
from .connection import Transport, TransportConfig
from .dialling import Dialling
from .dialstate import FORGOTTEN_REASON, Connectivity, PeerLink, Until
from .handles import (
    GCounterHandle,
    LWWHandle,
    MVRegisterHandle,
    ORMapHandle,
    ORSetHandle,
    PNCounterHandle,
)
from .http import make_http_hook
from .keyops import delete_key, live_keys
from .metrics import render_metrics
from .node import Node, ReplicaLike, loaded_from_store
from .opening import Opening, http_access, identity_warning, plan_open
from .operator import admin_reply
from .status import public_status_json, status_snapshot
from .subscription import Subscription

__all__ = ["Peer"]

log = logging.getLogger("shoal.peer")


class Peer:
    """One replica of a sync group, embedded in this process. Make one with :meth:`open`."""

    def __init__(
        self,
        store: Store,
        config: ReplicaConfig,
        identity: Identity,
        transport_config: TransportConfig,
        *,
        server_ssl: ssl.SSLContext | None,
        client_ssl: ssl.SSLContext | None,
        subscriber_queue: int,
        sibling_warning: int = 8,
        http: bool | str | bytes = True,
    ) -> None:
        self.store = store
        self.config = config
        self.group = identity.group
        self.started = time.monotonic()  # (uptime: a wall clock stepped back made it negative)
        # Subscriptions, the sibling and kind clash warnings, the watchers of peer.watch.
        self._feed = ChangeFeed(subscriber_queue, sibling_warning)
        self._closed = False
        self._closing: asyncio.Task[None] | None = None  # (see aclose)
        self._rotating = False
        self._background: set[asyncio.Task[Any]] = set()
        self.failure: PeerFailed | None = None
        self._ended = asyncio.Event()  # set when it fails or closes (see wait_failed)
        self.dial_learned = False
        self.advertise: str | None = None
        # Whom this peer dials and refuses, and what its engine hears of the dials.
        self._dials = Dialling(self, lambda: self._closed)
        enabled, token = http_access(http)
        self._transport_args: dict[str, Any] = {
            "server_ssl": server_ssl,
            "client_ssl": client_ssl,
            "http": make_http_hook(
                self._status_body, self._metrics_body, enabled=enabled, token=token
            ),
            "refuse": self._dials.refuse,
            "room": self._room,
        }
        self._transport_config = transport_config
        self.transport = self._make_transport(identity)
        self._bound: tuple[str, int] | None = None  # (host, port) listened on
        self.node: Node = None  # type: ignore[assignment]  # set by _start

    def _make_transport(self, identity: Identity) -> Transport:
        return Transport(
            identity, self, WireCodec(), self._transport_config, **self._transport_args
        )

    # -- opening and closing -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path_or_url: str | Path,
        *,
        listen: str | None = None,
        peers: Iterable[str] = (),
        n: int = 3,
        w: Any = 1,
        r: Any = 1,
        secret: bytes | str | None = None,
        site: str | None = None,
        relay: bool = False,
        group: str = "default",
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_ca: str | None = None,
        synchronous: str = "FULL",
        subscriber_queue: int = 100,
        sibling_warning: int = 8,
        transport: TransportConfig | None = None,
        dial_learned: bool = False,
        advertise: str | None = None,
        http: bool | str | bytes = True,
        home: bool = True,
        **engine: Any,
    ) -> Opening[Peer]:
        """Open (or create, or resume) a peer; see the module docstring.

        ``engine`` passes further :class:`~sync.config.ReplicaConfig` fields (for example
        ``write_timeout``, ``anti_entropy_interval``, ``partitions``, ``seed``).
        ``tls_cert``/``tls_key`` serve ``wss://``; ``tls_ca`` is a CA file to trust when
        dialling ``wss://`` peers (the system's trust store otherwise). ``dial_learned``:
        also dial the addresses of peers learned from others (off by default, so that a
        peer opened without ``peers`` stays off line). ``advertise``: the URL other peers
        should dial to reach this one (default: the listening URL; set it when listening on
        ``0.0.0.0`` or behind a port mapping). ``sibling_warning``: a multi-value register
        with more siblings than this is logged as a warning (once, until it is resolved);
        siblings are never dropped, whatever their number. ``http``: ``GET /status`` and
        ``GET /metrics`` on the listening port are open to anyone who can reach it
        (``True``, the default), turned off (``False``: 404), or served only to requests
        carrying ``Authorization: Bearer TOKEN`` (a ``str`` or ``bytes`` token: 401 without).
        ``home``: this peer takes its share of the ring (the default, for a device); pass
        ``False`` for a short-lived replica (a script, a test client): every peer leaves it
        off the ring, so nothing ever waits for it.

        ``ValueError`` (naming the value) for a listen address that is not ``HOST:PORT``
        with a port in 0..65535, or a peer URL that is not ``ws://``/``wss://`` with a host
        and a valid port; nothing is opened then. The listen address is taken before the
        database is opened: one this peer cannot have raises ``OSError`` ``cannot listen on
        HOST:PORT: WHY`` (a port in use, a host that is not this machine) and the database
        is left as it was, not even created.
        """
        plan = plan_open(
            path_or_url,
            listen=listen,
            peers=peers,
            n=n,
            w=w,
            r=r,
            secret=secret,
            site=site,
            relay=relay,
            group=group,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
            synchronous=synchronous,
            subscriber_queue=subscriber_queue,
            sibling_warning=sibling_warning,
            transport=transport,
            advertise=advertise,
            http=http,
            home=home,
            engine=engine,
        )

        async def factory() -> Peer:
            # The address first: one the peer cannot have fails the open before the database
            # is touched (a new one is not created, an existing one not even opened).
            address = None if listen is None else parse_listen(listen)
            sockets = [] if address is None else await bind_listen(*address)
            try:
                store = await plan.open_store()
            except BaseException:
                for sock in sockets:
                    sock.close()
                raise
            peer: Peer | None = None
            try:
                identity_warning(store, path_or_url)
                peer = cls(
                    store,
                    plan.config,
                    plan.identity(store),
                    plan.transport,
                    server_ssl=plan.server_ssl,
                    client_ssl=plan.client_ssl,
                    subscriber_queue=subscriber_queue,
                    sibling_warning=sibling_warning,
                    http=http,
                )
                peer.dial_learned = dial_learned
                peer.advertise = advertise
                if address is not None:  # where a restart under a new id listens again
                    peer._bound = (address[0], sockets[0].getsockname()[1])
                await peer._start(sockets, list(plan.peers))
            except BaseException:
                if peer is not None:
                    await peer.aclose()  # stops what started, closes the store
                else:
                    await store.aclose()
                for sock in sockets:  # (closing one _start or the transport closed: a no-op)
                    sock.close()
                raise
            return peer

        return Opening(factory)

    async def _start(self, sockets: list[socket.socket], peers: list[str]) -> None:
        """Start the node, listen on ``sockets`` (bound; closed here if this fails) and dial
        ``peers``."""
        try:
            await self._start_node()
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        if sockets:
            url = await self.transport.listen_on(sockets)
            self.transport.me = dataclasses.replace(
                self.transport.me, address=self.advertise or url
            )
            self.node.announce(self.transport.me.address)  # (before anyone links: see dial)
        # Before any operation of the caller reaches the engine, it hears of these dials.
        self._dials.dial(peers)

    async def _start_node(self) -> None:
        # Objects are loaded on demand: fold the log written since the last clean close into
        # them (O(that log), not O(keys)), then read everything but the objects (all of them
        # only for a small database).
        await self.store.fold_log()
        stored = await self.store.load_start(self.config.objects_at_start)
        for rid, row in stored.peers.items():
            self._dials.learned(rid, row.address, row.forgotten)
        # The node's clock reads as Unix seconds (see sync.transport.node): start there.
        replica = Replica(
            self.config,
            self.store.replica_id,
            loaded_from_store(stored),
            now=time.time(),
            signer=Signer(self.store.signing_key),
            partition_of=memo
            if isinstance(memo := self.store.partition_of, PartitionMemo)
            else None,
        )
        self.node = Node(
            replica,
            self.store,
            self.transport.send,
            close_peer=self.transport.close_peer,
            on_changed=self._feed.changed,
            on_effect=self._effect,
            on_fatal=self._fatal,
            on_round=self._feed.round,
        )
        self._dials.restart()
        self.node.start()

    def _fatal(self, error: PeerFailed) -> None:
        """The store failed to commit: stop talking to the group (see ``Node._fail_stop``)."""
        log.critical("peer %s stops serving: %s", self.replica_id, error)
        self.failure = error
        self._ended.set()
        self.transport.dials.end(error)
        task = asyncio.get_running_loop().create_task(self.transport.aclose())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _room(self) -> None:
        if self.node is not None:
            await self.node.room()

    async def aclose(self) -> None:
        """Commit what is pending, close links and store. Idempotent: every call returns
        once the peer is closed, a call made while another one closes included.

        The close runs in a task of its own, to its end whoever waits for it: a caller
        cancelled while it waits (``asyncio.wait_for``, a task group, Ctrl-C) still waits
        for the close, then raises ``CancelledError``. Cut short, it left the engine's tasks
        running on a closed store, and every later ``aclose`` returned at once.
        """
        if self._closing is None:
            self._closed = True
            self._ended.set()
            self.transport.dials.end(self.failure or RuntimeError("the peer is closed"))
            self._closing = asyncio.get_running_loop().create_task(
                self._close(), name="shoal-peer-close"
            )
        closing = self._closing
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            if not closing.done():  # (the caller was cancelled, not the close)
                await asyncio.wait({closing})
            raise

    async def _close(self) -> None:
        try:
            # A restart under a new id may be under way: let it finish (it checks _closed),
            # then close whatever transport and node are current.
            for task in list(self._background):
                with contextlib.suppress(Exception):
                    await task
            await self.transport.aclose()
            await self._dials.aclose()
            if self.node is not None:
                await self.node.aclose()
        finally:
            self._feed.close()  # watchers see the peer closed, subscriptions end
            await self.store.aclose()

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- identity ----------------------------------------------------------------------------

    @property
    def replica_id(self) -> str:
        return self.transport.me.replica_id

    @property
    def url(self) -> str | None:
        """``ws://HOST:PORT`` (or ``wss://``) if listening, else None."""
        return self.transport.url

    @property
    def replica(self) -> ReplicaLike:
        return self.node.replica

    # -- handles -----------------------------------------------------------------------------

    def gcounter(self, key: str) -> GCounterHandle:
        return GCounterHandle(self, key)

    def pncounter(self, key: str) -> PNCounterHandle:
        return PNCounterHandle(self, key)

    def lww(self, key: str) -> LWWHandle:
        return LWWHandle(self, key)

    def mvregister(self, key: str) -> MVRegisterHandle:
        return MVRegisterHandle(self, key)

    def orset(self, key: str) -> ORSetHandle:
        return ORSetHandle(self, key)

    def ormap(self, key: str) -> ORMapHandle:
        return ORMapHandle(self, key)

    # -- operations --------------------------------------------------------------------------

    async def delete(
        self,
        key: str,
        *,
        kind: str | None = None,
        w: Any = None,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> WriteResult:
        """Delete the object at ``key`` everywhere: an observed reset written as any write is
        (durable here, replicated, ``w`` acks within ``timeout``; a future of its
        :class:`~sync.effects.WriteResult`; a missed quorum raises
        :class:`~sync.errors.QuorumNotReached`). An update concurrent with it survives; an LWW
        register gets a timestamped tombstone (a later ``set`` wins). Afterwards the key
        reads as the empty value of its kind and is no longer listed.

        ``kind`` names the object (None: the one ``key`` holds; with two, a kind clash,
        :class:`~sync.errors.KindClash` says which). ``KeyError`` if ``key`` holds nothing
        live here, ``TypeError`` if it holds another kind: nothing changes. A bad key or
        option raises ``TypeError`` or ``ValueError`` first, as a handle's would.
        """
        check_key(key)
        self.config.write_options(w, strict, timeout)  # bad input before "nothing to delete"
        return await delete_key(self, key, kind, w=w, timeout=timeout, strict=strict)

    def whereabouts(self, write: WriteResult | str) -> Whereabouts:
        """Where a write is durable now, as this peer knows it: ``write`` is a
        :class:`~sync.effects.WriteResult` (that write) or a key (every write of it still in
        this peer's log). A frozen :class:`~sync.replica.Whereabouts`: ``here``, ``homes``,
        ``at_homes`` (the homes known to hold it), ``hints`` (peers holding it as hints for a
        home, such as a relay) and ``everywhere``. Knowledge comes from acks and from the
        peers' summaries (anti-entropy), so it lags reality a little, never leads it.
        ``KeyError`` for a key or write this peer does not hold."""
        if isinstance(write, WriteResult):
            if write.dot is None:
                raise ValueError("this WriteResult carries no log dot")
            return self.node.replica.whereabouts(write.key, write.dot)  # type: ignore[no-any-return]
        if isinstance(write, str):
            return self.node.replica.whereabouts(check_key(write))  # type: ignore[no-any-return]
        raise TypeError(f"expected a WriteResult or a key, got {type(write).__name__}")

    def watch(
        self, write: WriteResult | str, *, timeout: float | None = None
    ) -> AsyncIterator[Whereabouts]:
        """Yield :meth:`whereabouts` of ``write`` now and again each time it changes, until
        every home holds it (the last one yielded has ``everywhere``) or this peer closes.
        ``timeout``: raise ``TimeoutError`` if that takes longer (None: wait as long)."""
        if isinstance(write, str):
            check_key(write)  # at the call, not at the first step
        return self._feed.follow(
            lambda: self.whereabouts(write), lambda: self._closed, timeout, write
        )

    def subscribe(
        self, key: str | None = None, *, prefix: str | None = None, maxsize: int | None = None
    ) -> Subscription:
        """An async iterator of ``key``'s new values (local or remote changes); with
        ``prefix`` instead of ``key``, of ``(key, value)`` for every key starting with it.
        ``RuntimeError`` on a closed peer; a subscription open when the peer closes ends."""
        return self._feed.subscribe(key, prefix=prefix, maxsize=maxsize)

    @property
    def sibling_warning(self) -> int:
        """A register with more siblings than this is logged (see :meth:`open`)."""
        return self._feed.sibling_warning

    @sibling_warning.setter
    def sibling_warning(self, value: int) -> None:
        self._feed.sibling_warning = value

    # (What tests look at: the subscriptions still registered, the replicas forgotten here.)

    @property
    def _subs(self) -> dict[str, list[Subscription]]:
        return self._feed.by_key

    @property
    def _prefix_subs(self) -> list[Subscription]:
        return self._feed.by_prefix

    @property
    def _forgotten(self) -> set[str]:
        return self._dials.forgotten

    def _effect(self, effect: Any) -> None:
        if isinstance(effect, Persist):
            for rec in effect.peers:
                self._dials.learned(rec.replica_id, rec.address, rec.forgotten)
            return
        if isinstance(effect, KindClashFound):
            self._feed.clash_found(effect)
            return
        if isinstance(effect, IdentityConflict) and not self._rotating:
            # Our database was restored or copied: peers hold dots of ours we never issued.
            # The engine already numbers log dots above them; a new replica id keeps the
            # dots inside CRDT states unique too.
            self._rotating = True
            log.critical(
                "identity conflict: %s has seen our log dot %s in partition %s but we only "
                "issued %s; this database was restored or copied. Rotating the replica id "
                "and restarting this peer under the new one.",
                effect.peer,
                effect.seen_seq,
                effect.partition,
                effect.our_seq,
            )
            task = asyncio.ensure_future(self._reincarnate())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _reincarnate(self) -> None:
        """Take a new replica id and restart node and transport under it, in place.

        Operations in flight on the old node fail (``RuntimeError``: closed); the data,
        the listening port, the dialled URLs and the subscriptions carry over.
        """
        new_id = await self.store.rotate_replica_id()
        if self._closed:
            return
        old_transport, old_node = self.transport, self.node
        dials = old_transport.dialling
        await old_transport.aclose()
        await old_node.aclose()
        if self._closed:
            return
        me = dataclasses.replace(
            old_transport.me,
            replica_id=new_id,
            address=None,
            signer=Signer(self.store.signing_key),
        )
        self.transport = self._make_transport(me)
        await self._start([] if self._bound is None else await bind_listen(*self._bound), dials)
        # The old id was this database's previous incarnation, now retired. Links claiming
        # it are refused here; no peer can be told to forget it (only their operators can),
        # so elsewhere it is a home that went down: past home_down_window it no longer holds
        # compaction back.
        old_id = old_transport.me.replica_id
        self._dials.forgotten.add(old_id)
        self._rotating = False
        log.critical("restarted as replica %s (was %s, now retired)", new_id, old_id)

    async def forget(self, replica_id: str, *, by: str = "the embedding application") -> None:
        """Forget ``replica_id`` for good, on this peer (an operator's decision: forget it on
        each peer): it leaves the ring, compaction stops waiting for it, its links are
        refused; logged at WARNING with ``by``. ``ValueError`` for an id this peer does not
        know (or has forgotten already). Undone by :meth:`unforget`."""
        if not isinstance(replica_id, str) or not replica_id:
            raise ValueError(f"replica_id must be a non-empty str, got {replica_id!r}")
        await self.node.forget(replica_id, by=by)
        self._dials.forgotten.add(replica_id)
        self.transport.close_peer(replica_id, 1008, FORGOTTEN_REASON)

    async def unforget(self, replica_id: str, *, by: str = "the embedding application") -> None:
        """Undo :meth:`forget`: ``replica_id`` is a member again and may connect.
        ``ValueError`` if it is not forgotten here."""
        await self.node.unforget(replica_id, by=by)
        self._dials.unforgotten(replica_id)

    # -- links and failure -------------------------------------------------------------------

    def links(self) -> dict[str, PeerLink]:
        """Per configured peer URL (``peers=``), its state and last error, now."""
        snapshot = self.transport.dials.snapshot()
        return {url: snapshot[url] for url in self._dials.configured if url in snapshot}

    async def connected(
        self, timeout: float | None = 10.0, *, until: Until = "settled"
    ) -> Connectivity:
        """Wait for the configured peers; return which are up and why the others are not.

        ``until="settled"`` (the default) returns once every configured peer is connected
        or has failed at least once with a reason (unreachable, wrong secret, ...), so an
        app learns at once that a peer cannot be reached; ``"any"`` as soon as one is
        connected; ``"all"`` only when all are (or at the timeout). Never more than
        ``timeout`` seconds (None: no limit), and never raises for a timeout: the result
        says where each peer stands (``Connectivity.up``, ``.down``, ``.reasons()``).
        Peers keep being dialled in the background whatever this returns. ``RuntimeError``
        once the peer is closed (at once if it is when called), ``PeerFailed`` once it
        stopped serving.
        """
        return await self.transport.dials.wait(self._dials.configured, until, timeout)

    async def wait_failed(self) -> PeerFailed:
        """Wait until this peer stops serving after a failed commit; return the error.
        ``RuntimeError`` once the peer is closed without having failed: a supervisor
        waiting for a failure learns that none will come."""
        await self._ended.wait()
        if self.failure is None:
            raise RuntimeError("the peer is closed")
        return self.failure

    def keys(
        self, prefix: str | None = None, *, after: str | None = None, page: int = 500
    ) -> AsyncIterator[str]:
        """Every key holding a live object (with ``prefix``, if given; above ``after``, if
        given), sorted, read from the store ``page`` at a time, merged with what this peer
        changed that the store does not hold yet: a key written before the call (even if
        its write was not awaited) is listed, and a key deleted before the call (here, or
        anywhere and replicated here) is not, even while the store still holds it live.
        Keys written or deleted while iterating may or may not be. A bad ``prefix`` or
        ``after`` (see :func:`~sync.config.check_key`) raises at the call."""
        for name, text in (("prefix", prefix), ("after", after)):
            if text is not None:
                check_key(text, name, empty_ok=True)
        return live_keys(self, prefix, after, page)

    async def status(self) -> dict[str, Any]:
        """Health: connected peers, lag per peer, pending hints, log size (JSON-ready)."""
        return self.status_now()

    def status_now(self) -> dict[str, Any]:
        """The same as :meth:`status`, without awaiting (see :mod:`sync.transport.status`)."""
        return status_snapshot(self)

    def _status_body(self) -> str:
        return public_status_json(self)

    def _metrics_body(self) -> tuple[str, str]:
        return render_metrics(status_snapshot(self))

    # -- LinkHandler (called by the transport) -----------------------------------------------

    # After the node closed (only while this peer shuts down) inputs are refused with
    # RuntimeError, and after a fail-stop with PeerFailed: nothing is left to apply them
    # to, so they are dropped.

    def link_up(self, info: PeerInfo) -> None:
        with contextlib.suppress(RuntimeError, PeerFailed):
            self.node.peer_up(info.replica_id, info.address, info.site, info.relay, info.home)
        self._dials.watch()

    def link_down(self, peer_id: str) -> None:
        with contextlib.suppress(RuntimeError, PeerFailed):
            self.node.peer_down(peer_id)
        self._dials.watch()

    def _dial_state(self) -> tuple[int, dict[str, str]]:
        """(how many dialled URLs are still connecting, {URL: why} of those whose last dial
        failed): see :meth:`~sync.transport.dialling.Dialling.pending`."""
        return self._dials.pending()

    def link_message(self, peer_id: str, message: Any) -> None:
        with contextlib.suppress(RuntimeError, PeerFailed):
            self.node.receive(peer_id, message)

    async def admin(self, request: AdminRequest) -> AdminReply:
        return await admin_reply(self, request)
