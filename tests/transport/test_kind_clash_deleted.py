"""A kind clash ends when one of its objects is deleted, and stays ended after a restart: the
store's clash bookkeeping at open counts live objects only, and ``shoal inspect`` agrees.

The delete comes from a peer that held only the set, and replicates to the peers that hold
both objects, whose clash then ends (a peer holding the clash may delete one kind by naming
it too: the one write allowed on a clashed key). Afterwards the key reads, and subscribers
hear of it, as its one live kind: a deleted object beside it is no clash.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

from shoal import cli
from sync.transport.peer import Peer
from tests.transport.conftest import WAIT, eventually, linked, open_peer

__all__: list[str] = []

CLASH = {"count": 1, "keys": {"k": ["orset", "pncounter"]}}
NONE = {"count": 0, "keys": {}}


def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


def _inspect_json(db: Path) -> dict[str, object]:
    code, out, err = _cli(["inspect", "--db", str(db), "--json"])
    assert code == 0, err
    report: dict[str, object] = json.loads(out)
    return report


def _clashes(peer: Peer) -> object:
    return peer.status_now()["kind_clashes"]


async def test_deleting_one_kind_ends_the_clash_for_good(tmp_path: Path) -> None:
    db = {name: tmp_path / f"{name}.db" for name in "abc"}
    a = await open_peer(db["a"], n=3)
    c = await open_peer(db["c"], n=3, listen=None, peers=[a.url])
    try:
        await linked(a, c)
        await a.orset("k").add("milk", w=2, timeout=WAIT)  # c holds the set too
    finally:
        await c.aclose()
    b = await open_peer(db["b"], n=3, listen=None)
    try:
        await b.pncounter("k").increment(3)  # off line: the same key as a counter
    finally:
        await b.aclose()
    b = await open_peer(db["b"], n=3, listen=None, peers=[a.url])
    try:
        await linked(a, b)
        for peer in (a, b):
            await eventually(lambda p=peer: _clashes(p) == CLASH, "the clash")
        await a.aclose()
        report = await asyncio.to_thread(_inspect_json, db["a"])
        assert report["kind_clashes"] == CLASH["keys"]
        code, out, err = await asyncio.to_thread(_cli, ["inspect", "--db", str(db["a"])])
        assert code == 0, err
        assert "kind clashes 1: k (orset and pncounter)" in out.splitlines()
        a = await open_peer(db["a"], n=3)
        assert _clashes(a) == CLASH  # read back from the store at open: both objects live
        await b.aclose()
        b = await open_peer(db["b"], n=3, listen=None, peers=[a.url])

        c = await open_peer(db["c"], n=3, listen=None)  # off line: it knows only the set
        try:
            assert _clashes(c) == NONE
            await c.delete("k")
        finally:
            await c.aclose()
        c = await open_peer(db["c"], n=3, listen=None, peers=[a.url])
        try:
            await linked(a, b)
            await linked(a, c)
            for peer in (a, b, c):
                await eventually(lambda p=peer: _clashes(p) == NONE, "the clash to end")
                await eventually(
                    lambda p=peer: p.replica.value("k", "pncounter") is not None, "the counter"
                )
        finally:
            await c.aclose()
    finally:
        await b.aclose()
        await a.aclose()
    for name in "ab":
        peer = await open_peer(db[name], n=3, listen=None)
        try:
            assert _clashes(peer) == NONE  # the store counts live objects only
            assert await peer.pncounter("k").value() == 3  # the other kind is untouched
            await peer.pncounter("k").increment()  # and writable again: no clash refusal
            assert [k async for k in peer.keys(None)] == ["k"]
        finally:
            await peer.aclose()
        report = await asyncio.to_thread(_inspect_json, db[name])
        assert report["kind_clashes"] == {}
        assert report["deleted"] == 1
        objects = report["objects"]
        assert isinstance(objects, list)
        assert [(o["key"], o["type"]) for o in objects] == [("k", "pncounter")]


async def _next(sub: Any) -> Any:
    return await asyncio.wait_for(sub.__anext__(), WAIT)


async def test_a_deleted_kind_beside_a_live_one_is_read_and_heard_as_the_live_one(
    tmp_path: Path,
) -> None:
    """A key deleted as one kind and written again as another (no clash anywhere), and a
    clash ended by deleting one kind: the key's value, read without naming a kind, is the
    live object's, and its subscribers (key and prefix) hear every later change. Both were
    silent or refused before: the deleted object still counted as a second kind."""
    a = await open_peer(tmp_path / "solo.db", listen=None)
    try:
        await a.lww("k").set("old")
        await a.delete("k")
        by_key, by_prefix = a.subscribe("k"), a.subscribe(prefix="k")
        await a.orset("k").add("milk")
        assert await _next(by_key) == frozenset({"milk"})
        assert await _next(by_prefix) == ("k", frozenset({"milk"}))
        assert a.replica.current_value("k") == frozenset({"milk"})
        assert _clashes(a) == NONE
    finally:
        await a.aclose()

    steady: dict[str, Any] = {"n": 2, "anti_entropy_idle_interval": 0.2}
    a = await open_peer(tmp_path / "a.db", **steady)
    b = await open_peer(tmp_path / "b.db", listen=None, **steady)
    await a.orset("c").add("milk")
    await b.pncounter("c").increment(3)  # off line: the same key as a counter
    await b.aclose()
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], **steady)
    try:
        await eventually(lambda: _clashes(a)["count"] == 1 == _clashes(b)["count"], "the clash")
        await b.delete("c", kind="pncounter", w=2, timeout=WAIT)  # allowed on a clashed key
        await eventually(lambda: _clashes(a) == NONE == _clashes(b), "the clash to end")
        subs = [a.subscribe("c"), b.subscribe("c")]
        await b.orset("c").add("eggs", w=2, timeout=WAIT)
        for sub in subs:
            assert await _next(sub) == frozenset({"milk", "eggs"})
        assert a.replica.current_value("c") == frozenset({"milk", "eggs"})
    finally:
        await b.aclose()
        await a.aclose()
