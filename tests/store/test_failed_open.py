"""A ``Store.open`` that fails lets go of everything it took: threads, connections, the lock.

The open's own refusals (a newer schema, another application's file, a partition count that
differs...) come before it starts the writer's and the reader's threads; what can fail after
them is the system refusing a thread, or the store's construction. Here the OS refuses it
for real, in a child process whose address space has room for only so many thread stacks.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import store.lock as store_lock
import store.opening as store_opening
from store import Store
from tests.shoal.shoal_run import run_process
from tests.store.conftest import assert_reopens_as

CHILD = Path(__file__).with_name("threads_child.py")
TIMEOUT = 60.0


async def _child_reports(path: Path) -> list[dict[str, Any]]:
    code, out, err = await run_process(sys.executable, str(CHILD), str(path), timeout=TIMEOUT)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.skipif(sys.platform != "linux", reason="limits the address space (Linux)")
async def test_an_open_cut_short_after_its_threads_started_stops_them_and_frees_the_lock(
    tmp_path: Path,
) -> None:
    *refused, last = await _child_reports(tmp_path / "a.sqlite")
    assert last["opened"] is not None, refused  # with room for every thread, it opens
    # Each open the OS cut short got one thread further; the last had started the writer's
    # thread when the reader's was refused.
    assert refused and "shoal-store-writer" in refused[-1]["started"], refused
    for report in refused:
        assert report["error"] == "can't start new thread"
        assert report["left"] == [], report  # no store thread outlives the failed open
        assert report["reopened"], report  # and the next open in the process is not locked out


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
async def test_an_open_cancelled_while_its_thread_takes_the_lock_gives_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    """``asyncio.wait_for(Peer.open(...), t)`` timing out, a task cancelled: a thread cannot
    be stopped, and the one taking the lock went on and took it for an open that was no
    more, so the database stayed locked for the life of the process ("in use by process
    PID (this process...)"). The open now waits for that thread, gives the lock back, and
    only then raises ``CancelledError``."""
    path = tmp_path / "a.sqlite"
    if existing:
        store = await Store.open(path)
        await store.aclose()
    taking, go_on, took = threading.Event(), threading.Event(), threading.Event()
    real = store_lock._lock_file

    def slow(db_path: Path) -> Any:
        taking.set()
        go_on.wait(TIMEOUT)
        try:
            return real(db_path)
        finally:
            took.set()

    monkeypatch.setattr(store_lock, "_lock_file", slow)
    opening = asyncio.ensure_future(Store.open(path))
    assert await asyncio.to_thread(taking.wait, TIMEOUT)
    opening.cancel()
    go_on.set()
    assert await asyncio.to_thread(took.wait, TIMEOUT)  # the thread has taken the lock
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(opening, TIMEOUT)
    monkeypatch.undo()
    store = await Store.open(path)  # at once, in this process
    await store.aclose()


async def test_an_open_cancelled_as_its_identity_commits_keeps_the_replica_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each open renews the identity token in the database, then in the ``.shoal-id``
    sidecar. An open cancelled as that transaction committed (the commit goes on in
    SQLite's thread) left the sidecar with the old token, so the next open took the
    database for a restored backup and gave it a new replica id (peers then wait for the
    old one as a home that went down). The open now writes the sidecar before it raises
    ``CancelledError``."""
    path = tmp_path / "a.sqlite"
    store = await Store.open(path)
    replica_id = store.replica_id
    await store.aclose()
    real = store_opening.open_database
    opening: asyncio.Future[Store] | None = None

    def cancelled_as_it_commits(conn: Any, **kw: Any) -> Any:
        result = real(conn, **kw)
        assert opening is not None
        opening.cancel()  # the caller gives up: the commit is the next thing awaited
        return result

    monkeypatch.setattr(store_opening, "open_database", cancelled_as_it_commits)
    opening = asyncio.ensure_future(Store.open(path))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(opening, TIMEOUT)
    monkeypatch.undo()
    await assert_reopens_as(path, replica_id)
