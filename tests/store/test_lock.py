"""One process at a time opens a database (store.lock), with real files, processes and servers.

A second opener, in this process or another, gets ``DatabaseLocked`` naming the holder's PID
and changes nothing; the lock dies with its holder, even under SIGKILL, with nothing to clean
up; read-only inspection still works while a peer holds the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from store import Batch, DatabaseLocked, Store, StoreError, lock_path, sidecar_path
from tests.store.conftest import Backend
from tests.store.helpers import counter_row

CHILD = Path(__file__).with_name("lock_child.py")
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


def _shown(backend: Backend) -> str:
    """How the error names the database: its path, or its URL without a password."""
    if backend.path is not None:
        return str(backend.path)
    return make_url(backend.url).render_as_string(hide_password=True)


class _Child:
    """``lock_child.py`` holding a database; every wait on it has a timeout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, mode: str, url: str) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            mode,
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        return cls(proc)

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        assert raw, f"the child exited early (status {await self.proc.wait()})"
        return raw.decode().strip()

    async def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"close\n")
        await self.proc.stdin.drain()
        assert await self.line() == "CLOSED"
        assert await asyncio.wait_for(self.proc.wait(), TIMEOUT) == 0

    async def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no cleanup of any kind runs
        assert await asyncio.wait_for(self.proc.wait(), TIMEOUT) == -signal.SIGKILL


@pytest.fixture
async def children() -> AsyncIterator[list[_Child]]:
    started: list[_Child] = []
    yield started
    for child in started:
        if child.proc.returncode is None:
            child.proc.kill()
            await child.proc.wait()


async def test_a_second_open_in_this_process_is_refused_until_the_first_closes(
    backend: Backend,
) -> None:
    first = await backend.open()
    try:
        await first.apply(Batch(objects=(counter_row("k", 3),)))
        token = sidecar_path(backend.path).read_text() if backend.path else None
        with pytest.raises(DatabaseLocked) as info:
            await backend.open()
        error = info.value
        assert isinstance(error, StoreError)
        assert (error.database, error.pid) == (_shown(backend), os.getpid())
        assert str(error).startswith(
            f"database {_shown(backend)} is in use by process {os.getpid()} (this process"
        )
        assert "\n" not in str(error)
        if backend.name == "postgres":
            assert isinstance(error.backend_pid, int)
        # The refusal changed nothing: the holder's identity token and data, and it goes on.
        if backend.path is not None:
            assert sidecar_path(backend.path).read_text() == token
        await first.apply(Batch(objects=(counter_row("k2", 1),)))
        assert await first.get_object("k") == counter_row("k", 3)
        replica_id = first.replica_id
    finally:
        await first.aclose()
    async with await backend.open() as again:
        assert (again.replica_id, again.identity_rotated) == (replica_id, False)
        assert await again.get_object("k2") == counter_row("k2", 1)


async def test_concurrent_opens_in_one_process_let_exactly_one_in(backend: Backend) -> None:
    results = await asyncio.gather(*(backend.open() for _ in range(4)), return_exceptions=True)
    stores = [r for r in results if isinstance(r, Store)]
    try:
        assert len(stores) == 1, results
        assert all(isinstance(r, DatabaseLocked) for r in results if r is not stores[0])
    finally:
        for store in stores:
            await store.aclose()


async def test_a_symlink_to_a_held_database_is_refused(tmp_path: Path) -> None:
    path, link = tmp_path / "real.sqlite", tmp_path / "link.sqlite"
    link.symlink_to(path)
    async with await Store.open(path):
        with pytest.raises(DatabaseLocked, match=f"in use by process {os.getpid()} "):
            await Store.open(link)


async def test_a_hard_link_to_a_held_database_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path, link = tmp_path / "real.sqlite", tmp_path / "link.sqlite"
    async with await Store.open(path) as held:  # made by this open: locked once it exists
        await held.apply(Batch(objects=(counter_row("k", 3),)))
        os.link(path, link)
        files = sorted(tmp_path.iterdir())
        with pytest.raises(DatabaseLocked) as info:
            await Store.open(link)
        error = info.value
        assert (error.database, error.pid, error.opened_as) == (str(link), os.getpid(), str(path))
        assert str(error).startswith(
            f"database {link} is in use by process {os.getpid()} (this process: close the "
            f"other Peer (or Store) that has it open first, the same file, opened as {path}, "
            "since "
        )
        assert sorted(tmp_path.iterdir()) == files  # no -wal, -shm or lock file beside it
        await held.apply(Batch(objects=(counter_row("k", 4),)))  # the holder goes on
    async with await Store.open(link):  # and the other way round
        with pytest.raises(DatabaseLocked, match=f"in use by process {os.getpid()} "):
            await Store.open(path)


def _sqlite_locks(path: Path) -> list[str]:
    """This process's POSIX record locks on the file ``path`` (SQLite's), from /proc/locks."""
    st = os.stat(path)
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    found = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] != "POSIX" or fields[4] != str(os.getpid()):
            continue
        major, minor, ino = fields[5].split(":")
        if (int(major, 16), int(minor, 16), int(ino)) == want:
            found.append(" ".join(fields[1:]))
    return found


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads /proc/locks (Linux)")
async def test_a_refused_open_in_this_process_leaves_the_holders_sqlite_locks(
    tmp_path: Path,
) -> None:
    # Closing any descriptor of the database file drops every fcntl lock this process has on
    # it: the refused opener must not open the file at all, not even to check its header.
    path = tmp_path / "held.sqlite"
    async with await Store.open(path) as held:
        await held.apply(Batch(objects=(counter_row("k", 3),)))
        locks = _sqlite_locks(path)
        assert locks  # SQLite keeps a shared lock on the file while a WAL connection is open
        with pytest.raises(DatabaseLocked):
            await Store.open(path)
        assert _sqlite_locks(path) == locks


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads /proc/locks (Linux)")
async def test_closing_a_store_leaves_another_connection_of_this_process_its_locks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.sqlite"
    store = await Store.open(path)
    own = sqlite3.connect(path)  # the application's own connection to the file
    try:
        own.execute("SELECT count(*) FROM meta").fetchall()
        locks = _sqlite_locks(path)
        assert locks
        await store.aclose()  # its descriptor on the file waits for ``own`` to go
        assert _sqlite_locks(path) == locks
    finally:
        own.close()
    async with await Store.open(path):  # the lock was let go at once all the same
        pass


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="lists /proc/self/fd (Linux)")
async def test_descriptors_kept_for_an_apps_own_connection_do_not_pile_up(
    tmp_path: Path,
) -> None:
    # While the application holds a connection of its own to the file, a closed store keeps
    # its descriptor of the file (closing it would drop that connection's locks): the next
    # open takes that one again instead of opening another, however many times it reopens.
    path = tmp_path / "shared.sqlite"
    async with await Store.open(path):
        pass
    own = sqlite3.connect(path)
    try:
        own.execute("SELECT count(*) FROM meta").fetchall()
        counts = []
        for _ in range(20):
            async with await Store.open(path):
                pass
            counts.append(len(os.listdir("/proc/self/fd")))
        assert max(counts) == min(counts)
    finally:
        own.close()


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads /proc/locks (Linux)")
async def test_opens_racing_in_one_process_leave_the_winners_sqlite_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One opener's checks before the lock read the file; had another opener of this process
    # taken the file meanwhile, their closing its descriptor would drop that store's SQLite
    # locks. They run where no store of this process takes the file: slowed down here (a
    # busy thread pool, a slow disk), they finish before the other opener gets in.
    import store.store as store_module

    path = tmp_path / "raced.sqlite"
    async with await Store.open(path):
        pass
    checked = store_module._check_sqlite
    slow: list[str] = []

    def slow_check(file: Path) -> None:
        if not slow:
            slow.append(str(file))
            time.sleep(0.3)  # the other opener starts meanwhile
        checked(file)

    monkeypatch.setattr(store_module, "_check_sqlite", slow_check)
    first = asyncio.create_task(Store.open(path))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(Store.open(path))
    results = await asyncio.gather(first, second, return_exceptions=True)
    opened = [r for r in results if isinstance(r, Store)]
    assert len(opened) == 1
    assert isinstance(next(r for r in results if r not in opened), DatabaseLocked)
    try:
        await opened[0].apply(Batch(objects=(counter_row("k", 1),)))
        assert _sqlite_locks(path)  # the winner's SQLite still holds its locks
    finally:
        await opened[0].aclose()


async def test_a_database_in_a_missing_directory_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "a.sqlite"
    with pytest.raises(
        StoreError, match=f"^cannot open database {path}: directory {path.parent} does not exist$"
    ):
        await Store.open(path)
    assert list(tmp_path.iterdir()) == []


async def test_another_process_is_refused_with_the_holders_pid(
    backend: Backend, children: list[_Child]
) -> None:
    child = await _Child.start("hold", backend.url)
    children.append(child)
    assert await child.line() == f"HELD {child.proc.pid}"
    with pytest.raises(DatabaseLocked) as info:
        await backend.open()
    assert info.value.pid == child.proc.pid
    assert str(info.value).startswith(
        f"database {_shown(backend)} is in use by process {child.proc.pid} ("
    )
    assert "since " in str(info.value)  # when it took the database, as documented
    await child.release()
    async with await backend.open() as store:  # the holder let go: ours now
        assert await store.get_object("child") is not None


async def test_another_process_is_refused_through_a_hard_link(
    tmp_path: Path, children: list[_Child]
) -> None:
    path, link = tmp_path / "real.sqlite", tmp_path / "link.sqlite"
    child = await _Child.start("hold", str(path))  # the child makes the database
    children.append(child)
    assert await child.line() == f"HELD {child.proc.pid}"
    os.link(path, link)
    with pytest.raises(DatabaseLocked) as info:
        await Store.open(link)
    error = info.value
    assert error.database == str(link)
    # Refused before anything read the file through the link (a SQLite connection there would
    # read it beside the holder, with a write-ahead log of its own) or left a file beside it.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("link")) == [link.name]
    if sys.platform == "linux":  # the holder is named from /proc/locks and /proc/PID/fd
        assert (error.pid, error.opened_as) == (child.proc.pid, str(path))
        assert str(error).startswith(
            f"database {link} is in use by process {child.proc.pid} (host "
        )
        assert f"the same file, opened as {path})" in str(error)
    await child.release()  # (it commits its last writes as it closes, unhindered)
    async with await Store.open(link) as store:  # the holder let go: ours now
        assert await store.get_object("child") is not None


async def test_a_holder_killed_with_sigkill_leaves_nothing_to_clean_up(
    backend: Backend, children: list[_Child]
) -> None:
    child = await _Child.start("hold", backend.url)
    children.append(child)
    assert await child.line() == f"HELD {child.proc.pid}"
    with pytest.raises(DatabaseLocked) as info:
        await backend.open()
    assert info.value.pid == child.proc.pid
    await child.kill()
    if backend.path is not None:
        # The dead holder's file is still there, naming it; it blocks nobody.
        stale = json.loads(lock_path(backend.path).read_text())
        assert stale["pid"] == child.proc.pid
    else:
        assert info.value.backend_pid is not None
        await _wait_for_session_end(backend.url, info.value.backend_pid)
    async with await backend.open() as store:
        assert await store.get_object("child") is not None
        if backend.path is not None:
            assert json.loads(lock_path(backend.path).read_text())["pid"] == os.getpid()


async def _wait_for_session_end(url: str, backend_pid: int) -> None:
    """The server ends a dead client's session when it reads EOF: wait (bounded) for that
    session's advisory locks to go."""
    engine = create_async_engine(url)
    try:
        for _ in range(int(TIMEOUT / 0.05)):
            async with engine.connect() as conn:
                held = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM pg_locks"
                            " WHERE pid = :pid AND locktype = 'advisory'"
                        ),
                        {"pid": backend_pid},
                    )
                ).scalar_one()
            if not held:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"backend {backend_pid} kept its lock after its client died")
    finally:
        await engine.dispose()


async def test_a_forked_child_does_not_keep_its_parents_lock(
    tmp_path: Path, children: list[_Child]
) -> None:
    path = tmp_path / "forked.sqlite"
    child = await _Child.start("fork", str(path))
    children.append(child)
    grandchild = int((await child.line()).split()[1])
    try:
        assert await child.line() == f"HELD {child.proc.pid}"
        await child.kill()
        os.kill(grandchild, 0)  # still alive, with a copy of every descriptor the child had
        async with await Store.open(path) as store:
            assert await store.get_object("child") is not None
    finally:
        try:
            os.kill(grandchild, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def test_read_only_inspection_works_while_the_database_is_held(tmp_path: Path) -> None:
    path = tmp_path / "held.sqlite"
    shoal = shutil.which("shoal", path=str(Path(sys.executable).parent))
    assert shoal is not None, "the `shoal` console script is not installed next to python"
    async with await Store.open(path) as store:
        await store.apply(Batch(objects=(counter_row("k", 3),)))
        proc = await asyncio.create_subprocess_exec(
            shoal,
            "inspect",
            "--db",
            str(path),
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 0, err.decode()
        shown = json.loads(out)
        assert shown["replica_id"] == store.replica_id
        assert [(o["key"], o["value"]) for o in shown["objects"]] == [("k", 3)]
        await store.apply(Batch(objects=(counter_row("k", 4),)))  # and the holder goes on


def test_a_fork_waits_for_a_lock_being_taken_to_be_registered() -> None:
    # Taking (or letting go of) a lock opens descriptors, flocks them and registers them,
    # all under the lock registry; the child of a fork in between would keep a copy of a
    # flocked descriptor that no one knows of (so never closes), and the lock with it after
    # the parent let go. So a fork waits for the registry.
    from store import lock as store_lock

    events: list[str] = []
    forked = threading.Event()

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        events.append("forked")
        forked.set()
        os.waitpid(pid, 0)

    with store_lock._REGISTRY:  # as a thread taking a lock holds it
        thread = threading.Thread(target=fork)
        thread.start()
        forked.wait(2.0)  # (without the wait at fork, the fork happens meanwhile)
        events.append("registered")
    thread.join(TIMEOUT)
    assert events == ["registered", "forked"]


async def test_an_opener_racing_the_creation_of_the_database_is_told_it_is_in_use(
    tmp_path: Path, children: list[_Child]
) -> None:
    """Another process is making the database: it holds the lock of the name, and SQLite
    has made the file, still empty, which it has not locked yet. A second opener must be
    refused as for any held database, naming the holder (it was told the file is not a
    shoal database and to remove it: the live database the first one goes on writing)."""
    path = tmp_path / "new.db"
    child = await _Child.start("creating", str(path))
    children.append(child)
    assert await child.line() == f"CREATING {child.proc.pid}"
    assert path.exists() and path.stat().st_size == 0
    with pytest.raises(DatabaseLocked) as info:
        await Store.open(path)
    assert info.value.pid == child.proc.pid
    assert path.exists() and path.stat().st_size == 0  # nothing touched
    await child.release()


async def test_an_empty_file_left_by_an_opener_killed_while_it_made_the_database_is_a_new_one(
    tmp_path: Path, children: list[_Child]
) -> None:
    """An opener killed while it made a new database (SIGTERM from a supervisor during a
    first start) leaves an empty file (SQLite rolls a new file's first transaction back to
    nothing): every later open refused it as "not a shoal database", a restart loop until
    someone removed it. The sidecar says the database was being made, so the next opener
    makes it; once made, an empty file there is refused again (a restore gone wrong)."""
    path = tmp_path / "new.db"
    child = await _Child.start("creating", str(path))
    children.append(child)
    assert await child.line() == f"CREATING {child.proc.pid}"
    await child.kill()
    assert path.stat().st_size == 0
    async with await Store.open(path) as store:
        await store.apply(Batch(objects=(counter_row("k", 1),)))
        replica = store.replica_id
    async with await Store.open(path) as store:  # a database now, with its identity
        assert store.replica_id == replica
        assert await store.get_object("k") is not None
    path.unlink()
    path.touch()  # an empty file where a made database was: not ours to start afresh
    with pytest.raises(StoreError, match="empty file"):
        await Store.open(path)


async def _backend_gone(url: str, pid: int, limit_s: float = 10.0) -> None:
    """Wait (bounded) until PostgreSQL's backend ``pid`` is no longer in pg_stat_activity."""
    engine = create_async_engine(make_url(url), isolation_level="AUTOCOMMIT")
    try:
        deadline = time.monotonic() + limit_s
        while True:
            async with engine.connect() as conn:
                query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
                if (await conn.execute(query, {"pid": pid})).scalar_one() == 0:
                    return
            assert time.monotonic() < deadline, f"backend {pid} still there after {limit_s} s"
            await asyncio.sleep(0.02)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_store_whose_postgresql_lock_session_ended_stops_before_its_next_commit(
    pg_backend: Backend,
) -> None:
    """The session holding the advisory lock ends while the store goes on (a server's
    idle_session_timeout, a dropped idle connection, pg_terminate_backend): before, the store
    kept committing on its own connection while a second process could open the database
    and hand out dots under the same replica id. Now its next commit is refused (nothing of
    it written) and a second opener gets the database."""
    from tests.store.conftest import _admin

    store = await pg_backend.open()
    try:
        await store.apply(Batch(objects=(counter_row("before", 1),)))
        pid = store._lock._held["pid"]  # type: ignore[attr-defined]
        await _admin(pg_backend.url, f"SELECT pg_terminate_backend({int(pid)})")
        # pg_terminate_backend only signals the backend: its lock goes when it has exited
        # (a loaded machine once ran the next commit before that).
        await _backend_gone(pg_backend.url, int(pid))
        with pytest.raises(StoreError, match="open lock was lost"):
            await store.apply(Batch(objects=(counter_row("after", 1),)))
    finally:
        with contextlib.suppress(Exception):
            await store.aclose()
    async with await pg_backend.open() as second:
        assert await second.get_object("before") is not None
        assert await second.get_object("after") is None  # refused: nothing of it written
