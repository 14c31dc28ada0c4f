"""Plain HTTP on the websocket port: ``GET /status`` (JSON) and ``GET /metrics`` (Prometheus).

websockets calls the hook of :func:`make_http_hook` for every opening request
(``process_request``); a request for one of these two paths gets an HTTP response instead of
the websocket upgrade, anything else goes on to the websocket handshake. The hook knows no
peer: it is given two functions that make the bodies when a page is asked for (the peer
passes :func:`~sync.transport.status.public_status_json` and the Prometheus rendering of
:mod:`~sync.transport.metrics`). When the metrics function raises
:class:`~sync.transport.metrics.MetricsUnavailable` (``prometheus_client`` is not
installed), ``/metrics`` answers ``501 Not Implemented`` with a text body that names the
extra to install.

Both endpoints are read-only. What they reveal: health figures (replica id, group, site,
uptime, counts of keys, log entries, hints and siblings, per-peer lag and traffic, the
transport's counters), the replica ids and addresses of known peers, and the URL, state and
last error of every configured peer; never data, key names or the secret
(:func:`~sync.transport.status.public_status`). Access is the owner's choice
(``Peer.open(http=...)``, ``shoal serve --status``):

* open (the default): anyone who can reach the port may read them;
* off: both answer ``404 Not Found`` (the websocket port serves peers only);
* token: only requests carrying ``Authorization: Bearer TOKEN`` (one such header) get them;
  any other gets ``401 Unauthorized`` with ``WWW-Authenticate: Bearer`` (the token is
  compared in constant time). Without TLS the token crosses the network in clear: use
  ``wss://``, or a firewall.

Both answer ``GET`` only (``405 Method Not Allowed`` otherwise). Making a page walks the
engine's objects on the event loop (tens of ms at 100k keys), so a client asking in a loop
must not hold up the peer's own work: a page is served from the copy made for an earlier
request until that copy is :data:`PAGE_COST_RATIO` times as old as making it took (a few ms
on a small peer, so a monitor polling it sees changes as they come; a fraction of a second
at 100k keys), which keeps the pages to a small share of the loop whatever the rate of
requests.

``shoal status URL`` reads ``/status`` (``--http-token-file`` sends the token).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .metrics import MetricsUnavailable

__all__ = ["METRICS_PATH", "STATUS_PATH", "HttpHook", "make_http_hook"]

STATUS_PATH = "/status"
METRICS_PATH = "/metrics"
#: A page is made again once its copy is this many times as old as making it took.
PAGE_COST_RATIO = 10.0

HttpHook = Callable[[ServerConnection, Request], Awaitable[Response | None]]
"""websockets' ``process_request``: a response, or None to go on with the handshake."""


def _respond(conn: ServerConnection, status: HTTPStatus, body: str, content_type: str) -> Response:
    response = conn.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def _authorized(request: Request, token: bytes) -> bool:
    given = request.headers.get_all("Authorization")
    if len(given) != 1:  # none, or several: which one would count?
        return False
    scheme, _, value = given[0].partition(" ")
    try:  # websockets decodes a header's bytes as Latin-1: back to the bytes that were sent
        sent = value.strip().encode("latin-1")
    except UnicodeEncodeError:
        return False
    return scheme.lower() == "bearer" and hmac.compare_digest(sent, token)


def make_http_hook(
    status_body: Callable[[], str],
    metrics_body: Callable[[], tuple[str, str]],
    *,
    enabled: bool = True,
    token: bytes | None = None,
    cost_ratio: float = PAGE_COST_RATIO,
    clock: Callable[[], float] = time.monotonic,
) -> HttpHook:
    """The ``process_request`` hook serving ``/status`` and ``/metrics``.

    ``status_body()`` gives the JSON text of ``/status``; ``metrics_body()`` gives the body
    and content type of ``/metrics``, or raises :class:`MetricsUnavailable`. ``enabled``
    False answers both with 404; ``token`` requires ``Authorization: Bearer TOKEN`` (401).
    A page is made again only once its copy is ``cost_ratio`` times as old as making it took
    (both by ``clock``).
    """
    text = "text/plain; charset=utf-8"
    made: dict[str, tuple[float, str, str]] = {}  # path -> (good until, body, content type)

    def page(path: str, make: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        kept = made.get(path)
        start = clock()
        if kept is not None and start < kept[0]:
            return kept[1], kept[2]
        body, content_type = make()
        end = clock()
        made[path] = (end + cost_ratio * (end - start), body, content_type)
        return body, content_type

    async def hook(conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path not in (STATUS_PATH, METRICS_PATH):
            return None
        if request.method != "GET":
            message = f"{path} answers GET only\n"
            response = _respond(conn, HTTPStatus.METHOD_NOT_ALLOWED, message, text)
            response.headers["Allow"] = "GET"
            return response
        if not enabled:
            message = f"GET {path} is turned off on this peer\n"
            return _respond(conn, HTTPStatus.NOT_FOUND, message, text)
        if token is not None and not _authorized(request, token):
            message = f"GET {path} needs the peer's token: Authorization: Bearer TOKEN\n"
            response = _respond(conn, HTTPStatus.UNAUTHORIZED, message, text)
            response.headers["WWW-Authenticate"] = 'Bearer realm="shoal"'
            return response
        if path == STATUS_PATH:
            body, content_type = page(path, lambda: (status_body(), "application/json"))
            return _respond(conn, HTTPStatus.OK, body, content_type)
        if path == METRICS_PATH:
            try:
                body, content_type = page(path, metrics_body)
            except MetricsUnavailable as exc:
                message = f"GET {METRICS_PATH}: {exc}\n"
                return _respond(conn, HTTPStatus.NOT_IMPLEMENTED, message, text)
            return _respond(conn, HTTPStatus.OK, body, content_type)
        return None

    return hook
