"""``shoal serve --client-api HOST:PORT --client-token-file PATH``: a real process serving
the client API beside its peer; its mistakes refused before anything is opened."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.shoal.test_cli import SHOAL, _env, run
from tests.transport.conftest import SECRET, WAIT

TOKEN = "cli-client-api-token-0123456789"


@pytest.mark.slow
async def test_serve_with_a_client_api(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "token").write_text(TOKEN + "\n")
    proc = await asyncio.create_subprocess_exec(
        *SHOAL,
        *("serve", "--db", str(tmp_path / "s.db"), "--listen", "127.0.0.1:0"),
        *("--secret-file", str(tmp_path / "secret"), "--client-api", "127.0.0.1:0"),
        *("--client-token-file", str(tmp_path / "token")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        api = None
        async with asyncio.timeout(60):
            while api is None:
                line = (await proc.stderr.readline()).decode()
                assert line, "serve ended before it logged its client API"
                found = re.search(r"client API on (http://127\.0\.0\.1:\d+)", line)
                api = found[1] if found else None
        assert (await asyncio.wait_for(proc.stdout.readline(), WAIT)).startswith(b"ws://")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as s:
            body = json.dumps({"kind": "orset", "op": "add", "args": ["milk"]})
            async with s.post(f"{api}/v1/keys/cart", data=body, headers=auth) as r:
                assert r.status == 200
            async with s.get(f"{api}/v1/keys/cart", headers=auth) as r:
                assert (await r.json())["value"] == ["milk"]
            async with s.get(f"{api}/v1/status") as r:
                assert r.status == 401
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--client-api", "127.0.0.1:0"], "--client-api needs --client-token-file"),
        (["--client-token-file", "token"], "--client-token-file needs --client-api"),
        (["--client-api", "nowhere", "--client-token-file", "token"], "must be HOST:PORT"),
        (["--client-api", "127.0.0.1:0", "--client-token-file", "short"], "holds 5 characters"),
        (["--client-api", "127.0.0.1:0", "--client-token-file", "gone"], "cannot read"),
    ],
)
async def test_client_api_mistakes_are_refused_before_opening(
    tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "short").write_text("short")
    args = [str(tmp_path / a) if a in ("token", "short", "gone") else a for a in args]
    db = tmp_path / "never.db"
    code, out, err = await run(
        "serve", "--db", str(db), "--listen", "127.0.0.1:0",
        "--secret-file", str(tmp_path / "secret"), *args,
    )  # fmt: skip
    assert code == 2 and out == ""
    assert says in err and err.count("\n") == 1
    assert not db.exists()


async def test_a_busy_client_api_port_fails_before_the_database_is_made(tmp_path: Path) -> None:
    """The client API's address is had before anything opens, as the peer's own is: a busy
    port is one line naming it (exit 1), and no database is made."""
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "token").write_text(TOKEN)
    db = tmp_path / "never.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await run(
            "serve", "--db", str(db), "--listen", "127.0.0.1:0",
            "--secret-file", str(tmp_path / "secret"),
            "--client-api", f"127.0.0.1:{port}", "--client-token-file", str(tmp_path / "token"),
        )  # fmt: skip
    assert code == 1 and out == ""
    assert err == f"shoal: serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret", "token"]
