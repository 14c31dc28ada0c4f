"""Serving the client API: :func:`serve_client_api` starts it for a running peer.

::

    async with Peer.open("app.db", listen="127.0.0.1:0", secret=SECRET) as peer:
        async with await serve_client_api(peer, "127.0.0.1", 8780, token) as api:
            print(api.url)                  # http://127.0.0.1:8780
            ...                             # serve until the app stops

The peer stays the app's: closing the :class:`ClientAPI` stops the HTTP server and closes
its websockets (1001), never the peer. Close the API before the peer.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from sync.transport.peer import Peer

from .app import MIN_TOKEN, make_client_app

__all__ = ["ClientAPI", "read_token_file", "serve_client_api"]

log = logging.getLogger("shoal.web")


class ClientAPI:
    """A running client API: :attr:`url`, :attr:`port`, and :meth:`aclose` (or ``async
    with``)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def app(self) -> web.Application:
        return self._runner.app

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def aclose(self) -> None:
        """Stop serving; close the websockets. Idempotent. The peer stays open."""
        await self._runner.cleanup()

    async def __aenter__(self) -> ClientAPI:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start_client_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    sockets: Sequence[socket.socket] | None = None,
) -> ClientAPI:
    """Serve an app made by :func:`~shoal.web.app.make_client_app` (maybe with routes of
    the caller's own) on ``host:port`` (port 0: the OS picks); or, given ``sockets``, on
    those, bound and listening at ``host:port`` already (the caller made sure of the address
    before anything else opened: ``sync.transport.addresses.bind_listen``), which the API
    owns from then on."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be 0 to 65535, got {port!r}")
    if not _loopback(host):
        log.warning(
            "the client API listens on %s, beyond this machine: anyone who reaches it with "
            "the token reads and writes every key; it speaks plain HTTP, so put TLS in front",
            host,
        )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        sites = (
            [web.TCPSite(runner, host, port)]
            if sockets is None
            else [web.SockSite(runner, sock) for sock in sockets]
        )
        for site in sites:
            await site.start()
    except BaseException:
        await runner.cleanup()
        for sock in sockets or ():
            sock.close()
        raise
    bound = runner.addresses[0][1]
    api = ClientAPI(runner, host, bound)
    log.info("client API on %s", api.url)
    return api


async def serve_client_api(
    peer: Peer,
    host: str,
    port: int,
    token: str,
    *,
    static_dir: str | Path | None = None,
    sockets: Sequence[socket.socket] | None = None,
    **options: Any,
) -> ClientAPI:
    """Serve the client API of ``peer`` on ``host:port`` with ``token`` (at least
    16 characters); ``static_dir``: a page to serve at ``/`` (its ``index.html``) and
    ``/static/``; ``sockets``: see :func:`start_client_app`. ``options`` go to
    :func:`~shoal.web.app.make_client_app`."""
    app = make_client_app(peer, token, static_dir=static_dir, **options)
    return await start_client_app(app, host, port, sockets=sockets)


def read_token_file(path: str | Path) -> str:
    """The token in ``path`` (surrounding whitespace ignored); ``ValueError`` naming the
    path if it cannot be read, is empty or too short."""
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read the client token file {path}: {reason}") from exc
    if len(token) < MIN_TOKEN:
        raise ValueError(
            f"the client token file {path} holds {len(token)} characters; at least "
            f"{MIN_TOKEN} are needed (for example: python -c 'import secrets; "
            f"print(secrets.token_urlsafe(32))' > {path})"
        )
    return token
