"""Instruments shared by the scale and speed benchmarks (issues 11 and 14).

Nothing here measures shoal by itself; it is the bench's plumbing, kept in one place so that
every script reports the same way:

* :func:`load_peer` -- the one import of ``Peer`` (``from shoal import Peer`` once that
  package exists, ``sync.transport.peer`` until then).
* :func:`preamble` -- the header every script prints first: the command that reproduces the
  run, the machine (CPU, cores, load average), the versions and the commit measured.
* :func:`interleaved` -- runs the shoal side and its reference alternately (shoal, reference,
  shoal, reference, ...), each run bounded in time, so that the noise of this shared machine
  hits both sides alike; :class:`Spread` reports the median and the range of a series.
* :class:`GoalTable` -- one table per goal: figure, shoal, reference, ratio, goal, met.
* :class:`CountingProxy` -- a TCP relay on 127.0.0.1 that counts the bytes crossing it in
  each direction: bytes on the wire at the TCP level (websocket frame headers, masks, pings
  and closes included), the same for shoal and for the reference.
* :class:`Child` -- a benchmark child process (``benchmarks/bench_child.py``) speaking JSON
  lines, so that a peer's memory is measured alone in its own process; :func:`proc_memory`
  reads a process's resident and peak resident set size from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
OUT = BENCH / "out"  # git-ignored: cached databases and run folders (a real disk, not tmpfs)
CHILD = BENCH / "bench_child.py"
for _p in (str(ROOT), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

__all__ = [
    "OUT",
    "ROOT",
    "Child",
    "CountingProxy",
    "GoalTable",
    "PycrdtPair",
    "Spread",
    "interleaved",
    "load_now",
    "load_peer",
    "machine",
    "mib",
    "percentile",
    "preamble",
    "proc_cpu",
    "proc_memory",
    "pycrdt_missing",
    "pycrdt_pair",
    "ratio_text",
    "reset_peak",
    "run_folder",
    "scratch",
    "settle",
]

SECRET = b"bench secret"
VERSIONED = ("shoal", "pycrdt", "pycrdt-websocket", "websockets", "SQLAlchemy", "aiosqlite")


def load_peer() -> Any:
    """The ``Peer`` class: the only place the benchmarks import it."""
    try:
        from shoal import Peer
    except ImportError:
        from sync.transport.peer import Peer
    return Peer


def pycrdt_missing() -> str | None:
    """Why the pycrdt reference cannot run (None if it can)."""
    from e2e_bench import _pycrdt_missing

    return _pycrdt_missing()


# --------------------------------------------------------------------------- the run's header


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    measured = ("crdt", "store", "sync", "shoal")
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    # The figure belongs to the last commit that changed the measured code, not to a later
    # commit that only touched benchmarks or docs.
    code = git("log", "-1", "--format=%h", "--", *measured) or head
    dirty = git("status", "--porcelain", "--", *measured)
    return f"{code} (HEAD {head}){' + uncommitted changes' if dirty else ''}"


def machine() -> dict[str, Any]:
    """Where and what was measured (JSON-ready)."""
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "versions": versions,
        "commit": _commit(),
    }


def preamble(title: str, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Print the header of a run (command, machine, versions, commit); return it."""
    info = machine()
    args = sys.argv[1:] if argv is None else list(argv)
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    info["command"] = shlex.join([".venv/bin/python", str(script), *args])
    print(f"== {title}")
    print(f"command:  {info['command']}")
    print(
        f"machine:  {info['cpu']}, {info['cores']} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in info['load'])} (1/5/15 min) at start"
    )
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    print(f"software: CPython {info['python']}, SQLite {info['sqlite']}, {versions}")
    print(f"measured: shoal's code at commit {info['commit']}, {info['date']}", flush=True)
    return info


def load_now() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- series and tables


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty series."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Spread:
    """A series of measurements of one figure: its median and its range."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def text(self, fmt: str = "{:,.0f}", unit: str = "") -> str:
        """``median unit (min-max, k runs)``, or ``median unit`` for one run."""
        if not self.values:
            return "no run finished"
        med = fmt.format(self.median) + unit
        if len(self.values) == 1:
            return med
        lo, hi = fmt.format(min(self.values)), fmt.format(max(self.values))
        if lo == hi:
            return f"{med} ({len(self.values)} runs)"
        return f"{med} ({lo}-{hi}, {len(self.values)} runs)"


@dataclass
class Outcome:
    """What the runs of one case gave: the figures, and why the runs stopped early if so."""

    results: list[Any] = field(default_factory=list)
    failure: str | None = None


def interleaved(
    cases: Sequence[tuple[str, Callable[[float], Any]]], runs: int, budget: float
) -> dict[str, Outcome]:
    """Run each case ``runs`` times, alternating between cases run by run.

    A case is ``(label, fn)``; ``fn(limit)`` does one run within ``limit`` seconds and returns
    its figure (anything), or raises ``TimeoutError``. Each case gets ``budget`` seconds in
    all; a case that times out or runs out of budget is not run again (the others go on),
    and its :class:`Outcome` says why.
    """
    out = {label: Outcome() for label, _ in cases}
    spent = dict.fromkeys(out, 0.0)
    for k in range(runs):
        for label, fn in cases:
            res = out[label]
            if res.failure is not None:
                continue
            left = budget - spent[label]
            if left <= 0:
                res.failure = f"time budget of {budget:.0f} s used up after {k} run(s)"
                continue
            start = time.monotonic()
            try:
                figure = fn(left)
            except TimeoutError as exc:
                res.failure = f"run {k + 1} did not finish: {exc or type(exc).__name__}"
                print(f"  {label} run {k + 1}/{runs}: {res.failure}", flush=True)
                continue
            finally:
                spent[label] += time.monotonic() - start
            res.results.append(figure)
            print(f"  {label} run {k + 1}/{runs}: {_short(figure)}", flush=True)
    return out


def _short(figure: Any) -> str:
    if isinstance(figure, float):
        return f"{figure:,.4g}"
    if isinstance(figure, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in figure.items() if not isinstance(v, list))
    return str(figure)


@dataclass
class GoalTable:
    """One table per goal: each row a figure of shoal beside its reference of the same run."""

    title: str
    goal: str
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    verdicts: list[bool | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> str:
        """Add a footnote printed under the table; returns its mark, ``[k]``."""
        self.notes.append(text)
        return f"[{len(self.notes)}]"

    def add(
        self, figure: str, shoal: str, reference: str, ratio: str, met: bool | None = None
    ) -> None:
        """``met``: True/False against the goal, None when the row is not judged."""
        verdict = "" if met is None else ("met" if met else "NOT met")
        self.rows.append((figure, shoal, reference, ratio, verdict))
        self.verdicts.append(met)

    def print(self) -> None:
        head = ("figure", "shoal", "reference (same run)", "ratio", "goal")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(5)]
        print()
        print(f"-- {self.title}")
        print(f"   goal: {self.goal}")
        for row in [head, *self.rows]:
            print("   " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        for k, text in enumerate(self.notes, 1):
            print(f"   [{k}] {text}")
        print(flush=True)

    @property
    def missed(self) -> bool:
        return any(v is False for v in self.verdicts)


def ratio_text(value: float | None, fmt: str = "{:.2f}x") -> str:
    return "n/a" if value is None else fmt.format(value)


# --------------------------------------------------------------------------- processes


def proc_memory(pid: int | None = None) -> dict[str, int]:
    """``rss_kib`` (resident now) and ``hwm_kib`` (peak resident) of a process, from
    ``/proc/PID/status``; this process by default."""
    where = Path(f"/proc/{pid or 'self'}/status")
    out = {"rss_kib": 0, "hwm_kib": 0}
    for line in where.read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss_kib"] = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            out["hwm_kib"] = int(line.split()[1])
    return out


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used, from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    """Reset the peak resident size of ``pid`` (``clear_refs`` 5, Linux >= 4.0); False if the
    kernel refused, in which case the peak still includes what came before."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MB"


def run_folder(prefix: str) -> Path:
    """A fresh folder under ``benchmarks/out/runs`` (a real disk) for one run's files."""
    base = OUT / "runs"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=base))


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """:func:`run_folder`, removed when the block ends (a failure's cause is in its error)."""
    folder = run_folder(prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class ChildFailed(RuntimeError):
    """A child process said it failed, or died, or did not answer in time."""


class Child:
    """A ``bench_child.py`` process: JSON commands on its stdin, JSON events on its stdout.

    Its stderr goes to ``log`` (shown when it fails). Always :meth:`close` it (``async
    with``): it is asked to quit, then terminated, then killed, each with a bound.
    """

    def __init__(self, proc: asyncio.subprocess.Process, log: Path, name: str) -> None:
        self.proc = proc
        self.log = log
        self.name = name

    @classmethod
    async def start(cls, name: str, folder: Path, *args: str) -> Child:
        log = folder / f"{name}.log"
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(CHILD),
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=str(ROOT),
                limit=16 * 1024 * 1024,
            )
        return cls(proc, log, name)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            return "\n".join(lines[-15:])
        return ""

    async def event(self, name: str, timeout: float) -> dict[str, Any]:
        """The next event called ``name`` (earlier ones are skipped)."""
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {name!r} event within {timeout:.0f} s")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), left)
            except TimeoutError:
                raise TimeoutError(
                    f"{self.name}: no {name!r} event within {timeout:.0f} s"
                ) from None
            if not line:
                await self.proc.wait()
                raise ChildFailed(
                    f"{self.name} exited ({self.proc.returncode}) before {name!r}:\n{self._tail()}"
                )
            msg = json.loads(line)
            if msg.get("event") == "error":
                raise ChildFailed(f"{self.name}: {msg.get('error')}\n{self._tail()}")
            if msg.get("event") == name:
                return dict(msg)

    async def ask(self, command: dict[str, Any], reply: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.event(reply, timeout)

    def memory(self) -> dict[str, int]:
        return proc_memory(self.pid)

    async def close(self, timeout: float = 30.0) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError, AssertionError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd": "quit"}\n')
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        for stop in (None, self.proc.terminate, self.proc.kill):
            if stop is not None:
                with contextlib.suppress(ProcessLookupError):
                    stop()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout if stop is None else 5.0)
                return
            except TimeoutError:
                continue

    async def __aenter__(self) -> Child:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --------------------------------------------------------------------------- bytes on the wire


class CountingProxy:
    """A TCP relay ``127.0.0.1:PORT -> target`` counting bytes in each direction.

    ``up``: bytes from the dialling side to the target; ``down``: the other way. They are
    TCP payload bytes, so they include the websocket opening handshake, frame headers, client
    masks, pings, pongs and closes: everything a network would carry, above TCP/IP headers.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.up = 0
        self.down = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def to_url(cls, url: str) -> CountingProxy:
        """A proxy to the host and port of a ``ws://HOST:PORT[/path]`` URL."""
        hostport = url.split("://", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        return cls(host, int(port))

    async def start(self) -> str:
        """Listen on 127.0.0.1, port 0; returns ``ws://127.0.0.1:PORT``."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def counts(self) -> tuple[int, int]:
        return self.up, self.down

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            t_reader, t_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        up = asyncio.create_task(self._pump(reader, t_writer, "up"))
        down = asyncio.create_task(self._pump(t_reader, writer, "down"))
        for task in (up, down):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.gather(up, down, return_exceptions=True)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str
    ) -> None:
        try:
            while data := await reader.read(65536):
                if way == "up":
                    self.up += len(data)
                else:
                    self.down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def __aenter__(self) -> CountingProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def settle(read: Callable[[], Any], quiet: float, limit: float) -> bool:
    """Wait until ``read()`` stops changing for ``quiet`` seconds (at most ``limit``);
    returns whether it settled."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    last, since = read(), loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        now = read()
        if now != last:
            last, since = now, loop.time()
        elif loop.time() - since >= quiet:
            return True
    return False


# --------------------------------------------------------------------------- pycrdt-websocket


@dataclass
class PycrdtPair:
    """Two pycrdt ``Doc``s, A and B, joined through a pycrdt-websocket server on loopback."""

    map_a: Any
    map_b: Any
    proxy_a: CountingProxy | None
    proxy_b: CountingProxy | None


@contextlib.asynccontextmanager
async def pycrdt_pair(
    items: dict[str, Any] | None = None,
    *,
    count_a: bool = False,
    count_b: bool = False,
    deflate: bool = True,
) -> Any:
    """pycrdt-websocket as users run it: a ``WebsocketServer`` (room in memory, websockets'
    defaults, so permessage-deflate unless ``deflate=False``), and a ``Provider`` for each of
    A and B (through a :class:`CountingProxy` when ``count_a``/``count_b``). A's ``Map`` "m"
    holds ``items`` (one transaction) before it connects; the pair is yielded once B's map
    holds them all."""
    from e2e_bench import _Channel
    from pycrdt import Doc, Map, Provider
    from pycrdt.websocket import WebsocketServer
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    room = "/bench"
    items = items or {}
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(WebsocketServer(auto_clean_rooms=False))

        async def handler(ws: Any) -> None:
            await server.serve(_Channel(ws, ws.request.path))

        compression: Any = {} if deflate else {"compression": None}
        ws_server = await stack.enter_async_context(
            serve(handler, "127.0.0.1", 0, max_size=None, **compression)
        )
        port = ws_server.sockets[0].getsockname()[1]
        proxies: list[CountingProxy | None] = []
        urls = []
        for counted in (count_a, count_b):
            proxy = None
            base = f"ws://127.0.0.1:{port}"
            if counted:
                proxy = await stack.enter_async_context(CountingProxy("127.0.0.1", port))
                base = await proxy.start()
            proxies.append(proxy)
            urls.append(base + room)
        doc_a, doc_b = Doc(), Doc()
        map_a, map_b = doc_a.get("m", type=Map), doc_b.get("m", type=Map)
        with doc_a.transaction():
            for key, value in items.items():
                map_a[key] = value
        synced = asyncio.Event()

        def seen(_event: Any) -> None:
            if len(map_b) >= len(items):
                synced.set()

        watch = map_b.observe(seen)
        for doc, url in ((doc_a, urls[0]), (doc_b, urls[1])):
            ws = await stack.enter_async_context(
                connect(url, max_size=None, open_timeout=120, **compression)
            )
            provider = await stack.enter_async_context(Provider(doc, _Channel(ws, room)))
            await asyncio.wait_for(provider.synced.wait(), 60.0)
        if len(map_b) < len(items):
            await asyncio.wait_for(synced.wait(), 60.0)
        map_b.unobserve(watch)  # its len() per event would slow the measured part down
        yield PycrdtPair(map_a, map_b, proxies[0], proxies[1])
