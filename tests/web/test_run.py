"""``make web``'s program (examples/web/run.py) as a user starts it: a real process that
prints one URL per peer, serves the page and the client API behind each URL's token, and
stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0


@pytest.mark.slow
async def test_run_prints_urls_that_serve_the_page_and_the_api(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples" / "web" / "run.py"), "--dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        async with asyncio.timeout(WAIT):
            while not lines or not lines[-1].startswith("Open two"):
                line = (await proc.stdout.readline()).decode()
                assert line, "run.py ended before printing its URLs"
                lines.append(line.strip())
        urls = {
            ln.split()[0]: ln.split()[1]
            for ln in lines
            if ln.startswith(("relay", "phone", "laptop"))
        }
        assert set(urls) == {"relay", "phone", "laptop"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as http:
            for name, url in urls.items():
                base, token = url.split("/?")[0], url.split("#token=")[1]
                async with http.get(base + "/") as page:
                    assert page.status == 200 and "Shopping lists" in await page.text()
                auth = {"Authorization": f"Bearer {token}"}
                async with http.get(base + "/v1/status", headers=auth) as status:
                    assert status.status == 200
                async with http.get(base + "/demo/network", headers=auth) as network:
                    assert (await network.json())["available"] is (name != "relay")
                async with http.get(base + "/demo/network") as network:
                    assert network.status == 401
        assert {p.name for p in tmp_path.glob("*.db")} == {"relay.db", "phone.db", "laptop.db"}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
