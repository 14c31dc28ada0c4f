"""Bad input from a user of the embedding API is refused at the call, with a ``ValueError`` or
``TypeError`` naming what is wrong, and changes nothing: keys and prefixes without UTF-8
text, per-call levels and options, a closed peer's ``subscribe``, a ``max_message_bytes``
that leaves no room for a write."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync.config import MIN_MESSAGE_BYTES
from sync.errors import LocalProtocolError
from sync.transport.peer import Peer
from tests.transport.conftest import WAIT, open_peer

# Strings Python holds but UTF-8 cannot spell: lone surrogates (``os.fsdecode`` makes the
# second kind from bytes that are not UTF-8).
NOT_UTF8 = ["\ud800", "cart:\udfff", "a\udc80b"]

HANDLES = ["gcounter", "pncounter", "lww", "mvregister", "orset", "ormap"]


async def _keys(peer: Peer) -> list[str]:
    return [k async for k in peer.keys()]  # noqa: SIM118 (an async iterator, not a dict)


# -- keys and prefixes -----------------------------------------------------------------------


@pytest.mark.parametrize("key", NOT_UTF8)
async def test_a_key_without_utf8_text_is_refused_at_the_call(tmp_path: Path, key: str) -> None:
    async with await open_peer(tmp_path / "a.db", listen=None) as peer:
        refusals: list[Callable[[], Any]] = [
            *(lambda kind=kind: getattr(peer, kind)(key) for kind in HANDLES),
            lambda: peer.subscribe(key),
            lambda: peer.subscribe(prefix=key),
            lambda: peer.keys(prefix=key),
            lambda: peer.keys(after=key),
            lambda: peer.whereabouts(key),
            lambda: peer.watch(key),
        ]
        for refuse in refusals:
            with pytest.raises(ValueError, match="UTF-8") as err:
                refuse()
            assert "no store can keep it" in str(err.value)
        with pytest.raises(ValueError, match="UTF-8"):
            await peer.delete(key)  # (a coroutine: refused at its await, before any lookup)
        assert not peer._subs and not peer._prefix_subs
        assert await _keys(peer) == [] and peer.failure is None


async def test_keys_are_checked_as_one_everywhere(tmp_path: Path) -> None:
    """NUL, empty and non-str keys get the same refusal from every place that takes a key."""
    async with await open_peer(tmp_path / "a.db", listen=None) as peer:
        cases: list[tuple[Any, type[Exception], str]] = [
            ("a\x00b", ValueError, "NUL"),
            ("", ValueError, "empty"),
            (3, TypeError, "got int"),
        ]
        for bad, error, match in cases:
            refusals: list[Callable[[Any], Any]] = [peer.lww, peer.subscribe, peer.whereabouts]
            for refuse in refusals:
                with pytest.raises(error, match=match):
                    refuse(bad)
            with pytest.raises(error, match=match):
                await peer.delete(bad)
        with pytest.raises(ValueError, match="NUL"):
            peer.subscribe(prefix="a\x00")
        assert not peer._subs and not peer._prefix_subs


async def test_keys_with_any_utf8_text_still_work(tmp_path: Path) -> None:
    async with await open_peer(tmp_path / "a.db", listen=None) as peer:
        for key in ("café", "🛒:alice", "\u2028\U0010ffff"):
            await peer.lww(key).set(key)
            assert await peer.lww(key).value() == key
        assert [k async for k in peer.keys(prefix="🛒")] == ["🛒:alice"]
        assert peer.whereabouts("café").here


# -- subscriptions and a closed peer ---------------------------------------------------------


async def test_subscribe_on_a_closed_peer_raises_like_every_other_call(tmp_path: Path) -> None:
    peer = await open_peer(tmp_path / "a.db", listen=None)
    await peer.aclose()
    with pytest.raises(RuntimeError, match="the peer is closed"):
        peer.lww("k").set(1)
    with pytest.raises(RuntimeError, match=r"^the peer is closed$"):
        peer.subscribe("k")
    with pytest.raises(RuntimeError, match=r"^the peer is closed$"):
        peer.subscribe(prefix="k")
    assert not peer._subs and not peer._prefix_subs


async def test_subscriptions_open_when_the_peer_closes_end(tmp_path: Path) -> None:
    peer = await open_peer(tmp_path / "a.db", listen=None)
    one, under = peer.subscribe("k"), peer.subscribe(prefix="")
    await peer.lww("k").set(1)

    async def drain(sub: Any) -> list[Any]:
        return [v async for v in sub]

    tasks = [asyncio.ensure_future(drain(one)), asyncio.ensure_future(drain(under))]
    await asyncio.sleep(0)
    await peer.aclose()
    async with asyncio.timeout(WAIT):  # each iteration ends: no hang
        got = await asyncio.gather(*tasks)
    assert got == [[1], [("k", 1)]]


# -- per-call levels and options -------------------------------------------------------------

BAD_LEVELS: list[tuple[Any, type[Exception], str]] = [
    (5, ValueError, "impossible with n=3"),
    (0, ValueError, "impossible with n=3"),
    (True, TypeError, "must be an int or one of"),
    (2.0, TypeError, "must be an int or one of"),
    ("nope", ValueError, "must be an int or one of"),
    ("LOCAL_QUORUM", ValueError, "LOCAL_QUORUM needs site"),
]

BAD_OPTIONS: list[tuple[dict[str, Any], type[Exception], str]] = [
    *(({"w": level}, error, match) for level, error, match in BAD_LEVELS),
    ({"strict": "yes"}, TypeError, "strict must be a bool"),
    ({"timeout": -1}, ValueError, "timeout must be > 0"),
    ({"timeout": "1"}, TypeError, "timeout must be a number"),
]


def _mutators(peer: Peer) -> list[Callable[..., Any]]:
    return [
        lambda **kw: peer.gcounter("g").increment(**kw),
        lambda **kw: peer.pncounter("p").decrement(**kw),
        lambda **kw: peer.lww("l").set("x", **kw),
        lambda **kw: peer.mvregister("m").set("x", **kw),
        lambda **kw: peer.orset("s").add("x", **kw),
        lambda **kw: peer.orset("s").remove("x", **kw),
        lambda **kw: peer.ormap("o").update("a", "lww", lambda r: r.set(1), **kw),
        lambda **kw: peer.ormap("o").remove("a", **kw),
        lambda **kw: peer.lww("l").delete(**kw),
    ]


@pytest.mark.parametrize(("options", "error", "match"), BAD_OPTIONS)
async def test_a_bad_write_option_raises_at_the_call_and_queues_nothing(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    async with await open_peer(tmp_path / "a.db", listen=None) as peer:
        for mutate in _mutators(peer):
            with pytest.raises(error, match=match) as err:
                mutate(**options)  # raises here: no future is returned
            assert not isinstance(err.value, LocalProtocolError)
        with pytest.raises(error, match=match):
            await peer.delete("never-written", **options)  # before "nothing to delete"
        assert await _keys(peer) == [] and peer.failure is None


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [({"r": level}, error, match) for level, error, match in BAD_LEVELS]
    + [(o, e, m) for o, e, m in BAD_OPTIONS if "w" not in o],
)
async def test_a_bad_read_option_raises_a_documented_error(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    async with await open_peer(tmp_path / "a.db", listen=None) as peer:
        await peer.lww("l").set("x")
        for read in (peer.lww("l").value, peer.lww("l").state, peer.mvregister("m").values):
            with pytest.raises(error, match=match) as err:
                await read(**options)
            assert not isinstance(err.value, LocalProtocolError)


async def test_local_quorum_works_on_a_peer_with_a_site(tmp_path: Path) -> None:
    async with await open_peer(tmp_path / "a.db", listen=None, site="eu") as peer:
        result = await peer.lww("l").set("x", w="LOCAL_QUORUM")
        assert result.acks == 1
        assert await peer.lww("l").value(r="LOCAL_QUORUM") == "x"


# -- max_message_bytes -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 4096, MIN_MESSAGE_BYTES - 1])
async def test_a_message_limit_too_small_for_any_write_is_refused_at_open(
    tmp_path: Path, size: int
) -> None:
    with pytest.raises(ValueError, match=f"max_message_bytes must be >= {MIN_MESSAGE_BYTES}"):
        Peer.open(str(tmp_path / "a.db"), max_message_bytes=size)
    assert not (tmp_path / "a.db").exists()


async def test_the_smallest_message_limit_carries_writes(tmp_path: Path) -> None:
    async with await open_peer(
        tmp_path / "a.db", listen=None, max_message_bytes=MIN_MESSAGE_BYTES
    ) as peer:
        assert peer.config.entry_limit > peer.config.value_limit > 0
        await peer.lww("x").set(1)
        await peer.lww("big").set("v" * (peer.config.value_limit - 100))
        assert await peer.lww("x").value() == 1


async def test_a_value_with_a_lone_surrogate_in_an_object_key_is_refused_at_the_call(
    tmp_path: Path,
) -> None:
    """``{"\\udfff": 1}`` passed the value check (its keys were checked to be str, not to
    have UTF-8 text), was applied in memory, and the store's encoding refused the commit:
    the peer stopped serving (PeerFailed), after every restart of the write's retry too."""
    async with await open_peer(tmp_path / "p.db", listen=None) as peer:
        await peer.lww("kept").set("yes")
        for call in (
            lambda: peer.lww("k").set({"\udfff": 1}),
            lambda: peer.mvregister("m").set([{"\ud83d": 0}]),
            lambda: peer.ormap("map").update("f", "lww", lambda r: r.set({"a": {"\udc80": 1}})),
        ):
            with pytest.raises(TypeError, match="lone surrogate"):
                await call()
        assert peer.failure is None
        await peer.lww("after").set(1)
        assert await peer.lww("kept").value() == "yes"
        assert peer.replica.keys() == ["after", "kept"]


async def test_a_key_over_the_byte_bound_is_refused_at_the_call(tmp_path: Path) -> None:
    """A key of more than MAX_KEY_BYTES bytes of UTF-8 is refused at the call; one at the
    bound works (ASCII or not). Every store must hold every key a peer takes: PostgreSQL's
    b-tree index rows hold at most 2,704 bytes, so a relay on it refused the commit of a
    2.7 KB key a SQLite device took, stopped, and failed every restart."""
    from sync.config import MAX_KEY_BYTES

    async with await open_peer(tmp_path / "p.db", listen=None) as peer:
        at_bound = ["k" * MAX_KEY_BYTES, "é" * (MAX_KEY_BYTES // 2)]
        for key in at_bound:
            await peer.lww(key).set(1)
        for key in ("k" * (MAX_KEY_BYTES + 1), "é" * (MAX_KEY_BYTES // 2) + "k"):
            with pytest.raises(ValueError, match=f"over the {MAX_KEY_BYTES} allowed"):
                peer.lww(key)
            with pytest.raises(ValueError, match="allowed"):
                peer.subscribe(prefix=key)
        assert sorted(peer.replica.keys()) == sorted(at_bound)
        assert peer.failure is None


async def test_a_given_timestamp_past_the_peers_skew_bound_is_refused_at_the_call(
    tmp_path: Path,
) -> None:
    """``lww.set(v, timestamp=...)`` was checked against a fixed minute: with
    ``max_clock_skew=10`` a timestamp 30 s ahead was taken here, and every peer then set the
    write aside. Now one past the peer's bound is refused at the call (a register's, and a
    register's in a map), and nothing changes; one within it is taken."""
    import time

    from crdt import ClockSkewError, Timestamp

    async with await open_peer(tmp_path / "p.db", listen=None, max_clock_skew=10.0) as peer:
        rid = peer.replica_id
        ahead = Timestamp(int(time.time() * 1000) + 30_000, 0, rid)
        with pytest.raises(ClockSkewError):
            peer.lww("reg").set("ahead", timestamp=ahead)
        with pytest.raises(ClockSkewError):
            await peer.ormap("map").update("f", "lww", lambda r: r.set("ahead", timestamp=ahead))
        assert peer.replica.keys() == []
        soon = Timestamp(int(time.time() * 1000) + 5_000, 0, rid)
        await peer.lww("reg").set("soon", timestamp=soon)
        assert await peer.lww("reg").value() == "soon"


# -- Peer.open's own options -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"synchronous": "OFF"}, ValueError, r"synchronous must be one of .*, got 'OFF'"),
        ({"synchronous": 1}, TypeError, "synchronous must be a str, got 1"),
        ({"subscriber_queue": 0}, ValueError, "subscriber_queue must be >= 1, got 0"),
        ({"subscriber_queue": "10"}, TypeError, "subscriber_queue must be an int, got '10'"),
        ({"subscriber_queue": True}, TypeError, "subscriber_queue must be an int, got True"),
        ({"sibling_warning": 0}, ValueError, "sibling_warning must be >= 1, got 0"),
        ({"transport": "fast"}, TypeError, "transport must be a TransportConfig or None"),
    ],
)
def test_a_bad_option_of_peer_open_raises_at_the_call(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    # docs/api.md, Peer.open: "Bad arguments raise ValueError or TypeError at the call,
    # before anything is opened". synchronous was refused only when awaited, a
    # subscriber_queue of 0 by every subscribe() after, a transport not a TransportConfig
    # by dataclasses.replace's own words.
    with pytest.raises(error, match=match):
        Peer.open(str(tmp_path / "a.db"), **options)
    assert not (tmp_path / "a.db").exists()


async def test_synchronous_is_taken_in_any_case(tmp_path: Path) -> None:
    async with Peer.open(str(tmp_path / "a.db"), synchronous="normal") as peer:
        await peer.gcounter("k").increment()
