"""Issue 10 item 2: one key written offline as two kinds by two peers, over real websockets.

Before schema version 3 the receiver refused the other kind ("key 'k' holds a orset, not a
pncounter; closing its link") and the link closed and reopened for ever. Now an object is
named by its key and kind: both objects survive, replicate, and the clash is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from pathlib import Path

import pytest

from crdt import ORMap
from shoal import cli
from sync.errors import KindClash
from sync.transport.peer import Peer
from tests.transport.conftest import eventually, open_peer


def _inspect(db: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["inspect", "--db", str(db), *args])
    return code, out.getvalue()


def _objects(peer: Peer) -> dict[str, object]:
    kinds = peer.replica.kinds_of("k")
    return {kind: peer.replica.current_value("k", kind) for kind in kinds}


async def test_two_kinds_of_one_key_converge_and_the_link_stays_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shoal.peer")
    # Rounds every 0.2 s without the idle back-off: the link carries a digest a round.
    steady = {"n": 2, "anti_entropy_idle_interval": 0.2}
    a = await open_peer(tmp_path / "a.db", **steady)
    b = await open_peer(tmp_path / "b.db", listen=None, **steady)
    try:
        # Offline: each peer writes 'k' as its own kind.
        await a.orset("k").add("milk")
        await b.pncounter("k").increment(3)
        await b.aclose()
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], **steady)
        await eventually(lambda: a.replica_id in b.transport.links, "b linked to a")
        want = {"orset": frozenset({"milk"}), "pncounter": 3}
        await eventually(lambda: _objects(a) == want and _objects(b) == want, "both objects")
        link = b.transport.links[a.replica_id]

        # A few more anti-entropy rounds (0.2 s each) pass on the same link, with no refusal.
        # (A round is one digest between the two, from whichever side's round comes first.)
        def carried() -> int:
            traffic = b.transport.traffic()[a.replica_id]
            return int(traffic["messages_in"]) + int(traffic["messages_out"])

        seen = carried()
        await eventually(lambda: carried() >= seen + 6, "more rounds")
        assert b.transport.links.get(a.replica_id) is link, "the link was closed and reopened"
        assert a.node.counters.remote_errors == 0 and b.node.counters.remote_errors == 0
        assert not [r for r in caplog.records if "closing its link" in r.getMessage()]

        for peer in (a, b):
            status = await peer.status()
            assert status["kind_clashes"] == {"count": 1, "keys": {"k": ["orset", "pncounter"]}}
            assert status["engine"]["kind_clashes"] == {"k": ["orset", "pncounter"]}
            # Reads per kind work, and show the replicated object of each kind.
            assert await peer.orset("k").value() == frozenset({"milk"})
            assert await peer.pncounter("k").value() == 3
            # A local write of either kind names both kinds and the way out.
            with pytest.raises(KindClash, match=r"holds an orset and a pncounter") as info:
                await peer.orset("k").add("eggs")
            assert info.value.kinds == ("orset", "pncounter")
            assert "peer.delete('k', kind=...)" in str(info.value)
            with pytest.raises(KindClash):
                await peer.pncounter("k").increment()
            # A third kind is refused as before (a plain TypeError naming what it holds).
            with pytest.raises(TypeError, match="not a gcounter"):
                peer.gcounter("k")
            assert _objects(peer) == want  # nothing the refused writes touched changed
        warnings = [r for r in caplog.records if "two peers wrote it concurrently" in r.message]
        assert len(warnings) == 2, "one warning per peer for the one clashed key"
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_clash_survives_a_restart_and_is_reported_again(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db", n=2)
    b = await open_peer(tmp_path / "b.db", listen=None, n=2, peers=[a.url])
    try:
        await eventually(lambda: a.replica_id in b.transport.links, "linked")
        await b.transport.aclose()  # b goes offline
        await a.lww("k").set("a's")
        await b.mvregister("k").set("b's")
        await b.aclose()
        b = await open_peer(tmp_path / "b.db", listen=None, n=2, peers=[a.url])
        await eventually(lambda: len(_objects(a)) == 2 and len(_objects(b)) == 2, "both kinds")
        await a.aclose()
        a = await open_peer(tmp_path / "a.db", listen=None, n=2)
        assert (await a.status())["kind_clashes"]["keys"] == {"k": ["lww", "mvregister"]}
        assert await a.lww("k").value() == "a's"
        assert await a.mvregister("k").values() == ["b's"]
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_peer_holding_both_kinds_deletes_one_and_the_clash_ends_everywhere(
    tmp_path: Path,
) -> None:
    """The way out that the error names: ``peer.delete(key, kind=...)`` on a peer that holds
    both objects (not only on one that held a single kind)."""
    steady = {"n": 2, "anti_entropy_idle_interval": 0.2}
    a = await open_peer(tmp_path / "a.db", **steady)
    b = await open_peer(tmp_path / "b.db", listen=None, **steady)
    try:
        await a.orset("k").add("milk")
        await b.pncounter("k").increment(3)
        await b.aclose()
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], **steady)
        want = {"orset": frozenset({"milk"}), "pncounter": 3}
        await eventually(lambda: _objects(a) == want and _objects(b) == want, "both objects")
        with pytest.raises(KindClash):  # without a kind: which one?
            await b.delete("k")
        assert _objects(b) == want
        await b.delete("k", kind="pncounter", w=2, timeout=10)

        async def ended(peer: Peer) -> bool:
            return (await peer.status())["kind_clashes"]["count"] == 0

        for peer in (a, b):
            await eventually(lambda p=peer: ended(p), "the clash ends")  # type: ignore[misc]
            assert [key async for key in peer.keys()] == ["k"]  # noqa: SIM118
            await peer.orset("k").add("eggs")  # the kind kept is writable again
        await eventually(
            lambda: a.replica.current_value("k", "orset") == frozenset({"milk", "eggs"}),
            "a's and b's adds on both",
        )
        # The deleted counter is kept (a later write merges into it) but reads as empty.
        assert a.replica.current_value("k", "pncounter") == 0
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_map_key_written_offline_as_two_kinds_warns_and_one_kind_is_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Inside a map, one key written offline as two kinds by two peers over real
    websockets: each peer logs one alarm at WARNING naming the map, the key, both kinds and
    the way out; the handle's ``remove(key, kind=...)`` ends it on both, keeping the other;
    an unknown kind is refused at the call and changes nothing."""
    caplog.set_level(logging.WARNING, logger="shoal.node")
    a = await open_peer(tmp_path / "a.db", n=2)
    b = await open_peer(tmp_path / "b.db", listen=None, n=2)
    try:
        await a.ormap("prefs").update("theme", "lww", lambda r: r.set("dark"))
        await b.ormap("prefs").update("theme", "pncounter", lambda c: c.increment(3))
        # ... and inside a nested map.
        await a.ormap("prefs").update(
            "outer", "ormap", lambda n: n.update("x", "lww", lambda r: r.set("v"))
        )
        await b.ormap("prefs").update(
            "outer", "ormap", lambda n: n.update("x", "gcounter", lambda c: c.increment())
        )
        await b.aclose()
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], n=2)

        both = {("theme",): ("lww", "pncounter"), ("outer", "x"): ("gcounter", "lww")}

        def clashes(peer: Peer) -> dict[tuple[object, ...], tuple[str, ...]]:
            state = peer.replica.value("prefs", "ormap")
            return state.clash_paths() if isinstance(state, ORMap) else {}

        await eventually(lambda: clashes(a) == clashes(b) == both, "the clashes on both")
        for peer in (a, b):
            assert await peer.ormap("prefs").value() == {"theme": 3, "outer": {"x": "v"}}
            with pytest.raises(TypeError, match="holds a lww and a pncounter"):
                await peer.ormap("prefs").update("theme", "lww", lambda r: r.set("x"))
        await eventually(lambda: a.node.counters.alarms >= 2 and b.node.counters.alarms >= 2,
                         "the alarms")  # fmt: skip
        warned = [r.getMessage() for r in caplog.records if "map_kind_clash" in r.getMessage()]
        assert len(warned) == 4, warned  # one per clash per peer
        assert sum("map 'prefs': its key 'theme' holds a lww and a pncounter" in m
                   for m in warned) == 2  # fmt: skip
        assert sum("map 'prefs': the key of its map at ['outer'], 'x' holds a gcounter and a "
                   "lww" in m and "remove('x', kind=...) in the map at ['outer']" in m
                   for m in warned) == 2  # fmt: skip

        # shoal inspect reads it from the database (a peer's, while it runs).
        code, out = await asyncio.to_thread(_inspect, tmp_path / "b.db", "--json")
        assert code == 0 and json.loads(out)["map_clashes"] == {
            "prefs": [
                {"path": ["outer", "x"], "kinds": ["gcounter", "lww"]},
                {"path": ["theme"], "kinds": ["lww", "pncounter"]},
            ]
        }
        code, out = await asyncio.to_thread(_inspect, tmp_path / "b.db")
        assert code == 0
        assert (
            'kind clashes inside maps 2: prefs: ["outer", "x"] (gcounter and lww), ["theme"] '
            "(lww and pncounter)" in out
        )

        with pytest.raises(ValueError, match="unknown kind 'zset'"):
            b.ormap("prefs").remove("theme", kind="zset")
        await b.ormap("prefs").remove("theme", kind="pncounter")
        rest = {("outer", "x"): ("gcounter", "lww")}
        await eventually(lambda: clashes(a) == clashes(b) == rest, "the clash ended")
        assert await a.ormap("prefs").value() == {"theme": "dark", "outer": {"x": "v"}}
        await a.ormap("prefs").update("theme", "lww", lambda r: r.set("light"))
        await eventually(
            lambda: (
                b.replica.current_value("prefs", "ormap") == {"theme": "light", "outer": {"x": "v"}}
            ),
            "the update after the clash",
        )
    finally:
        await a.aclose()
        await b.aclose()
