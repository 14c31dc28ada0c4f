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

Both endpoints are read-only and unauthenticated (they reveal health figures, never data, key
names or the secret: :func:`~sync.transport.status.public_status`); run the peer behind TLS
or a firewall where that matters. ``shoal status URL`` reads ``/status``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .metrics import MetricsUnavailable

__all__ = ["METRICS_PATH", "STATUS_PATH", "HttpHook", "make_http_hook"]

STATUS_PATH = "/status"
METRICS_PATH = "/metrics"

HttpHook = Callable[[ServerConnection, Request], Awaitable[Response | None]]
"""websockets' ``process_request``: a response, or None to go on with the handshake."""


def _respond(conn: ServerConnection, status: HTTPStatus, body: str, content_type: str) -> Response:
    response = conn.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def make_http_hook(
    status_body: Callable[[], str], metrics_body: Callable[[], tuple[str, str]]
) -> HttpHook:
    """The ``process_request`` hook serving ``/status`` and ``/metrics``.

    ``status_body()`` gives the JSON text of ``/status``; ``metrics_body()`` gives the body
    and content type of ``/metrics``, or raises :class:`MetricsUnavailable`.
    """

    async def hook(conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == STATUS_PATH:
            return _respond(conn, HTTPStatus.OK, status_body(), "application/json")
        if path == METRICS_PATH:
            try:
                text, content_type = metrics_body()
            except MetricsUnavailable as exc:
                message = f"GET {METRICS_PATH}: {exc}\n"
                return _respond(
                    conn, HTTPStatus.NOT_IMPLEMENTED, message, "text/plain; charset=utf-8"
                )
            return _respond(conn, HTTPStatus.OK, text, content_type)
        return None

    return hook
