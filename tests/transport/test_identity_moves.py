"""A database file keeps its replica id when moved with its ``.shoal-id`` sidecar; a copy of
the file alone gets a new id, and the peer says so at WARNING with what to do."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from store import sidecar_path

from .conftest import open_peer


def identity_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "shoal.peer" and r.levelno == logging.WARNING
    ]


async def make(db: Path) -> str:
    peer = await open_peer(db, listen=None)
    try:
        await peer.orset("cart").add("milk")
        return peer.replica_id
    finally:
        await peer.aclose()


async def test_a_database_moved_with_its_sidecar_keeps_its_id_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "phone.db"
    original = await make(db)
    moved = tmp_path / "new-home" / "phone.db"
    moved.parent.mkdir()
    os.rename(db, moved)
    os.rename(sidecar_path(db), sidecar_path(moved))
    caplog.set_level(logging.WARNING, logger="shoal.peer")
    peer = await open_peer(moved, listen=None)
    try:
        assert peer.replica_id == original
        assert await peer.orset("cart").value() == {"milk"}
    finally:
        await peer.aclose()
    assert identity_warnings(caplog) == []


async def test_a_copy_of_the_file_alone_gets_a_new_id_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "phone.db"
    original = await make(db)
    copy = tmp_path / "copy.db"
    shutil.copyfile(db, copy)
    caplog.set_level(logging.WARNING, logger="shoal.peer")
    peer = await open_peer(copy, listen=None)
    try:
        new_id = peer.replica_id
        assert new_id != original
        assert await peer.orset("cart").value() == {"milk"}  # the data is kept
    finally:
        await peer.aclose()
    assert identity_warnings(caplog) == [
        f"database {copy} was copied or restored: new replica id {new_id} (was {original}); "
        "peers will see a new replica; keep the .shoal-id sidecar with the file when moving it"
    ]
    # The original is untouched and keeps its id, quietly.
    caplog.clear()
    peer = await open_peer(db, listen=None)
    try:
        assert peer.replica_id == original
    finally:
        await peer.aclose()
    assert identity_warnings(caplog) == []
