"""A cluster of ``shoal serve`` subprocesses wired through fault proxies, plus embedded clients.

:class:`Cluster` starts one ``shoal serve`` per :class:`PeerSpec` (its own SQLite file and log
under the work directory) and puts a :class:`~shoal.faults.proxy.Proxy` on every directed
link: when peer ``a`` dials peer ``b`` it dials the proxy ``(a, b)``, which forwards to ``b``'s
current port. A served peer is always started on port 0, so after a restart its port changes
and the harness retargets the proxies towards it: the address its diallers know never does.

* :meth:`Cluster.kill` sends SIGKILL (no clean shutdown), :meth:`Cluster.stop` SIGTERM, and
  :meth:`Cluster.restart` starts the peer again on the same database.
* :meth:`Cluster.partition` cuts (or stalls) every proxy between groups, :meth:`Cluster.heal`
  heals them all; :meth:`Cluster.set_faults` sets frame faults on chosen proxies.
* :meth:`Cluster.client` opens an embedded :class:`~shoal.faults.commands.Peer` (the writers of
  a workload) on its own SQLite file, dialling served peers through proxies of its own.
* :meth:`Cluster.inspect` and :meth:`Cluster.status` read a served peer with ``shoal inspect``
  and ``shoal status`` (see :mod:`shoal.faults.inspector`); :meth:`Cluster.until` polls a
  condition, bounded in time.

Everything is on 127.0.0.1 with ports the OS picks, every wait is bounded, and closing the
cluster ends every process it started (SIGTERM, then SIGKILL after a bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .commands import Peer, TransportConfig, serve_command
from .inspector import CLIError, Inspector
from .proxy import LinkFaults, Proxy

__all__ = ["Cluster", "ClusterConfig", "HarnessError", "PeerSpec", "ServedPeer"]

_STOP_TIMEOUT = 15.0


class HarnessError(RuntimeError):
    """The harness could not do what a workload asked (a peer did not start, ...)."""


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """One served peer: its name, site, relay role, and the served peers it dials (``None``:
    every other served peer)."""

    name: str
    site: str | None = None
    relay: bool = False
    dials: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """What every peer of the cluster shares. ``n``, ``w``, ``r`` are ``shoal serve``'s."""

    n: int = 3
    w: int | str = 1
    r: int | str = 1
    seed: int = 0
    secret: bytes = b"shoal fault suite"
    group: str = "faults"
    start_timeout: float = 30.0
    log_level: str = "WARNING"
    #: Engine settings of embedded clients (``Peer.open`` keywords).
    client_engine: dict[str, Any] = field(
        default_factory=lambda: {"anti_entropy_interval": 1.0, "write_timeout": 5.0}
    )


def _seed_of(*parts: object) -> int:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise HarnessError(f"not a ws://HOST:PORT URL: {url!r}")
    return parts.hostname, parts.port


class ServedPeer:
    """One ``shoal serve`` subprocess and its database (which outlives the process)."""

    def __init__(self, spec: PeerSpec, workdir: Path, config: ClusterConfig) -> None:
        self.spec = spec
        self.name = spec.name
        self.db = workdir / f"{spec.name}.db"
        self.log = workdir / f"{spec.name}.log"
        self.secret_file = workdir / "secret"
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.url: str | None = None  # the real address while it runs
        self.replica_id: str | None = None
        self.starts = 0
        self.dial_urls: list[str] = []
        self.prefix: list[str] = []  # a command to run it under (e.g. faketime)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def argv(self) -> list[str]:
        c, s = self.config, self.spec
        args = ["--db", str(self.db), "--listen", "127.0.0.1:0", "--n", str(c.n)]
        args += ["--w", str(c.w), "--r", str(c.r), "--secret-file", str(self.secret_file)]
        args += ["--group", c.group, "--log-level", c.log_level]
        if s.site is not None:
            args += ["--site", s.site]
        if s.relay:
            args.append("--relay")
        for url in self.dial_urls:
            args += ["--peer", url]
        return [*self.prefix, *serve_command(args)]

    async def start(self, timeout: float) -> str:
        """Start ``shoal serve`` and wait for the URL it prints; return it."""
        if self.running:
            raise HarnessError(f"{self.name} is already running")
        self.starts += 1
        with self.log.open("a") as log:
            log.write(f"--- start {self.starts} ---\n")
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            await self.kill()
            raise HarnessError(f"{self.name} did not print its URL in {timeout} s") from None
        url = line.decode().strip()
        if not url.startswith("ws://"):
            await self.kill()
            tail = self.log.read_text(errors="replace")[-2000:]
            raise HarnessError(f"{self.name} did not start (printed {url!r}); log:\n{tail}")
        self.url = url
        return url

    async def kill(self) -> None:
        """SIGKILL: the process dies at once, nothing is flushed or closed."""
        await self._signal(signal.SIGKILL)

    async def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after a bound); the exit code."""
        return await self._signal(signal.SIGTERM)

    async def _signal(self, sig: int) -> int | None:
        proc = self.proc
        self.url = None
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return proc.returncode


class Cluster:
    """Served peers, the proxies between them and embedded clients (``async with``)."""

    def __init__(
        self, workdir: Path, specs: Sequence[PeerSpec], config: ClusterConfig | None = None
    ) -> None:
        self.workdir = Path(workdir)
        self.config = config or ClusterConfig()
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"peer names must be unique, got {names}")
        self.peers = {s.name: ServedPeer(s, self.workdir, self.config) for s in specs}
        self.proxies: dict[tuple[str, str], Proxy] = {}
        self.clients: dict[str, Peer] = {}
        self.inspector = Inspector()
        self._open = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the inspector, the proxies and every served peer (concurrently)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "secret").write_bytes(self.config.secret)
        await self.inspector.__aenter__()
        self._open = True
        for peer in self.peers.values():
            dials = peer.spec.dials
            targets = [n for n in self.peers if n != peer.name] if dials is None else dials
            peer.dial_urls = [await self.proxy(peer.name, t) for t in targets]
        await asyncio.gather(*(self.restart(name) for name in self.peers))

    async def aclose(self) -> None:
        """Close clients, end every served peer (SIGKILL: the run is over and its databases
        are durable; a clean stop would only cost time), close proxies and the inspector."""
        await asyncio.gather(
            *(asyncio.wait_for(c.aclose(), _STOP_TIMEOUT) for c in self.clients.values()),
            return_exceptions=True,
        )
        self.clients.clear()
        await asyncio.gather(*(p.kill() for p in self.peers.values()), return_exceptions=True)
        for proxy in self.proxies.values():
            await proxy.aclose()
        await self.inspector.aclose()
        self._open = False

    async def proxy(self, src: str, dst: str) -> str:
        """The URL ``src`` dials to reach served peer ``dst`` (the proxy is made on first use)."""
        if dst not in self.peers:
            raise HarnessError(f"no served peer {dst!r}")
        key = (src, dst)
        proxy = self.proxies.get(key)
        if proxy is None:
            proxy = Proxy(f"{src}->{dst}", self.config.seed)
            url = self.peers[dst].url
            proxy.retarget(_host_port(url) if url else None)
            await proxy.start()
            self.proxies[key] = proxy
        return proxy.url

    # -- processes ---------------------------------------------------------------------------

    async def kill(self, name: str) -> None:
        """SIGKILL served peer ``name``; its proxies refuse connections until it restarts."""
        self._retarget(name, None)
        await self.peers[name].kill()

    async def stop(self, name: str) -> int | None:
        """SIGTERM served peer ``name`` (a clean stop); its exit code."""
        self._retarget(name, None)
        return await self.peers[name].stop()

    async def restart(self, name: str) -> str:
        """Start served peer ``name`` (again) on its database; its new real URL."""
        peer = self.peers[name]
        url = await peer.start(self.config.start_timeout)
        self._retarget(name, _host_port(url))
        status = await self.status(name)
        peer.replica_id = str(status["replica_id"])
        return url

    def _retarget(self, name: str, target: tuple[str, int] | None) -> None:
        for (_src, dst), proxy in self.proxies.items():
            if dst == name:
                proxy.retarget(target)

    # -- clients -----------------------------------------------------------------------------

    async def client(
        self,
        name: str,
        dials: Iterable[str],
        *,
        site: str | None = None,
        **engine: Any,
    ) -> Peer:
        """Open an embedded peer ``name`` (its own SQLite file) dialling the served peers
        ``dials`` through proxies; it is closed with the cluster unless closed before."""
        if name in self.clients or name in self.peers:
            raise HarnessError(f"name {name!r} is taken")
        c = self.config
        urls = [await self.proxy(name, d) for d in dials]
        transport = TransportConfig(backoff_base=0.05, backoff_cap=1.0, seed=_seed_of(c.seed, name))
        opts: dict[str, Any] = {**c.client_engine, "seed": _seed_of(c.seed, name, "engine")}
        opts.update(engine)
        peer = await Peer.open(
            str(self.workdir / f"{name}.db"),
            peers=urls,
            n=c.n,
            w=c.w,
            r=c.r,
            secret=c.secret,
            group=c.group,
            site=site,
            transport=transport,
            **opts,
        )
        self.clients[name] = peer
        return peer

    async def close_client(self, name: str) -> None:
        """Close embedded peer ``name`` (pending writes committed, links closed)."""
        peer = self.clients.pop(name)
        await asyncio.wait_for(peer.aclose(), _STOP_TIMEOUT)

    # -- faults ------------------------------------------------------------------------------

    def links_between(self, a: Iterable[str], b: Iterable[str]) -> list[Proxy]:
        """The proxies carrying links between the names in ``a`` and those in ``b``."""
        sa, sb = set(a), set(b)
        return [
            p
            for (src, dst), p in self.proxies.items()
            if (src in sa and dst in sb) or (src in sb and dst in sa)
        ]

    def partition(self, *groups: Iterable[str], stall: bool = False) -> list[Proxy]:
        """Cut (or stall) every proxy between two of ``groups``; links to or from names in no
        group are left alone. Returns the proxies affected."""
        sets = [set(g) for g in groups]
        hit: list[Proxy] = []
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                hit.extend(self.links_between(a, b))
        for proxy in hit:
            if stall:
                proxy.stall()
            else:
                proxy.cut()
        return hit

    def heal(self) -> None:
        """Heal every proxy (cut or stalled)."""
        for proxy in self.proxies.values():
            proxy.heal()

    def set_faults(self, faults: LinkFaults, proxies: Iterable[Proxy] | None = None) -> None:
        """Set frame ``faults`` on ``proxies`` (default: every proxy)."""
        for proxy in self.proxies.values() if proxies is None else proxies:
            proxy.set_faults(faults)

    # -- reading -----------------------------------------------------------------------------

    async def status(self, name: str) -> dict[str, Any]:
        """``shoal status --json`` of running served peer ``name`` (its real address)."""
        url = self.peers[name].url
        if url is None:
            raise HarnessError(f"{name} is not running")
        return await self.inspector.status(url)

    async def inspect(self, name: str, key: str | None = None) -> dict[str, Any]:
        """``shoal inspect --db ... --json`` of served peer ``name`` (running or not)."""
        return await self.inspector.inspect(self.peers[name].db, key)

    async def value(self, name: str, key: str) -> Any:
        """The value of ``key`` in served peer ``name``'s database (None if it lacks the key),
        read with ``shoal inspect --db ... KEY --json``."""
        argv = ["inspect", "--db", str(self.peers[name].db), key, "--json"]
        result = await self.inspector.run(argv)
        if result.code == 1 and "no key" in result.err:
            return None
        if result.code != 0:
            raise CLIError(argv, result.code, result.err)
        objects = json.loads(result.out)["objects"]
        return objects[0]["value"] if objects else None

    async def values(self, key: str, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The value of ``key`` at each served peer (None where it does not hold the key)."""
        return {n: await self.value(n, key) for n in (self.peers if names is None else names)}

    async def linked(self, timeout: float) -> bool:
        """Wait until every running served peer has a link to every other one it knows of
        and dials or is dialled by, and every client to each served peer it dials; False
        after ``timeout``."""

        async def check() -> bool:
            ids = {n: p.replica_id for n, p in self.peers.items() if p.running and p.replica_id}
            want: dict[str, set[str]] = {n: set() for n in ids}
            for src, dst in self.proxies:
                if src in ids and dst in ids:
                    want[src].add(ids[dst])
                    want[dst].add(ids[src])
            for name, others in want.items():
                connected = set((await self.status(name)).get("connected", []))
                if not {o for o in others if o} <= connected:
                    return False
            for cname, client in self.clients.items():
                need = {ids.get(dst) for (src, dst) in self.proxies if src == cname}
                if not {i for i in need if i} <= set(client.transport.links):
                    return False
            return True

        return await self.until(check, timeout, interval=0.1) is not None

    async def until(
        self,
        check: Callable[[], Awaitable[bool]],
        timeout: float,
        interval: float = 0.1,
    ) -> float | None:
        """Poll ``check`` until it is true; the seconds it took, or None after ``timeout``."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            if await check():
                return loop.time() - start
            if loop.time() - start > timeout:
                return None
            await asyncio.sleep(interval)
