"""The opt-in client API: a small HTTP + websocket API of a peer for apps that are not
Python (a web page, a mobile or desktop app using shoal as a local sync sidecar).

Off by default; ``shoal serve --client-api HOST:PORT --client-token-file PATH`` or
:func:`serve_client_api` turn it on, bound to 127.0.0.1 unless told otherwise and protected
by a token. It lists keys, reads a value with its siblings and version, applies the typed
mutations of each CRDT, deletes a key, and streams the changes of a key or a prefix over a
websocket (routes and shapes: :mod:`shoal.web.app` and docs/api.md, "Client API"; the
mutations: :mod:`shoal.web.ops`; serving: :mod:`shoal.web.server`).

It needs aiohttp, the ``web`` extra (``pip install '.[web]'`` from a checkout). It lives in the
application layer: ``sync`` never imports it.
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401
except ImportError as exc:  # one line naming the extra (shoal serve --client-api, run.py)
    raise ImportError(
        f"shoal.web needs the web extra (pip install '.[web]' from a checkout): {exc}",
        name=exc.name,
    ) from exc

from .app import make_client_app
from .server import ClientAPI, read_token_file, serve_client_api, start_client_app

__all__ = [
    "ClientAPI",
    "make_client_app",
    "read_token_file",
    "serve_client_api",
    "start_client_app",
]
