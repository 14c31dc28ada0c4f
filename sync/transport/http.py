"""Plain HTTP on the websocket port: ``GET /status`` (JSON) and ``GET /metrics`` (Prometheus).

websockets calls :func:`make_http_hook`'s hook for every opening request
(``process_request``); a request for one of these two paths gets an HTTP response instead of
the websocket upgrade, anything else goes on to the websocket handshake. Both endpoints are
read-only and unauthenticated (they reveal health figures, never data, key names or the
secret: :func:`~sync.transport.metrics.public_status`); run
the peer behind TLS or a firewall where that matters. ``shoal status URL`` reads ``/status``.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .metrics import public_status

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["METRICS_PATH", "STATUS_PATH", "make_http_hook"]

STATUS_PATH = "/status"
METRICS_PATH = "/metrics"


def _respond(conn: ServerConnection, body: str, content_type: str) -> Response:
    response = conn.respond(HTTPStatus.OK, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def make_http_hook(peer: Peer) -> Any:
    """The ``process_request`` hook serving ``/status`` and ``/metrics`` for ``peer``."""

    async def hook(conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == STATUS_PATH:
            body = json.dumps(public_status(peer.status_now()), sort_keys=True, default=str)
            return _respond(conn, body + "\n", "application/json")
        if path == METRICS_PATH:
            text, content_type = peer.metrics.render()
            return _respond(conn, text, content_type)
        return None

    return hook
