"""A wall clock stepped while a peer runs (NTP setting it right) moves the horizon received
timestamps are judged by, not only the stamps of its own writes.

The engine's ``now`` is monotonic (it must never go back), anchored to the wall clock once,
at start. A peer that started a day behind and was then set right kept judging its peers'
writes by the old anchor: every LWW write of a correct peer was set aside as "a day ahead"
(w=2 writes failed, the alarm blamed the other's clock) until it restarted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.transport.conftest import WAIT, eventually, linked, open_peer

__all__: list[str] = []

DAY = 86_400.0


async def test_a_peer_started_a_day_behind_and_set_right_takes_correct_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = time.time
    monkeypatch.setattr(time, "time", lambda: wall() - DAY)  # A starts a day behind...
    a = await open_peer(tmp_path / "a.db")
    monkeypatch.undo()  # ...then its clock is set right, while it runs
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        result = await b.lww("note").set("written by B", w=2, timeout=WAIT)
        assert result.acks == 2  # A applied it: not set aside as a day ahead
        assert await a.lww("note").value() == "written by B"
        status = await a.status()
        assert status["peers"][b.replica_id]["clock_skew_set_aside"] == 0
        await a.lww("note").set("written by A", w=2, timeout=WAIT)

        async def b_reads_a() -> bool:
            return await b.lww("note").value() == "written by A"

        await eventually(b_reads_a, "B to read A's later write")
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_home_seen_just_before_a_restart_is_not_gone_after_the_clock_was_set_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device that booted a day behind (no RTC) and was set right while A ran: the times A
    persisted (when it last saw B) were on its engine's clock, anchored a day behind, so at
    the next open B, seen a moment before, read as not seen for a day: past
    home_down_window, reported, and no longer holding compaction back."""
    wall = time.time
    monkeypatch.setattr(time, "time", lambda: wall() - DAY)
    a = await open_peer(tmp_path / "a.db", home_down_window=3_600.0)
    monkeypatch.undo()
    try:
        b = await open_peer(tmp_path / "b.db", peers=[a.url], home_down_window=3_600.0)
        try:
            await linked(a, b)
            await b.lww("note").set("written by B", w=2, timeout=WAIT)
        finally:
            await b.aclose()
        await eventually(lambda: b.replica_id not in a.replica.status()["peers_up"], "B down")
    finally:
        await a.aclose()
    a = await open_peer(tmp_path / "a.db", home_down_window=3_600.0)
    try:
        assert a.replica.status()["homes_down"] == {}
        assert (await a.status())["peers"][b.replica_id]["down_for_s"] is None
    finally:
        await a.aclose()


@pytest.mark.parametrize("cache_bytes", [None, 1], ids=["loaded", "on-demand"])
async def test_a_set_after_a_reopen_with_the_clock_set_back_wins_over_the_set_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_bytes: int | None
) -> None:
    """set(a), close, reopen with the wall clock an hour (then a day) back, set(b): b is read,
    then and after the next open; with the objects loaded at the open or on demand."""
    kw = {} if cache_bytes is None else {"cache_bytes": cache_bytes}
    path = tmp_path / "a.db"
    wall = time.time
    a = await open_peer(path, listen=None, **kw)
    try:
        await a.lww("note").set("a")
        await a.ormap("prefs").update("theme", "lww", lambda r: r.set("dark"))
    finally:
        await a.aclose()
    for back, value in ((3_600.0, "b"), (DAY, "c")):
        monkeypatch.setattr(time, "time", lambda back=back: wall() - back)
        a = await open_peer(path, listen=None, **kw)
        try:
            await a.lww("note").set(value)
            await a.ormap("prefs").update("theme", "lww", lambda r, v=value: r.set(v))
            assert await a.lww("note").value() == value
        finally:
            await a.aclose()
        a = await open_peer(path, listen=None, **kw)
        try:
            assert await a.lww("note").value() == value
            assert await a.ormap("prefs").value() == {"theme": value}
        finally:
            await a.aclose()


async def test_many_sets_within_one_millisecond_each_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = time.time()
    monkeypatch.setattr(time, "time", lambda: frozen)
    a = await open_peer(tmp_path / "a.db", listen=None)
    try:
        note = a.lww("note")
        for i in range(50):
            await note.set(i)
            assert await note.value() == i
        await asyncio.gather(*(note.set(i) for i in range(50, 60)))  # queued together
        assert await note.value() == 59
    finally:
        await a.aclose()
