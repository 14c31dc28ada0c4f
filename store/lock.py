"""One process at a time opens a database: the lock ``Store.open`` takes and ``aclose`` drops.

Theory of operation
-------------------
A replica id names the dots its database hands out. Two processes working on one database
would both issue dots under that id from their own in-memory counters, so two different
writes get the same dot and one is silently lost. So a database has one opener at a time; a
second one -- in another process or in this one -- is refused with
:class:`~store.errors.DatabaseLocked` naming the holder, before anything is read or written.
Each lock belongs to the operating system or the server, never to a file we must clean up: it
dies with the process that holds it, and ``kill -9`` leaves nothing to remove by hand.

SQLite: two ``flock(LOCK_EX | LOCK_NB)``, each on a descriptor of its own, held from
``Store.open`` until ``aclose``:

* on a sidecar file ``REALPATH.shoal-lock`` next to the database (its real path, so a
  symlink to the database takes the same lock). It exists before the database does, so it
  is what keeps apart two openers of one name while one of them creates the database.
* on the database file itself, as soon as it exists: at once for an existing database,
  right after SQLite has made a new one, before its schema and identity are written
  (:meth:`_FileLock.hold_file`). A file's names -- hard links, bind mounts -- each have their
  own sidecar but share this lock, so a second opener is refused whichever name it uses;
  and the lock still holds if someone deletes the sidecar.

Why ``flock``: its locks belong to the open file description, not the process, so a second
``open`` + ``flock`` in the same process is refused as one in another process is, and on
Linux they do not interact with the ``fcntl`` locks SQLite takes. (On NFS, Linux emulates
``flock`` with whole-file ``fcntl`` locks, which would clash with SQLite's on the database
file; but the store runs SQLite in WAL mode, which does not work over a network file system
in the first place.)

Why not only a sidecar named by the file's identity (device and inode), which every name
would find: there is no directory that every name of a file shares (hard links may sit in
any directories of the file system), and a common one (``/tmp``, ``/run``) is not common to
containers, chroots or other users. So the file itself carries the lock.

The caveat of a descriptor on the database file. SQLite coordinates through POSIX record
locks (``fcntl``) on the database file and its ``-shm``; those belong to the *process*, and
closing *any* descriptor of the file drops all of them (SQLite's documentation warns against
exactly this): another process would then take the database for unused, and may checkpoint
and delete the write-ahead log under the holder. So our descriptor on the database file is:

* opened before the store's SQLite connections and closed after they have all closed;
* never opened by a second opener in this process: the checks an opener makes before it
  takes the lock (its header, its schema version) run in :func:`check_unheld`, under a
  process-wide registry of the files this process's stores hold, by ``(st_dev, st_ino)``,
  and of the sidecars they hold, by real path (a new database, made before its file can be
  locked): they refuse a file a store of this process holds, under any name, before
  anything opens it, and no store of this process takes the sidecar or the file of a
  database while they run. They also refuse a file whose lock another process holds (a
  probe of the ``flock``) before a SQLite connection reads it beside its holder, through
  another name with a write-ahead log of its own;
* closed only when no other descriptor of this process is on the file (as listed in
  ``/proc/self/fd``): otherwise (an application's own SQLite connection to it, say) its
  ``flock`` is let go at once and the descriptor kept until the others are gone, as SQLite
  does with its own. An opener that another process's lock refuses closes its descriptor
  the same way.
* and what else of shoal reads the file's first bytes in a process that may hold it (the
  header checks of an opener and of the read-only report, :func:`read_head`) reads them
  through such a descriptor, closed the same way.

The database file is only ever opened read-only here, and the sidecar is never deleted:
unlinking a lock file races with an opener that has just opened it (two holders of two
inodes). A sidecar left by a killed process is just a file; its lock went with the process.
Its text (``{"pid", "host", "since"}``, rewritten by each holder, and ``"making": true``
while the holder makes the database: :func:`making_interrupted`) serves the refusal
message, and tells the empty file of an interrupted creation from one a restore left; a
refusal by the database file's lock names the holder from ``/proc/locks`` (and
the name it opened the file as, from ``/proc/PID/fd``, where readable). A child forked while
a lock is held closes its inherited copies, so the lock still dies with the process that
took it.

The identity sidecar ``PATH.shoal-id`` (:mod:`store.opening`) is read and rewritten under this
lock, so two openers never race on its token any more.

PostgreSQL: a session-level advisory lock, in :mod:`store.pg_lock`.

Read-only readers (``shoal inspect`` opens SQLite with ``mode=ro``) take no lock and work
while a peer holds the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection

from .errors import DatabaseLocked, StoreError

__all__ = [
    "LOCK_SUFFIX",
    "DatabaseLock",
    "check_unheld",
    "lock_path",
    "lock_sqlite",
    "read_head",
]

LOCK_SUFFIX = ".shoal-lock"

_T = TypeVar("_T")

_READ_ATTEMPTS = 50  # a refused opener rereads the holder's record for at most ~0.1 s
_READ_PAUSE = 0.002


class DatabaseLock(Protocol):
    """A held open lock. ``hold_file`` once the database exists; ``made`` once a database
    this opener made is (schema and identity committed); ``guard(conn)`` in each write
    transaction, before its commit: ``StoreError`` if the lock is no longer held (then the
    transaction is rolled back and the store stops); ``release`` is idempotent."""

    async def hold_file(self) -> None: ...

    async def made(self) -> None: ...

    def guard(self, conn: Connection) -> None: ...

    async def release(self) -> None: ...


def lock_path(db_path: str | os.PathLike[str]) -> Path:
    """Where the SQLite open lock lives: ``REALPATH.shoal-lock``, next to the database."""
    return Path(os.path.realpath(os.fspath(db_path)) + LOCK_SUFFIX)


# -- SQLite: flock on a sidecar file and on the database file ---------------------------------

_FileKey = tuple[int, int]  # a file's (st_dev, st_ino): the same for each of its names


@dataclass(frozen=True, slots=True)
class _Holder:
    """A store of this process holding a database file: the name it opened it as, and when."""

    name: str
    since: str


# The database files this process's stores hold; and descriptors of database files waiting
# to be closed until no other descriptor of this process is on their file (module
# docstring). Both guarded by _REGISTRY, reentrant: a finalizer may run where it is held.
_REGISTRY = threading.RLock()
_OPEN_HERE: dict[_FileKey, _Holder] = {}
_PARKED: list[tuple[int, _FileKey]] = []


class _FileLock:
    """The descriptors holding the ``flock`` of the sidecar and, once it exists, of the
    database file; closing them (or the process dying) releases them."""

    def __init__(self, db_path: Path, fd: int, since: str) -> None:
        self._db_path = db_path
        self.real = os.path.realpath(db_path)
        self.since = since
        self._fd = fd
        # Also closed if the owner is dropped without release(): no lock outlives its store.
        self._close = weakref.finalize(self, os.close, fd)
        self._let_go: weakref.finalize[[_FileKey, int], _FileLock] | None = None
        self._file_fd = -1
        _HELD.add(self)

    def holding(self) -> bool:
        """Whether this lock is still held (not released, nor dropped)."""
        return self._close.alive

    async def hold_file(self) -> None:
        """Lock the database file too, now that it exists (nothing to do if done already):
        ``DatabaseLocked`` if another opener holds it, under another name."""
        if self._let_go is None and self._close.alive:
            await _to_thread_to_its_end(self.hold_file_now)

    def hold_file_now(self) -> None:
        with _REGISTRY:  # (the descriptor is registered before this process can fork)
            held = _lock_database_file(self._db_path, self.since)
            if held is not None:
                self._file_fd = held[1]
                self._let_go = weakref.finalize(self, _let_go, *held)

    def write_record(self, making: bool) -> None:
        """The sidecar's record: who holds it, since when, and whether it is making the
        database (``making``: see :func:`making_interrupted`)."""
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": self.since}
        if making:
            record["making"] = True
        text = json.dumps(record).encode()
        # Write, then cut: a reader sees the old or the new record, or a mix it rereads.
        os.pwrite(self._fd, text + b"\n", 0)
        os.ftruncate(self._fd, len(text) + 1)

    async def made(self) -> None:
        if self._close.alive:
            await _to_thread_to_its_end(self.write_record, False)

    def guard(self, conn: Connection) -> None:
        """Nothing to check: the flock lives as long as this process (and its descriptor)."""

    async def release(self) -> None:
        self.release_now()

    def release_now(self) -> None:
        if self._let_go is not None:
            self._let_go()  # runs once, whatever calls it first; the file's lock goes first
        self._close()

    def drop_inherited(self) -> None:
        """In a forked child: close our copies; the parent's descriptors keep the locks (no
        lock of SQLite's is lost: a child inherits none)."""
        if self._let_go is not None and self._let_go.detach() is not None:
            os.close(self._file_fd)
        self._close()


_HELD: weakref.WeakSet[_FileLock] = weakref.WeakSet()


def _drop_inherited_locks() -> None:
    global _REGISTRY
    _REGISTRY = threading.RLock()  # the parent's may have been held by another thread
    for held in list(_HELD):
        held.drop_inherited()
    for fd, _key in _PARKED:
        os.close(fd)
    _PARKED.clear()
    _OPEN_HERE.clear()


def _before_fork() -> None:
    _REGISTRY.acquire()  # wait for a lock being taken or let go to be registered


def _after_fork_in_parent() -> None:
    _REGISTRY.release()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_drop_inherited_locks
)


async def lock_sqlite(db_path: Path) -> DatabaseLock:
    """Take the open lock of the SQLite database at ``db_path`` or raise ``DatabaseLocked``:
    the sidecar's, and the database file's if it exists (else call ``hold_file`` once it
    does)."""
    return await _to_thread_to_its_end(_lock_file, db_path, give_back=_FileLock.release_now)


async def _to_thread_to_its_end(
    fn: Callable[..., _T], *args: Any, give_back: Callable[[_T], None] | None = None
) -> _T:
    """``asyncio.to_thread(fn, *args)``, awaited to its end even if the caller is cancelled
    meanwhile, and then ``give_back(result)`` before ``CancelledError`` propagates.

    A thread cannot be stopped: one taking a lock for an open that was cancelled (a
    ``wait_for`` that timed out) went on and took it, and nobody let it go, so the database
    stayed locked for the life of the process; one locking the database file or writing
    the sidecar raced the release that the cancelled open ran meanwhile."""
    return await _to_its_end(asyncio.to_thread(fn, *args), give_back)


async def _to_its_end(work: Awaitable[_T], give_back: Callable[[_T], None] | None = None) -> _T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile; then call
    ``give_back(result)`` (if ``work`` succeeded) before ``CancelledError`` propagates.
    For the steps of an open that must not stop halfway (a thread, which cannot be
    stopped; a commit and what must follow it)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            await asyncio.wait({task})
        if give_back is not None and not task.cancelled() and task.exception() is None:
            give_back(task.result())
        raise


def check_unheld(db_path: Path, check: Callable[[Path], None]) -> None:
    """Run ``check(db_path)``, the reads an opener makes of a database file before it takes
    its lock, where they cannot hurt a holder (module docstring): ``DatabaseLocked`` first if
    a store of this process holds the file under any name, or holds the sidecar of this name
    (it may be making the database), or if another process holds the file's lock. No store
    of this process takes a lock meanwhile."""
    with _REGISTRY:
        real = os.path.realpath(db_path)
        for held in list(_HELD):
            if held.real == real and held.holding():
                raise DatabaseLocked(
                    str(db_path), pid=os.getpid(), host=socket.gethostname(), since=held.since
                )
        try:
            key = _file_key(db_path)
        except OSError:
            key = None  # (``check`` says what is wrong with it)
        if key is not None:
            _refuse_if_held_here(db_path, key)
            _probe(db_path, key)
        _refuse_if_making(db_path)
        check(db_path)


def _refuse_if_making(db_path: Path) -> None:
    """``DatabaseLocked`` if another process holds the sidecar of this name: it may be making
    the database, whose file SQLite has made (empty, or partly written) before its lock can
    be taken, and which the checks after would refuse as not a shoal database (telling the
    user to remove the file that opener goes on writing). The holder is read from
    ``/proc/locks``, not probed with a ``flock`` of ours, which would refuse that opener's
    own. Nothing where ``/proc/locks`` cannot be read."""
    sidecar = lock_path(db_path)
    key = _file_key(sidecar)
    pid = None if key is None else _flock_pid(key)
    if pid is None or pid == os.getpid():  # (this process's holders: the registry's check)
        return
    raise DatabaseLocked(
        str(db_path), pid=pid, host=socket.gethostname(), since=_since(db_path, pid)
    )


def _since(db_path: Path, pid: int) -> str | None:
    """When process ``pid`` took the lock of ``db_path``, from the sidecar's record if that
    record is its (one read: a holder that has not written it yet, or that holds the file
    under another name, is named without it)."""
    try:
        record = json.loads(lock_path(db_path).read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and record.get("pid") == pid:
        return str(record.get("since") or "") or None
    return None


def _probe(db_path: Path, key: _FileKey) -> None:
    """``DatabaseLocked`` if another process holds the ``flock`` of the database file; the
    probe's descriptor is let go of as every descriptor of the file is (:func:`_close_safely`).
    Nothing if the file cannot be opened (the checks after say why)."""
    try:
        fd = _descriptor(db_path, key)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        _close_safely(fd, key)
        raise DatabaseLocked(str(db_path), **_file_holder(db_path, key)) from None
    _close_safely(fd, key)


def read_head(db_path: Path, size: int) -> bytes:
    """The first ``size`` bytes of the file at ``db_path`` (``FileNotFoundError`` if there is
    none), read through a descriptor closed only once no other of this process is on the
    file (module docstring): a store or an application's connection of this process keeps
    SQLite's locks on it."""
    with _REGISTRY:
        key = _file_key(db_path)
        if key is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(db_path))
        fd = _descriptor(db_path, key)
        try:
            return os.pread(fd, size, 0)
        finally:
            _close_safely(fd, key)


def _descriptor(db_path: Path, key: _FileKey) -> int:
    """A read-only descriptor of the database file ``key`` at ``db_path``: one parked for it
    if there is one (so that an application's own connection to the file, which keeps them
    parked, does not make them pile up), else a new one."""
    for i, (fd, k) in enumerate(_PARKED):
        if k == key:
            del _PARKED[i]
            return fd
    return os.open(db_path, os.O_RDONLY | os.O_CLOEXEC)


def _lock_file(db_path: Path) -> _FileLock:
    path = lock_path(db_path)
    # Under the registry from the descriptor's opening to its registration (not while
    # check_unheld reads the database file, nor while this process forks: a child forked
    # in between would keep a copy of the descriptor that no one closes, and the flock
    # with it, after the parent let go).
    with _REGISTRY:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # name the database: the user never heard of the lock file
            raise type(exc)(
                exc.errno, f"cannot lock database {db_path} ({exc.strerror})", str(path)
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # refused: named below, out of the registry (it may wait a little)
        except BaseException:
            os.close(fd)
            raise
        else:
            return _held_file(db_path, fd)  # (which closes fd if it fails)
    try:
        raise DatabaseLocked(str(db_path), **_read_holder(fd)) from None
    finally:
        os.close(fd)


def _held_file(db_path: Path, fd: int) -> _FileLock:
    """The lock of ``db_path`` whose sidecar's ``flock`` ``fd`` holds: its database file's
    too if it exists, and the sidecar's record written."""
    since = _now_iso()
    lock = _FileLock(db_path, fd, since)  # closes fd from now on
    try:
        # Making the database: none is there, or the empty file a holder left that was
        # making it and stopped before it was made (making_interrupted).
        making = not db_path.exists() or making_interrupted(db_path)
        lock.hold_file_now()  # an existing database: its file too, before the record
        lock.write_record(making)
    except BaseException:
        lock.release_now()
        raise
    return lock


def making_interrupted(db_path: Path) -> bool:
    """Is the database file at ``db_path`` an empty file that an opener of this name left
    while it was making the database (killed before its schema was committed: SQLite rolls
    a new file's first transaction back to nothing), not a copy or restore gone wrong? The
    sidecar's record says so (``making``) until the database is made; only then may an
    opener take the empty file as a new database."""
    try:
        if db_path.stat().st_size != 0:
            return False
        record = json.loads(lock_path(db_path).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("making") is True


def _file_key(path: Path) -> _FileKey | None:
    """The file's ``(st_dev, st_ino)``; None if there is none (yet)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _lock_database_file(db_path: Path, since: str) -> tuple[_FileKey, int] | None:
    """``flock`` the database file at ``db_path`` on a read-only descriptor of its own and
    note it as held here: ``(its key, the descriptor)``, or None if there is no file yet.
    ``DatabaseLocked`` if a store of this process, or another process, holds it."""
    with _REGISTRY:
        _close_parked()
        key = _file_key(db_path)
        if key is None:
            return None
        _refuse_if_held_here(db_path, key)  # before a descriptor of it is opened
        fd = _descriptor(db_path, key)
        st = os.fstat(fd)
        opened = (st.st_dev, st.st_ino)
        try:
            if opened != key:
                raise StoreError(f"database {db_path} was replaced as it was opened; try again")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DatabaseLocked(str(db_path), **_file_holder(db_path, key)) from None
        except BaseException:
            _close_safely(fd, opened)
            raise
        _OPEN_HERE[key] = _Holder(str(db_path), since)
        return key, fd


def _let_go(key: _FileKey, fd: int) -> None:
    """Release the database file's lock: close its descriptor (safely), and only then let
    another store of this process open the file."""
    with _REGISTRY:
        _close_safely(fd, key)
        _OPEN_HERE.pop(key, None)


def _refuse_if_held_here(db_path: Path, key: _FileKey) -> None:
    holder = _OPEN_HERE.get(key)
    if holder is not None:
        raise DatabaseLocked(
            str(db_path),
            pid=os.getpid(),
            host=socket.gethostname(),
            since=holder.since,
            opened_as=_another_name(holder.name, db_path),
        )


def _close_safely(fd: int, key: _FileKey) -> None:
    """Let go of ``fd``'s ``flock`` now, and close it once no other descriptor of this
    process is on its file: at once, as a rule (module docstring)."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    _PARKED.append((fd, key))
    _close_parked()


def _close_parked() -> None:
    """Close the parked descriptors of each file no other descriptor of this process is on."""
    for key in {k for _fd, k in _PARKED}:
        parked = {fd for fd, k in _PARKED if k == key}
        if not _others_open(key, parked):
            for fd in parked:
                os.close(fd)
            _PARKED[:] = [(fd, k) for fd, k in _PARKED if k != key]


def _others_open(key: _FileKey, mine: set[int]) -> bool:
    """Has this process a descriptor of the file ``key`` besides ``mine``? True if it cannot
    tell (no ``/proc/self/fd`` nor ``/dev/fd`` to list them)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            names = os.listdir(folder)
            break
    else:
        return True
    for name in names:
        fd = int(name)
        if fd in mine:
            continue
        try:
            st = os.fstat(fd)
        except OSError:  # closed since (the listing's own descriptor, say)
            continue
        if (st.st_dev, st.st_ino) == key:
            return True
    return False


def _file_holder(db_path: Path, key: _FileKey) -> dict[str, Any]:
    """Who holds the ``flock`` of the database file: its PID (``/proc/locks``) and the name
    it opened the file as (``/proc/PID/fd``), as far as this system shows them."""
    pid = _flock_pid(key)
    if pid is None:
        return {}
    name = _name_in(pid, key)
    return {
        "pid": pid,
        "host": socket.gethostname(),  # a flock of a local file: a process of this host
        "opened_as": None if name is None else _another_name(name, db_path),
        "since": _since(db_path, pid),
    }


def _flock_pid(key: _FileKey) -> int | None:
    """The PID holding a ``flock`` on the file ``key``, from lines of ``/proc/locks`` such as
    ``3: FLOCK  ADVISORY  WRITE 11394 fe:00:5343238 0 EOF``."""
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    want = (os.major(key[0]), os.minor(key[0]), key[1])
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or not fields[4].isdigit():
            continue  # (a waiter's line reads "N: -> FLOCK ...": nobody waits on ours)
        try:
            major, minor, ino = fields[5].split(":")
            found = (int(major, 16), int(minor, 16), int(ino))
        except ValueError:
            continue
        if found == want and int(fields[4]) > 0:
            return int(fields[4])
    return None


def _name_in(pid: int, key: _FileKey) -> str | None:
    """The name process ``pid`` opened the file ``key`` as, if its descriptors are readable."""
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for name in names:
        link = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            st = os.stat(link)
            if (st.st_dev, st.st_ino) == key:
                return os.readlink(link)
    return None


def _another_name(name: str, db_path: Path) -> str | None:
    """``name`` if it is another name of the file than ``db_path`` (a hard link), else None."""
    return name if os.path.realpath(name) != os.path.realpath(db_path) else None


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder's record. Between its ``flock`` and its write the file is empty or holds a
    dead predecessor's record; reread briefly (bounded) until it names a live process."""
    found: dict[str, Any] = {}
    for attempt in range(_READ_ATTEMPTS):
        if attempt:
            time.sleep(_READ_PAUSE)
        try:
            record = json.loads(os.pread(fd, 4096, 0))
        except ValueError:  # empty or half-written
            continue
        if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
            continue
        found = {
            "pid": record["pid"],
            "host": str(record.get("host") or "") or None,
            "since": str(record.get("since") or "") or None,
        }
        if found["host"] != socket.gethostname() or _alive(found["pid"]):
            return found
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
