"""``shoal serve`` peers where one runs a day ahead (libfaketime), real processes on 127.0.0.1.

A writer whose clock is a day ahead (its own process, libfaketime preloaded with
``FAKETIME=+1d``) sets an LWW
register through the skewed served peer. The peers with correct clocks set that write aside:
each logs a WARNING naming the writer and the skew, ``shoal status`` shows it, ``/metrics``
exports it, and a correct-clock writer goes on writing the register (it used to fail with
``ClockSkewError`` for as long as the skewed timestamp was ahead).

Needs libfaketime (Debian's ``faketime`` package; ``bash scripts/install-faketime.sh``
installs it): without it the test skips, except in CI, where it fails.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.shoal.shoal_run import run_shoal
from tests.transport.conftest import SECRET, WAIT, eventually, open_peer

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[2]
N = "5"  # every peer of the test is a home of every key


def _env(*, ahead: bool = False) -> dict[str, str]:
    """The environment of a child: this checkout first on PYTHONPATH; with ``ahead``, its
    clock a day ahead (libfaketime preloaded: the ``faketime`` command would stand between
    the test and the process, and not pass SIGTERM on)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if ahead:
        env["LD_PRELOAD"] = _libfaketime()
        env["FAKETIME"] = "+1d"
    return env


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        message = "needs libfaketime (Debian's faketime package): bash scripts/install-faketime.sh"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    return found[0]


@asynccontextmanager
async def _serve(
    tmp: Path, name: str, peers: list[str], *, ahead: bool = False
) -> AsyncIterator[str]:
    """A ``shoal serve`` process (under libfaketime, a day ahead, if ``ahead``); its URL.
    Its log (stderr) goes to ``tmp/NAME.log``."""
    argv = [sys.executable, "-m", "shoal", "serve"]
    argv += ["--db", str(tmp / f"{name}.db"), "--listen", "127.0.0.1:0", "--n", N]
    argv += ["--secret-file", str(tmp / "secret")]
    for url in peers:
        argv += ["--peer", url]
    with open(tmp / f"{name}.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=log, env=_env(ahead=ahead)
        )
        try:
            assert proc.stdout is not None
            url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
            assert url.startswith("ws://127.0.0.1:"), (tmp / f"{name}.log").read_text()
            yield url
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
                    raise


async def _status(url: str) -> dict[str, Any]:
    base = url.replace("ws://", "http://")

    def get() -> dict[str, Any]:
        with urllib.request.urlopen(base + "/status", timeout=5) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    return await asyncio.to_thread(get)


async def _get(url: str, path: str) -> str:
    def get() -> str:
        with urllib.request.urlopen(url.replace("ws://", "http://") + path, timeout=5) as r:
            return str(r.read().decode())

    return await asyncio.to_thread(get)


async def _skewed_write(tmp: Path, url: str) -> dict[str, Any]:
    """The writer a day ahead: ``shoal.faults.oneshot`` under libfaketime, through ``url``."""
    argv = [sys.executable, "-m", "shoal.faults.oneshot"]
    argv += ["--db", str(tmp / "skewed-writer.db"), "--peer", url, "--n", N, "--w", "2"]
    argv += ["--secret-file", str(tmp / "secret"), "--key", "title", "--lww", '"a day ahead"']
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(ahead=True),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    outcome: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return outcome


async def _linked(url: str, count: int) -> None:
    async def enough() -> bool:
        return len((await _status(url))["connected"]) >= count

    await eventually(enough, f"{url} to link to {count} peers", timeout=60)


@pytest.mark.slow
async def test_served_peers_set_a_write_from_a_day_ahead_aside_and_raise_an_alarm(
    tmp_path: Path,
) -> None:
    _libfaketime()
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    async with (
        _serve(tmp_path, "a", []) as a,
        _serve(tmp_path, "b", [a]) as b,
        _serve(tmp_path, "c", [a, b], ahead=True) as c,
    ):
        for url in (a, b, c):
            await _linked(url, 2)
        skewed = await _skewed_write(tmp_path, c)
        assert skewed["acked"] and skewed["acked_by"], skewed  # c's clock is as fast as its

        writer = ""

        async def seen_by_both() -> bool:
            nonlocal writer
            for url in (a, b):
                peers = (await _status(url))["peers"]
                skewed_peers = [r for r, p in peers.items() if p["clock_ahead_ms"]]
                if not skewed_peers:
                    return False
                writer = skewed_peers[0]
                ahead = peers[writer]["clock_ahead_ms"]
                assert 86_000_000 < ahead <= 86_400_000 and peers[writer]["clock_skew_set_aside"]
            return True

        await eventually(seen_by_both, "a and b to set the skewed write aside", timeout=60)
        # The alarm: a WARNING naming the writer and its skew, in each correct peer's log
        # (written once the round that set the write aside has run its effects)...
        pattern = re.compile(
            rf"WARNING shoal\.node clock skew: a write of {re.escape(writer)} .* stamped (\d+)"
        )

        def alarmed(name: str) -> bool:
            found = pattern.search((tmp_path / f"{name}.log").read_text())
            return found is not None and 86_000 <= int(found[1]) <= 86_400

        for name in ("a", "b"):
            await eventually(lambda name=name: alarmed(name), f"the alarm in {name}'s log")
        # ...shown by `shoal status`, and exported on /metrics.
        code, out, err = await run_shoal("status", a)
        assert code == 0, err
        assert f"WARNING clock skew: {writer} stamps its writes 86" in out, out
        metrics = await _get(a, "/metrics")
        assert f'shoal_peer_clock_ahead_ms{{peer="{writer}"}} 8.6' in metrics, metrics

        # A writer with a correct clock goes on writing the register, with a quorum.
        app = await open_peer(tmp_path / "app.db", listen=None, peers=[a, b], n=int(N))
        try:
            await eventually(lambda: len(app.transport.links) == 2, "the app to link")
            title = app.lww("title")
            for value in ("first", "second"):
                result = await title.set(value, w=3, timeout=WAIT)
                assert result.acks >= 3
        finally:
            await app.aclose()
        for name in ("a", "b"):
            code, out, err = await run_shoal(
                "inspect", "--db", str(tmp_path / f"{name}.db"), "title", "--json"
            )
            assert code == 0, err
            assert json.loads(out)["objects"][0]["value"] == "second"
