"""A clean close that cannot write the identity sidecar (a full disk) keeps the replica id.

A clean close renews the identity token in the database and in the ``PATH.shoal-id``
sidecar (``store.opening``). With the disk full, the database's small commit could land
and the sidecar's write fail: the next open found two different tokens, took the database
for a restored backup and gave it a new replica id (and said it was copied or restored),
though the file had not moved; a ``.shoal-id.tmp`` was left beside it. The disk cannot be
filled here on purpose, so the sidecar's write is made to fail as a full disk fails it.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

import store.opening as store_opening
from store import Store
from tests.store.conftest import assert_reopens_as

__all__: list[str] = []


def _failing_writes(monkeypatch: pytest.MonkeyPatch, which: set[int]) -> list[int]:
    """The sidecar's writes, counted from 1, fail with ENOSPC at the numbers in ``which``
    (after creating the temporary file, as a full disk lets it be made, then refuses its
    bytes). Returns the list of the writes' numbers so far."""
    real_open = open
    calls: list[int] = []

    def write(path: Path, *tokens: Any) -> None:
        calls.append(len(calls) + 1)
        if calls[-1] in which:
            tmp = path.with_name(path.name + ".tmp")
            with real_open(tmp, "w"):
                pass
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, *tokens)

    real = store_opening._write_sidecar
    monkeypatch.setattr(store_opening, "_write_sidecar", write)
    return calls


@pytest.mark.parametrize("fails", [{1}, {2}, {1, 2}], ids=["first", "second", "both"])
async def test_a_close_whose_sidecar_write_fails_keeps_the_replica_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: set[int]
) -> None:
    path = tmp_path / "a.db"
    store = await Store.open(path)
    replica_id = store.replica_id
    calls = _failing_writes(monkeypatch, fails)
    await store.aclose()  # (logged: the clean close could not be recorded)
    assert calls, "the close wrote no sidecar"
    monkeypatch.undo()
    await assert_reopens_as(path, replica_id)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


async def test_a_restored_backup_still_gets_a_new_replica_id(tmp_path: Path) -> None:
    """The sidecar's tokens of a close (both while it renews) do not let a backup taken
    before that close pass for the database it was."""
    path = tmp_path / "a.db"
    store = await Store.open(path)
    replica_id = store.replica_id
    await store.aclose()
    backup = path.read_bytes()
    store = await Store.open(path)
    await store.aclose()
    path.write_bytes(backup)  # restored in place, its sidecar left as it is
    store = await Store.open(path)
    try:
        assert store.identity_rotated and store.replica_id != replica_id
    finally:
        await store.aclose()
