"""``shoal serve`` as a supervisor sees it: a fail-stop exits at once with status 3 and one
line; ``shoal status`` says why each dialled peer is not linked; /status and /metrics off or
behind a token.

The store failure is real: once the served peer is running, the test lowers its
``RLIMIT_FSIZE`` (``prlimit``, as an operator's disk quota or a full file system would) so
that SQLite can no longer grow its write-ahead log; the next commit fails with an I/O error.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import resource
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from shoal.commands.status import _print_status
from sync.errors import QuorumNotReached
from tests.transport.conftest import SECRET, WAIT, eventually, open_peer

ROOT = Path(__file__).resolve().parents[2]
SHOAL = [sys.executable, "-m", "shoal"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *SHOAL,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@asynccontextmanager
async def served(
    tmp_path: Path, *args: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    proc = await asyncio.create_subprocess_exec(
        *SHOAL,
        "serve",
        "--db",
        str(tmp_path / "served.db"),
        "--listen",
        "127.0.0.1:0",
        "--secret-file",
        str(secret_file),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        assert url.startswith("ws://127.0.0.1:"), url
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_fail_stop_exits_at_once_with_status_3_and_one_line(tmp_path: Path) -> None:
    async with served(tmp_path) as (proc, url):
        app = await open_peer(tmp_path / "app.db", listen=None, peers=[url])
        try:
            assert (await app.connected(timeout=WAIT)).up == (url,)
            await app.orset("cart").add("milk", w=2, timeout=WAIT)
            # From now on the served process cannot grow any file: its disk is "full".
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
            for i in range(200):  # each write makes the served peer commit (bounded)
                if proc.returncode is not None:
                    break
                try:
                    await app.orset("cart").add(f"item {i} " + "x" * 2000, w=2, timeout=1.0)
                except QuorumNotReached:
                    pass
            code = await asyncio.wait_for(proc.wait(), 30)
        finally:
            await app.aclose()
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
    assert code == 3, err
    last = err.splitlines()[-1]
    assert last.startswith(
        f"shoal: serve: stopped serving: the store refused a commit to {tmp_path}/served.db ("
    ), last
    assert last.endswith(
        "exit status 3: fix the disk and restart it (it resumes from what is on disk)"
    )
    assert "stopped cleanly" not in err and "Traceback" not in err
    # Restarted, it resumes from what is on disk: the write acknowledged by both is there.
    code, out, err = await run("inspect", "--db", str(tmp_path / "served.db"), "--json")
    assert code == 0, err
    values = {o["key"]: o["value"] for o in json.loads(out)["objects"]}
    assert "milk" in values["cart"]


async def test_the_log_says_shoals_lines_not_websockets_per_connection_ones(
    tmp_path: Path,
) -> None:
    # A peer of another group redials with backoff, and each of its dials is a connection
    # the served peer accepts, then refuses: websockets logged "connection open" and
    # "connection closed" at INFO for every one of them, burying shoal's own lines.
    async with served(tmp_path) as (proc, url):
        stranger = await open_peer(
            tmp_path / "stranger.db", listen=None, peers=[url], secret=b"another secret"
        )
        try:

            async def refused_thrice() -> bool:
                link = (await stranger.status())["links"][url]
                return link["state"] == "wrong_secret" and link["failures"] >= 3

            await eventually(refused_thrice, "three refused dials")
        finally:
            await stranger.aclose()
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
    assert "authentication failed: wrong group secret" in err  # shoal's WARNING, once
    assert "serving ws://127.0.0.1:" in err and "stopped cleanly" in err  # shoal's INFO
    assert "websockets" not in err, err


async def test_debug_still_logs_what_websockets_logs(tmp_path: Path) -> None:
    # docs/operations.md: DEBUG adds every HTTP header and frame of every connection.
    async with served(tmp_path, "--log-level", "DEBUG") as (proc, url):
        code, _, err = await run("status", url)
        assert code == 0, err
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
    assert "DEBUG websockets.server < GET /status HTTP/1.1" in err, err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_status_says_why_each_dialled_peer_is_not_linked(tmp_path: Path) -> None:
    other = await open_peer(tmp_path / "other.db", secret=b"another secret")
    assert other.url is not None
    dead = f"ws://127.0.0.1:{closed_port()}"
    try:
        async with served(tmp_path, "--peer", dead, "--peer", other.url) as (_proc, url):

            async def settled() -> bool:
                code, out, _ = await run("status", url, "--json")
                links = json.loads(out)["links"] if code == 0 else {}
                return {u: v["state"] for u, v in links.items()} == {
                    dead: "unreachable",
                    other.url: "wrong_secret",
                }

            await eventually(settled, "both dialled peers failed with their reason")
            code, out, err = await run("status", url)
            assert code == 0, err
            lines = out.splitlines()
            assert f"  {dead}  unreachable  connection refused" in lines
            assert any(
                line.startswith(f"  {other.url}  wrong_secret  the listener refused us: ")
                for line in lines
            ), out
    finally:
        await other.aclose()


async def test_status_prints_a_dash_for_what_is_unknown(tmp_path: Path) -> None:
    """No site, and a peer that went away (no lag known, no address): ``-``, not Python's
    ``None`` or a trailing blank."""
    async with served(tmp_path) as (_proc, url):
        gone = await open_peer(tmp_path / "gone.db", listen=None, peers=[url])
        try:
            await eventually(lambda: bool(gone.status_now()["connected"]), "the peer linked")
        finally:
            await gone.aclose()

        async def down() -> bool:
            code, out, _ = await run("status", url, "--json")
            peer = json.loads(out)["peers"].get(gone.replica_id) if code == 0 else None
            return peer is not None and not peer["connected"]

        await eventually(down, "the served peer to see it down")
        code, out, err = await run("status", url)
        assert code == 0, err
        assert "None" not in out, out
        lines = out.splitlines()
        assert lines[0].endswith("  site -  relay False"), lines[0]
        (line,) = [ln for ln in lines if ln.startswith(f"  {gone.replica_id}  ")]
        assert line.startswith(f"  {gone.replica_id}  disconnected  lag ")
        assert line.endswith(" B  -"), line

        # A lag not known (as after the served peer restarts): "lag -".
        code, out, err = await run("status", url, "--json")
        data = json.loads(out)
        data["peers"][gone.replica_id]["lag"] = None
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            _print_status(data)
        assert f"  {gone.replica_id}  disconnected  lag -  hints " in printed.getvalue()


async def test_status_off_and_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("let-me-see\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    async with served(tmp_path, "--http-token-file", str(token_file)) as (_proc, url):
        code, out, err = await run("status", url)
        assert (code, out) == (1, "")
        base = url.replace("ws://", "http://")
        assert err == f"shoal: status: {base}/status needs a token: --http-token-file PATH\n"
        code, _, err = await run("status", url, "--http-token-file", str(wrong))
        assert code == 1 and err.endswith("(the one given was refused)\n")
        code, out, err = await run("status", url, "--json", "--http-token-file", str(token_file))
        assert code == 0, err
        assert json.loads(out)["url"] == url
    (tmp_path / "served.db").unlink()
    for extra in tmp_path.glob("served.db*"):
        extra.unlink()
    async with served(tmp_path, "--status", "off") as (_proc, url):
        code, out, err = await run("status", url)
        base = url.replace("ws://", "http://")
        assert (code, out, err) == (
            1,
            "",
            f"shoal: status: {base}/status is turned off on that peer\n",
        )


@pytest.mark.parametrize("flag", ["--status", "--http-token-file"])
def test_help_says_what_the_flags_do(flag: str) -> None:
    from shoal import cli

    serve = next(a for a in cli.build_parser()._actions if a.dest == "command")
    parser = serve.choices["serve"]  # type: ignore[index]
    action = next(a for a in parser._actions if flag in a.option_strings)
    assert action.help and "/status" in action.help


async def test_a_token_file_that_could_never_match_is_a_usage_error(tmp_path: Path) -> None:
    """A token with surrounding spaces (a stray space before the newline) could never
    match (the header received is stripped): refused before anything opens, exit 2."""
    secret_file, token_file = tmp_path / "secret", tmp_path / "token"
    secret_file.write_bytes(SECRET)
    token_file.write_bytes(b"status-token \n")
    db = tmp_path / "a.db"
    code, out, err = await run(
        "serve", "--db", str(db), "--listen", "127.0.0.1:0", "--secret-file", str(secret_file),
        "--http-token-file", str(token_file),
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err == (
        f"shoal: serve: --http-token-file {token_file}: http token must not hold control "
        "characters or surrounding spaces\n"
    )
    assert not db.exists()


def _open_files_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) ``RLIMIT_NOFILE`` of process ``pid``."""
    return resource.prlimit(pid, resource.RLIMIT_NOFILE)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs prlimit (Linux)")
async def test_serve_takes_the_hard_open_file_limit(tmp_path: Path) -> None:
    """A relay started under a low soft limit (``ulimit -n 256``, macOS' default; 1024 under
    systemd) raises it to the hard limit: a file descriptor per connected device, and at the
    soft limit the relay stopped accepting and its devices waited in the backlog for ever."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open file limit is {hard}: nothing to raise")
    low = 200

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    proc = await asyncio.create_subprocess_exec(
        *SHOAL, "serve", "--db", str(tmp_path / "relay.db"), "--listen", "127.0.0.1:0",
        "--secret-file", str(secret_file), "--relay",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
        preexec_fn=lower,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        assert url.startswith("ws://127.0.0.1:"), url
        now = _open_files_limit(proc.pid)
        proc.terminate()
        err = (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
        assert await asyncio.wait_for(proc.wait(), 60) == 0, err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    expected = hard if hard != resource.RLIM_INFINITY else now[0]
    assert now == (expected, hard), err
    assert now[0] > low
    assert f"open file limit raised from {low} to {now[0]}" in err, err


async def test_serve_takes_more_devices_with_max_connections(tmp_path: Path) -> None:
    # A relay holds a connection per device: past --max-connections (512 by default) the
    # next one gets 503 and dials again later, so a relay for more devices raises it.
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async with served(tmp_path, "--max-connections", "2") as (_proc, url):
        held = [await connect(url), await connect(url)]  # two that never say hello
        try:
            with pytest.raises(InvalidStatus) as err:
                await connect(url)
            assert err.value.response.status_code == 503
            assert "too many connections (limit 2)" in err.value.response.body.decode()
        finally:
            for ws in held:
                await ws.close()
    code, _out, err_text = await run("serve", "--db", "x.db", "--listen", "127.0.0.1:0",
                                     "--max-connections", "0")  # fmt: skip
    assert code == 2 and "--max-connections" in err_text and "must be >= 1" in err_text
