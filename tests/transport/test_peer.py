"""Peers over real websockets on 127.0.0.1: quorums, restarts, relays, repair, auth, TLS."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sync.errors import QuorumNotReached
from sync.messages import Entry, Push, encode
from sync.ring import PartitionMemo, partition_of
from sync.transport.auth import client_handshake
from sync.transport.peer import Peer
from tests.transport.conftest import (
    SECRET,
    WAIT,
    eventually,
    linked,
    local_value,
    member,
    open_peer,
)


def rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall())


async def test_quorum_writes_and_reads_across_three_peers(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    c = await open_peer(tmp_path / "c.db", peers=[a.url, b.url])
    c_id = c.replica_id
    try:
        await linked(a, b, c)
        result = await a.orset("cart").add("milk", w=2, timeout=WAIT)
        assert result.acks >= 2 and a.replica_id in result.acked_by
        assert await c.orset("cart").value(r=2, timeout=WAIT) == frozenset({"milk"})
        full = await b.pncounter("visits").increment(3, w=3, timeout=WAIT)
        assert full.acks == 3 and set(full.acked_by) == {a.replica_id, b.replica_id, c_id}
        await c.aclose()
        await eventually(lambda: c_id not in a.transport.links, "a to see c go")
        with pytest.raises(QuorumNotReached) as err:
            await a.orset("cart").add("eggs", w=3, timeout=1.0)
        assert err.value.result is not None
        assert err.value.result.acks == 2 and c_id not in err.value.result.acked_by
        # Durable here, replicated to b; c gets it once it is back with its database.
        assert local_value(a, "cart") == frozenset({"milk", "eggs"})
        c = await open_peer(tmp_path / "c.db", peers=[a.url, b.url])
        assert c.replica_id == c_id
        await eventually(
            lambda: local_value(c, "cart") == frozenset({"milk", "eggs"}), "c to catch up"
        )
        assert local_value(c, "visits") == 3
    finally:
        await c.aclose()
        await b.aclose()
        await a.aclose()


async def test_engine_and_store_of_a_peer_share_one_partition_memo(tmp_path: Path) -> None:
    """A key's partition is hashed once for the engine and its store (a bootstrap asks both
    for every key it brings)."""
    a = await open_peer(tmp_path / "a.db", listen=None)
    try:
        assert isinstance(a.store.partition_of, PartitionMemo)
        assert a.node.replica._data.partition is a.store.partition_of
        await a.orset("cart").add("milk")  # the engine asks, then the store's commit
        assert a.store.partition_of._memo == {"cart": partition_of("cart", a.config.partitions)}
    finally:
        await a.aclose()


async def test_peer_stopped_and_restarted_keeps_id_and_data(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db", listen=None)
    rid = a.replica_id
    await a.orset("cart").add("milk")
    await a.lww("title").set("Groceries")
    await a.ormap("prefs").update("theme", "lww", lambda reg: reg.set("dark"))
    await a.aclose()
    a = await open_peer(tmp_path / "a.db", listen=None)
    try:
        assert a.replica_id == rid
        assert await a.orset("cart").value() == frozenset({"milk"})
        assert await a.lww("title").value() == "Groceries"
        assert await a.ormap("prefs").value() == {"theme": "dark"}
    finally:
        await a.aclose()


async def _list_is(peer: Peer, want: set[str]) -> bool:
    return await peer.orset("list").value() == frozenset(want)


async def test_relay_carries_writes_between_devices_never_online_together(
    tmp_path: Path,
) -> None:
    relay = await open_peer(tmp_path / "relay.db", relay=True)
    try:
        one = await open_peer(tmp_path / "one.db", listen=None, peers=[relay.url])
        await linked(one, relay)
        await one.orset("list").add("from one", w=2, timeout=WAIT)
        one_id = one.replica_id
        await one.aclose()
        await eventually(lambda: one_id not in relay.transport.links, "relay to see one go")

        two = await open_peer(tmp_path / "two.db", listen=None, peers=[relay.url])
        await linked(two, relay)
        # Read through the API: a key that came by state transfer is in two's store, not
        # necessarily in its engine's cache (which local_value looks at).
        await eventually(lambda: _list_is(two, {"from one"}), "two")
        result = await two.orset("list").add("from two", w=2, timeout=WAIT)
        assert relay.replica_id in result.acked_by
        # The relay now holds what one lacks (as a home replica and/or as hints for it).
        await eventually(lambda: _list_is(relay, {"from one", "from two"}), "relay")
        await two.aclose()

        one = await open_peer(tmp_path / "one.db", listen=None, peers=[relay.url])
        try:
            await eventually(
                lambda: _list_is(one, {"from one", "from two"}),
                "one to get two's write through the relay",
            )
            status = await relay.status()
            await eventually(
                lambda: relay.status_now()["peers"][one_id]["pending_hints"] == 0,
                "hints for one handed off",
            )
            assert status["relay"] is True
        finally:
            await one.aclose()
    finally:
        await relay.aclose()


async def test_read_repair_fixes_a_stale_replica(tmp_path: Path) -> None:
    quiet = {"anti_entropy_interval": None}  # only reads can repair
    a = await open_peer(tmp_path / "a.db", **quiet)
    b = await open_peer(tmp_path / "b.db", peers=[a.url], **quiet)
    b_id = b.replica_id
    try:
        await linked(a, b)
        await a.orset("cart").add("milk", w=2, timeout=WAIT)
        await b.aclose()
        await eventually(lambda: b_id not in a.transport.links, "a to see b go")
        await a.orset("cart").add("eggs")  # b misses this one
        b = await open_peer(tmp_path / "b.db", peers=[a.url], **quiet)
        await linked(a, b)
        assert local_value(b, "cart") == frozenset({"milk"})  # stale, nothing repairs it...
        value = await a.orset("cart").value(r=2, timeout=WAIT)  # ...but this read
        assert value == frozenset({"milk", "eggs"})
        await eventually(lambda: local_value(b, "cart") == value, "b to be repaired")
        await b.aclose()
        b = await open_peer(tmp_path / "b.db", listen=None, **quiet)
        assert local_value(b, "cart") == value  # and the repair is durable
    finally:
        await b.aclose()
        await a.aclose()


async def test_wrong_secret_is_rejected_and_no_data_crosses(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    try:
        await a.orset("secret-cart").add("caviar")
        before = {
            t: rows(tmp_path / "a.db", t) for t in ("objects", "log_segments", "peers", "hints")
        }
        intruder = await open_peer(tmp_path / "x.db", peers=[a.url], secret=b"wrong secret")
        try:
            await intruder.orset("junk").add("spam")
            await eventually(lambda: a.transport.rejected >= 2, "two refused handshakes")
            assert a.transport.links == {} and intruder.transport.links == {}
            assert local_value(intruder, "secret-cart") is None
            assert local_value(a, "junk") is None
        finally:
            await intruder.aclose()
        assert rows(tmp_path / "x.db", "objects") == [
            r for r in rows(tmp_path / "x.db", "objects") if r[0] == "junk"
        ]
        after = {
            t: rows(tmp_path / "a.db", t) for t in ("objects", "log_segments", "peers", "hints")
        }
        # (a's own compaction may have moved its write from the log to a checkpoint
        # meanwhile: what matters is that nothing of the intruder's arrived.)
        assert {t: after[t] for t in ("peers", "hints")} == {
            t: before[t] for t in ("peers", "hints")
        }
        assert "junk" not in repr(after) and "spam" not in repr(after)
    finally:
        await a.aclose()


async def test_tls_wss_between_peers(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    a = await open_peer(tmp_path / "a.db", tls_cert=str(cert_file), tls_key=str(key_file))
    assert a.url is not None and a.url.startswith("wss://127.0.0.1:")
    b = await open_peer(tmp_path / "b.db", peers=[a.url], tls_ca=str(ca_file))
    # A dialler that does not trust the CA never links.
    c = await open_peer(tmp_path / "c.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        await b.orset("cart").add("tls", w=2, timeout=WAIT)
        assert local_value(a, "cart") == frozenset({"tls"})
        await asyncio.sleep(0.3)
        assert c.replica_id not in a.transport.links and c.transport.links == {}
    finally:
        await c.aclose()
        await b.aclose()
        await a.aclose()


async def test_malformed_oversized_and_bad_frames_leave_the_peer_serving(
    tmp_path: Path,
) -> None:
    a = await open_peer(tmp_path / "a.db", max_message_bytes=64 * 1024)
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        await b.orset("cart").add("milk", w=2, timeout=WAIT)
        assert a.url is not None

        def stored() -> list[tuple[str, str, Any]]:
            """A's stored objects, by value (a checkpoint of "cart" may come meanwhile: a
            compaction's, after the peers' summaries; its value is still "milk")."""
            objects = rows(tmp_path / "a.db", "objects")
            return [(k, kind, sorted(json.loads(st)["entries"])) for k, kind, _, st, _ in objects]

        def unchanged(found: list[tuple[str, str, Any]]) -> bool:
            return all(k == "cart" and kind == "orset" and [e[0] for e in entries] == ["milk"]
                       for k, kind, entries in found)  # fmt: skip

        assert unchanged(stored())

        async def evil(payload: bytes, name: str) -> tuple[int | None, str | None]:
            async with connect(a.url or "", max_size=None) as ws:
                del name  # a member's id is its key's
                info = await client_handshake(ws, member(), timeout=WAIT)
                assert info.session is not None
                await ws.send(info.session.seal(payload))
                with pytest.raises(ConnectionClosed):
                    for _ in range(100):
                        await asyncio.wait_for(ws.recv(), WAIT)
                return ws.close_code, ws.close_reason

        code, reason = await evil(b"\xff not json", "evil-1")
        assert code == 1002 and reason and "malformed" in reason
        code, _ = await evil(b"[" * (128 * 1024), "evil-2")
        assert code == 1009
        bad_delta = Push(
            push_id=1,
            entries=[
                Entry(
                    origin="evil-3",
                    partition=0,
                    seq=1,
                    key="cart",
                    kind="orset",
                    delta_json='{"type": "orset", "v": 1, "garbage": true}',
                )
            ],
        )
        code, reason = await evil(encode(bad_delta), "evil-3")
        assert code == 1002 and reason
        assert unchanged(stored()), stored()
        assert local_value(a, "cart") == frozenset({"milk"})
        # The good peer is still served.
        await b.orset("cart").add("eggs", w=2, timeout=WAIT)
        assert local_value(a, "cart") == frozenset({"milk", "eggs"})
        assert b.replica_id in a.transport.links
    finally:
        await b.aclose()
        await a.aclose()


async def test_subscribe_delivers_local_and_remote_changes(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        seen: list[Any] = []
        sub = a.subscribe("cart")

        async def consume() -> None:
            async for value in sub:
                seen.append(value)
                if "eggs" in value:
                    return

        task = asyncio.ensure_future(consume())
        await a.orset("cart").add("milk")
        await b.orset("cart").add("eggs")
        await asyncio.wait_for(task, WAIT)
        assert seen[0] == frozenset({"milk"})
        assert seen[-1] == frozenset({"milk", "eggs"})
        sub.close()
        assert [v async for v in sub] == []
    finally:
        await b.aclose()
        await a.aclose()


async def test_slow_subscriber_gets_the_latest_value_without_unbounded_queue(
    tmp_path: Path,
) -> None:
    a = await open_peer(tmp_path / "a.db", listen=None)
    try:
        sub = a.subscribe("n", maxsize=2)
        for _ in range(5):
            await a.gcounter("n").increment()
        got = [await asyncio.wait_for(sub.__anext__(), WAIT) for _ in range(2)]
        assert got == [4, 5] and sub.dropped == 3
    finally:
        await a.aclose()


async def test_status_and_metrics_on_the_websocket_port(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        await b.orset("cart").add("milk", w=2, timeout=WAIT)
        assert a.url is not None
        base = a.url.replace("ws://", "http://")

        def get(path: str) -> tuple[str, str]:
            with urllib.request.urlopen(base + path, timeout=WAIT) as resp:
                return resp.headers["Content-Type"], resp.read().decode()

        ctype, body = await asyncio.to_thread(get, "/status")
        status = json.loads(body)
        assert ctype == "application/json"
        assert status["replica_id"] == a.replica_id and status["connected"] == [b.replica_id]
        assert status["peers"][b.replica_id]["bytes_in"] > 0
        # (The write's log entry may be compacted already: a round's digests show both
        # homes hold it. The field is served; its value is the engine's.)
        assert isinstance(status["log_size"], int) and status["log_size"] >= 0
        assert isinstance(status["siblings"]["keys"], int)  # a count: no key names served
        ctype, text = await asyncio.to_thread(get, "/metrics")
        assert ctype.startswith("text/plain")
        assert f'shoal_peer_connected{{peer="{b.replica_id}"}} 1.0' in text
        assert f'shoal_peer_messages_in_total{{peer="{b.replica_id}"}}' in text
        assert "shoal_log_size " in text and "shoal_pending_hints " in text
    finally:
        await b.aclose()
        await a.aclose()


async def test_bad_input_raises_and_changes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        Peer.open(str(tmp_path / "never.db"), listen="nonsense", secret=SECRET)
    with pytest.raises(ValueError, match="secret"):
        Peer.open(str(tmp_path / "never.db"), listen="127.0.0.1:0")
    with pytest.raises(ValueError, match="ws://"):
        Peer.open(str(tmp_path / "never.db"), peers=["http://x"], secret=SECRET)
    assert not (tmp_path / "never.db").exists()
    a = await open_peer(tmp_path / "a.db", listen=None)
    try:
        await a.orset("cart").add("milk")
        with pytest.raises(TypeError):
            await a.orset("cart").add(object())
        with pytest.raises(TypeError, match="holds an orset"):
            a.gcounter("cart")
        with pytest.raises(TypeError):
            await a.pncounter("n").increment("three")  # type: ignore[arg-type]
        assert await a.orset("cart").value() == frozenset({"milk"})
        assert local_value(a, "n") is None
    finally:
        await a.aclose()


async def test_transport_message_after_handshake_closes_only_that_link(tmp_path: Path) -> None:
    from sync.messages import Ping

    a = await open_peer(tmp_path / "a.db")
    try:
        assert a.url is not None
        async with connect(a.url) as ws:
            info = await client_handshake(ws, member(), timeout=WAIT)
            assert info.session is not None
            await ws.send(info.session.seal(encode(Ping(nonce=1))))
            with pytest.raises(ConnectionClosed):
                # What A sent before it read the Ping (a digest of an anti-entropy round
                # that picked the new link, under load) comes first; then the close.
                for _ in range(100):
                    await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1002
        assert a.node.counters.remote_errors == 1 and a.node.counters.input_errors == 0
        await a.orset("cart").add("still serving")
        assert local_value(a, "cart") == frozenset({"still serving"})
    finally:
        await a.aclose()


async def test_forgotten_peer_is_refused_when_it_comes_back(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        await a.forget(b.replica_id)
        await eventually(lambda: b.replica_id not in a.transport.links, "b's link closed")
        await asyncio.sleep(0.5)  # b keeps redialling; a keeps refusing
        assert b.replica_id not in a.transport.links
        assert a.status_now()["peers"].get(b.replica_id, {}).get("connected") in (None, False)
    finally:
        await b.aclose()
        await a.aclose()
    # Forgetting is durable: a reopened a still refuses b.
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await asyncio.sleep(0.5)
        assert b.replica_id not in a.transport.links
    finally:
        await b.aclose()
        await a.aclose()


async def test_dial_learned_connects_peers_introduced_by_a_third(tmp_path: Path) -> None:
    hub = await open_peer(tmp_path / "hub.db")
    c = await open_peer(tmp_path / "c.db", peers=[hub.url])
    b = await open_peer(tmp_path / "b.db", peers=[hub.url], dial_learned=True)
    try:
        await linked(hub, c)
        await linked(hub, b)
        await linked(b, c)  # b learned c's address from hub and dialled it
        assert c.url in b.transport.dialling
    finally:
        await b.aclose()
        await c.aclose()
        await hub.aclose()


async def test_hinted_handoff_through_a_relay(tmp_path: Path) -> None:
    """n=2: a key whose homes are the two devices; the relay holds the hint in between."""
    relay = await open_peer(tmp_path / "relay.db", relay=True, n=2)
    try:
        one = await open_peer(tmp_path / "one.db", listen=None, peers=[relay.url], n=2)
        one_id = one.replica_id
        await linked(one, relay)
        await one.aclose()
        two = await open_peer(tmp_path / "two.db", listen=None, peers=[relay.url], n=2)
        try:
            await linked(two, relay)
            await eventually(
                lambda: one_id in two.status_now()["engine"]["peers_known"], "two to learn one"
            )
            devices = tuple(sorted((one_id, two.replica_id)))
            key = next(
                k
                for k in (f"list-{i}" for i in range(1000))
                if tuple(sorted(two.replica.homes(k))) == devices  # type: ignore[attr-defined]
                and tuple(sorted(relay.replica.homes(k))) == devices  # type: ignore[attr-defined]
            )
            result = await two.orset(key).add("hinted", w=2, timeout=WAIT)
            assert result.hinted == (relay.replica_id,)
            assert relay.status_now()["peers"][one_id]["pending_hints"] == 1
            assert local_value(relay, key) is None  # held for one, not applied: not a home
        finally:
            await two.aclose()
        # The relay restarts from its database and still holds the hint.
        await relay.aclose()
        relay = await open_peer(tmp_path / "relay.db", relay=True, n=2)
        assert relay.status_now()["peers"][one_id]["pending_hints"] == 1
        one = await open_peer(tmp_path / "one.db", listen=None, peers=[relay.url], n=2)
        try:
            await eventually(lambda: local_value(one, key) == frozenset({"hinted"}), "handoff")
            await eventually(
                lambda: relay.status_now()["peers"][one_id]["pending_hints"] == 0,
                "the relay to drop the delivered hint",
            )
        finally:
            await one.aclose()
    finally:
        await relay.aclose()


async def test_concurrent_random_writes_on_three_peers_converge(tmp_path: Path) -> None:
    import random

    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    c = await open_peer(tmp_path / "c.db", peers=[a.url, b.url])
    peers = [a, b, c]
    try:
        await linked(a, b, c)
        rng = random.Random(1234)
        total = 0
        ops: list[Any] = []
        for i in range(300):
            p = rng.choice(peers)
            choice = rng.randrange(4)
            if choice == 0:
                ops.append(p.orset("set").add(rng.randrange(20)))
            elif choice == 1:
                ops.append(p.orset("set").remove(rng.randrange(20)))
            elif choice == 2:
                n = rng.randrange(1, 5)
                total += n
                ops.append(p.pncounter("count").increment(n))
            else:
                ops.append(
                    p.ormap("map").update(f"k{rng.randrange(5)}", "lww", lambda r, i=i: r.set(i))
                )
        await asyncio.gather(*ops)

        def converged() -> bool:
            return all(
                local_value(p, k) == local_value(a, k)
                for p in peers
                for k in ("set", "count", "map")
            )

        await eventually(converged, "all three peers to converge")
        assert local_value(a, "count") == total
        assert isinstance(local_value(a, "set"), frozenset)
        assert set(local_value(a, "map")) <= {f"k{i}" for i in range(5)}
    finally:
        for p in reversed(peers):
            await p.aclose()


async def test_writes_during_the_duplicate_connection_race_all_succeed(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    assert b.url is not None
    a.transport.dial([b.url])  # both dial: one of the two connections will be closed
    try:
        await linked(a, b)
        results = await asyncio.gather(
            *(a.gcounter("n").increment(w=2, timeout=WAIT) for _ in range(20)),
            *(b.gcounter("n").increment(w=2, timeout=WAIT) for _ in range(20)),
        )
        assert all(r.acks == 2 for r in results)
        smaller = min(a.replica_id, b.replica_id)

        def one_connection() -> bool:
            ab, ba = a.transport.links.get(b.replica_id), b.transport.links.get(a.replica_id)
            return ab is not None and ba is not None and ab.dialled_by == ba.dialled_by == smaller

        await eventually(one_connection, "one connection, dialled by the smaller id")
        assert local_value(a, "n") == local_value(b, "n") == 40
    finally:
        await b.aclose()
        await a.aclose()


async def test_restored_backup_gets_a_new_replica_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    b = await open_peer(tmp_path / "b.db")
    try:
        a = await open_peer(tmp_path / "a.db", listen=None, peers=[b.url])
        old_id = a.replica_id
        await linked(a, b)
        await a.gcounter("n").increment(w=2, timeout=WAIT)
        await a.aclose()
        for name in ("a.db", "a.db.shoal-id"):  # a backup, taken while closed
            shutil.copy(tmp_path / name, tmp_path / f"backup-{name}")
        a = await open_peer(tmp_path / "a.db", listen=None, peers=[b.url])
        await linked(a, b)
        for _ in range(3):
            await a.gcounter("n").increment(w=2, timeout=WAIT)  # b has seen dots 2..4
        await a.aclose()
        for name in ("a.db", "a.db.shoal-id"):  # restore it: dots 2..4 are "forgotten"
            shutil.copy(tmp_path / f"backup-{name}", tmp_path / name)
        for extra in ("a.db-wal", "a.db-shm"):
            (tmp_path / extra).unlink(missing_ok=True)
        a = await open_peer(tmp_path / "a.db", listen=None, peers=[b.url])
        try:
            assert a.replica_id == old_id  # the store cannot tell: the files are consistent
            await eventually(lambda: a.replica_id != old_id, "a restart under a new id")
            new_id = a.replica_id
            assert a.store.replica_id == new_id
            assert any("identity conflict" in r.message for r in caplog.records)
            await eventually(lambda: new_id in b.transport.links, "b to see the new id")
            await linked(a, b)  # and a's engine to have b up again, for the w=2 write
            await a.gcounter("n").increment(w=2, timeout=WAIT)
            assert local_value(b, "n") == 5  # 4 from the old id (1 + 3), 1 from the new one
        finally:
            await a.aclose()
        a = await open_peer(tmp_path / "a.db", listen=None)
        try:
            assert a.replica_id == new_id
        finally:
            await a.aclose()
    finally:
        await b.aclose()
