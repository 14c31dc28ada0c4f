"""examples/shopping_list.py says why it does not sync, instead of promising that it will:
a wrong secret needs a fix, an unreachable peer syncs once it is back."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

from tests.examples.test_shopping_list import EXAMPLE, _env, _Hub

RUN_TIMEOUT = 30.0


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_wrong_secret_is_named_and_not_promised_to_sync(tmp_path: Path) -> None:
    hub, url = await _Hub.start(tmp_path / "hub.db", "serve")
    try:
        code, out, err = await _run(
            "--db", str(tmp_path / "bob.db"), "--peer", url, "--secret", "not ours", "add", "jam"
        )
    finally:
        await hub.stop()
    assert code == 0, err
    assert err.splitlines() == [
        f"not syncing: wrong secret for {url}: the listener refused us: authentication failed: "
        "wrong group secret, or a hello altered on the way (close code 1008) "
        "(fix this to sync with it)"
    ]
    assert out.splitlines() == [
        "no peer connected: working offline",
        "add jam: saved here only (no peer connected)",
    ]
    assert "syncs next time" not in out


async def test_an_unreachable_peer_is_named_with_its_cause(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}"
    code, out, err = await _run("--db", str(tmp_path / "bob.db"), "--peer", url, "list")
    assert code == 0, err
    assert err.splitlines() == [
        f"not syncing: unreachable for {url}: connection refused (it syncs once the peer is back)"
    ]
    assert out.splitlines() == ["no peer connected: working offline", "(empty)"]


async def test_a_missing_folder_or_a_file_that_is_no_database_is_one_line(
    tmp_path: Path,
) -> None:
    """The store's refusal is the whole of stderr (it ended a 30-line traceback), exit 1,
    and nothing is created."""
    text = tmp_path / "text.db"
    text.write_text("milk\neggs\n")
    for db, message in (
        (tmp_path / "nodir" / "x.db", f"cannot open database {tmp_path / 'nodir' / 'x.db'}: "
         f"directory {tmp_path / 'nodir'} does not exist"),
        (text, f"{text} is not a shoal database (not a SQLite file)"),
    ):  # fmt: skip
        code, out, err = await _run("--db", str(db), "list")
        assert (code, out) == (1, "")
        assert err == f"shopping_list.py: {message}\n"
    assert list(tmp_path.iterdir()) == [text] and text.read_text() == "milk\neggs\n"


async def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await _run(
            "--db", str(tmp_path / "dave.db"), "--listen", f"127.0.0.1:{port}", "serve"
        )
    assert (code, out) == (1, "")
    assert err == f"shopping_list.py: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert list(tmp_path.iterdir()) == []
