"""Deep values: what a write takes, every peer can read back, from its database too.

A value 200 arrays deep was taken by ``lww.set`` (acked, readable in the same session); the
JSON reader that loads states stops at about 200 levels, so the database could not be opened
again, and every link that carried the change closed and redialled for good. Now a value
nests at most ``MAX_DEPTH`` (64) levels and maps at most ``MAX_NESTING`` (32): deeper is
refused at the call and changes nothing, and the deepest accepted value in the deepest
accepted map replicates over real websockets and is read back by both peers after a
restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crdt._json import MAX_DEPTH
from crdt.ormap import MAX_NESTING
from tests.transport.conftest import eventually, linked, open_peer

__all__: list[str] = []


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def _in_maps(levels: int, value: Any) -> Any:
    """``fn`` for ``ormap(key).update("k", "ormap", fn)`` that writes ``value`` as an lww at
    the bottom of ``levels`` maps (the outermost counted)."""

    def at(level: int) -> Any:  # fn of the map at ``level``
        if level == levels:
            return lambda sub: sub.update("k", "lww", lambda reg: reg.set(value))
        return lambda sub: sub.update("k", "ormap", at(level + 1))

    return at(2)


def _read(value: Any, levels: int) -> Any:
    for _ in range(levels - 1):
        value = value["k"]
    return value["k"]


async def test_the_deepest_values_replicate_and_reload(tmp_path: Path) -> None:
    deep = _nested(MAX_DEPTH)
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        await a.lww("reg").set(deep, w=2)
        await a.mvregister("mv").set(deep, w=2)
        await a.orset("set").add(deep, w=2)
        await a.ormap("map").update("k", "ormap", _in_maps(MAX_NESTING, deep), w=2)

        async def b_has_all() -> bool:
            return await b.ormap("map").value() != {}

        await eventually(b_has_all, "B to hold the deep map")
    finally:
        await b.aclose()
        await a.aclose()
    expected_set = frozenset({_freeze(deep)})
    for name in ("a.db", "b.db"):
        peer = await open_peer(tmp_path / name, listen=None)
        try:
            assert await peer.lww("reg").value() == deep
            assert await peer.mvregister("mv").value() == (deep,)
            assert await peer.orset("set").value() == expected_set
            assert _read(await peer.ormap("map").value(), MAX_NESTING) == deep
        finally:
            await peer.aclose()


def _freeze(value: Any) -> Any:
    """How a set or a register's siblings give arrays back: as tuples."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


async def test_deeper_is_refused_at_the_call_and_changes_nothing(tmp_path: Path) -> None:
    peer = await open_peer(tmp_path / "p.db", listen=None)
    cycle: list[Any] = []
    cycle.append(cycle)
    try:
        await peer.lww("reg").set("kept")
        before = (await peer.status())["log_size"]
        too_deep = _nested(MAX_DEPTH + 1)
        calls = [
            lambda: peer.lww("reg").set(too_deep),
            lambda: peer.lww("reg").set(cycle),  # contains itself: before, a RecursionError
            lambda: peer.mvregister("mv").set(too_deep),
            lambda: peer.orset("set").add(too_deep),
            lambda: peer.ormap("map").update("k", "lww", lambda r: r.set(too_deep)),
            lambda: peer.ormap("map").update(too_deep, "lww", lambda r: r.set(1)),
            lambda: peer.ormap("map").update("k", "ormap", _in_maps(MAX_NESTING + 1, 1)),
        ]
        for call in calls:
            with pytest.raises(ValueError, match=r"at most (64|32)"):
                await call()
        assert (await peer.status())["log_size"] == before
        assert await peer.lww("reg").value() == "kept"
        assert peer.replica.keys() == ["reg"]
    finally:
        await peer.aclose()
