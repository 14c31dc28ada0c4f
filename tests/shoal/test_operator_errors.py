"""Operator mistakes give one line: real ``shoal`` processes on real files and ports.

Each mistake (a missing or read-only directory, a text file, another application's SQLite
file, an empty file, a database another process holds, a busy port, a bad URL or port)
ends the command with one line on stderr naming the path or address and the cause, the
documented exit status, no traceback (unless ``--debug``), and nothing changed on disk.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal import cli
from store import SCHEMA_VERSION, Store
from tests.transport.conftest import SECRET

from .readonly import read_only
from .shoal_run import checkout_env, run_shoal

SHOAL = [sys.executable, "-m", "shoal"]


def one_line(err: str) -> str:
    """The whole of stderr, asserted to be exactly one line."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.rstrip("\n")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    return path


def _text_file(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("milk\neggs\n")
    return path


def _foreign_sqlite(folder: Path) -> Path:
    path = folder / "other-app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    return path


def _empty_file(folder: Path) -> Path:
    path = folder / "empty.db"
    path.write_bytes(b"")
    return path


def _newer_schema(folder: Path) -> Path:
    """A database of a later shoal (its schema ahead of this one's)."""
    path = folder / "newer.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION + 1),))
        conn.execute("INSERT INTO meta VALUES ('replica_id', 'kept')")
    conn.close()
    return path


def _missing_directory(folder: Path) -> Path:
    return folder / "no-such-dir" / "a.db"


def _a_directory(folder: Path) -> Path:
    path = folder / "a-dir.db"
    path.mkdir()
    return path


MISTAKES: list[tuple[Callable[[Path], Path], str]] = [
    (_missing_directory, "cannot open database {db}: directory {dir} does not exist"),
    (_a_directory, "cannot open database {db}: it is a directory"),
    (_text_file, "{db} is not a shoal database (not a SQLite file)"),
    (_foreign_sqlite, "{db} is not a shoal database: it has tables ['notes'] but no 'meta'"),
    (_empty_file, "database {db} is an empty file (0 bytes), not a shoal database: refusing"),
    (
        _newer_schema,
        f"database schema version {SCHEMA_VERSION + 1} is newer than the supported version "
        f"{SCHEMA_VERSION}; upgrade shoal to open it (the database was left untouched)",
    ),
]


@pytest.mark.parametrize(("make", "message"), MISTAKES, ids=lambda v: getattr(v, "__name__", ""))
async def test_serve_refuses_a_wrong_database_in_one_line_and_changes_nothing(
    tmp_path: Path, secret_file: Path, make: Callable[[Path], Path], message: str
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    db = make(folder)
    before = snapshot(folder)
    code, out, err = await run_shoal(
        "serve", "--db", str(db), "--listen", "127.0.0.1:0", "--secret-file", str(secret_file)
    )
    assert code == 1 and out == ""
    line = one_line(err)
    assert line.startswith("shoal: serve: ")
    assert message.format(db=db, dir=db.parent) in line, line
    assert snapshot(folder) == before  # not even a lock file
    if db.is_file():
        assert db.stat().st_size == before[db.name].__len__()


@pytest.mark.parametrize(("make", "message"), MISTAKES, ids=lambda v: getattr(v, "__name__", ""))
async def test_the_api_refuses_the_same_databases(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    from store import StoreError
    from sync.transport.peer import Peer

    folder = tmp_path / "data"
    folder.mkdir()
    db = make(folder)
    before = snapshot(folder)
    with pytest.raises(StoreError) as raised:
        await Peer.open(str(db))
    assert message.format(db=db, dir=db.parent) in str(raised.value)
    assert snapshot(folder) == before


async def test_inspect_refuses_an_empty_file_and_a_text_file_in_one_line(tmp_path: Path) -> None:
    for make, message in (
        (_empty_file, "{db} is an empty file (0 bytes), not a shoal database"),
        (_text_file, "{db} is not a shoal database (not a SQLite file)"),
        (_missing_directory, "no database at {db}"),
    ):
        db = make(tmp_path)
        code, out, err = await run_shoal("inspect", "--db", str(db))
        assert code == 1 and out == ""
        assert one_line(err) == "shoal: inspect: " + message.format(db=db)


async def test_inspect_names_a_directory_and_another_apps_file_as_serve_does(
    tmp_path: Path,
) -> None:
    """Given relative paths: a directory is "a directory" (it said "no database at"), and
    another application's SQLite file is named by its absolute path (it was named as given),
    in serve's words."""
    folder = tmp_path / "data"
    folder.mkdir()
    for make, message in (
        (_a_directory, "cannot open database {db}: it is a directory"),
        (_foreign_sqlite, "{db} is not a shoal database: it has tables ['notes'] but no 'meta' "
                          "table"),
    ):  # fmt: skip
        db = make(folder)
        before = snapshot(folder)
        code, out, err = await run_shoal("inspect", "--db", db.name, cwd=folder)
        assert (code, out) == (1, "")
        assert one_line(err) == "shoal: inspect: " + message.format(db=db)
        assert snapshot(folder) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "localhost:99999"], "listen address 'localhost:99999': port '99999'"),
        (["--listen", "127.0.0.1"], "listen address '127.0.0.1' is not HOST:PORT"),
        (["--peer", "localhost:8765"], "--peer 'localhost:8765' must start with ws:// or wss://"),
        (["--peer", "ws://h:notaport"], "--peer 'ws://h:notaport': the port is not a number"),
        (["--advertise", "http://h:1"], "--advertise 'http://h:1' must start with ws://"),
        (["--status", "off", "--http-token-file", "t"], "--http-token-file goes with --status"),
    ],
)
async def test_bad_addresses_are_usage_errors_in_one_line(
    tmp_path: Path, secret_file: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "never.db"
    base = ["serve", "--db", str(db), "--secret-file", str(secret_file)]
    if "--listen" not in args:
        base += ["--listen", "127.0.0.1:0"]
    code, out, err = await run_shoal(*base, *args)
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("shoal: serve: ") and message in line, line
    assert not db.exists()


async def test_status_token_without_its_file_names_the_token(
    tmp_path: Path, secret_file: Path
) -> None:
    """The HTTP token is what is missing, not the group secret (which was given)."""
    db = tmp_path / "never.db"
    code, out, err = await run_shoal(
        "serve", "--db", str(db), "--listen", "127.0.0.1:0",
        "--secret-file", str(secret_file), "--status", "token",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert one_line(err) == "shoal: serve: --status token needs a token: --http-token-file PATH"
    assert list(tmp_path.iterdir()) == [secret_file]


async def test_a_database_held_by_another_process_is_one_line(
    tmp_path: Path, secret_file: Path
) -> None:
    db = tmp_path / "held.db"
    async with await Store.open(db):
        code, out, err = await run_shoal(
            "serve", "--db", str(db), "--listen", "127.0.0.1:0", "--secret-file", str(secret_file)
        )
    assert code == 1 and out == ""
    line = one_line(err)
    assert line.startswith(f"shoal: serve: database {db} is in use by process {os.getpid()}")


async def test_a_busy_port_is_one_line_naming_the_address_and_makes_no_database(
    tmp_path: Path, secret_file: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await run_shoal(
            "serve",
            "--db",
            str(tmp_path / "a.db"),
            "--listen",
            f"127.0.0.1:{port}",
            "--secret-file",
            str(secret_file),
        )
    assert code == 1 and out == ""
    assert one_line(err) == (
        f"shoal: serve: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    # The port was refused before the database was touched: none made, nor any file beside it.
    assert list(tmp_path.iterdir()) == [secret_file]


async def test_debug_adds_the_traceback_before_the_line(tmp_path: Path, secret_file: Path) -> None:
    db = _text_file(tmp_path)
    for args in (
        ["--debug", "serve", "--db", str(db)],
        ["serve", "--debug", "--db", str(db)],
    ):
        code, _, err = await run_shoal(
            *args, "--listen", "127.0.0.1:0", "--secret-file", str(secret_file)
        )
        assert code == 1
        lines = err.splitlines()
        assert lines[0] == "Traceback (most recent call last):"
        assert lines[-1] == f"shoal: serve: {db} is not a shoal database (not a SQLite file)"


async def test_serve_in_a_read_only_directory_is_one_line(
    tmp_path: Path, secret_file: Path
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    async with await Store.open(folder / "a.db"):
        pass
    before = snapshot(folder)
    with read_only(folder) as prefix:
        for name, message in (
            ("a.db", "database {db} is read-only"),
            ("new.db", "cannot create database {db}: directory {dir} is not writable"),
        ):
            db = folder / name
            code, out, err = await run_shoal(
                "serve",
                "--db",
                str(db),
                "--listen",
                "127.0.0.1:0",
                "--secret-file",
                str(secret_file),
                prefix=prefix,
            )
            assert code == 1 and out == ""
            assert message.format(db=db, dir=folder) in one_line(err)
    assert snapshot(folder) == before


async def test_inspect_reads_a_database_on_read_only_media(tmp_path: Path) -> None:
    import json

    from sync.transport.peer import Peer

    folder = tmp_path / "media"
    folder.mkdir()
    async with Peer.open(str(folder / "a.db"), secret=SECRET) as peer:
        await peer.orset("cart").add("milk")
        replica_id = peer.replica_id
    before = snapshot(folder)
    assert not (folder / "a.db-shm").exists()  # closed cleanly: SQLite would need to make it
    with read_only(folder) as prefix:
        code, out, err = await run_shoal(
            "inspect", "--db", str(folder / "a.db"), "--json", prefix=prefix
        )
    assert code == 0, err
    data = json.loads(out)
    assert data["replica_id"] == replica_id
    assert [(o["key"], o["value"]) for o in data["objects"]] == [("cart", ["milk"])]
    assert snapshot(folder) == before


async def test_every_command_takes_every_sqlite_form(tmp_path: Path, secret_file: Path) -> None:
    import json

    from sync.transport.peer import Peer

    db = tmp_path / "forms.db"
    async with Peer.open(str(db), secret=SECRET) as peer:
        await peer.gcounter("n").increment()
        replica_id = peer.replica_id
    forms = [str(db), f"sqlite:///{db}", f"sqlite+aiosqlite:///{db}", "forms.db"]
    for form in forms:
        code, out, err = await run_shoal("inspect", "--db", form, "--json", cwd=tmp_path)
        assert code == 0, (form, err)
        assert json.loads(out)["replica_id"] == replica_id, form
        async with Peer.open(form if form != "forms.db" else str(db), secret=SECRET) as peer:
            assert peer.replica_id == replica_id, form
    # serve, with a relative sqlite:/// URL resolved against its working directory.
    proc = await asyncio.create_subprocess_exec(
        *SHOAL,
        "serve",
        "--db",
        "sqlite:///forms.db",
        "--listen",
        "127.0.0.1:0",
        "--secret-file",
        str(secret_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=checkout_env(),
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        code, out, err = await run_shoal("status", url, "--json")
        assert code == 0, err
        assert json.loads(out)["replica_id"] == replica_id
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0


@pytest.mark.postgres
async def test_every_command_takes_every_postgres_form(secret_file: Path) -> None:
    import json

    from sqlalchemy import make_url

    from sync.transport.peer import Peer
    from tests.store.conftest import fresh_pg_database, pg_url_or_skip

    url, drop = await fresh_pg_database(pg_url_or_skip())
    try:
        plain = make_url(url).set(drivername="postgresql").render_as_string(False)
        asyncpg = make_url(url).set(drivername="postgresql+asyncpg").render_as_string(False)
        async with Peer.open(plain, secret=SECRET) as peer:
            await peer.gcounter("n").increment()
            replica_id = peer.replica_id
        async with Peer.open(asyncpg, secret=SECRET) as peer:
            assert peer.replica_id == replica_id
        for form in (plain, asyncpg):
            code, out, err = await asyncio.to_thread(
                lambda f=form: _main_json(["inspect", "--db", f, "--json"])
            )
            assert code == 0, err
            assert json.loads(out)["replica_id"] == replica_id
    finally:
        await drop()


def _main_json(args: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


async def test_help_documents_the_exit_statuses() -> None:
    code, out, _ = await run_shoal("--help")
    assert code == 0
    text = " ".join(out.split())
    assert "exit status: 0 success; 1 the operation failed" in text
    assert "2 bad usage; 3 serve stopped serving after the store refused a commit" in text
    assert "--debug" in text
    assert "Exit codes" in (cli.__doc__ or "") and "* 3: ``serve`` stopped serving" in (
        cli.__doc__ or ""
    )
