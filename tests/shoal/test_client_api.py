"""The client API (shoal.web) over real HTTP and websockets on 127.0.0.1 against real peers:
auth, every kind's mutations, reads with siblings and versions, errors as JSON that change
nothing, listing and deleting keys, and subscriptions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shoal import Peer
from shoal.web import ClientAPI, make_client_app, read_token_file, serve_client_api
from tests.transport.conftest import WAIT, eventually, linked, open_peer

TOKEN = "client-api-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Client:
    """An HTTP client of one API, with the token unless told otherwise."""

    def __init__(self, api: ClientAPI, session: aiohttp.ClientSession) -> None:
        self.api, self.session = api, session

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: Any = AUTH, raw: Any = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        async with self.session.request(
            method, self.api.url + path, data=data, headers=headers
        ) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def post(self, key: str, **body: Any) -> tuple[int, Any]:
        return await self.call("POST", f"/v1/keys/{key}", body)

    async def get(self, key: str) -> tuple[int, Any]:
        return await self.call("GET", f"/v1/keys/{key}")


async def _client(peer: Peer) -> AsyncIterator[Client]:
    api = await serve_client_api(peer, "127.0.0.1", 0, TOKEN)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as s:
            yield Client(api, s)
    finally:
        await api.aclose()


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[Peer]:
    async with Peer.open(tmp_path / "api.db") as p:
        yield p


@pytest.fixture
async def client(peer: Peer) -> AsyncIterator[Client]:
    async for c in _client(peer):
        yield c


# -- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "not-bearer"],
)
async def test_calls_without_the_token_are_refused_and_change_nothing(
    client: Client, peer: Peer, headers: dict[str, str]
) -> None:
    body = {"kind": "orset", "op": "add", "args": ["milk"]}
    status, reply = await client.call("POST", "/v1/keys/cart", body, headers=headers)
    assert status == 401
    assert reply["error"]["code"] == "unauthorized"
    for path in ("/v1/status", "/v1/keys/cart", "/v1/keys", "/v1/nothing-here"):
        status, reply = await client.call("GET", path, headers=headers)
        assert (status, reply["error"]["code"]) == (401, "unauthorized"), path
    assert peer.replica.value("cart") is None
    assert await client.get("cart") == (404, {"error": {"code": "not_found", "message": ANY}})


class _Any:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY: Any = _Any()


def test_a_short_token_is_refused(peer: Peer) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        make_client_app(peer, "short")


def test_read_token_file_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the client token file"):
        read_token_file(tmp_path / "missing")
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(ValueError, match="holds 3 characters"):
        read_token_file(tmp_path / "short")
    (tmp_path / "ok").write_text(TOKEN + "\n")
    assert read_token_file(tmp_path / "ok") == TOKEN


# -- mutations and reads ---------------------------------------------------------------------


async def test_every_kind_through_the_api_matches_the_python_api(
    client: Client, peer: Peer
) -> None:
    assert (await client.post("launches", kind="gcounter", op="increment", args=[]))[0] == 200
    status, reply = await client.post("launches", kind="gcounter", op="increment", args=[3])
    assert status == 200 and reply["quorum"] is True
    assert reply["write"] == {"acks": 1, "required": 1, "acked_by": [peer.replica_id], "hinted": []}
    assert reply["object"]["value"] == 4 == await peer.gcounter("launches").value()
    await client.post("stock", kind="pncounter", op="increment", args=[5])
    await client.post("stock", kind="pncounter", op="decrement", args=[2])
    assert await peer.pncounter("stock").value() == 3
    await client.post("title", kind="lww", op="set", args=[{"text": "Groceries"}])
    assert await peer.lww("title").value() == {"text": "Groceries"}
    await client.post("note", kind="mvregister", op="set", args=["buy bread"])
    assert await peer.mvregister("note").values() == ["buy bread"]
    for item in ("milk", "eggs", "ham"):
        await client.post("cart", kind="orset", op="add", args=[item])
    await client.post("cart", kind="orset", op="remove", args=["ham"])
    assert await peer.orset("cart").value() == {"milk", "eggs"}
    theme = {"kind": "lww", "op": "set", "args": ["dark"]}
    await client.post("prefs", kind="ormap", op="update", args=["theme", theme])
    tag = {"kind": "orset", "op": "add", "args": ["new"]}
    await client.post("prefs", kind="ormap", op="update", args=["tags", tag])
    deep = {
        "kind": "ormap",
        "op": "update",
        "args": ["n", {"kind": "pncounter", "op": "increment"}],
    }
    await client.post("prefs", kind="ormap", op="update", args=["inner", deep])
    await client.post("prefs", kind="ormap", op="update", args=["gone", theme])
    await client.post("prefs", kind="ormap", op="remove", args=["gone"])
    await client.post("prefs", kind="ormap", op="update", args=["gone2", theme])
    await client.post("prefs", kind="ormap", op="remove", args=["gone2", "orset"])  # not held
    assert (await peer.ormap("prefs").value())["gone2"] == "dark"
    await client.post("prefs", kind="ormap", op="remove", args=["gone2", "lww"])
    assert await peer.ormap("prefs").value() == {
        "theme": "dark",
        "tags": frozenset({"new"}),
        "inner": {"n": 1},
    }

    views = {key: (await client.get(key))[1] for key in ("launches", "cart", "note", "prefs")}
    rid = peer.replica_id
    assert views["launches"] == {
        "key": "launches",
        "kind": "gcounter",
        "value": 4,
        "version": {"vv": {rid: 4}, "cloud": [], "digest": ANY},
    }
    assert views["cart"]["value"] == ["eggs", "milk"]  # sorted by JSON text
    assert views["cart"]["version"] == {"vv": {rid: 3}, "cloud": [], "digest": ANY}  # 3 adds
    assert views["note"]["value"] == ["buy bread"] and views["note"]["siblings"] == 1
    assert views["prefs"]["value"] == {"theme": "dark", "tags": ["new"], "inner": {"n": 1}}
    status, title = await client.get("title")
    assert status == 200 and title["version"]["timestamp"][2] == rid


async def test_reading_a_key_with_siblings_shows_them_all(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    try:
        b = await open_peer(tmp_path / "b.db", listen=None)  # offline: writes concurrently
        await b.mvregister("note").set("from b")
        await b.aclose()
        await a.mvregister("note").set("from a")
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
        try:
            await linked(a, b)
            await eventually(
                lambda: len(a.replica.current_value("note") or ()) == 2, "a to hold both"
            )
            async for client in _client(a):
                status, view = await client.get("note")
                assert status == 200
                assert sorted(view["value"]) == ["from a", "from b"] and view["siblings"] == 2
                assert set(view["version"]["vv"]) == {a.replica_id, b.replica_id}
                # Resolving: a set made against the version that shows both replaces both.
                status, reply = await client.post(
                    "note", kind="mvregister", op="set", args=["both"], if_version=view["version"]
                )
                assert status == 200 and reply["object"]["value"] == ["both"]
            await eventually(lambda: b.replica.current_value("note") == ("both",), "b resolved")
        finally:
            await b.aclose()
    finally:
        await a.aclose()


def _nested(depth: int) -> Any:
    """A value of ``depth`` arrays one inside another."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


LWW_SET = {"kind": "lww", "op": "set"}

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not-an-object", [1, 2], "must be a JSON object"),
    ("unknown-kind", {"kind": "gset", "op": "add", "args": [1]}, "kind must be one of"),
    ("unknown-op", {"kind": "orset", "op": "clear", "args": []}, "op of an orset"),
    ("dunder-op", {"kind": "orset", "op": "__class__", "args": []}, "op of an orset"),
    ("too-few-args", {"kind": "orset", "op": "add", "args": []}, "takes 1 argument"),
    ("too-many-args", {"kind": "gcounter", "op": "increment", "args": [1, 2]}, "0 to 1"),
    ("args-not-list", {"kind": "orset", "op": "add", "args": "milk"}, "args must be"),
    ("unknown-field", {"kind": "orset", "op": "add", "args": ["x"], "ww": 2}, "unknown field"),
    ("zero", {"kind": "pncounter", "op": "increment", "args": [0]}, "amount must be in"),
    ("negative", {"kind": "pncounter", "op": "decrement", "args": [-1]}, "amount must be in"),
    ("bool-amount", {"kind": "pncounter", "op": "increment", "args": [True]}, "must be an int"),
    ("string-amount", {"kind": "pncounter", "op": "increment", "args": ["3"]}, "must be an int"),
    ("w-zero", {"kind": "orset", "op": "add", "args": ["x"], "w": 0}, "w"),
    ("w-name", {"kind": "orset", "op": "add", "args": ["x"], "w": "MOST"}, "MOST"),
    ("w-bool", {"kind": "orset", "op": "add", "args": ["x"], "w": True}, "w"),
    ("timeout", {"kind": "orset", "op": "add", "args": ["x"], "timeout": -1}, "timeout"),
    ("strict", {"kind": "orset", "op": "add", "args": ["x"], "strict": "yes"}, "strict"),
    ("version-shape", {"kind": "orset", "op": "add", "args": ["x"], "if_version": 3}, "version"),
    (
        "map-inner",
        {"kind": "ormap", "op": "update", "args": ["k", {"kind": "lww", "op": "add"}]},
        "op of a lww",
    ),
    (
        "map-inner-kind-clash",
        {
            "kind": "ormap",
            "op": "update",
            "args": ["a", {"kind": "orset", "op": "add", "args": [1]}],
        },
        "holds a",
    ),
    (
        "map-remove-unknown-kind",
        {"kind": "ormap", "op": "remove", "args": ["a", "zset"]},
        "the kind to remove must be one of",
    ),
    ("map-remove-three-args", {"kind": "ormap", "op": "remove", "args": ["a", "lww", 1]}, "1 to 2"),
    ("map-remove-list-kind", {"kind": "ormap", "op": "remove", "args": ["a", ["lww"]]}, "one of"),
    ("map-remove-object-kind", {"kind": "ormap", "op": "remove", "args": ["a", {}]}, "one of"),
    ("kind-a-list", {"kind": ["orset"], "op": "add", "args": ["x"]}, "kind must be one of"),
    ("op-an-object", {"kind": "orset", "op": {"add": 1}, "args": ["x"]}, "op of an orset"),
    # Deeper than a value may nest (before: taken, and the database could not be opened
    # again; deeper still, a RecursionError answered as 503 "peer closed").
    ("value-65-deep", {"kind": "orset", "op": "add", "args": [_nested(65)]}, "at most 64"),
    (
        "value-900-deep",
        {"kind": "ormap", "op": "update", "args": ["a", {**LWW_SET, "args": [_nested(900)]}]},
        "at most 64",
    ),
]


_TARGET = {"pncounter": "count", "gcounter": "launches", "ormap": "prefs"}


@pytest.mark.parametrize(
    ("body", "says"), [(b, s) for _, b, s in BAD_BODIES], ids=[i for i, *_ in BAD_BODIES]
)
async def test_bad_mutations_are_refused_and_change_nothing(
    client: Client, peer: Peer, body: Any, says: str
) -> None:
    lww = {"kind": "lww", "op": "set", "args": [1]}
    await client.post("thing", kind="orset", op="add", args=["kept"])
    await client.post("count", kind="pncounter", op="increment", args=[2])
    await client.post("launches", kind="gcounter", op="increment", args=[2])
    await client.post("prefs", kind="ormap", op="update", args=["a", lww])
    kind = body.get("kind") if isinstance(body, dict) else None
    target = _TARGET.get(kind, "thing") if isinstance(kind, str) else "thing"
    before = {key: await client.get(key) for key in ("thing", "count", "launches", "prefs")}
    log_size = (await peer.status())["log_size"]
    status, reply = await client.call("POST", f"/v1/keys/{target}", body)
    assert status == 400, reply
    assert reply["error"]["code"] == "bad_request"
    assert says in reply["error"]["message"]
    assert {key: await client.get(key) for key in before} == before
    assert (await peer.status())["log_size"] == log_size


async def test_malformed_json_and_huge_bodies_are_refused(client: Client, peer: Peer) -> None:
    status, reply = await client.call("POST", "/v1/keys/cart", raw="{nope")
    assert (status, reply["error"]["code"]) == (400, "bad_request")
    assert "not JSON" in reply["error"]["message"]
    deep = '{"kind": "lww", "op": "set", "args": [' + "[" * 5000 + "]" * 5000 + "]}"
    status, reply = await client.call("POST", "/v1/keys/cart", raw=deep)
    assert (status, reply["error"]["code"]) == (400, "bad_request")  # not 503 "peer closed"
    assert "too deep" in reply["error"]["message"]
    huge = json.dumps({"kind": "orset", "op": "add", "args": ["x" * (2 * 1024 * 1024)]})
    status, reply = await client.call("POST", "/v1/keys/cart", raw=huge)
    assert (status, reply["error"]["code"]) == (413, "too_large")
    assert peer.replica.value("cart") is None


async def test_a_mutation_of_another_kind_is_refused(client: Client, peer: Peer) -> None:
    await client.post("cart", kind="orset", op="add", args=["milk"])
    before = await client.get("cart")
    status, reply = await client.post("cart", kind="gcounter", op="increment", args=[1])
    assert status == 409
    assert reply["error"] == {
        "code": "wrong_kind",
        "message": "key 'cart' holds an orset, not a gcounter",
        "held": "orset",
    }
    assert await client.get("cart") == before


async def test_a_write_against_a_stale_version_is_refused(client: Client, peer: Peer) -> None:
    await client.post("note", kind="mvregister", op="set", args=["first"])
    _, seen = await client.get("note")
    await peer.mvregister("note").set("second")  # another writer, after the client read
    status, reply = await client.post(
        "note", kind="mvregister", op="set", args=["third"], if_version=seen["version"]
    )
    assert status == 409 and reply["error"]["code"] == "version_mismatch"
    assert reply["error"]["current"] != seen["version"]
    assert await peer.mvregister("note").values() == ["second"]
    status, reply = await client.post(
        "note", kind="mvregister", op="set", args=["third"], if_version=reply["error"]["current"]
    )
    assert status == 200 and await peer.mvregister("note").values() == ["third"]


async def test_a_missed_quorum_is_accepted_and_durable(client: Client, peer: Peer) -> None:
    status, reply = await client.post(
        "cart", kind="orset", op="add", args=["milk"], w=2, timeout=0.2
    )
    assert status == 202
    assert reply["quorum"] is False and "replicates later" in reply["message"]
    assert reply["write"]["acks"] == 1 and reply["write"]["required"] == 2
    assert await peer.orset("cart").value() == {"milk"}


async def test_reads_unknown_keys_routes_and_methods(client: Client) -> None:
    assert (await client.get("nothing"))[0] == 404
    status, reply = await client.call("GET", "/v1/nowhere")
    assert (status, reply["error"]["code"]) == (404, "not_found")
    status, reply = await client.call("PUT", "/v1/keys/x", {})
    assert (status, reply["error"]["code"]) == (405, "method_not_allowed")
    status, reply = await client.call("GET", "/v1/keys/x?timeout=soon")
    assert (status, reply["error"]["code"]) == (400, "bad_request")
    status, reply = await client.call("GET", "/v1/keys/x?r=0")
    assert (status, reply["error"]["code"]) == (400, "bad_request")


BAD_QUERIES = [
    ("GET", "/v1/keys?limit=%C2%B2"),  # a superscript 2: a digit to isdigit(), not to int()
    ("GET", "/v1/keys?limit=%D9%A1"),  # an Arabic-Indic 1: int() takes it, the API does not
    ("GET", "/v1/keys?limit=+5"),
    ("GET", "/v1/keys?prefix=%00"),
    ("GET", "/v1/keys?after=%00"),
    ("GET", "/v1/keys/cart?r=%C2%B2"),
    ("GET", "/v1/keys/cart?r=-1"),
    ("DELETE", "/v1/keys/cart?w=%C2%B2"),
    ("DELETE", "/v1/keys/cart?w=0"),
    ("POST", "/v1/keys/a%00b"),
    ("DELETE", "/v1/keys/a%00b"),
]


@pytest.mark.parametrize(("method", "path"), BAD_QUERIES, ids=[p for _, p in BAD_QUERIES])
async def test_bad_queries_are_400_and_change_nothing(
    client: Client, peer: Peer, method: str, path: str
) -> None:
    await peer.orset("cart").add("milk")
    body = {"kind": "orset", "op": "add", "args": ["x"]} if method == "POST" else None
    status, reply = await client.call(method, path, body)
    assert (status, reply["error"]["code"]) == (400, "bad_request"), reply
    assert await peer.orset("cart").value() == {"milk"}


async def test_a_token_header_that_is_not_utf8_is_a_wrong_token(client: Client) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.api.port)
    try:
        writer.write(
            b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer \xff\xfe-not-text\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), WAIT)
    finally:
        writer.close()
    assert head.split()[1] == b"401", head


async def test_a_read_quorum_missed_is_504(client: Client, peer: Peer) -> None:
    await peer.orset("cart").add("milk")
    status, reply = await client.call("GET", "/v1/keys/cart?r=2&timeout=0.2")
    assert (status, reply["error"]["code"]) == (504, "read_quorum_not_reached")


async def test_status_is_the_peers(client: Client, peer: Peer) -> None:
    await peer.orset("cart").add("milk")
    status, reply = await client.call("GET", "/v1/status")
    assert status == 200
    assert reply["replica_id"] == peer.replica_id and reply["keys"] == 1


# -- keys and delete ----------------------------------------------------------------------


async def test_listing_keys_pages_through_a_prefix(client: Client, peer: Peer) -> None:
    for key in ("a:1", "a:2", "a:3", "b:1"):
        await peer.gcounter(key).increment()
    status, page = await client.call("GET", "/v1/keys?prefix=a:&limit=2")
    assert status == 200 and page == {"keys": ["a:1", "a:2"], "next": "a:2"}
    status, page = await client.call("GET", "/v1/keys?prefix=a:&limit=2&after=a:2")
    assert page == {"keys": ["a:3"], "next": None}
    status, reply = await client.call("GET", "/v1/keys?limit=0")
    assert (status, reply["error"]["code"]) == (400, "bad_request")


async def test_deleting_a_key(client: Client, peer: Peer) -> None:
    await peer.orset("cart").add("milk")
    status, reply = await client.call("DELETE", "/v1/keys/cart")
    assert status == 200 and reply["write"]["acks"] == 1
    assert await peer.orset("cart").value() == frozenset()
    status, reply = await client.call("DELETE", "/v1/keys/cart")  # nothing live left
    assert (status, reply["error"]["code"]) == (404, "not_found")


async def test_deleting_one_kind_of_a_clashed_key_ends_the_clash(tmp_path: Path) -> None:
    # docs/api.md, DELETE /v1/keys/{key}: 409 kind_clash when the key holds two kinds and
    # no ?kind= names one; naming one deletes that object, as peer.delete(key, kind=) does.
    a = await open_peer(tmp_path / "a.db")
    try:
        b = await open_peer(tmp_path / "b.db", listen=None)  # offline: another kind
        await b.pncounter("k").increment(3)
        await b.aclose()
        await a.orset("k").add("milk")
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
        try:
            await eventually(lambda: len(a.replica.kinds_of("k")) == 2, "a to hold both kinds")
            async for client in _client(a):
                status, reply = await client.call("DELETE", "/v1/keys/k")
                assert (status, reply["error"]["code"]) == (409, "kind_clash")
                assert reply["error"]["kinds"] == ["orset", "pncounter"]
                status, reply = await client.call("DELETE", "/v1/keys/k?kind=pncounter")
                assert status == 200 and reply["write"]["acks"] == 1
                status, view = await client.get("k")  # one kind left: no clash
                assert status == 200 and (view["kind"], view["value"]) == ("orset", ["milk"])
        finally:
            await b.aclose()
    finally:
        await a.aclose()


# -- subscriptions ---------------------------------------------------------------------------


async def _ws(client: Client, query: str, token: str = TOKEN) -> aiohttp.ClientWebSocketResponse:
    ws = await client.session.ws_connect(
        client.api.url.replace("http", "ws") + f"/v1/subscribe?{query}"
    )
    await ws.send_json({"token": token})
    return ws


async def _next(ws: aiohttp.ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=WAIT)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def test_a_key_subscription_streams_local_and_remote_changes(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        async for client in _client(a):
            ws = await _ws(client, "key=cart")
            assert await _next(ws) == {"type": "ready"}
            await a.orset("cart").add("milk")
            change = await _next(ws)
            assert change["type"] == "change" and change["key"] == "cart"
            assert change["kind"] == "orset" and change["value"] == ["milk"]
            await b.orset("cart").add("eggs")  # remote
            await b.orset("other").add("not for this subscription")
            change = await _next(ws)
            assert change["value"] == ["eggs", "milk"]
            await ws.close()
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_prefix_subscription_streams_every_key_under_it(client: Client, peer: Peer) -> None:
    ws = await _ws(client, "prefix=shop:")
    assert await _next(ws) == {"type": "ready"}
    await peer.orset("elsewhere").add("x")
    await peer.orset("shop:1:items").add("milk")
    await peer.mvregister("shop:1:note").set("hi")
    seen = [await _next(ws), await _next(ws)]
    assert [(c["key"], c["value"]) for c in seen] == [
        ("shop:1:items", ["milk"]),
        ("shop:1:note", ["hi"]),
    ]
    await ws.close()


@pytest.mark.parametrize(
    "first", ['{"token": "wrong-token-wrong-token"}', "not json", '{"nope": 1}']
)
async def test_a_subscription_without_the_token_is_closed(
    client: Client, peer: Peer, first: str
) -> None:
    ws = await client.session.ws_connect(
        client.api.url.replace("http", "ws") + "/v1/subscribe?key=cart"
    )
    await ws.send_str(first)
    await peer.orset("cart").add("milk")
    msg = await ws.receive(timeout=WAIT)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401
    assert ws.close_code == 4401


async def test_a_subscription_needs_one_key_or_prefix(client: Client) -> None:
    for query in ("", "key=a&prefix=b", "key=", "key=a%00b", "prefix=a%00", "key=%ED%A0%80"):
        status, reply = await client.call("GET", f"/v1/subscribe?{query}")
        assert (status, reply["error"]["code"]) == (400, "bad_request"), query


async def test_closing_the_api_ends_subscriptions_and_leaves_the_peer_open(
    peer: Peer,
) -> None:
    api = await serve_client_api(peer, "127.0.0.1", 0, TOKEN)
    async with aiohttp.ClientSession() as session:
        client = Client(api, session)
        ws = await _ws(client, "key=cart")
        assert await _next(ws) == {"type": "ready"}
        await api.aclose()
        msg = await ws.receive(timeout=WAIT)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await peer.orset("cart").add("still open")
    assert await peer.orset("cart").value() == {"still open"}
    assert not peer._prefix_subs and not peer._subs  # the websocket's subscription is gone
