"""The client API's versions and ``if_version``: every change a reader could see changes the
version (an observed remove and a delete too, which leave a causal context as it was); an
object with nothing live has the empty version, which a write made against "nothing here"
sends; peers holding the same state show the same version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoal import Peer
from tests.shoal.test_client_api import Client, _client, client, peer
from tests.transport.conftest import eventually, linked, open_peer

__all__ = ["client", "peer"]

EMPTY = {"vv": {}, "cloud": []}
LWW = {"kind": "lww", "op": "set", "args": ["x"]}

# kind -> (two writes that make a live object, a change that keeps it live, a next write)
CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]] = {
    "orset": (
        [{"op": "add", "args": ["milk"]}, {"op": "add", "args": ["eggs"]}],
        {"op": "remove", "args": ["milk"]},
        {"op": "add", "args": ["bread"]},
    ),
    "ormap": (
        [{"op": "update", "args": ["a", LWW]}, {"op": "update", "args": ["b", LWW]}],
        {"op": "remove", "args": ["a"]},
        {"op": "update", "args": ["c", LWW]},
    ),
    "mvregister": (
        [{"op": "set", "args": ["one"]}, {"op": "set", "args": ["two"]}],
        {"op": "set", "args": ["three"]},
        {"op": "set", "args": ["four"]},
    ),
    "gcounter": (
        [{"op": "increment"}, {"op": "increment"}],
        {"op": "increment"},
        {"op": "increment"},
    ),
    "pncounter": (
        [{"op": "increment"}, {"op": "increment"}],
        {"op": "decrement"},
        {"op": "increment"},
    ),
    "lww": ([{"op": "set", "args": [1]}, {"op": "set", "args": [2]}], LWW, LWW),
}


async def _write(client: Client, key: str, kind: str, body: dict[str, Any], **extra: Any) -> Any:
    return await client.post(key, **{**body, "kind": kind, **extra})


@pytest.mark.parametrize("kind", list(CASES))
async def test_a_write_against_a_version_from_before_a_change_is_refused(
    client: Client, peer: Peer, kind: str
) -> None:
    made, change, then = CASES[kind]
    for body in made:
        assert (await _write(client, "k", kind, body))[0] == 200
    status, seen = await client.get("k")
    assert status == 200 and seen["version"] != EMPTY
    assert await client.get("k") == (200, seen)  # reading changes nothing
    await _write(client, "k", kind, change)
    status, now = await client.get("k")
    assert now["version"] != seen["version"]
    status, reply = await _write(client, "k", kind, then, if_version=seen["version"])
    assert (status, reply["error"]["code"]) == (409, "version_mismatch")
    assert reply["error"]["current"] == now["version"]
    assert await client.get("k") == (200, now)  # refused: nothing changed
    assert (await _write(client, "k", kind, then, if_version=now["version"]))[0] == 200


@pytest.mark.parametrize("kind", list(CASES))
async def test_a_delete_changes_the_version_to_the_empty_one(
    client: Client, peer: Peer, kind: str
) -> None:
    made, _, then = CASES[kind]
    for body in made:
        await _write(client, "k", kind, body)
    _, seen = await client.get("k")
    status, _ = await client.call("DELETE", "/v1/keys/k")
    assert status == 200
    status, reply = await _write(client, "k", kind, then, if_version=seen["version"])
    assert (status, reply["error"]["code"]) == (409, "version_mismatch")
    assert reply["error"]["current"] == EMPTY
    assert (await client.get("k"))[0] == 404  # the delete stands
    # A write made against "nothing here" goes through while nothing is.
    status, reply = await _write(client, "k", kind, then, if_version=EMPTY)
    assert status == 200 and reply["object"]["version"] != EMPTY


async def test_a_key_never_written_has_the_empty_version(client: Client) -> None:
    body = {"op": "set", "args": ["first"]}
    status, reply = await _write(client, "note", "mvregister", body, if_version=EMPTY)
    assert status == 200
    status, reply = await _write(client, "note", "mvregister", body, if_version=EMPTY)
    assert (status, reply["error"]["code"]) == (409, "version_mismatch")


async def test_an_emptied_set_shows_the_empty_version(client: Client) -> None:
    await client.post("cart", kind="orset", op="add", args=["milk"])
    _, seen = await client.get("cart")
    status, reply = await client.post("cart", kind="orset", op="remove", args=["milk"])
    assert status == 200 and reply["object"]["version"] == EMPTY
    status, reply = await client.post(
        "cart", kind="orset", op="add", args=["eggs"], if_version=seen["version"]
    )
    assert (status, reply["error"]["code"]) == (409, "version_mismatch")


async def test_peers_holding_the_same_state_show_the_same_version(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        for item in ("milk", "eggs", "ham"):
            await a.orset("cart").add(item, w=2)
        await b.orset("cart").remove("ham", w=2)
        await a.ormap("prefs").update("theme", "lww", lambda r: r.set("dark"), w=2)
        await eventually(lambda: a.replica.current_value("cart") == {"milk", "eggs"}, "a")
        views: list[dict[str, Any]] = []
        for p in (a, b):
            async for client in _client(p):
                views.append({key: (await client.get(key))[1] for key in ("cart", "prefs")})
        assert views[0] == views[1]
        assert views[0]["cart"]["value"] == ["eggs", "milk"]
    finally:
        await b.aclose()
        await a.aclose()
