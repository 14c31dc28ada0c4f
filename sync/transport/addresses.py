"""The addresses a peer is given: ``HOST:PORT`` to listen on, ``ws://`` / ``wss://`` URLs to dial.

Both are checked when a peer is opened (``Peer.open``, ``shoal serve``), before anything
starts, so that a typo is one clear error naming the value instead of a dialler that retries
for ever or a listener on another port than meant:

* :func:`parse_listen`: ``HOST:PORT`` (IPv6 hosts in brackets, ``[::1]:8765``), the port an
  integer from 0 (the OS picks) to 65535;
* :func:`check_peer_url`: a ``ws://`` or ``wss://`` URL with a host and a port from 1 to
  65535 (as websockets reads it). The port must be written: websockets would take a URL
  without one as port 80 (443 for ``wss://``), where no peer listens unless a proxy does,
  and dial it for ever; behind such a proxy write ``:443``. A command that dials once
  (``shoal status``, ``shoal forget``) passes ``port_required=False`` and other
  ``schemes``.

Each raises ``ValueError`` with the value and what is wrong with it.

:func:`bind_listen` then takes the address: ``Peer.open`` binds its listening sockets before
it opens the database, so that an address it cannot have (a port in use, a host that is not
here) is an ``OSError`` naming it and leaves the database as it was (not even created).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from urllib.parse import urlsplit

from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

__all__ = ["bind_listen", "check_peer_url", "parse_listen", "shown_listen"]


def parse_listen(listen: str) -> tuple[str, int]:
    """``(host, port)`` of a ``HOST:PORT`` listen address; ``ValueError`` if it is not one."""
    if not isinstance(listen, str):
        raise ValueError(f"listen must be a HOST:PORT string, got {listen!r}")
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port:
        raise ValueError(f"listen address {listen!r} is not HOST:PORT (port 0: the OS picks)")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {listen!r}: port {port!r} is not a number in 0..65535")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"listen address {listen!r}: an IPv6 host goes in brackets")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {listen!r}: write an IPv6 host in brackets, [::1]:PORT")
    return host, int(port)


def check_peer_url(
    url: str,
    what: str = "peer URL",
    *,
    schemes: tuple[str, ...] = ("ws://", "wss://"),
    port_required: bool = True,
) -> str:
    """``url`` if it is a URL of one of ``schemes`` with a host and a port in 1..65535 (or,
    unless ``port_required``, none: the scheme's default)."""
    either = " or ".join(filter(None, (", ".join(schemes[:-1]), schemes[-1])))
    if not isinstance(url, str):
        raise ValueError(f"{what} must be a {either} URL string, got {url!r}")
    if not url.startswith(schemes):
        raise ValueError(f"{what} {url!r} must start with {either}")
    if any(c.isspace() for c in url):
        raise ValueError(f"{what} {url!r} contains white space")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # a bracket left open: "Invalid IPv6 URL"
        raise ValueError(f"{what} {url!r} is not a valid URL: {exc}") from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{what} {url!r}: the port is not a number in 1..65535") from None
    if port == 0:
        raise ValueError(f"{what} {url!r}: port 0 cannot be dialled")
    if not parts.hostname:
        raise ValueError(f"{what} {url!r} has no host")
    if port is None and port_required:
        raise ValueError(
            f"{what} {url!r} has no port: write the one the peer listens on "
            "(ws://HOST:PORT; :443 for a TLS proxy in front of it)"
        )
    if parts.scheme in ("ws", "wss"):
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ValueError(f"{what} {url!r} is not a valid URL: {exc}") from None
    return url


def shown_listen(host: str, port: int) -> str:
    """``HOST:PORT`` as :func:`parse_listen` reads it (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def bind_listen(host: str, port: int, backlog: int = 100) -> list[socket.socket]:
    """Sockets bound to every address of ``host`` at ``port`` (0: the OS picks one per
    address) and listening, made as ``loop.create_server`` makes its own (``SO_REUSEADDR``,
    IPv6 sockets IPv6 only, families this system lacks skipped), for
    :meth:`~sync.transport.connection.Transport.listen_on`, which owns them from then on.

    ``OSError`` (its ``errno`` kept) ``cannot listen on HOST:PORT: WHY`` if the host does
    not resolve or an address cannot be had (in use, not on this machine, a privileged
    port); then no socket is left open.
    """
    shown = shown_listen(host, port)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise OSError(exc.errno, f"cannot listen on {shown}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):  # once each, in order
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:  # a family this system lacks (IPv6 off): as create_server does
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # no dual stack: the IPv4 address has its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            # Listening now, not when serving starts: with SO_REUSEADDR, two sockets may bind
            # one address until either listens, so this is what makes the address ours.
            sock.listen(backlog)
        if not sockets:
            raise OSError(errno.EADDRNOTAVAIL, "no address of this host can be used here")
    except OSError as exc:
        for sock in sockets:
            sock.close()
        why = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot listen on {shown}: {why}") from exc
    return sockets
