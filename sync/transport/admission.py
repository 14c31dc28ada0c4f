"""Admission control of a listener: how many connections it holds before and after they
authenticate, and what it does when the process runs out of file descriptors.

Theory of operation. Every inbound TCP connection is counted from the moment it is accepted
until it is lost (a :class:`~websockets.asyncio.server.ServerConnection` subclass made by
:meth:`Admission.connection_class`); it counts as *handshaking* until the transport marks it
:meth:`~Admission.authenticated`. When the HTTP upgrade request of a connection arrives
(websockets' ``process_request``), a connection that would make more than
``max_handshakes`` handshaking or more than ``max_connections`` in all gets
``HTTP 503 Service Unavailable`` with the reason as its body, and is counted in
``refused_busy``. Requests the owner's HTTP hook answers (``/status``, ``/metrics``) are
served first, so an operator can still look at a peer that is refusing links.

**Open files.** Every connection holds a file descriptor, and ``accept()`` needs one before
anything of it can be read: a process at its limit of open files (``RLIMIT_NOFILE``) can
neither answer a connection nor refuse it, and every dialler past that point waits in the
listen backlog until it times out, with no reason given. So a connection that finds fewer
than :data:`FILE_RESERVE` descriptors left under the limit gets HTTP 503 too (``too many
open files``, counted in ``refused_busy``); the reserve is for those answers, ``/status``,
dials and the store. :meth:`Admission.watch` warns once when the limit leaves room for
fewer connections than ``max_connections``. Where the process's descriptors cannot be
counted (no ``/proc/self/fd`` or ``/dev/fd``) only the caps apply.

When ``accept()`` fails for lack of file descriptors (``EMFILE``, ``ENFILE``) or memory,
asyncio reports it to the event loop's exception handler, which logs a traceback each time,
and retries a second later (CPython 3.11 reports and schedules a retry for every pending
connection, up to the backlog: a hundred tracebacks a second). :meth:`Admission.watch` puts
a handler in front of the loop's that takes these reports for this listener's sockets: one
WARNING line, then at most one line per :data:`REPORT_INTERVAL` with the count
(``accept_errors``); every other report goes on to the handler that was there before. When
the listener closes within a second of such a failure, the retries asyncio had scheduled
fail on the closed socket; the handler stays a little longer to take those too.

:func:`refusal_host` says whom a refused handshake counts against (the transport logs
refusals once per host, then once a minute).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import math
import os
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

__all__ = [
    "FILE_RESERVE",
    "REPORT_INTERVAL",
    "Admission",
    "HttpHook",
    "Throttle",
    "open_files",
    "refusal_host",
]

log = logging.getLogger("shoal.transport")

HttpHook = Callable[[ServerConnection, Request], Awaitable[Response | None]]
ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]

#: How often a recurring condition (out of file descriptors, refusals) is logged at most.
REPORT_INTERVAL = 60.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: asyncio retries a failed accept() after one second (asyncio.constants.ACCEPT_RETRY_DELAY).
_RETRY_GRACE = 2.0
#: File descriptors kept free under the limit: a connection that finds fewer gets HTTP 503.
FILE_RESERVE = 32


def open_files() -> tuple[int, int] | None:
    """(file descriptors this process has open, its soft limit of them), or None where
    either is unknown (no ``resource`` module, no limit, nothing that lists them)."""
    try:
        import resource
    except ImportError:  # (not on Windows)
        return None
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(listing)) - 1, limit  # (less the listing's own)
        except OSError:
            continue
    return None


class Throttle:
    """A recurring condition: logged the first time, then at most once per ``interval``."""

    def __init__(self, interval: float = REPORT_INTERVAL) -> None:
        self.interval = interval
        self._next = -math.inf
        self._muted = 0

    def due(self, now: float) -> int | None:
        """None: stay quiet (counted); else how many times it was muted since the last line."""
        if now < self._next:
            self._muted += 1
            return None
        muted, self._muted = self._muted, 0
        self._next = now + self.interval
        return muted

    def spent(self, now: float) -> bool:
        """Is its interval over? Then a fresh throttle would log the next occurrence as this
        one would, and it may be dropped (with the count of what it muted since its last
        line: the condition has not come back for a whole interval)."""
        return now >= self._next

    @property
    def until(self) -> float:
        """When its interval ends."""
        return self._next


class Admission:
    """Counts and caps the inbound connections of one listener."""

    def __init__(
        self, *, max_handshakes: int, max_connections: int, http: HttpHook | None = None
    ) -> None:
        self.max_handshakes = max_handshakes
        self.max_connections = max_connections
        self.http = http
        self.inbound: set[ServerConnection] = set()
        self.authenticated_inbound: set[ServerConnection] = set()
        self.refused_busy = 0
        self.accept_errors = 0
        self._sockets: frozenset[int] = frozenset()
        self._busy_log = Throttle()
        self._fd_log = Throttle()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: ExceptionHandler | None = None
        self._closed = False
        self._last_error = -math.inf

    @property
    def handshaking(self) -> int:
        """Inbound connections that have not authenticated (yet)."""
        return len(self.inbound) - len(self.authenticated_inbound)

    def authenticated(self, conn: ServerConnection) -> None:
        """``conn`` passed the handshake: it no longer counts against ``max_handshakes``."""
        if conn in self.inbound:
            self.authenticated_inbound.add(conn)

    def drop_handshaking(self) -> None:
        """Abort every inbound connection that has not authenticated (the listener closes:
        nobody waits for a handshake that will not be served)."""
        for conn in self.inbound - self.authenticated_inbound:
            conn.transport.abort()

    def connection_class(self) -> type[ServerConnection]:
        """The connection class to give websockets' ``serve`` (``create_connection``)."""
        admission = self

        class CountedConnection(ServerConnection):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                admission.inbound.add(self)

            def connection_lost(self, exc: Exception | None) -> None:
                admission.inbound.discard(self)
                admission.authenticated_inbound.discard(self)
                super().connection_lost(exc)

        return CountedConnection

    def _over(self) -> str | None:
        # Every count includes the connection asking.
        if len(self.inbound) > self.max_connections:
            return f"too many connections (limit {self.max_connections}); try again later"
        if self.handshaking > self.max_handshakes:
            return (
                f"too many connections in handshake (limit {self.max_handshakes}); try again later"
            )
        files = open_files()
        if files is not None and files[1] - files[0] < FILE_RESERVE:
            return (
                f"too many open files ({files[0]} of this process's limit of {files[1]}); "
                "try again later"
            )
        return None

    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """websockets' ``process_request``: the owner's HTTP hook, then the caps."""
        if self.http is not None:
            response = await self.http(conn, request)
            if response is not None:
                return response
        reason = self._over()
        if reason is None:
            return None
        self.refused_busy += 1
        muted = self._busy_log.due(asyncio.get_running_loop().time())
        if muted is not None:
            log.warning(
                "refused a connection from %s with HTTP 503: %s (%s; reported at most every "
                "%.0f s)",
                conn.remote_address,
                reason,
                f"{muted + 1} refused since the last report" if muted else "counted",
                self._busy_log.interval,
            )
        return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, reason + "\n")

    # -- running out of file descriptors ---------------------------------------------------

    def watch(self, loop: asyncio.AbstractEventLoop, sockets: Iterable[Any]) -> None:
        """Take the loop's reports of failed ``accept()`` calls on ``sockets``."""
        self._sockets = frozenset(sock.fileno() for sock in sockets)
        self._loop = loop
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_exception)
        self._check_open_files()

    def _check_open_files(self) -> None:
        """Warn when the limit of open files leaves room for fewer connections than
        ``max_connections`` (the ones past it will get HTTP 503)."""
        files = open_files()
        if files is None:
            return
        used, limit = files
        room = max(0, limit - used - FILE_RESERVE)
        if room < self.max_connections:
            log.warning(
                "the open file limit of this process (%d, %d in use) leaves room for about %d "
                "connections, fewer than max_connections (%d): past them, connections get HTTP "
                "503; raise the limit (ulimit -n, systemd's LimitNOFILE=)",
                limit,
                used,
                room,
                self.max_connections,
            )

    def unwatch(self) -> None:
        """Give the loop its handler back (if nothing was put in front of ours since), once
        the accept retries asyncio may still have scheduled are past."""
        self._closed = True
        loop = self._loop
        if loop is None:
            return
        if loop.time() - self._last_error < _RETRY_GRACE:
            loop.call_later(_RETRY_GRACE, self._restore)
        else:
            self._restore()

    def _restore(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.get_exception_handler() == self._on_loop_exception:
            loop.set_exception_handler(self._previous)

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        sock = context.get("socket")
        if self._closed and isinstance(exc, ValueError) and _is_accept_retry(context):
            return  # a retry scheduled after EMFILE, run after the listener closed
        if (
            isinstance(exc, OSError)
            and exc.errno in _OUT_OF_RESOURCES
            and sock is not None
            and sock.fileno() in self._sockets
        ):
            self.accept_errors += 1
            self._last_error = loop.time()
            muted = self._fd_log.due(loop.time())
            if muted is not None:
                log.warning(
                    "%s accept connections on %s: %s (%s; reported at most every %.0f s)",
                    "cannot" if self.accept_errors == 1 else "still cannot",
                    _address(sock),
                    exc.strerror or exc,
                    f"{muted + 1} failures since the last report" if muted else "retrying",
                    self._fd_log.interval,
                )
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _is_accept_retry(context: dict[str, Any]) -> bool:
    # asyncio names the callback in the handle's repr; nothing public says more.
    return "_start_serving" in repr(context.get("handle"))


def _address(sock: Any) -> str:
    try:
        host, port = sock.getsockname()[:2]
    except (OSError, ValueError, TypeError):
        return "the listening socket"
    return f"{host}:{port}"


def refusal_host(remote: Any) -> str:
    """Whom a refused handshake is counted against: its IPv4 address, or the /64 of its IPv6
    one (an IPv4 one mapped into IPv6 as itself)."""
    host = str(remote[0]) if isinstance(remote, tuple) and remote else str(remote)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # (without an IPv6 zone)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return host
