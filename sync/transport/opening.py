"""``Peer.open``'s arguments, checked and made into what a peer is built from, before it starts.

:func:`plan_open` checks every argument of :meth:`~sync.transport.peer.Peer.open` in a
fixed order (``ValueError`` or ``TypeError`` naming the value: a listen address that is not
``HOST:PORT``, a peer URL that is not ``ws://``/``wss://``, a missing group secret, a TLS
certificate without its key...) and makes the configuration: the engine's
:class:`~sync.config.ReplicaConfig`, the transport's (one frame limit, the engine's), the
TLS contexts and the group secret, as one :class:`OpenPlan`. Nothing is opened before it
returns. Then :meth:`OpenPlan.open_store` opens the store, :func:`identity_warning` logs a
database the store gave a new replica id, and :meth:`OpenPlan.identity` is the identity the
links prove. :class:`Opening` is what ``Peer.open`` returns: awaitable, and an async context
manager that closes the peer on leaving.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import ssl
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from store import SYNCHRONOUS_LEVELS, Store, describe_database
from sync.config import ReplicaConfig
from sync.ring import PartitionMemo
from sync.signing import Signer

from .addresses import check_peer_url, parse_listen
from .auth import Identity
from .connection import TransportConfig

__all__ = [
    "OpenPlan",
    "Opening",
    "client_ssl_context",
    "http_access",
    "identity_warning",
    "plan_open",
    "server_ssl_context",
]

log = logging.getLogger("shoal.peer")


def http_access(http: bool | str | bytes) -> tuple[bool, bytes | None]:
    """``(enabled, token)`` of the ``http`` option of :meth:`Peer.open`."""
    if isinstance(http, bool):
        return http, None
    if isinstance(http, str):
        http = http.encode()
    if not isinstance(http, bytes):
        raise TypeError(f"http must be True, False or a token (str), got {type(http).__name__}")
    if not http.strip():
        raise ValueError("http token must not be empty")
    if http != http.strip() or any(b < 0x20 or b == 0x7F for b in http):
        # (An HTTP header cannot carry them, and the value received is stripped.)
        raise ValueError("http token must not hold control characters or surrounding spaces")
    return True, http


def identity_warning(store: Store, path_or_url: str | Path) -> None:
    """Log (WARNING) that the store gave this database a new replica id at open: made by an
    older shoal (no signing key), copied or restored (no ``.shoal-id`` sidecar), or left open
    by a run that may have lost its last commits (``Store.identity_cut_short``)."""
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
    if store.identity_cut_short:
        log.warning(
            "database %s was left open by a run at synchronous=NORMAL that ended in a power "
            "loss or a crash of the machine, whose last commits may be gone while peers hold "
            "them: new replica id %s (was %s); peers will see a new replica",
            describe_database(path_or_url),
            store.replica_id,
            was,
        )
        return
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


def server_ssl_context(
    cert: str | None, key: str | None, names: tuple[str, str] = ("tls_cert", "tls_key")
) -> ssl.SSLContext | None:
    """The context that serves ``wss://`` with the PEM certificate (chain) ``cert`` and its
    private key ``key``; None without either. ``names`` are the two arguments' names, as the
    errors say them (a command line passes its options').

    ``ValueError`` for one without the other. A file that cannot be loaded raises what it
    raised before, an ``OSError`` (``FileNotFoundError``, ``IsADirectoryError``,
    ``PermissionError``, ``ssl.SSLError`` for one that is not PEM or a key of another
    certificate), saying ``cannot load NAME PATH: WHY``.
    """
    if not (cert or key):
        return None
    if not (cert and key):
        raise ValueError(f"TLS needs both a certificate and a key ({' and '.join(names)})")
    cert_text = _read_tls_file(names[0], cert)
    key_text = _read_tls_file(names[1], key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        # OpenSSL says "PEM lib" for either file: the markers tell which (a file with both
        # the key and the chain, as some tools write them, has both markers).
        if b"CERTIFICATE-----" not in cert_text:
            why = f"{names[0]} {cert}: not a PEM certificate"
        elif b"PRIVATE KEY-----" not in key_text:
            why = f"{names[1]} {key}: not a PEM private key"
        else:
            why = f"{names[0]} {cert} with {names[1]} {key}: {_ssl_reason(exc)}"
        raise ssl.SSLError(exc.errno, f"cannot load {why}") from exc
    return context


def client_ssl_context(ca: str | None, name: str = "tls_ca") -> ssl.SSLContext | None:
    """The context that dials ``wss://`` trusting the PEM certificates in ``ca``; None
    without it (the system's trust store, when a ``wss://`` URL is first dialled). A file
    that cannot be loaded raises as :func:`server_ssl_context` says."""
    if not ca:
        return None
    _read_tls_file(name, ca)
    try:
        return ssl.create_default_context(cafile=ca)
    except ssl.SSLError as exc:
        raise ssl.SSLError(exc.errno, f"cannot load {name} {ca}: {_ssl_reason(exc)}") from exc


def _read_tls_file(name: str, path: str) -> bytes:
    """The bytes of ``path``; ``OSError`` of the same kind naming ``name`` and ``path``."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot load {name} {path}: {why}") from exc


def _ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's words without the library tag and source line: ``key values mismatch``."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", exc.strerror or str(exc))
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text) or "not PEM"


def _ssl_contexts(
    tls_cert: str | None, tls_key: str | None, tls_ca: str | None
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    # The client context is made when a wss:// peer is first dialled (loading the system's
    # CA certificates costs tens of milliseconds per open, and most peers never need them),
    # unless a CA file is given: then it is made now, so a bad file fails the open.
    return server_ssl_context(tls_cert, tls_key), client_ssl_context(tls_ca)


@dataclass(frozen=True, slots=True)
class OpenPlan:
    """What :func:`plan_open` made of ``Peer.open``'s arguments, all of them checked."""

    path_or_url: str | Path
    synchronous: str
    config: ReplicaConfig
    transport: TransportConfig
    group: str
    key: bytes
    site: str | None
    relay: bool
    home: bool
    peers: tuple[str, ...]  # the configured peer URLs, each once, in order
    server_ssl: ssl.SSLContext | None
    client_ssl: ssl.SSLContext | None

    async def open_store(self) -> Store:
        """Open (or create, or resume) the database."""
        config = self.config
        return await Store.open(
            self.path_or_url,
            synchronous=self.synchronous,
            partitions=config.partitions,
            partition_of=PartitionMemo(config.partitions),  # the engine shares it
        )

    def identity(self, store: Store) -> Identity:
        """The identity the links prove: the store's replica id and signing key."""
        return Identity(
            store.replica_id,
            self.group,
            self.key,
            None,
            self.site,
            self.relay,
            self.home,
            signer=Signer(store.signing_key),
            run=secrets.token_hex(16),
        )


def plan_open(
    path_or_url: str | Path,
    *,
    listen: str | None,
    peers: Iterable[str],
    n: int,
    w: Any,
    r: Any,
    secret: bytes | str | None,
    site: str | None,
    relay: bool,
    group: str,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    synchronous: str,
    subscriber_queue: int,
    sibling_warning: int,
    transport: TransportConfig | None,
    advertise: str | None,
    http: bool | str | bytes,
    home: bool,
    engine: dict[str, Any],
) -> OpenPlan:
    """Check the arguments of ``Peer.open`` (see the module docstring)."""
    for name, count in (
        ("subscriber_queue", subscriber_queue),
        ("sibling_warning", sibling_warning),
    ):
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"{name} must be an int, got {count!r}")
        if count < 1:
            raise ValueError(f"{name} must be >= 1, got {count}")
    # (The store checks it again when it opens; here it is refused before anything is.)
    if not isinstance(synchronous, str):
        raise TypeError(f"synchronous must be a str, got {synchronous!r}")
    if synchronous.upper() not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_LEVELS}, got {synchronous!r}")
    if transport is not None and not isinstance(transport, TransportConfig):
        raise TypeError(f"transport must be a TransportConfig or None, got {transport!r}")
    if advertise is not None:
        check_peer_url(advertise, "advertise URL")
    http_access(http)
    if isinstance(peers, str):
        raise ValueError(f"peers must be a list of URLs, got the string {peers!r}")
    urls = list(dict.fromkeys(peers))
    if isinstance(path_or_url, str) and not path_or_url:
        raise ValueError("path_or_url must name a database")
    key = _secret_bytes(secret)
    if (listen is not None or urls) and not key:
        raise ValueError("a group secret is required to listen or to dial peers")
    if listen is not None:
        parse_listen(listen)
    for url in urls:
        check_peer_url(url)
    config = ReplicaConfig(n=n, w=w, r=r, site=site, relay=relay, home=home, **engine)
    server_ssl, client_ssl = _ssl_contexts(tls_cert, tls_key, tls_ca)
    # One frame limit for websockets (max_size) and the codec: the engine's.
    tconfig = dataclasses.replace(
        transport or TransportConfig(), max_message_bytes=config.max_message_bytes
    )
    return OpenPlan(
        path_or_url,
        synchronous,
        config,
        tconfig,
        group,
        key,
        site,
        relay,
        home,
        tuple(urls),
        server_ssl,
        client_ssl,
    )


class _Closable(Protocol):
    async def aclose(self) -> None: ...


P = TypeVar("P", bound=_Closable)


class Opening(Generic[P]):
    """What :meth:`Peer.open` returns: await it, or use it as ``async with``."""

    def __init__(self, factory: Callable[[], Awaitable[P]]) -> None:
        self._factory = factory
        self._peer: P | None = None

    def __await__(self) -> Generator[Any, None, P]:
        return self._factory().__await__()

    async def __aenter__(self) -> P:
        self._peer = await self._factory()
        return self._peer

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._peer is not None:
            await self._peer.aclose()
