"""``shoal forget``: refuses ids the peer does not know, says what it will do, asks on a
terminal (``--yes`` for scripts, refusing without either), logs who asked, and ``--undo``
takes a replica back. ``shoal serve --no-home`` runs a replica peers leave off the ring."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from shoal import cli
from tests.transport.conftest import SECRET, WAIT, eventually, linked, open_peer

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[2]


class _Keyboard(io.StringIO):
    """A terminal on stdin that answers with ``text``."""

    def isatty(self) -> bool:
        return True


def _secret(tmp: Path) -> str:
    path = tmp / "secret"
    path.write_bytes(SECRET + b"\n")
    return str(path)


async def _forget(*args: str) -> int:
    return await asyncio.to_thread(cli.main, ["forget", *args])


async def test_forget_refuses_unknown_ids_confirms_logs_and_undoes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = _secret(tmp_path)
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        assert a.url is not None
        url, bid = a.url, b.replica_id

        # An id the peer does not know: refused, with the ids it knows; nothing changes.
        assert await _forget(url, "nobody", "--secret-file", secret, "--yes") == 1
        err = capsys.readouterr().err
        assert "unknown replica id nobody" in err and bid in err

        # No terminal and no --yes: it says what it would do, and refuses (usage).
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        assert await _forget(url, bid, "--secret-file", secret) == 2
        err = capsys.readouterr().err
        assert "leaves this peer's ring for good" in err and "--yes" in err
        assert err.count("\n") == 1 and ".." not in err, err  # one sentence ends once
        assert err.endswith(" on each of them. Not a terminal: pass --yes to confirm\n"), err
        # On a terminal: asked, and "no" does nothing.
        monkeypatch.setattr(sys, "stdin", _Keyboard("n\n"))
        assert await _forget(url, bid, "--secret-file", secret) == 1
        out = capsys.readouterr().out
        assert f"{bid} (a home, connected) leaves this peer's ring" in out
        assert "Forget it? [y/N]" in out and "nothing done" in out
        assert a.status_now()["engine"]["forgotten"] == []

        # "yes": forgotten here, logged at WARNING with who asked, b refused with the reason.
        caplog.set_level(logging.WARNING)
        monkeypatch.setattr(sys, "stdin", _Keyboard("y\n"))
        assert await _forget(url, bid, "--secret-file", secret) == 0
        assert f"forgot {bid}" in capsys.readouterr().out
        assert a.status_now()["engine"]["forgotten"] == [bid]
        logged = [r.getMessage() for r in caplog.records if "forgot replica" in r.getMessage()]
        assert len(logged) == 1 and "over an admin link" in logged[0] and "operator " in logged[0]
        await eventually(lambda: bid not in a.transport.links, "b's link closed")
        await eventually(
            lambda: any(link.state.value == "forgotten" for link in b.links().values()),
            "b to record why it is refused",
        )
        (link,) = b.links().values()
        assert link.error is not None and "forgotten" in link.error
        # Forgetting it again is refused, and the peer itself is not a replica to forget.
        assert await _forget(url, bid, "--secret-file", secret, "--yes") == 1
        assert "forgotten here already" in capsys.readouterr().err
        assert await _forget(url, a.replica_id, "--secret-file", secret, "--yes") == 1
        assert "this peer itself" in capsys.readouterr().err

        # --undo takes it back: b links again.
        assert await _forget(url, bid, "--undo", "--secret-file", secret, "--yes") == 0
        assert f"took back {bid}" in capsys.readouterr().out
        await linked(a, b)
        await b.orset("cart").add("milk", w=2, timeout=WAIT)
        assert await _forget(url, bid, "--undo", "--secret-file", secret, "--yes") == 1
        assert "not forgotten here" in capsys.readouterr().err
    finally:
        await b.aclose()
        await a.aclose()


async def test_peer_forget_refuses_an_unknown_id_and_unforget_restores(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        with pytest.raises(ValueError, match="unknown replica id"):
            await a.forget("nobody")
        await a.forget(b.replica_id)
        assert b.replica_id in a.status_now()["engine"]["forgotten"]
        assert a.status_now()["peers"][b.replica_id]["forgotten"] is True
        with pytest.raises(ValueError, match="forgotten already"):
            await a.forget(b.replica_id)
        await a.unforget(b.replica_id)
        await linked(a, b)
        with pytest.raises(ValueError, match="not forgotten"):
            await a.unforget(b.replica_id)
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_client_opened_with_home_false_is_never_a_home(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        client = await open_peer(tmp_path / "c.db", listen=None, peers=[a.url], home=False)
        try:
            await linked(client, a)
            await client.gcounter("visits").increment(w=2, timeout=WAIT)
            cid = client.replica_id
            # Known as a non-home where it is linked; b, not linked to it, learns nothing
            # of it (a peer learns no non-home from gossip): on no one's ring.
            await eventually(
                lambda: cid in a.status_now()["engine"]["non_homes"],
                "the client known as a non-home",
            )
            assert a.status_now()["peers"][cid]["home"] is False
            for peer in (a, b):
                assert all(cid not in peer.replica.homes(f"k{i}") for i in range(200))
            assert cid not in b.status_now()["peers"]
            assert all(cid not in client.replica.homes(f"k{i}") for i in range(200))
            await eventually(lambda: a.replica.current_value("visits") == 1, "the write at a")
            await eventually(lambda: b.replica.current_value("visits") == 1, "the write at b")
        finally:
            await client.aclose()
        # Gone after its one write: it holds nothing back, and is no longer known.
        await eventually(lambda: cid not in a.status_now()["peers"], "the client forgotten")
        assert a.status_now()["engine"]["hints"] == {}
        assert a.status_now()["engine"]["non_homes"] == []
    finally:
        await b.aclose()
        await a.aclose()


@pytest.mark.slow
async def test_serve_no_home_is_left_off_the_ring(tmp_path: Path) -> None:
    import os

    secret = _secret(tmp_path)
    a = await open_peer(tmp_path / "a.db")
    env: dict[str, Any] = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    assert a.url is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shoal",
        "serve",
        "--db",
        str(tmp_path / "s.db"),
        "--listen",
        "127.0.0.1:0",
        "--peer",
        a.url,
        "--secret-file",
        secret,
        "--no-home",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        await eventually(lambda: bool(a.transport.links), "the served peer to link")
        (sid,) = a.transport.links
        # The link is the transport's at once; the engine takes the peer up on its next round.
        await eventually(
            lambda: sid in a.replica.status()["peers_up"], "the engine to take the link as up"
        )
        assert a.status_now()["engine"]["non_homes"] == [sid]
        assert all(sid not in a.replica.homes(f"k{i}") for i in range(200))
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await a.aclose()


@pytest.mark.parametrize("bad", ["x" * 200, "two words", "line\nbreak"])
async def test_a_malformed_replica_id_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    """Refused before anything is dialled (it raised pydantic's ValidationError, a
    traceback): usage, exit 2, one line naming what a replica id is."""
    code = await _forget("ws://127.0.0.1:9", bad, "--secret-file", _secret(tmp_path), "--yes")
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "not a replica id" in err and "Traceback" not in err


async def test_a_wrong_secret_is_one_line_naming_the_url_and_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The peer refuses the handshake: one line with the URL, the dialler's words for the
    cause and the close code (it printed websockets' close text twice, and no URL)."""
    wrong = tmp_path / "wrong-secret"
    wrong.write_bytes(b"not the group's secret\n")
    a = await open_peer(tmp_path / "a.db")
    try:
        assert a.url is not None
        code = await _forget(a.url, "fdyazfberr5xxykuddxe", "--secret-file", str(wrong), "--yes")
        err = capsys.readouterr().err
        assert code == 1
        assert err == (
            f"shoal: forget: {a.url}: wrong secret: the listener refused us: authentication "
            "failed: wrong group secret, or a hello altered on the way (close code 1008)\n"
        )
        assert a.status_now()["engine"]["forgotten"] == []
    finally:
        await a.aclose()
