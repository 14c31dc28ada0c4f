"""examples/web/run.py on the edges: Ctrl-C while it starts stops it quietly (no traceback,
status 0, as once it runs), and its own ``/demo/network`` route refuses a body that is not
JSON with 400, as the client API does."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.web.test_shopping_list_browser import _example

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0


async def _interrupted(tmp_path: Path, *, after: str) -> tuple[int, str]:
    """Start run.py and send SIGINT once ``after`` happened: ``"imports"`` (Python's verbose
    import log names aiohttp) or ``"peers"`` (the relay's database exists: start() runs).
    Returns the exit status and stderr without the import log."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    flags = ["-v"] if after == "imports" else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *flags, str(ROOT / "examples" / "web" / "run.py"), "--dir",
        str(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(WAIT):
            if after == "imports":
                while True:
                    line = (await proc.stderr.readline()).decode()
                    assert line, "run.py ended before importing aiohttp"
                    if "aiohttp" in line:
                        break
            else:
                for _ in range(int(WAIT / 0.02)):  # bounded by the timeout above
                    if (tmp_path / "relay.db").exists():
                        break
                    await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    for line in err.decode().splitlines():
        if not line.startswith(("#", "import ", "    ")) or "Error" in line:
            lines.append(line)
    assert proc.returncode is not None
    return proc.returncode, "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("after", ["imports", "peers"])
async def test_ctrl_c_while_starting_stops_quietly(tmp_path: Path, after: str) -> None:
    code, err = await _interrupted(tmp_path, after=after)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert code == 0, err


async def test_demo_network_refuses_a_body_that_is_not_json(tmp_path: Path) -> None:
    async with (
        _example().start(tmp_path, devices=1) as crew,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as http,
    ):
        phone = crew[1]
        assert phone.api is not None
        auth = {"Authorization": f"Bearer {phone.token}"}
        url = phone.api.url + "/demo/network"
        for body in (b"not json", b"\xff\xfe", b'{"online": "no"}'):
            async with http.post(url, data=body, headers=auth) as resp:
                assert resp.status == 400, await resp.text()
                assert (await resp.json())["error"]["code"] == "bad_request"
        async with http.post(url, json={"online": False}, headers=auth) as resp:
            assert resp.status == 200 and (await resp.json())["online"] is False
        assert not phone.online
