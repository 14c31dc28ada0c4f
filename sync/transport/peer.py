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
  store. Opening an existing database resumes it: same replica id, data, hints, peers.
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
  with a bounded queue (``maxsize``; when a slow consumer falls behind, the oldest queued
  values are dropped: the latest value is always delivered; see
  :mod:`sync.transport.subscription`).
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
  value) before anything starts.
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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from store import Store, describe_database
from sync.config import ReplicaConfig
from sync.effects import IdentityConflict, KindClashFound, Persist, WriteResult
from sync.errors import KindClash, PeerFailed
from sync.replica import Replica, Whereabouts
from sync.ring import partition_of
from sync.signing import Signer

from .addresses import check_peer_url, parse_listen
from .auth import AdminReply, AdminRequest, Identity, PeerInfo
from .codec import WireCodec
from .connection import Transport, TransportConfig
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
from .metrics import render_metrics
from .node import Node, ReplicaLike, loaded_from_store
from .operator import admin_reply
from .status import public_status_json, status_snapshot
from .subscription import Subscription

__all__ = ["Peer"]

log = logging.getLogger("shoal.peer")

#: Seconds between two looks at the transport's dial state while a dial is in progress.
DIAL_POLL = 0.02


def _http_access(http: bool | str | bytes) -> tuple[bool, bytes | None]:
    """``(enabled, token)`` of the ``http`` option of :meth:`Peer.open`."""
    if isinstance(http, bool):
        return http, None
    if isinstance(http, str):
        http = http.encode()
    if not isinstance(http, bytes):
        raise TypeError(f"http must be True, False or a token (str), got {type(http).__name__}")
    if not http.strip():
        raise ValueError("http token must not be empty")
    return True, http


def _identity_warning(store: Store, path_or_url: str | Path) -> None:
    if store.rekeyed:
        was = store.previous_replica_ids[-1] if store.previous_replica_ids else "unknown"
        log.warning(
            "database %s had no signing key (made by an older shoal): new key and replica id "
            "%s (was %s); peers see a new replica, and its writes made before are reconciled "
            "by state transfer",
            describe_database(path_or_url),
            store.replica_id,
            was,
        )
        return
    if not store.identity_rotated:
        return
    was = store.previous_replica_ids[-1] if store.previous_replica_ids else "unknown"
    log.warning(
        "database %s was copied or restored: new replica id %s (was %s); peers will see a "
        "new replica; keep the .shoal-id sidecar with the file when moving it",
        describe_database(path_or_url),
        store.replica_id,
        was,
    )


def _secret_bytes(secret: bytes | str | None) -> bytes:
    if secret is None:
        return b""
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise TypeError(f"secret must be bytes or str, got {type(secret).__name__}")
    return secret


def _ssl_contexts(
    tls_cert: str | None, tls_key: str | None, tls_ca: str | None
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    server = None
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise ValueError("TLS needs both a certificate and a key (tls_cert and tls_key)")
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(tls_cert, tls_key)
    # The client context is made when a wss:// peer is first dialled (loading the system's
    # CA certificates costs tens of milliseconds per open, and most peers never need them),
    # unless a CA file is given: then it is made now, so a bad file fails the open.
    client = ssl.create_default_context(cafile=tls_ca) if tls_ca else None
    return server, client


class _Opening:
    """What :meth:`Peer.open` returns: await it, or use it as ``async with``."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._peer: Peer | None = None

    def __await__(self) -> Generator[Any, None, Peer]:
        return self._factory().__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> Peer:
        self._peer = await self._factory()
        return self._peer

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._peer is not None:
            await self._peer.aclose()


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
        self.sibling_warning = sibling_warning
        self._many_siblings: set[str] = set()  # registers over the warning, reported once
        self._clashes_logged: set[str] = set()  # keys whose kind clash was logged
        self.config = config
        self.group = identity.group
        self.started = time.time()
        self._subscriber_queue = subscriber_queue
        self._subs: dict[str, list[Subscription]] = {}
        self._prefix_subs: list[Subscription] = []
        self._closed = False
        self._rotating = False
        self._background: set[asyncio.Task[Any]] = set()
        self.failure: PeerFailed | None = None
        self._failed = asyncio.Event()
        self._configured: list[str] = []
        enabled, token = _http_access(http)
        self._transport_args: dict[str, Any] = {
            "server_ssl": server_ssl,
            "client_ssl": client_ssl,
            "http": make_http_hook(
                self._status_body, self._metrics_body, enabled=enabled, token=token
            ),
            "refuse": self._refuse,
            "room": self._room,
        }
        self._transport_config = transport_config
        self.transport = self._make_transport(identity)
        self._bound: str | None = None  # "HOST:PORT" actually listened on
        self.dial_learned = False
        self.advertise: str | None = None
        self._addresses: dict[str, str] = {}
        self._forgotten: set[str] = set()
        self.node: Node = None  # type: ignore[assignment]  # set by _start
        # What the engine was last told of the dials (links_connecting), and the task that
        # keeps looking while a dial is in progress.
        self._dial_seen: tuple[int, dict[str, str]] | None = None
        self._dial_task: asyncio.Task[None] | None = None
        # peer.watch: its iterators wait on this event, set after each engine round.
        self._round_done = asyncio.Event()
        self._watchers = 0

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
    ) -> _Opening:
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
        and a valid port; nothing is opened then.
        """
        if isinstance(sibling_warning, bool) or not isinstance(sibling_warning, int):
            raise TypeError(f"sibling_warning must be an int, got {sibling_warning!r}")
        if sibling_warning < 1:
            raise ValueError(f"sibling_warning must be >= 1, got {sibling_warning}")
        if advertise is not None:
            check_peer_url(advertise, "advertise URL")
        _http_access(http)
        if isinstance(peers, str):
            raise ValueError(f"peers must be a list of URLs, got the string {peers!r}")
        peers = list(dict.fromkeys(peers))
        if isinstance(path_or_url, str) and not path_or_url:
            raise ValueError("path_or_url must name a database")
        key = _secret_bytes(secret)
        if (listen is not None or peers) and not key:
            raise ValueError("a group secret is required to listen or to dial peers")
        if listen is not None:
            parse_listen(listen)
        for url in peers:
            check_peer_url(url)
        config = ReplicaConfig(n=n, w=w, r=r, site=site, relay=relay, home=home, **engine)
        server_ssl, client_ssl = _ssl_contexts(tls_cert, tls_key, tls_ca)
        # One frame limit for websockets (max_size) and the codec: the engine's.
        tconfig = dataclasses.replace(
            transport or TransportConfig(), max_message_bytes=config.max_message_bytes
        )

        async def factory() -> Peer:
            store = await Store.open(
                path_or_url,
                synchronous=synchronous,
                partitions=config.partitions,
                partition_of=lambda k: partition_of(k, config.partitions),
            )
            peer: Peer | None = None
            try:
                _identity_warning(store, path_or_url)
                ident = Identity(
                    store.replica_id,
                    group,
                    key,
                    None,
                    site,
                    relay,
                    home,
                    signer=Signer(store.signing_key),
                )
                peer = cls(
                    store,
                    config,
                    ident,
                    tconfig,
                    server_ssl=server_ssl,
                    client_ssl=client_ssl,
                    subscriber_queue=subscriber_queue,
                    sibling_warning=sibling_warning,
                    http=http,
                )
                peer.dial_learned = dial_learned
                peer.advertise = advertise
                await peer._start(listen, peers)
            except BaseException:
                if peer is not None:
                    await peer.aclose()  # stops what started, closes the store
                else:
                    await store.aclose()
                raise
            return peer

        return _Opening(factory)

    async def _start(self, listen: str | None, peers: list[str]) -> None:
        # Objects are loaded on demand: fold the log written since the last clean close into
        # them (O(that log), not O(keys)), then read everything but the objects (all of them
        # only for a small database).
        await self.store.fold_log()
        stored = await self.store.load_start(self.config.objects_at_start)
        for rid, row in stored.peers.items():
            self._learned(rid, row.address, row.forgotten)
        # The node's clock reads as Unix seconds (see sync.transport.node): start there.
        replica = Replica(
            self.config,
            self.store.replica_id,
            loaded_from_store(stored),
            now=time.time(),
            signer=Signer(self.store.signing_key),
        )
        self.node = Node(
            replica,
            self.store,
            self.transport.send,
            close_peer=self.transport.close_peer,
            on_changed=self._changed,
            on_effect=self._effect,
            on_fatal=self._fatal,
            on_round=self._round,
        )
        self._dial_seen = None
        self.node.start()
        if listen is not None:
            host, port = parse_listen(listen)
            try:
                url = await self.transport.listen(host, port)
            except OSError as exc:
                why = os.strerror(exc.errno) if exc.errno else str(exc)
                raise OSError(exc.errno, f"cannot listen on {listen}: {why}") from exc
            self._bound = f"{host}:{url.rsplit(':', 1)[1]}"
            self.transport.me = dataclasses.replace(
                self.transport.me, address=self.advertise or url
            )
        if not self._configured:
            self._configured = list(peers)
        self.transport.dial(peers)
        if self.dial_learned:
            self.transport.dial(a for r, a in self._addresses.items() if r not in self._forgotten)
        # Before any operation of the caller reaches the engine: the dials just started.
        self._watch_dials()

    def _fatal(self, error: PeerFailed) -> None:
        """The store failed to commit: stop talking to the group (see ``Node._fail_stop``)."""
        log.critical("peer %s stops serving: %s", self.replica_id, error)
        self.failure = error
        self._failed.set()
        task = asyncio.get_running_loop().create_task(self.transport.aclose())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _learned(self, replica_id: str, address: str | None, forgotten: bool) -> None:
        if replica_id == self.replica_id:
            return
        if forgotten:
            self._forgotten.add(replica_id)
            return
        if address and address.startswith(("ws://", "wss://")) and address != self.url:
            fresh = self._addresses.get(replica_id) != address
            self._addresses[replica_id] = address
            if fresh and self.dial_learned and self.node is not None:
                self.transport.dial([address])
                self._watch_dials()

    async def _room(self) -> None:
        if self.node is not None:
            await self.node.room()

    def _refuse(self, info: PeerInfo) -> str | None:
        if info.replica_id in self._forgotten:
            return FORGOTTEN_REASON
        return None

    async def aclose(self) -> None:
        """Commit what is pending, close links and store. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            # A restart under a new id may be under way: let it finish (it checks _closed),
            # then close whatever transport and node are current.
            for task in list(self._background):
                with contextlib.suppress(Exception):
                    await task
            await self.transport.aclose()
            if self._dial_task is not None:
                self._dial_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._dial_task
            if self.node is not None:
                await self.node.aclose()
        finally:
            self._round_done.set()  # watchers see the peer closed
            for subs in [*self._subs.values(), self._prefix_subs]:
                for sub in list(subs):
                    sub.close()
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
        live here, ``TypeError`` if it holds another kind: nothing changes.
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        if kind is None:
            held = await self.node.kinds(key)
            if not held:
                raise KeyError(f"nothing to delete: {key!r} is not held here")
            if len(held) > 1:
                raise KindClash(key, held)
            kind = held[0]
        makers = {
            "gcounter": self.gcounter,
            "pncounter": self.pncounter,
            "lww": self.lww,
            "mvregister": self.mvregister,
            "orset": self.orset,
            "ormap": self.ormap,
        }
        maker = makers.get(kind) if isinstance(kind, str) else None
        if maker is None:
            raise ValueError(f"unknown CRDT kind {kind!r}; known: {', '.join(makers)}")
        return await maker(key).delete(w=w, timeout=timeout, strict=strict)

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
            return self.node.replica.whereabouts(write)  # type: ignore[no-any-return]
        raise TypeError(f"expected a WriteResult or a key, got {type(write).__name__}")

    async def watch(
        self, write: WriteResult | str, *, timeout: float | None = None
    ) -> AsyncIterator[Whereabouts]:
        """Yield :meth:`whereabouts` of ``write`` now and again each time it changes, until
        every home holds it (the last one yielded has ``everywhere``) or this peer closes.
        ``timeout``: raise ``TimeoutError`` if that takes longer (None: wait as long)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last: Whereabouts | None = None
        self._watchers += 1
        try:
            while True:
                changed = self._round_done  # taken before looking: no change is missed
                now = self.whereabouts(write)
                if now != last:
                    yield now
                    last = now
                if now.everywhere or self._closed:
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

    def _round(self) -> None:
        """After each engine round: wake the watchers (if any) to look again."""
        if self._watchers:
            done, self._round_done = self._round_done, asyncio.Event()
            done.set()

    def subscribe(
        self, key: str | None = None, *, prefix: str | None = None, maxsize: int | None = None
    ) -> Subscription:
        """An async iterator of ``key``'s new values (local or remote changes); with
        ``prefix`` instead of ``key``, of ``(key, value)`` for every key starting with it."""
        if prefix is not None:
            if key is not None:
                raise TypeError("subscribe takes a key or a prefix, not both")
            if not isinstance(prefix, str):
                raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
            sub = Subscription(
                None, maxsize or self._subscriber_queue, self._unsubscribe, prefix=prefix
            )
            self._prefix_subs.append(sub)
            return sub
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        sub = Subscription(key, maxsize or self._subscriber_queue, self._unsubscribe)
        self._subs.setdefault(key, []).append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub.key is None:
            if sub in self._prefix_subs:
                self._prefix_subs.remove(sub)
            return
        subs = self._subs.get(sub.key)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs[sub.key]

    def _changed(self, key: str, objects: Any) -> None:
        # ``objects``: the key's objects by kind at the change (the engine may have evicted
        # them from its cache since; they are still the latest of this change).
        if not objects:
            return
        register = objects.get("mvregister")
        if register is not None:
            self._check_siblings(key, register.value)
        subs = self._subs.get(key)
        matching = (
            [s for s in self._prefix_subs if s.prefix is not None and key.startswith(s.prefix)]
            if self._prefix_subs
            else ()
        )
        if (not subs and not matching) or len(objects) != 1:
            return  # (a clashed key has no one value: its clash was logged)
        value = next(iter(objects.values())).value  # a fresh structure: no copy of the state
        for sub in subs or ():
            sub.push(value)
        for sub in matching:
            sub.push((key, value))

    def _check_siblings(self, key: str, siblings: Any) -> None:
        """Warn (once) when a register piles up siblings: a sign that writers never read
        before they write. They are reported, never dropped: dropping one would lose a write."""
        if len(siblings) <= self.sibling_warning:
            self._many_siblings.discard(key)
            return
        if key in self._many_siblings:
            return
        self._many_siblings.add(key)
        shown = ", ".join(repr(v)[:40] for v in siblings[:3])
        log.warning(
            "register %r has %d siblings (warning above %d); first of them: %s. Resolve them "
            "with a set() made after reading them all.",
            key,
            len(siblings),
            self.sibling_warning,
            shown,
        )

    def _effect(self, effect: Any) -> None:
        if isinstance(effect, Persist):
            for rec in effect.peers:
                self._learned(rec.replica_id, rec.address, rec.forgotten)
            return
        if isinstance(effect, KindClashFound):
            if effect.key not in self._clashes_logged:
                self._clashes_logged.add(effect.key)
                log.warning(
                    "key %r holds %s: two peers wrote it concurrently as different types. "
                    "Both are kept; writes to it fail until one is deleted with "
                    "peer.delete(%r, kind=...)",
                    effect.key,
                    " and ".join(effect.kinds),
                    effect.key,
                )
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
        await self._start(self._bound, dials)
        # The old id was this database's previous incarnation, now retired. Links claiming
        # it are refused here; no peer can be told to forget it (only their operators can),
        # so elsewhere it is a home that went down: past home_down_window it no longer holds
        # compaction back.
        old_id = old_transport.me.replica_id
        self._forgotten.add(old_id)
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
        self._forgotten.add(replica_id)
        self.transport.close_peer(replica_id, 1008, FORGOTTEN_REASON)

    async def unforget(self, replica_id: str, *, by: str = "the embedding application") -> None:
        """Undo :meth:`forget`: ``replica_id`` is a member again and may connect.
        ``ValueError`` if it is not forgotten here."""
        await self.node.unforget(replica_id, by=by)
        self._forgotten.discard(replica_id)
        address = self._addresses.get(replica_id)
        if address is not None and self.dial_learned:
            self.transport.dial([address])

    # -- links and failure -------------------------------------------------------------------

    def links(self) -> dict[str, PeerLink]:
        """Per configured peer URL (``peers=``), its state and last error, now."""
        snapshot = self.transport.dials.snapshot()
        return {url: snapshot[url] for url in self._configured if url in snapshot}

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
        Peers keep being dialled in the background whatever this returns.
        """
        return await self.transport.dials.wait(self._configured, until, timeout)

    async def wait_failed(self) -> PeerFailed:
        """Wait until this peer stops serving after a failed commit; return the error."""
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    async def keys(
        self, prefix: str | None = None, *, after: str | None = None, page: int = 500
    ) -> AsyncIterator[str]:
        """Every key holding a live object (with ``prefix``, if given; above ``after``, if
        given), sorted, read from the store ``page`` at a time, merged with what this peer
        changed that the store does not hold yet: a key written before the call (even if
        its write was not awaited) is listed, and a key deleted before the call (here, or
        anywhere and replicated here) is not, even while the store still holds it live.
        Keys written or deleted while iterating may or may not be."""
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str or None, got {type(prefix).__name__}")
        if after is not None and not isinstance(after, str):
            raise TypeError(f"after must be a str or None, got {type(after).__name__}")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise ValueError(f"page must be a positive int, got {page!r}")
        while True:  # ends: every page lists keys above the last one
            # Taken on the engine task, returned once everything before it is committed:
            # the keys in memory not yet in the store, then the store's.
            # (key -> live here: a deleted one is left out even if the store lists it.)
            unsaved: dict[str, bool] = await self.node.call(lambda r, now: r.unsaved_keys())
            stored = await self.store.keys(prefix, after, page)
            extra = [
                k
                for k, live in unsaved.items()
                if live
                and (prefix is None or k.startswith(prefix))
                and (after is None or k > after)
            ]
            merged = sorted({k for k in stored if unsaved.get(k, True)} | set(extra))
            if len(stored) == page:  # more in the store: list only up to its last key
                merged = [k for k in merged if k <= stored[-1]]
            for key in merged:
                yield key
            if len(stored) < page:
                return
            after = stored[-1]  # (every key up to it is listed or left out by now)

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
        self._watch_dials()

    def link_down(self, peer_id: str) -> None:
        with contextlib.suppress(RuntimeError, PeerFailed):
            self.node.peer_down(peer_id)
        self._watch_dials()

    # -- the dial state, for the engine ------------------------------------------------------

    def _dial_state(self) -> tuple[int, dict[str, str]]:
        """(how many dialled URLs are still connecting, {URL: why} of those whose last dial
        failed), from the transport's dial states (this peer's own URL left out)."""
        return self.transport.dials.pending()

    def _watch_dials(self) -> None:
        """Tell the engine the dial state if it changed, and keep looking (every
        :data:`DIAL_POLL` seconds) while a dial is in progress."""
        if self._closed or self.node is None:
            return
        state = self._dial_state()
        if state != self._dial_seen:
            self._dial_seen = state
            with contextlib.suppress(RuntimeError):  # the node closed: nothing to tell
                self.node.links_connecting(*state)
        if state[0] and (self._dial_task is None or self._dial_task.done()):
            self._dial_task = asyncio.get_running_loop().create_task(self._poll_dials())

    async def _poll_dials(self) -> None:
        while not self._closed:
            await asyncio.sleep(DIAL_POLL)
            if self._closed or self.node is None:
                return
            state = self._dial_state()
            if state != self._dial_seen:
                self._dial_seen = state
                with contextlib.suppress(RuntimeError):
                    self.node.links_connecting(*state)
            if not state[0]:
                return

    def link_message(self, peer_id: str, message: Any) -> None:
        with contextlib.suppress(RuntimeError, PeerFailed):
            self.node.receive(peer_id, message)

    async def admin(self, request: AdminRequest) -> AdminReply:
        return await admin_reply(self, request)
