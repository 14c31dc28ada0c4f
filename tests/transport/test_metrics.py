"""GET /metrics: the Prometheus text of a peer's status, and a clear answer when the
``cli`` extra (prometheus-client) is not installed; the peer itself never needs it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sync.transport.metrics import METRICS_EXTRA, MetricsUnavailable, render_metrics
from sync.transport.status import status_snapshot
from tests.transport.conftest import WAIT, linked, open_peer

ROOT = Path(__file__).resolve().parents[2]


def _without(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``import package`` fail from now on, as on an installation without it."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)


async def test_render_metrics_exports_a_live_snapshot(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        await b.orset("cart").add("milk", w=2, timeout=WAIT)
        text, content_type = render_metrics(status_snapshot(a))
    finally:
        await b.aclose()
        await a.aclose()
    assert content_type.startswith("text/plain")
    assert "shoal_keys 1.0" in text and "shoal_peers_connected 1.0" in text
    assert f'shoal_peer_connected{{peer="{b.replica_id}"}} 1.0' in text
    assert "shoal_commits_total " in text
    # Every family it exports is in the operator's list, by the name a scrape shows (a
    # counter's with its _total: docs named one without it, which no query would find).
    exported = {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line.startswith("shoal_") and not re.match(r"shoal_\w+_created[{ ]", line)
    }
    documented = (ROOT / "docs" / "operations.md").read_text()
    assert {name for name in exported if f"`{name}`" not in documented} == set()
    for doc in ("api.md", "concepts.md", "operations.md"):
        named = set(re.findall(r"`(shoal_[a-z_]+)`", (ROOT / "docs" / doc).read_text()))
        assert named - exported - _NOT_IN_A_QUIET_SNAPSHOT == set(), doc


# Families a snapshot of two quiet peers does not show: no dialled URL's state nor failed
# dial, no catch-up under way, no home down, no write set aside for clock skew.
_NOT_IN_A_QUIET_SNAPSHOT = {
    "shoal_link_state",
    "shoal_dial_failures_total",
    "shoal_catchup_entries_left",
    "shoal_catchup_bytes_left",
    "shoal_peer_home_down_seconds",
    "shoal_peer_clock_ahead_ms",
}


def test_without_prometheus_client_rendering_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without(monkeypatch, "prometheus_client")
    with pytest.raises(MetricsUnavailable, match="prometheus-client") as raised:
        render_metrics({})
    assert METRICS_EXTRA in str(raised.value)
    # As the README installs: from a checkout, not a 'shoal' distribution on an index.
    assert str(raised.value) == (
        "the Prometheus export needs the prometheus-client package, which this installation "
        "lacks: the 'cli' extra installs it (pip install '.[cli]' from a checkout)"
    )


async def test_without_prometheus_client_metrics_answers_501_and_status_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "prometheus_client")
    a = await open_peer(tmp_path / "a.db")
    try:
        assert a.url is not None
        base = a.url.replace("ws://", "http://")

        def get(path: str) -> tuple[int, str, str]:
            try:
                with urllib.request.urlopen(base + path, timeout=WAIT) as resp:
                    return resp.status, resp.headers["Content-Type"], resp.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers["Content-Type"], exc.read().decode()

        code, ctype, body = await asyncio.to_thread(get, "/metrics")
        assert (code, ctype) == (501, "text/plain; charset=utf-8")
        assert body.startswith("GET /metrics: ") and METRICS_EXTRA in body
        code, ctype, body = await asyncio.to_thread(get, "/status")
        assert (code, ctype) == (200, "application/json") and a.replica_id in body
    finally:
        await a.aclose()


def test_a_peer_opens_and_syncs_without_the_cli_extra(tmp_path: Path) -> None:
    """In a fresh interpreter where rich and prometheus_client cannot be imported, ``from
    shoal import Peer`` works and two peers replicate a write."""
    code = f"""
import asyncio, sys
sys.modules["prometheus_client"] = None
sys.modules["rich"] = None
from shoal import Peer

async def main():
    async with Peer.open({str(tmp_path / "a.db")!r}, listen="127.0.0.1:0", secret=b"s") as a:
        async with Peer.open({str(tmp_path / "b.db")!r}, peers=[a.url], secret=b"s") as b:
            await b.orset("cart").add("milk")
            for _ in range(500):
                if await a.orset("cart").value() == {{"milk"}}:
                    print("synced")
                    return
                await asyncio.sleep(0.02)

asyncio.run(main())
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "synced"
