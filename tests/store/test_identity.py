"""Replica identity: kept on reopen, rotated when the database was copied, moved or restored."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import make_url

from store import Batch, Store, sidecar_path
from tests.store.conftest import Backend, fresh_pg_database
from tests.store.helpers import counter_row


async def _create(path: Path) -> str:
    async with await Store.open(path) as store:
        await store.apply(Batch(objects=(counter_row("k", 3),)))
        return store.replica_id


async def _open_once(path: Path) -> tuple[str, bool, tuple[str, ...]]:
    async with await Store.open(path) as store:
        assert await store.get_object("k") == counter_row("k", 3), "the data must be kept"
        return store.replica_id, store.identity_rotated, store.previous_replica_ids


async def test_reopening_in_place_keeps_the_id(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    original = await _create(path)
    for _ in range(3):
        assert await _open_once(path) == (original, False, ())
    assert sidecar_path(path).exists()


async def test_a_copy_gets_a_new_id_and_the_original_keeps_its_own(tmp_path: Path) -> None:
    path, copy = tmp_path / "a.sqlite", tmp_path / "copy.sqlite"
    original = await _create(path)
    shutil.copy2(path, copy)
    shutil.copy2(sidecar_path(path), sidecar_path(copy))  # even with its sidecar
    copy_id, rotated, previous = await _open_once(copy)
    assert rotated and copy_id != original and previous == (original,)
    # The copy's new identity is stable from now on; the original is not disturbed.
    assert await _open_once(copy) == (copy_id, False, (original,))
    assert await _open_once(path) == (original, False, ())


async def test_a_database_moved_with_its_sidecar_keeps_its_id(tmp_path: Path) -> None:
    path, moved = tmp_path / "a.sqlite", tmp_path / "sub" / "b.sqlite"
    original = await _create(path)
    moved.parent.mkdir()
    os.rename(path, moved)  # same file system: same device and inode
    os.rename(sidecar_path(path), sidecar_path(moved))
    assert await _open_once(moved) == (original, False, ())


async def test_a_database_moved_without_its_sidecar_gets_a_new_id(tmp_path: Path) -> None:
    path, moved = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    original = await _create(path)
    os.rename(path, moved)
    new_id, rotated, previous = await _open_once(moved)
    assert rotated and new_id != original and previous == (original,)


async def test_restoring_a_backup_in_place_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    original = await _create(path)
    backup = path.read_bytes()  # taken while closed: the WAL is checkpointed
    assert not Path(f"{path}-wal").exists()
    # Life goes on: another open renews the token (dots issued after the backup).
    assert await _open_once(path) == (original, False, ())
    inode = path.stat().st_ino
    with open(path, "r+b") as handle:  # restore over the same inode, as `cp` does
        handle.write(backup)
        handle.truncate()
    assert path.stat().st_ino == inode
    new_id, rotated, previous = await _open_once(path)
    assert rotated and new_id != original and previous == (original,)


async def test_a_lost_sidecar_rotates(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    original = await _create(path)
    sidecar_path(path).unlink()
    new_id, rotated, _ = await _open_once(path)
    assert rotated and new_id != original


@pytest.mark.postgres
async def test_a_postgres_database_copy_gets_a_new_id(pg_backend: Backend) -> None:
    async with await pg_backend.open() as store:
        await store.apply(Batch(objects=(counter_row("k", 3),)))
        original = store.replica_id
    template = make_url(pg_backend.url).database
    copy_url, drop = await fresh_pg_database(pg_backend.url, template=str(template))
    try:
        async with await Store.open(copy_url) as copy:
            assert copy.identity_rotated and copy.replica_id != original
            assert copy.previous_replica_ids == (original,)
            assert await copy.get_object("k") == counter_row("k", 3)
        async with await pg_backend.open() as again:
            assert (again.replica_id, again.identity_rotated) == (original, False)
    finally:
        await drop()


async def test_a_hot_backup_restored_after_a_clean_close_is_detected(tmp_path: Path) -> None:
    # The operator's hot backup (`sqlite3 a.sqlite .backup`) of a running store, restored with
    # `cp` over the same inode once the store has stopped, with no open in between: the
    # sidecar still holds the token of the open the backup was taken in. Writes committed
    # after the backup (dots that peers may hold) are gone, so the id must not be kept.
    path, backup = tmp_path / "a.sqlite", tmp_path / "backup.sqlite"
    async with await Store.open(path) as store:
        await store.apply(Batch(objects=(counter_row("k", 3),)))
        original = store.replica_id
        with sqlite3.connect(path) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        live.close()
        copy.close()
        await store.apply(Batch(objects=(counter_row("k", 4),)))  # after the backup
    inode = path.stat().st_ino
    with open(path, "r+b") as handle:  # restore in place, as `cp backup.sqlite a.sqlite`
        handle.write(backup.read_bytes())
        handle.truncate()
    assert path.stat().st_ino == inode and not Path(f"{path}-wal").exists()
    new_id, rotated, previous = await _open_once(path)
    assert rotated and new_id != original and previous == (original,)


async def test_reopening_after_a_clean_close_keeps_the_id_and_changes_the_token(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.sqlite"
    original = await _create(path)
    token = sidecar_path(path).read_text()
    async with await Store.open(path) as store:
        opened = sidecar_path(path).read_text()
        assert store.replica_id == original and opened != token
    assert sidecar_path(path).read_text() not in (token, opened)  # renewed at close too
    assert await _open_once(path) == (original, False, ())


@pytest.mark.parametrize("stamp", ["not json {", "[1, 2]", '"a string"'])
async def test_a_stamp_spoilt_while_the_store_ran_does_not_fail_its_close(
    tmp_path: Path, stamp: str
) -> None:
    # Another program wrote over meta.identity while the store ran: its close cannot renew
    # the token (and says nothing of it); the next open sees no stamp it can trust and
    # takes a new id, the data kept.
    path = tmp_path / "a.sqlite"
    original = await _create(path)
    store = await Store.open(path)
    with sqlite3.connect(path) as other:
        other.execute("UPDATE meta SET value = ? WHERE name = 'identity'", (stamp,))
    other.close()
    await store.aclose()
    new_id, rotated, previous = await _open_once(path)
    assert rotated and new_id != original and previous == (original,)
