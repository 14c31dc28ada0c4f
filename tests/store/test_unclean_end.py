"""A run that ended without a clean close: the replica id is kept unless the end may have
lost commits that other replicas hold (synchronous=NORMAL, and the machine restarted since:
a power loss or an OS crash takes the WAL's unsynced tail)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

import store.opening
from store import Store
from tests.store.helpers import counter_row

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("unclean_child.py")
TIMEOUT = 30.0


async def _killed_after_writing(synchronous: str, path: Path, *fresh: str) -> str:
    """Run ``unclean_child.py`` until it has written, SIGKILL it; return its replica id."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        synchronous,
        str(path),
        *fresh,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().split()
        assert line[:1] == ["WROTE"], f"the child exited early (status {await proc.wait()})"
    finally:
        proc.kill()  # SIGKILL: no close of any kind
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == -signal.SIGKILL
    return line[1]


def _power_loss(path: Path) -> None:
    """What a power loss takes at synchronous=NORMAL: the WAL's frames since the last
    checkpoint, never synced (the file itself stays), and the shared memory."""
    os.truncate(f"{path}-wal", 0)
    Path(f"{path}-shm").unlink(missing_ok=True)


@pytest.fixture
def rebooted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine restarted since (a reboot cannot run here: the boot id is another)."""
    monkeypatch.setattr(store.opening, "_boot_id", lambda: "another boot", raising=False)


@pytest.mark.usefixtures("rebooted")
async def test_a_normal_run_cut_by_a_power_loss_gets_a_new_id(tmp_path: Path) -> None:
    # Its last commits (k=4) may have reached peers before the power went: kept under its
    # id, the database would issue their dots again for other writes, lost behind them.
    path = tmp_path / "a.sqlite"
    old_id = await _killed_after_writing("NORMAL", path)
    _power_loss(path)
    async with await Store.open(path) as reopened:
        assert reopened.identity_rotated and reopened.identity_cut_short
        assert reopened.replica_id != old_id and reopened.previous_replica_ids == (old_id,)
        assert await reopened.get_object("k") == counter_row("k", 3)  # what was on disk
    async with await Store.open(path) as again:  # rotated once, not at every open
        assert not again.identity_rotated and again.replica_id != old_id


@pytest.mark.usefixtures("rebooted")
async def test_a_normal_run_cut_before_any_checkpoint_gets_a_new_id(tmp_path: Path) -> None:
    # The run's record in meta.running was committed at NORMAL too: in the WAL, unsynced,
    # until a checkpoint. Lost with the WAL, it left no trace of the run (the last one had
    # closed cleanly), so the database kept its id while peers held the lost writes' dots.
    path = tmp_path / "a.sqlite"
    async with await Store.open(path, synchronous="NORMAL"):
        pass  # a clean run first: nothing left in meta.running
    old_id = await _killed_after_writing("NORMAL", path, "fresh")
    _power_loss(path)
    async with await Store.open(path) as reopened:
        assert reopened.identity_rotated and reopened.identity_cut_short
        assert reopened.replica_id != old_id and reopened.previous_replica_ids == (old_id,)


@pytest.mark.usefixtures("rebooted")
async def test_a_full_run_cut_by_a_power_loss_keeps_its_id(tmp_path: Path) -> None:
    # At FULL every commit is synced before it is acknowledged: nothing it sent is lost.
    path = tmp_path / "a.sqlite"
    old_id = await _killed_after_writing("FULL", path)
    async with await Store.open(path) as reopened:
        assert not reopened.identity_rotated and reopened.replica_id == old_id
        assert await reopened.get_object("k") == counter_row("k", 4)


async def test_a_normal_run_killed_without_a_restart_keeps_its_id(tmp_path: Path) -> None:
    # A process crash leaves the WAL to the OS, which writes it: nothing is lost.
    path = tmp_path / "a.sqlite"
    old_id = await _killed_after_writing("NORMAL", path)
    async with await Store.open(path) as reopened:
        assert not reopened.identity_rotated and reopened.replica_id == old_id
        assert await reopened.get_object("k") == counter_row("k", 4)


async def test_a_normal_run_closed_cleanly_keeps_its_id_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.sqlite"
    async with await Store.open(path, synchronous="NORMAL") as first:
        old_id = first.replica_id
    monkeypatch.setattr(store.opening, "_boot_id", lambda: "another boot", raising=False)
    async with await Store.open(path, synchronous="NORMAL") as reopened:
        assert not reopened.identity_rotated and reopened.replica_id == old_id


async def test_a_killed_run_looked_at_with_sqlite3_keeps_its_id(tmp_path: Path) -> None:
    # `sqlite3 a.sqlite` between the crash and the restart folds the WAL into the file and
    # removes it as it closes: nothing is lost, and a missing WAL alone proves nothing.
    path = tmp_path / "a.sqlite"
    old_id = await _killed_after_writing("FULL", path)
    with contextlib.closing(sqlite3.connect(path)) as look:
        look.execute("SELECT count(*) FROM objects").fetchall()
    assert not Path(f"{path}-wal").exists()
    async with await Store.open(path) as reopened:
        assert not reopened.identity_rotated and reopened.replica_id == old_id
        assert await reopened.get_object("k") == counter_row("k", 4)
