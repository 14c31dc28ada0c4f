"""The ``shoal`` command line: serve in a subprocess (SIGTERM), inspect, status, forget, help,
--version, and plain text where rich is missing."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import sqlite3
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from shoal import Peer, cli
from tests.transport.conftest import SECRET, WAIT, eventually, linked, open_peer

ROOT = Path(__file__).resolve().parents[2]
SHOAL = [sys.executable, "-m", "shoal"]


def _serve_args(db: Path, secret_file: Path) -> list[str]:
    """``shoal serve`` of ``db`` on a port of the OS's choosing."""
    return ["serve", "--db", str(db), "--listen", "127.0.0.1:0", "--secret-file", str(secret_file)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


async def run(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *SHOAL,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_serve_status_forget_inspect_and_sigterm(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    db = tmp_path / "served.db"
    proc = await asyncio.create_subprocess_exec(
        *SHOAL,
        *_serve_args(db, secret_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        assert url.startswith("ws://127.0.0.1:"), url
        app = await open_peer(tmp_path / "app.db", listen=None, peers=[url])
        try:
            await eventually(lambda: bool(app.transport.links), "app to link to serve")
            served_id = next(iter(app.transport.links))
            await app.orset("cart").add("milk", w=2, timeout=WAIT)
            await app.pncounter("visits").increment(2, w=2, timeout=WAIT)

            code, out, err = await run("status", url, "--json")
            assert code == 0, err
            status = json.loads(out)
            assert status["replica_id"] == served_id
            assert status["connected"] == [app.replica_id]
            assert status["keys"] == 2
            code, out, _ = await run("status", url)
            assert code == 0 and served_id in out and app.replica_id in out

            # forget needs the secret; with it, the peer forgets the app's replica.
            wrong = tmp_path / "wrong"
            wrong.write_bytes(b"nope")
            code, _, err = await run("forget", url, app.replica_id, "--secret-file", str(wrong))
            assert code == 1 and "1008" in err
            code, out, err = await run(
                "forget", url, app.replica_id, "--secret-file", str(secret_file), "--yes"
            )
            assert code == 0, err
            assert app.replica_id in out
        finally:
            await app.aclose()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert "stopped cleanly" in log
        frozen = re.search(r"(\d+) objects of startup frozen for the garbage collector", log)
        assert frozen is not None and int(frozen.group(1)) > 10_000, log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    code, out, err = await run("inspect", "--db", str(db), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["replica_id"] == served_id
    values = {o["key"]: (o["type"], o["value"]) for o in data["objects"]}
    assert values == {"cart": ("orset", ["milk"]), "visits": ("pncounter", 2)}
    assert data["peers"][0]["forgotten"] is True
    code, out, _ = await run("inspect", "--db", str(db), "cart")
    assert code == 0 and "cart" in out and "milk" in out and "visits" not in out


async def test_inspect_reads_without_writing_and_reports_missing(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db", listen=None)
    await a.mvregister("note").set("x")
    await a.aclose()
    sidecar = tmp_path / "a.db.shoal-id"
    before = (tmp_path / "a.db").read_bytes(), sidecar.read_bytes()
    assert cli.main(["inspect", "--db", str(tmp_path / "a.db"), "--json"]) == 0
    assert ((tmp_path / "a.db").read_bytes(), sidecar.read_bytes()) == before
    assert cli.main(["inspect", "--db", str(tmp_path / "a.db"), "missing"]) == 1
    assert cli.main(["inspect", "--db", str(tmp_path / "none.db")]) == 1
    assert not (tmp_path / "none.db").exists()


def test_inspect_of_a_database_that_is_not_shoals_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = other.read_bytes()
    assert cli.main(["inspect", "--db", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(other) in err and "not a shoal database" in err
    assert other.read_bytes() == before


def test_inspect_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def make() -> None:
        a = await open_peer(tmp_path / "a.db", listen=None)
        await a.orset("cart").add("milk")
        await a.mvregister("note").set("buy bread")
        await a.aclose()

    asyncio.run(make())
    assert cli.main(["inspect", "--db", str(tmp_path / "a.db"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_key = {o["key"]: o for o in data["objects"]}
    assert by_key["cart"]["value"] == ["milk"] and by_key["cart"]["type"] == "orset"
    assert by_key["note"]["siblings"] == 1 and by_key["note"]["value"] == ["buy bread"]
    assert by_key["cart"]["version_vector"] == {data["replica_id"]: 1}
    assert data["keys"] == 2 and data["log_size"] == 2
    assert data["applied"] == {data["replica_id"]: 2}


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, sp in sub.choices.items():  # type: ignore[union-attr]
        if name == "demo":
            continue
        for action in sp._actions:
            assert action.help, f"shoal {name}: option {action.option_strings} has no help"
    with pytest.raises(SystemExit) as done:
        cli.main(["serve", "--help"])
    assert done.value.code == 0
    assert "--secret-file" in capsys.readouterr().out


def test_serve_without_secret_and_bad_levels_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    with pytest.raises(SystemExit) as done:  # argparse: --secret-file is required
        cli.main(["serve", "--db", str(db), "--listen", "127.0.0.1:0"])
    assert done.value.code == 2
    assert "required: --secret-file" in capsys.readouterr().err
    empty = tmp_path / "empty-secret"
    empty.write_bytes(b"\n")
    for secret in (str(empty), ""):
        argv = ["serve", "--db", str(db), "--listen", "127.0.0.1:0", "--secret-file", secret]
        assert cli.main(argv) == 2
        assert "secret" in capsys.readouterr().err
    assert not db.exists()
    with pytest.raises(SystemExit) as done:
        cli.main(["serve", "--db", str(db), "--listen", "127.0.0.1:0", "--w", "MOST"])
    assert done.value.code == 2
    assert cli.main(["status", "ftp://x"]) == 2


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--n", "3", "--w", "5"], "w=5 is impossible with n=3"),
        (["--n", "2", "--r", "ALL", "--w", "3"], "w=3 is impossible with n=2"),
        (["--w", "LOCAL_QUORUM"], "w=LOCAL_QUORUM needs site"),
        (["--r", "LOCAL_QUORUM"], "r=LOCAL_QUORUM needs site"),
    ],
)
def test_serve_refuses_a_level_its_n_or_site_cannot_meet_as_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], error: str
) -> None:
    # docs/operations.md, exit statuses: 2 is "bad usage: ... a bad URL, address, port or
    # level"; a level only n or --site can rule out is one too (it exited 1).
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    db = tmp_path / "x.db"
    assert cli.main([*_serve_args(db, secret), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shoal: serve: ") and error in err and err.count("\n") == 1
    assert not db.exists()


def test_status_of_a_dead_peer_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "ws://127.0.0.1:9", "--timeout", "2"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_demo_dispatch_without_the_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shoal

    monkeypatch.setitem(sys.modules, "shoal.demo", None)
    monkeypatch.delattr(shoal, "demo", raising=False)  # (imported by an earlier test)
    assert cli.main(["demo"]) == 2
    assert "demo is not available" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--debug", "demo"], ["demo", "--debug"]])
def test_debug_before_or_after_demo(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--debug is taken before or after the command, the demo's too (before it: KeyError
    'demo'; after it: refused as an unknown option of the demo)."""
    from shoal import demo

    ran: list[list[str]] = []
    monkeypatch.setattr(demo, "main", lambda args: ran.append(list(args)) or 0)
    assert cli.main(argv) == 0
    assert ran == [[]]


async def test_forget_through_the_embedding_api(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        with pytest.raises(ValueError):
            await a.forget(a.replica_id)
        await a.forget(b.replica_id)
        assert b.replica_id not in a.status_now()["engine"]["peers_known"]
    finally:
        await b.aclose()
        await a.aclose()


@pytest.mark.slow
async def test_serve_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    proc = await asyncio.create_subprocess_exec(
        *SHOAL,
        "serve",
        "--db",
        str(tmp_path / "s.db"),
        "--listen",
        "127.0.0.1:0",
        "--secret-file",
        str(secret_file),
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        assert url.startswith("ws://127.0.0.1:")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    code, out, err = await run("inspect", "--db", str(tmp_path / "s.db"), "--json")
    assert code == 0, err
    assert json.loads(out)["objects"] == []


# ``shoal serve`` with a stop asked for while its database opens: the process signals itself
# just before the open (what a supervisor's SIGTERM or a Ctrl-C does at that moment).
_STOP_WHILE_OPENING = """
import asyncio, os, signal, sys
from shoal import cli
from shoal.commands import serve

real = serve._open_peer

async def open_after_a_signal(*args, **kw):
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    await asyncio.sleep(300)  # an open that takes long (a big log to fold): not waited out
    return await real(*args, **kw)

serve._open_peer = open_after_a_signal
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
async def test_serve_asked_to_stop_while_its_database_opens_stops_cleanly(
    tmp_path: Path, sig: str
) -> None:
    """Before, the signal killed it where it stood (exit 143, or a KeyboardInterrupt
    traceback), a first start's database half made; now it cancels the open, serves
    nothing and stops cleanly, and the database opens afterwards."""
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    db = tmp_path / "s.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _STOP_WHILE_OPENING,
        sig,
        *_serve_args(db, secret_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)  # (not the open's 300 s)
    assert proc.returncode == 0, err.decode()
    assert out == b""  # it never served
    assert b"Traceback" not in err and b"stopped while the database opened" in err
    async with Peer.open(str(db)) as peer:  # whatever the open had made of it
        assert peer.replica.keys() == []


async def test_status_and_forget_over_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    a = await open_peer(tmp_path / "a.db", tls_cert=str(cert_file), tls_key=str(key_file))
    try:
        assert a.url is not None and a.url.startswith("wss://")
        args = ["status", a.url, "--json", "--tls-ca", str(ca_file)]
        assert await asyncio.to_thread(cli.main, args) == 0
        assert json.loads(capsys.readouterr().out)["replica_id"] == a.replica_id
        # Without trusting the CA, the certificate is refused.
        assert await asyncio.to_thread(cli.main, ["status", a.url, "--timeout", "3"]) == 1
        capsys.readouterr()
        args = ["forget", a.url, "gone-peer", "--secret-file", str(secret_file), "--yes"]
        # An id the peer does not know is refused (issue 12 item 6), over TLS too.
        assert await asyncio.to_thread(cli.main, [*args, "--tls-ca", str(ca_file)]) == 1
        assert "unknown replica id gone-peer" in capsys.readouterr().err
        assert "gone-peer" not in a._forgotten
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], tls_ca=str(ca_file))
        try:
            await linked(a, b)
            args[2] = b.replica_id
            assert await asyncio.to_thread(cli.main, [*args, "--tls-ca", str(ca_file)]) == 0
            assert f"forgot {b.replica_id}" in capsys.readouterr().out
            assert b.replica_id in a._forgotten
        finally:
            await b.aclose()
    finally:
        await a.aclose()


async def test_version_is_the_installed_distributions() -> None:
    code, out, err = await run("--version")
    assert code == 0, err
    assert out.strip() == f"shoal {version('shoal')}"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_inspect_on_a_terminal_without_rich_prints_plain_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def make() -> None:
        a = await open_peer(tmp_path / "a.db", listen=None)
        await asyncio.gather(*(a.gcounter(f"k{i}").increment() for i in range(2100)))
        await a.orset("cart").add("milk")
        await a.aclose()

    asyncio.run(make())
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)  # what a base install (no extras) has
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    # Over the progress bar's threshold, so a bar would show if rich were there.
    assert cli.main(["inspect", "--db", str(tmp_path / "a.db")]) == 0
    out = terminal.getvalue()
    assert "\x1b[" not in out
    assert re.search(r'^cart +orset +\["milk"\] +vv=', out, re.M) and "keys 2101" in out


def test_inspect_on_a_terminal_lists_every_key_in_tables_of_a_thousand_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rows are read into a spool as the database is read and shown a table at a time:
    # every key once, the header once, the summary first (rich is in the test install).
    async def make() -> None:
        a = await open_peer(tmp_path / "a.db", listen=None)
        await asyncio.gather(*(a.gcounter(f"k{i:04}").increment() for i in range(2100)))
        await a.aclose()

    asyncio.run(make())
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["inspect", "--db", str(tmp_path / "a.db")]) == 0
    out = re.sub(r"\x1b\[[0-9;]*m", "", terminal.getvalue())  # (rich's colours)
    assert out.index("keys 2100") < out.index("k0000") < out.index("k2099")
    shown = [line for line in out.splitlines() if re.search(r"\bk\d{4}\b", line)]
    assert [re.search(r"\bk\d{4}\b", line)[0] for line in shown] == [  # type: ignore[index]
        f"k{i:04}" for i in range(2100)
    ]
    assert out.count("version vector") == 1
