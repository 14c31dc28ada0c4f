"""A plain ``pip install`` (no extras: neither rich nor prometheus-client) runs shoal.

The test builds a fresh virtualenv, installs a copy of this checkout into it with pip (from
the package index, reusing pip's cache; build isolation on, as a user's install would be),
and then, from a folder outside the checkout so that only the installed package can be
imported: two peers on 127.0.0.1 replicate a write, ``GET /metrics`` answers 501 naming the
extra, ``shoal --version``, ``shoal inspect``, ``shoal serve`` (until SIGTERM) and ``shoal
demo`` work. The copy (not the checkout itself) is installed because pip builds in the
source tree and would leave ``build/`` and ``*.egg-info`` in it.

Marked ``slow`` (it installs packages); it still runs in ``make test``. Every step has a
timeout; with pip's cache warm the whole test takes about half a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import asyncio, json, sys, urllib.error, urllib.request

import shoal
from shoal import Peer

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()

async def main(folder):
    async with Peer.open(f"{folder}/a.db", listen="127.0.0.1:0", secret=b"s") as a:
        async with Peer.open(f"{folder}/b.db", peers=[a.url], secret=b"s") as b:
            await b.orset("cart").add("milk")
            for _ in range(500):  # 10 s at most
                if await a.orset("cart").value() == {"milk"}:
                    break
                await asyncio.sleep(0.02)
            seen = sorted(await a.orset("cart").value())
        base = a.url.replace("ws://", "http://")
        metrics = await asyncio.to_thread(get, base + "/metrics")
        code, status = await asyncio.to_thread(get, base + "/status")
    print(json.dumps({"seen": seen, "metrics": metrics, "status": [code, json.loads(status)],
                      "a_id": a.replica_id, "module": shoal.__file__}))

asyncio.run(main(sys.argv[1]))
"""


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done


def _copy_of_the_checkout(into: Path) -> Path:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "tests", "benchmarks", "build", "*.egg-info", "__pycache__", ".*cache"
    )
    shutil.copytree(ROOT, into, ignore=ignore)
    return into


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_base_install_runs_peers_and_the_commands(tmp_path: Path) -> None:
    src = _copy_of_the_checkout(tmp_path / "src")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 120)
    py, shoal = venv / "bin" / "python", venv / "bin" / "shoal"
    _run([str(py), "-m", "pip", "install", "--quiet", str(src)], tmp_path, 400)
    work = tmp_path / "work"
    work.mkdir()

    # No extra came along.
    probe = (
        "import importlib.util as u; print(u.find_spec('rich'), u.find_spec('prometheus_client'))"
    )
    assert _run([str(py), "-c", probe], work, 60).stdout.split() == ["None", "None"]

    out = json.loads(_run([str(py), "-c", SCRIPT, str(work)], work, 120).stdout)
    assert Path(out["module"]).is_relative_to(venv), out["module"]
    assert out["seen"] == ["milk"]
    code, body = out["metrics"]
    assert code == 501 and "pip install '.[cli]'" in body
    assert out["status"][0] == 200 and out["status"][1]["replica_id"] == out["a_id"]

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run([str(shoal), "--version"], work, 60).stdout.strip() == f"shoal {version}"
    report = json.loads(_run([str(shoal), "inspect", "--db", "a.db", "--json"], work, 60).stdout)
    assert report["replica_id"] == out["a_id"]
    assert [(o["key"], o["value"]) for o in report["objects"]] == [("cart", ["milk"])]
    text = _run([str(shoal), "inspect", "--db", "a.db"], work, 60).stdout
    assert "cart  orset" in text

    (work / "secret").write_text("s\n")
    serve = subprocess.Popen(
        [
            *(str(shoal), "serve", "--db", "served.db", "--listen", "127.0.0.1:0"),
            *("--secret-file", "secret", "--log-level", "WARNING"),
        ],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        url = serve.stdout.readline().strip()  # bounded by the test's timeout mark
        assert url.startswith("ws://127.0.0.1:"), serve.stderr.read() if serve.stderr else ""
        status = json.loads(_run([str(shoal), "status", url, "--json"], work, 60).stdout)
        assert status["url"] == url
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=60)

    demo = _run([str(shoal), "demo"], work, 120).stdout
    assert "no hint left undelivered" in demo and "\x1b[" not in demo
