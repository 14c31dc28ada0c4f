"""examples/shopping_list.py, run for real: separate processes, separate SQLite files.

A hub copy runs ``serve`` (or ``shell``) on 127.0.0.1 with an OS-chosen port; one-shot runs
against two other databases dial it; every copy must end with the same list. Every wait on
a process has a timeout.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.shoal.shoal_run import run_process

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "shopping_list.py"
RUN_TIMEOUT = 30.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def _run(*args: str) -> tuple[int, str, str]:
    return await run_process(sys.executable, str(EXAMPLE), *args, env=_env(), timeout=RUN_TIMEOUT)


class _Hub:
    """A long-running copy of the example (``serve`` or ``shell``) and its output so far."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, db: Path, command: str) -> tuple[_Hub, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            "--db",
            str(db),
            "--listen",
            "127.0.0.1:0",
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=_env(),
        )
        hub = cls(proc)
        line = await hub.expect("listening on ")
        return hub, line.split("listening on ", 1)[1].strip()

    async def expect(self, text: str, timeout: float = RUN_TIMEOUT) -> str:
        """Read lines until one contains ``text``; return it."""
        assert self.proc.stdout is not None

        async def find() -> str:
            assert self.proc.stdout is not None
            while raw := await self.proc.stdout.readline():
                line = raw.decode()
                self.lines.append(line)
                if text in line:
                    return line
            raise AssertionError(f"hub exited before printing {text!r}: {''.join(self.lines)}")

        return await asyncio.wait_for(find(), timeout)

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            rest = await asyncio.wait_for(self.proc.communicate(), RUN_TIMEOUT)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise
        self.lines.append(rest[0].decode())
        assert self.proc.returncode is not None
        return self.proc.returncode


def _items(output: str) -> set[str]:
    last = output.strip().splitlines()[-1]
    return set() if last == "(empty)" else set(last.split(", "))


async def test_two_databases_share_a_list_through_a_serving_copy(tmp_path: Path) -> None:
    hub, url = await _Hub.start(tmp_path / "hub.db", "serve")
    try:
        alice = ["--db", str(tmp_path / "alice.db"), "--peer", url]
        bob = ["--db", str(tmp_path / "bob.db"), "--peer", url]

        code, out, err = await _run(*alice, "add", "milk", "eggs")
        assert code == 0, err
        assert "add milk: saved here and on" in out and "add eggs: saved here and on" in out

        code, out, err = await _run(*bob, "add", "bread")
        assert code == 0, err

        code, out, err = await _run(*alice, "remove", "eggs")
        assert code == 0, err

        code, alice_out, err = await _run(*alice, "list")
        assert code == 0, err
        code, bob_out, err = await _run(*bob, "list")
        assert code == 0, err
        assert _items(alice_out) == _items(bob_out) == {"milk", "bread"}

        # The serving copy saw the changes arrive (subscribe).
        await hub.expect("[list] bread, milk")
    finally:
        code = await hub.stop(signal.SIGTERM)
    assert code == 0, "".join(hub.lines)
    assert "stopping" in "".join(hub.lines)

    # Stopped by SIGTERM, the serving copy still answers from its own file: it was durable.
    code, out, err = await _run("--db", str(tmp_path / "hub.db"), "list")
    assert code == 0, err
    assert _items(out) == {"milk", "bread"}


async def test_shell_takes_commands_and_sees_remote_changes(tmp_path: Path) -> None:
    hub, url = await _Hub.start(tmp_path / "alice.db", "shell")
    try:
        await hub.expect("commands:")
        await hub.send("add tea")
        await hub.expect("add tea: saved here")

        bob = ["--db", str(tmp_path / "bob.db"), "--peer", url]
        code, out, err = await _run(*bob, "add", "jam")
        assert code == 0, err
        await hub.expect("[list] jam, tea")

        await hub.send("list")
        await hub.expect("jam, tea")
        code, out, err = await _run(*bob, "list")
        assert code == 0, err
        assert _items(out) == {"jam", "tea"}

        await hub.send("frobnicate")
        await hub.expect("? 'frobnicate'")
        await hub.send("quit")
        code = await asyncio.wait_for(hub.proc.wait(), RUN_TIMEOUT)
    finally:
        if hub.proc.returncode is None:
            await hub.stop(signal.SIGKILL)
    assert code == 0, "".join(hub.lines)


async def test_alices_shell_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """examples/README.md's terminal 1, line for line (the port aside): Alice's own adds are
    followed by the [list] lines her watcher prints."""
    readme = (ROOT / "examples" / "README.md").read_text()
    block = readme.split("Terminal 1", 1)[1].split("```\n", 2)[1]
    shown = block.splitlines()[1:]  # after the command line
    (typed,) = [ln for ln in shown if ln.startswith("add ") and ":" not in ln]
    hub, url = await _Hub.start(tmp_path / "alice.db", "shell")
    try:
        await hub.send(typed)
        await hub.expect(f"[list] {', '.join(sorted(typed.split()[1:]))}")
    finally:
        await hub.stop()
    printed = "".join(hub.lines).splitlines()
    printed = printed[: printed.index("stopping")]
    expected = [ln.replace("127.0.0.1:8765", url.split("//")[1]) for ln in shown if ln != typed]
    # (the adds' lines and the watcher's come from two tasks: their order may vary)
    assert printed[0] == expected[0] and sorted(printed) == sorted(expected)


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shopping_list_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", ""], "an item must not be empty"),
        (["--timeout", "0", "list"], "--timeout must be positive"),
        (["serve"], "serve needs --listen or --peer"),
        (["shell"], "shell needs --listen or --peer"),
        (["sing"], "invalid choice"),
        (["--listen", "8765", "serve"], "--listen must be HOST:PORT"),
        (["--peer", "http://127.0.0.1:1", "list"], "--peer must be a ws:// or wss:// URL"),
    ],
)
def test_bad_input_is_refused_before_anything_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    example = _load_example()
    db = tmp_path / "never.db"
    with pytest.raises(SystemExit) as exited:
        example.main(["--db", str(db), *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not db.exists()


def test_removing_an_item_that_is_not_listed_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _load_example()
    db = ["--db", str(tmp_path / "alone.db")]
    assert example.main([*db, "add", "milk", "eggs"]) == 0
    capsys.readouterr()
    assert example.main([*db, "remove", "eggs", "caviar"]) == 1
    assert "not on the list: caviar; nothing removed" in capsys.readouterr().err
    assert example.main([*db, "list"]) == 0
    assert _items(capsys.readouterr().out) == {"milk", "eggs"}
