"""The client API's routes, on aiohttp: a small REST API and a websocket of changes.

Routes (every one under ``/v1/`` needs the token; docs/api.md, "Client API", has the JSON
shapes)::

    GET    /v1/status                      the peer's status snapshot
    GET    /v1/keys?prefix=&after=&limit=  keys, sorted, a page at a time
    GET    /v1/keys/{key}?r=&timeout=      one object: kind, value, siblings, version
    POST   /v1/keys/{key}                  a typed mutation (shoal.web.ops)
    DELETE /v1/keys/{key}?kind=&w=&timeout=  delete the key (observed remove)
    GET    /v1/subscribe?key= | ?prefix=   websocket: the changes of a key or a prefix

With ``static_dir``, ``GET /`` serves its ``index.html`` and ``GET /static/NAME`` its files,
without the token (a page holds no data; it asks for the token and sends it with every call).

The token. HTTP calls send ``Authorization: Bearer TOKEN``. A browser cannot set a header on
a websocket, so the websocket's first message carries it, ``{"token": "TOKEN"}``, rather
than a query parameter: URLs end up in access logs, proxies and the browser's history, a
first message does not. Until that message comes (within :data:`AUTH_TIMEOUT` seconds in
all, pings or not, else the socket is closed with 4401), the server sends nothing and
subscribes to nothing. Tokens are compared with :func:`hmac.compare_digest` (constant time);
one that is not UTF-8 text is a wrong one.

The sockets. A subscription counts against ``max_subscriptions`` once its token is
accepted (one more is refused before the upgrade with 503, or, if the last slot went while
its token was on the way, closed with 1013, try again later). Sockets still waiting for
their token are bounded on their own (:data:`MAX_WAITING`): one more cuts the wait of the
oldest one short (closed with 1013), so that sockets without a token, which anyone who
reaches the port can open, cannot hold the subscriptions' slots (they can still make a
token holder's socket wait its turn: one that opens sockets faster than tokens come back
pushes the waiting ones out, which a client that retries outlasts). A subscriber gone while
a send waits is an ordinary goodbye (a tab closed), logged at DEBUG.

Errors are ``{"error": {"code", "message"}}`` with the HTTP status: 400 ``bad_request``,
401 ``unauthorized``, 404 ``not_found``, 405 ``method_not_allowed``, 409 ``wrong_kind``,
``version_mismatch`` or ``clock_skew``, 413 ``too_large``, 503
``peer_failed`` or ``too_many_subscriptions``, 504 ``read_quorum_not_reached``. A write
that missed its quorum is not an error: it is durable here and replicates later, so it
answers 202 with ``"quorum": false`` (do not send it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from crdt import ClockSkewError
from sync.config import check_key
from sync.errors import (
    KeyNotFound,
    KindClash,
    PeerFailed,
    QuorumNotReached,
    ReadQuorumNotReached,
    named_kinds,
)
from sync.transport.peer import Peer

from .ops import ApiError, VersionMismatch, mutation_fn, object_view, parse_mutation, write_view

__all__ = [
    "AUTH_TIMEOUT",
    "MAX_BODY",
    "MAX_LIMIT",
    "MAX_SUBSCRIPTIONS",
    "MAX_WAITING",
    "MIN_TOKEN",
    "make_client_app",
]

log = logging.getLogger("shoal.web")

AUTH_TIMEOUT = 5.0  # seconds for a websocket's token message, in all
MAX_BODY = 1024 * 1024  # bytes of a request body
MAX_LIMIT = 1000  # keys per page
DEFAULT_LIMIT = 100
MIN_TOKEN = 16  # characters
MAX_SUBSCRIPTIONS = 256
MAX_WAITING = 64  # websockets waiting for their token at once
CLOSE_UNAUTHORIZED = 4401
_INT = re.compile(r"-?[0-9]+")  # ASCII only: int() also reads other scripts' digits

_PEER = web.AppKey("peer", Peer)
_TOKEN = web.AppKey("token", bytes)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response(ApiError(status, code, message, **extra).body(), status=status)


def _token_ok(app: web.Application, given: str) -> bool:
    try:
        text = given.encode()
    except UnicodeEncodeError:  # a lone surrogate (or a header's byte that is not UTF-8)
        return False
    return hmac.compare_digest(text, app[_TOKEN])


def _public(request: web.Request) -> bool:
    """The page and its files, and the websocket (which authenticates by message)."""
    path = request.path
    return path == "/" or path.startswith("/static/") or path == "/v1/subscribe"


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as the JSON error shape, whoever raised it."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        return _error(exc.status, code, exc.reason)
    except PeerFailed as exc:
        return _error(503, "peer_failed", f"the peer stopped serving: {exc}")
    except RuntimeError as exc:  # the node refuses calls once the peer is closing
        return _error(503, "peer_closed", f"the peer is not serving: {exc}")


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _public(request):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not _token_ok(request.app, given.strip()):
        raise ApiError(401, "unauthorized", "send the token: Authorization: Bearer TOKEN")
    return await handler(request)


def _peer(request: web.Request) -> Peer:
    return request.app[_PEER]


def _int(text: str) -> int | None:
    """``text`` as an integer if it is one in ASCII digits (an optional ``-`` first), else
    None. (``str.isdigit`` takes a superscript two, which ``int`` refuses; ``int`` takes
    the digits of other scripts, which no client means.)"""
    return int(text) if _INT.fullmatch(text) else None


def _level(text: str | None) -> int | str | None:
    """A level from a query string: a number, or a name the engine checks."""
    if text is None or text == "":
        return None
    number = _int(text)
    return text if number is None else number


def _key_query(text: str | None, name: str, *, empty_ok: bool = True) -> str | None:
    """A key or a key prefix from a query string (None: not given), checked as the engine
    checks keys: 400 for one no store can keep."""
    if text is None:
        return None
    try:
        return check_key(text, name, empty_ok=empty_ok)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc


def _seconds(text: str | None, name: str) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise ApiError(
            400, "bad_request", f"{name} must be a number of seconds, got {text!r}"
        ) from None


async def _engine_call(coro: Awaitable[Any]) -> Any:
    """Await an engine operation; its refusals of bad input become 400s."""
    try:
        return await coro
    except ClockSkewError as exc:
        raise ApiError(409, "clock_skew", str(exc)) from exc
    except KindClash as exc:
        raise ApiError(409, "kind_clash", str(exc), kinds=list(exc.kinds)) from exc
    except KeyNotFound as exc:
        raise ApiError(404, "not_found", f"no key {exc.key!r}") from exc
    except KeyError as exc:  # a delete of what holds nothing live here
        raise ApiError(404, "not_found", str(exc.args[0]) if exc.args else "no such key") from exc
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc
    except ReadQuorumNotReached as exc:
        raise ApiError(504, "read_quorum_not_reached", exc.message) from exc


async def _local_view(peer: Peer, key: str, kind: str | None = None) -> dict[str, Any] | None:
    """The object ``(key, kind)`` as this peer holds it; None when ``kind`` is None and the
    key holds nothing live (a set emptied, a key deleted). A key of two kinds at once, with
    no ``kind`` named, raises :class:`KindClash`."""
    try:
        done = await peer.node.read(key, kind=kind, r=1)
    except KeyNotFound:
        return None
    return None if done.state is None else object_view(key, done.state)


def _gone(key: str) -> dict[str, Any]:
    return {"key": key, "kind": None, "value": None}


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ApiError(400, "bad_request", "the body is not UTF-8 text") from exc
    except RecursionError as exc:  # (a RuntimeError, which would read as "peer closed")
        raise ApiError(400, "bad_request", "the body nests arrays and objects too deep") from exc


# -- routes ----------------------------------------------------------------------------------


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(await _peer(request).status())


async def list_keys(request: web.Request) -> web.Response:
    peer, q = _peer(request), request.query
    prefix = _key_query(q.get("prefix") or None, "prefix")
    after = _key_query(q.get("after") or None, "after")
    text = q.get("limit", str(DEFAULT_LIMIT))
    limit = _int(text)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "bad_request", f"limit must be 1 to {MAX_LIMIT}, got {text!r}")
    keys: list[str] = []
    more = False
    iterator: AsyncIterator[str] = peer.keys(prefix=prefix, after=after)
    async with contextlib.aclosing(iterator):  # type: ignore[type-var]
        async for key in iterator:
            if len(keys) == limit:
                more = True
                break
            keys.append(key)
    return web.json_response({"keys": keys, "next": keys[-1] if more else None})


async def get_key(request: web.Request) -> web.Response:
    peer, key, q = _peer(request), request.match_info["key"], request.query
    r, timeout = _level(q.get("r")), _seconds(q.get("timeout"), "timeout")
    done = await _engine_call(peer.node.read(key, kind=q.get("kind") or None, r=r, timeout=timeout))
    if done.state is None:
        raise ApiError(404, "not_found", f"no key {key!r}")
    return web.json_response(object_view(key, done.state))


async def post_key(request: web.Request) -> web.Response:
    peer, key = _peer(request), request.match_info["key"]
    mutation = parse_mutation(await _json_body(request))
    kind = mutation.op.kind
    held = peer.replica.kinds_of(key)  # what is in memory; the write itself checks again
    if held and kind not in held:
        raise ApiError(
            409,
            "wrong_kind",
            f"key {key!r} holds {named_kinds(held)}, not {named_kinds([kind])}",
            held=held[0],
        )
    fn = mutation_fn(mutation, peer.replica_id)
    write = peer.node.write(
        key, kind, fn, w=mutation.w, strict=mutation.strict, timeout=mutation.timeout
    )
    status, body = 200, {"key": key, "quorum": True}
    try:
        result = await _engine_call(write)
    except VersionMismatch as exc:
        raise ApiError(
            409, "version_mismatch", f"key {key!r} changed since that version", current=exc.current
        ) from exc
    except QuorumNotReached as exc:
        status, result = 202, exc.result
        body.update(quorum=False, message=f"{exc.message}; durable here, replicates later")
    body["write"] = write_view(result)
    body["object"] = await _local_view(peer, key, kind)  # (emptied: the kind's empty value)
    return web.json_response(body, status=status)


async def delete_key(request: web.Request) -> web.Response:
    peer, key, q = _peer(request), request.match_info["key"], request.query
    w, timeout = _level(q.get("w")), _seconds(q.get("timeout"), "timeout")
    status, body = 200, {"key": key, "quorum": True}
    try:
        result = await _engine_call(
            peer.delete(key, kind=q.get("kind") or None, w=w, timeout=timeout)
        )
    except QuorumNotReached as exc:
        status, result = 202, exc.result
        body.update(quorum=False, message=f"{exc.message}; durable here, replicates later")
    body["write"] = write_view(result)
    return web.json_response(body, status=status)


class _Sockets:
    """The API's websockets: every open one (closed at shutdown), those subscribed (counted
    against ``limit``) and those waiting for their token, oldest first, each with the
    deadline of its wait (at most :data:`MAX_WAITING`: see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: set[web.WebSocketResponse] = set()
        self.subscribed: set[web.WebSocketResponse] = set()
        self.waiting: dict[web.WebSocketResponse, asyncio.Timeout] = {}

    def full(self) -> bool:
        return len(self.subscribed) >= self.limit

    def wait(self, ws: web.WebSocketResponse, deadline: asyncio.Timeout) -> None:
        """``ws`` waits for its token until ``deadline``; past the bound, the oldest one
        waiting is cut short (its deadline now: it finds itself no longer waiting)."""
        self.waiting[ws] = deadline
        while len(self.waiting) > MAX_WAITING:
            oldest = self.waiting.pop(next(iter(self.waiting)))
            if not oldest.expired():  # (expired: on its way out already)
                oldest.reschedule(asyncio.get_running_loop().time())


_SOCKETS = web.AppKey("sockets", _Sockets)


async def subscribe(request: web.Request) -> web.StreamResponse:
    """A websocket of changes: see the module docstring and docs/api.md."""
    app, peer, q = request.app, _peer(request), request.query
    key, prefix = q.get("key"), q.get("prefix")
    if (key is None) == (prefix is None) or key == "":
        raise ApiError(400, "bad_request", "subscribe to one ?key=KEY or one ?prefix=PREFIX")
    # Before the websocket: refused as an HTTP answer, not a socket gone without one.
    key = _key_query(key, "key", empty_ok=False)
    prefix = _key_query(prefix, "prefix")
    sockets = app[_SOCKETS]
    if sockets.full():
        raise ApiError(503, "too_many_subscriptions", f"at most {sockets.limit} at once")
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    sockets.open.add(ws)
    try:
        if not await _authenticate(ws, app):
            return ws
        if sockets.full():  # the last slot went while this token was on its way
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many subscriptions")
            return ws
        sockets.subscribed.add(ws)
        try:
            await _stream(ws, peer, key, prefix)
        finally:
            sockets.subscribed.discard(ws)
    finally:
        sockets.open.discard(ws)
    return ws


async def _stream(
    ws: web.WebSocketResponse, peer: Peer, key: str | None, prefix: str | None
) -> None:
    """Send ``ready``, then one ``change`` per change of the key (or prefix), until either
    side closes. A key left with nothing live is sent as ``kind: null``; a key holding two
    kinds at once by the time it is read has no one value and is skipped, as the peer's
    own subscriptions skip it (the peer logs the clash)."""
    sub = peer.subscribe(key) if key is not None else peer.subscribe(prefix=prefix)
    reader = asyncio.ensure_future(_drain(ws, sub.close))
    try:
        await ws.send_json({"type": "ready"})
        async for item in sub:
            changed = key if key is not None else item[0]
            try:
                view = await _local_view(peer, changed)
            except KindClash:
                continue
            await ws.send_json({"type": "change", **(view or _gone(changed))})
    except ConnectionError as exc:  # the page went away (a tab closed), maybe mid-send
        log.debug("a subscriber went away: %s", exc)
    except (RuntimeError, PeerFailed) as exc:  # the peer is closing, or the reader too slow
        log.debug("a subscription ends: %s", exc)
    finally:
        sub.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"subscription ended")


async def _authenticate(ws: web.WebSocketResponse, app: web.Application) -> bool:
    """Wait for the token message, :data:`AUTH_TIMEOUT` seconds in all (a ping does not
    stretch it, as ``ws.receive(timeout=...)`` would); close the socket unless it comes
    with the token."""
    sockets = app[_SOCKETS]
    cut_short = False
    try:
        async with asyncio.timeout(AUTH_TIMEOUT) as deadline:
            sockets.wait(ws, deadline)
            try:
                msg = await ws.receive()
            finally:
                cut_short = sockets.waiting.pop(ws, None) is None
    except TimeoutError:
        if cut_short:
            message = b"too many sockets waiting for a token; try again"
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=message)
        else:
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"no token message")
        return False
    token = None
    if msg.type == WSMsgType.TEXT:
        with contextlib.suppress(ValueError):
            data = json.loads(msg.data)
            token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not _token_ok(app, token):
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b'unauthorized: send {"token": ...}')
        return False
    return True


async def _drain(ws: web.WebSocketResponse, done: Callable[[], None]) -> None:
    """Read (and ignore) what the client sends after the token, until it closes."""
    async for _ in ws:
        pass
    done()


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[_SOCKETS].open):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def _static_routes(app: web.Application, folder: Path) -> None:
    index = folder / "index.html"
    if not index.is_file():
        raise ValueError(f"static_dir {folder} has no index.html")

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index)

    app.router.add_get("/", page)
    app.router.add_static("/static/", folder)


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def make_client_app(
    peer: Peer,
    token: str,
    *,
    static_dir: str | Path | None = None,
    max_subscriptions: int = MAX_SUBSCRIPTIONS,
) -> web.Application:
    """The aiohttp application of the client API for ``peer`` (see the module docstring).

    ``ValueError`` for a token shorter than :data:`MIN_TOKEN` characters or a
    ``static_dir`` without ``index.html``. An app may add routes of its own: they need the
    token too.
    """
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    if len(token) < MIN_TOKEN:
        raise ValueError(f"the client API token must be at least {MIN_TOKEN} characters")
    if isinstance(max_subscriptions, bool) or not isinstance(max_subscriptions, int):
        raise TypeError(f"max_subscriptions must be an int, got {max_subscriptions!r}")
    app = web.Application(middlewares=[_headers, _errors, _auth], client_max_size=MAX_BODY)
    app[_PEER] = peer
    app[_TOKEN] = token.encode()
    app[_SOCKETS] = _Sockets(max_subscriptions)
    app.router.add_get("/v1/status", get_status)
    app.router.add_get("/v1/keys", list_keys)
    app.router.add_get("/v1/keys/{key:.+}", get_key)
    app.router.add_post("/v1/keys/{key:.+}", post_key)
    app.router.add_delete("/v1/keys/{key:.+}", delete_key)
    app.router.add_get("/v1/subscribe", subscribe)
    if static_dir is not None:
        _static_routes(app, Path(static_dir))
    app.on_shutdown.append(_close_sockets)
    return app
