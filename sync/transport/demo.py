"""``shoal demo``: a shared shopping list on three devices and a relay, narrated step by step.

What it runs (DESIGN.md, "The user's first five minutes"), all on loopback with one SQLite
file per peer in a temporary folder, every peer a real :class:`sync.transport.peer.Peer`
talking websockets to the others:

1. a relay and three devices (``alice-phone``, ``alice-laptop``, ``bob-phone``) connect;
2. every device adds items to one shared list (an ORSet) and all replicas converge;
3. ``bob-phone`` goes offline and keeps working: a ``w=2`` write cannot reach its quorum
   (``QuorumNotReached``) yet is durable on the phone, and bob edits the shared note;
4. meanwhile the others edit the list and the same note; the relay holds hints for bob;
5. ``bob-phone`` comes back: the relay hands its hints off and bob's offline writes reach
   everyone;
6. the note shows both concurrent values as siblings (an MVRegister); a later ``set`` that
   has seen both resolves them everywhere;
7. a quorum write waits for two acknowledgements (``w=2``) and shows who acked;
8. ``alice-laptop`` misses a change while offline; back online, a read with ``r=ALL`` joins
   every replica's answer and repairs the laptop's stale copy;
9. every peer is closed, every database reopened from its file, and the replicas' lists,
   notes and version vectors are printed side by side.

"Offline" is what it is for an embedded app: the device closes its peer and reopens the same
database with no network (no listen address, no peers to dial). Reopening resumes the same
replica id and data (DESIGN.md, "The embedding API").

Output: one short line per step; colours when stdout is a terminal (rich), plain text with no
ANSI escape codes when it is not (a pipe, a file, a CI log). Every wait is bounded by a
timeout; a step that fails is reported and the demo goes on to the final comparison.

Exit status: 0 when every step succeeded and every replica is equal at the end; 1 when a step
failed or the replicas differ; 2 for bad usage (argparse, or ``--keep`` naming a folder that
already holds files).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "DEVICES",
    "DemoConfig",
    "Narrator",
    "ReplicaView",
    "StepFailed",
    "main",
    "parse_args",
    "run_demo",
]

DEVICES = ("alice-phone", "alice-laptop", "bob-phone")
RELAY = "relay"

LIST_KEY = "list:groceries"
NOTE_KEY = "note:groceries"

# The whole demo normally takes a few seconds; these bound every wait so that a broken
# network or a bug shows up as a failed step, never as a hang.
STEP_TIMEOUT = 6.0
QUORUM_TIMEOUT = 3.0
OFFLINE_QUORUM_TIMEOUT = 0.5
DEMO_TIMEOUT = 60.0
POLL_INTERVAL = 0.02

STYLES: Mapping[str, str] = {
    "alice-phone": "magenta",
    "alice-laptop": "blue",
    "bob-phone": "green",
    RELAY: "yellow",
}

_POOLS: Mapping[str, tuple[str, ...]] = {
    "alice-phone": ("milk", "eggs", "butter", "yoghurt"),
    "alice-laptop": ("bread", "apples", "pasta", "rice"),
    "bob-phone": ("coffee", "bananas", "cheese", "lentils"),
}


class StepFailed(Exception):
    """A step of the demo did not do what it narrates (a timeout, an unexpected result)."""


# -- output --------------------------------------------------------------------------------

Segment = tuple[str, str]
"""A piece of a line: ``(text, style)``; the style is a rich style name, or ``""``."""


class Narrator:
    """Writes the demo's lines: rich with colours on a terminal, plain text otherwise.

    ``color=None`` decides from ``stream.isatty()``. Plain mode writes no escape codes at
    all, whatever ``FORCE_COLOR`` says, and falls back to ASCII symbols when the stream's
    encoding is not UTF.
    """

    def __init__(self, stream: TextIO, *, color: bool | None = None, width: int = 100) -> None:
        self.stream = stream
        tty = stream.isatty() if color is None else color
        self._console: Any = None
        if tty:
            try:
                from rich.console import Console
            except ImportError:  # the [cli] extra is missing: plain text still works
                tty = False
            else:
                self._console = Console(
                    file=stream,
                    force_terminal=True,
                    highlight=False,
                    markup=False,
                    emoji=False,
                    soft_wrap=True,
                )
        self.color = tty
        self.width = width
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower()
        unicode = encoding.replace("-", "").startswith("utf")
        self.tick = "✓" if unicode else "ok"
        self.cross = "✗" if unicode else "FAIL"
        self.arrow = "→" if unicode else "->"
        self.dash = "—" if unicode else "-"

    def _write(self, segments: Sequence[Segment]) -> None:
        if self._console is not None:
            from rich.text import Text

            self._console.print(Text.assemble(*segments))
        else:
            self.stream.write("".join(text for text, _ in segments) + "\n")
            self.stream.flush()

    def banner(self, text: str, detail: str = "") -> None:
        self._write([(text, "bold")])
        if detail:
            self._write([(detail, "dim")])

    def step(self, number: int, title: str) -> None:
        self._write([("", "")])
        self._write([(f"{number}. {title}", "bold cyan")])

    def line(self, *segments: Segment | str) -> None:
        parts: list[Segment] = [("   ", "")]
        for s in segments:
            parts.append((s, "") if isinstance(s, str) else s)
        self._write(parts)

    def who(self, name: str) -> Segment:
        """A device name, padded so that what follows lines up."""
        return (f"{name:<14}", STYLES.get(name, "bold"))

    def ok(self, text: str) -> None:
        self.line((f"{self.tick} ", "bold green"), (text, "green"))

    def warn(self, text: str) -> None:
        self.line(("! ", "bold yellow"), (text, "yellow"))

    def fail(self, text: str) -> None:
        self.line((f"{self.cross} ", "bold red"), (text, "bold red"))

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table: a label column, then one column per replica, side by side."""
        if self._console is not None:
            from rich import box
            from rich.table import Table

            table = Table(title=title, box=box.SIMPLE_HEAVY, title_style="bold", show_lines=True)
            table.add_column("", style="bold")
            for name in columns:
                table.add_column(name, style=STYLES.get(name, ""), overflow="fold")
            for row in rows:
                table.add_row(*row)
            self._console.print(table)
            return
        self._write([("", "")])
        self._write([(title, "")])
        self.stream.write(_plain_table(["", *columns], rows) + "\n")
        self.stream.flush()


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table; cells may hold several lines."""
    split = [[cell.split("\n") for cell in row] for row in [list(header), *rows]]
    widths = [max(len(part) for row in split for part in row[i]) for i in range(len(header))]
    out: list[str] = []
    for index, row in enumerate(split):
        height = max(len(cell) for cell in row)
        for k in range(height):
            parts = [
                (cell[k] if k < len(cell) else "").ljust(w)
                for cell, w in zip(row, widths, strict=True)
            ]
            out.append("  ".join(parts).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
        elif index < len(split) - 1:
            out.append("")
    return "\n".join(out)


# -- what a replica holds -------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaView:
    """What one replica holds at the end: the list, the note's siblings, a version vector."""

    name: str
    replica_id: str
    items: frozenset[str]
    note: tuple[Any, ...]
    version_vector: dict[str, int]

    def same_data(self, other: ReplicaView) -> bool:
        return (
            self.items == other.items
            and sorted(map(repr, self.note)) == sorted(map(repr, other.note))
            and self.version_vector == other.version_vector
        )


def _fmt_items(items: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(items)) if items else "(empty)"


def _fmt_vv(vv: Mapping[str, int], names: Mapping[str, str]) -> str:
    parts = [f"{names.get(r, r[:8])} {n}" for r, n in sorted(vv.items(), key=lambda kv: kv[0])]
    return "\n".join(sorted(parts)) if parts else "(empty)"


# -- configuration and arguments ------------------------------------------------------------


@dataclass(frozen=True)
class DemoConfig:
    """How to run the demo: where the databases go, the seed, and the group's secret."""

    folder: Path
    keep: bool
    seed: int = 7
    secret: bytes = b"shoal demo group secret"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="shoal demo",
        description=(
            "Run three devices (alice-phone, alice-laptop, bob-phone) and a relay on loopback, "
            "each with its own SQLite file, and narrate a shared shopping list: offline edits, "
            "hinted handoff through the relay, concurrent edits shown as siblings, a quorum "
            "write and a repairing read. Exits 0 only if every replica ends equal."
        ),
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        help="put the databases in DIR (created; must be empty) and keep them afterwards, "
        "e.g. to look at them with `shoal inspect --db DIR/bob-phone.db`",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=7,
        help="seed for the items each device picks (default 7); same seed, same story",
    )
    return parser.parse_args(argv)


# -- helpers over the embedding API ---------------------------------------------------------


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


async def _until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = STEP_TIMEOUT
) -> float:
    """Poll ``check`` until it is true; return the seconds it took, or raise StepFailed."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout
    while True:
        remaining = deadline - loop.time()
        try:
            done = await asyncio.wait_for(check(), timeout=max(remaining, 0.01))
        except TimeoutError:
            done = False
        if done:
            return loop.time() - start
        if loop.time() >= deadline:
            raise StepFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)


@dataclass
class Device:
    """One peer of the demo and its database; ``open``/``close`` take it on and off line."""

    name: str
    path: Path
    relay: bool = False
    peer: Any = None
    online: bool = False
    _stack: AsyncExitStack | None = field(default=None, repr=False)

    async def open(self, *, online: bool, dial: Sequence[str], secret: bytes, n: int) -> None:
        from .peer import Peer

        await self.close()
        stack = AsyncExitStack()
        self.peer = await stack.enter_async_context(
            Peer.open(
                str(self.path),
                listen="127.0.0.1:0" if online else None,
                peers=list(dial) if online else [],
                n=n,
                w=1,
                r=1,
                secret=secret,
                site="home",
                relay=self.relay,
            )
        )
        self._stack = stack
        self.online = online

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self.peer = None
        self.online = False
        if stack is not None:
            await stack.aclose()

    @property
    def replica_id(self) -> str:
        return str(self.peer.replica_id)

    @property
    def url(self) -> str:
        return str(self.peer.url)

    async def items(self) -> frozenset[str]:
        value = await self.peer.orset(LIST_KEY).value()
        return frozenset(value)

    async def note(self) -> tuple[Any, ...]:
        return tuple(await self.peer.mvregister(NOTE_KEY).values())

    async def status(self) -> Any:
        return await self.peer.status()


# -- the story ------------------------------------------------------------------------------


class _Demo:
    """The steps, in order. Each step narrates what it does and checks that it happened."""

    def __init__(self, config: DemoConfig, say: Narrator) -> None:
        self.config = config
        self.say = say
        self.rng = random.Random(config.seed)
        self.relay = Device(RELAY, config.folder / "relay.db", relay=True)
        self.devices = {name: Device(name, config.folder / f"{name}.db") for name in DEVICES}
        self.picks = {name: self.rng.sample(_POOLS[name], 3) for name in DEVICES}
        self.failures: list[str] = []
        self._names: dict[str, str] = {}
        self.relay_url = ""

    # -- plumbing

    @property
    def everyone(self) -> list[Device]:
        return [self.relay, *self.devices.values()]

    def _remember(self, device: Device) -> None:
        self._names[device.replica_id] = device.name

    def _who(self, replica_ids: Sequence[str]) -> str:
        return ", ".join(self._names.get(r, r[:8]) for r in replica_ids) or "nobody"

    async def _open(self, device: Device, *, online: bool) -> None:
        dial = [] if device.relay or not online else [self.relay_url]
        await device.open(online=online, dial=dial, secret=self.config.secret, n=len(self.everyone))
        self._remember(device)

    async def close_all(self) -> None:
        for device in self.everyone:
            await device.close()

    async def _converged(self, devices: Sequence[Device], what: str) -> frozenset[str]:
        """Wait until every device in ``devices`` holds the same list; return it."""
        seen: list[frozenset[str]] = []

        async def same() -> bool:
            seen[:] = [await d.items() for d in devices]
            return all(s == seen[0] for s in seen)

        took = await _until(same, what)
        self.say.ok(f"{len(devices)} replicas agree in {took:.2f} s: {_fmt_items(seen[0])}")
        return seen[0]

    async def _connected(self, device: Device, at_least: int) -> int:
        count = 0

        async def enough() -> bool:
            nonlocal count
            count = _count_connected(await device.status())
            return count >= at_least

        await _until(enough, f"{device.name} to see {at_least} connected peer(s)")
        return count

    # -- the steps

    async def start(self) -> None:
        say = self.say
        say.step(1, "A relay and three devices start on loopback")
        await self._open(self.relay, online=True)
        say.line(
            say.who(RELAY),
            f"{self.relay.url}  replica {self.relay.replica_id[:8]}  "
            "(holds hints for devices that are away)",
        )
        for device in self.devices.values():
            await self._open(device, online=True)
            say.line(
                say.who(device.name),
                f"{device.url}  replica {device.replica_id[:8]}  dials the relay",
            )
        t0 = time.perf_counter()
        await self._connected(self.relay, len(self.devices))
        say.ok(f"the relay sees all {len(self.devices)} devices ({time.perf_counter() - t0:.2f} s)")

    async def everyone_adds(self) -> None:
        say = self.say
        say.step(2, "Everyone adds to the shared list")
        for name, device in self.devices.items():
            first, second = self.picks[name][:2]
            shopping = device.peer.orset(LIST_KEY)
            await shopping.add(first)
            await shopping.add(second)
            say.line(say.who(name), f"+ {first}, + {second}")
        await self._converged(self.everyone, "every replica to hold all six items")

    async def bob_goes_offline(self) -> None:
        say = self.say
        bob = self.devices["bob-phone"]
        say.step(3, "bob-phone goes offline and keeps working")
        await bob.close()
        await self._open(bob, online=False)
        items = await bob.items()
        say.line(
            say.who(bob.name),
            f"reopened without network: same replica {bob.replica_id[:8]}, "
            f"{len(items)} items on its disk",
        )
        extra = self.picks[bob.name][2]
        shopping = bob.peer.orset(LIST_KEY)
        from ..errors import QuorumNotReached

        try:
            result = await shopping.add(extra, w=2, timeout=OFFLINE_QUORUM_TIMEOUT)
        except QuorumNotReached as exc:
            acks = _field(_field(exc, "result", exc), "acks", "?")
            say.line(
                say.who(bob.name),
                f"+ {extra} with w=2: QuorumNotReached ({acks} of 2 acks) ",
                (f"{say.dash} durable on the phone, will sync later", "dim"),
            )
        else:
            raise StepFailed(f"an offline w=2 write reached its quorum: {result!r}")
        await bob.peer.mvregister(NOTE_KEY).set("get the cheap coffee")
        say.line(say.who(bob.name), 'note := "get the cheap coffee"')

    async def others_edit(self) -> None:
        say = self.say
        say.step(4, "Meanwhile alice edits the list and the same note")
        phone, laptop = self.devices["alice-phone"], self.devices["alice-laptop"]
        gone = self.picks["alice-phone"][0]
        await phone.peer.orset(LIST_KEY).remove(gone)
        say.line(say.who(phone.name), f"- {gone}")
        extra = self.picks["alice-laptop"][2]
        await laptop.peer.orset(LIST_KEY).add(extra)
        say.line(say.who(laptop.name), f"+ {extra}")
        await phone.peer.mvregister(NOTE_KEY).set("decaf please")
        say.line(say.who(phone.name), 'note := "decaf please"')
        await self._converged([self.relay, phone, laptop], "the online replicas to agree")
        hints = 0

        async def held() -> bool:
            nonlocal hints
            hints = _pending_hints(await self.relay.status())
            return hints > 0

        await _until(held, "the relay to hold hints for bob-phone", timeout=QUORUM_TIMEOUT)
        say.line(say.who(RELAY), f"holds {hints} hint(s) for bob-phone")

    async def bob_returns(self) -> None:
        say = self.say
        bob = self.devices["bob-phone"]
        say.step(5, "bob-phone comes back online")
        await bob.close()
        await self._open(bob, online=True)
        say.line(say.who(bob.name), f"reopened at {bob.url}, dials the relay")
        await self._converged(self.everyone, "bob-phone's writes and alice's to meet")
        left = -1

        async def drained() -> bool:
            nonlocal left
            left = _pending_hints(await self.relay.status())
            return left == 0

        await _until(drained, "the relay to hand off its hints")
        say.line(say.who(RELAY), "handed its hints to bob-phone: 0 pending")

    async def siblings(self) -> None:
        say = self.say
        laptop = self.devices["alice-laptop"]
        say.step(6, "The note was edited concurrently: siblings, then a resolution")
        values: tuple[Any, ...] = ()

        async def both() -> bool:
            nonlocal values
            values = await laptop.note()
            return len(values) >= 2

        await _until(both, "the note's two concurrent values to reach alice-laptop")
        say.line(
            say.who(laptop.name),
            f"reads {len(values)} siblings: " + "  |  ".join(repr(v) for v in values),
        )
        resolved = "decaf, the cheap one"
        await laptop.peer.mvregister(NOTE_KEY).set(resolved)
        say.line(say.who(laptop.name), f'note := "{resolved}" (it has seen both)')

        async def one_everywhere() -> bool:
            notes = [await d.note() for d in self.everyone]
            return all(n == (resolved,) for n in notes)

        took = await _until(one_everywhere, "the resolution to reach every replica")
        say.ok(f"one value on every replica in {took:.2f} s")

    async def quorum_write(self) -> None:
        say = self.say
        phone = self.devices["alice-phone"]
        say.step(7, "A quorum write waits for two acknowledgements")
        item = "birthday cake"
        t0 = time.perf_counter()
        result = await phone.peer.orset(LIST_KEY).add(item, w=2, timeout=QUORUM_TIMEOUT)
        took = (time.perf_counter() - t0) * 1000
        acks = int(_field(result, "acks", 0))
        acked_by = tuple(_field(result, "acked_by", ()))
        hinted = tuple(_field(result, "hinted", ()))
        if acks < 2:
            raise StepFailed(f"a w=2 write returned {acks} ack(s): {result!r}")
        say.line(
            say.who(phone.name),
            f"+ {item} with w=2: {acks} acks from {self._who(acked_by)} in {took:.0f} ms"
            + (f" (hints: {self._who(hinted)})" if hinted else ""),
        )

    async def read_repair(self) -> None:
        say = self.say
        phone, laptop = self.devices["alice-phone"], self.devices["alice-laptop"]
        say.step(8, "A read with r=ALL repairs a stale replica")
        await laptop.close()
        say.line(say.who(laptop.name), "goes offline (lid closed)")
        item = "candles"
        await phone.peer.orset(LIST_KEY).add(item)
        say.line(say.who(phone.name), f"+ {item}")
        await self._open(laptop, online=False)
        stale = await laptop.items()
        await laptop.close()
        if item in stale:
            raise StepFailed(f"alice-laptop saw {item!r} while offline")
        say.line(say.who(laptop.name), f"its own copy has no {item}: {_fmt_items(stale)}")
        await self._open(laptop, online=True)
        from ..consistency import ALL

        value = frozenset(await laptop.peer.orset(LIST_KEY).value(r=ALL, timeout=QUORUM_TIMEOUT))
        if item not in value:
            raise StepFailed(f"a read with r=ALL missed {item!r}: {_fmt_items(value)}")
        say.line(say.who(laptop.name), f"reads with r=ALL: {_fmt_items(value)}")
        now = await laptop.items()
        if item not in now:
            raise StepFailed("the r=ALL read did not repair alice-laptop's copy")
        say.ok(f"alice-laptop's own copy now has {item}: repaired by the read")

    async def final(self) -> bool:
        """Wait for quiet, close everyone, reopen every file, compare; True if all equal."""
        say = self.say
        say.step(9, "Every replica, reopened from its SQLite file")
        online = [d for d in self.everyone if d.online]
        if len(online) > 1:
            try:
                await self._converged(online, "the last changes to reach every replica")
            except StepFailed as exc:
                say.fail(str(exc))
        await self.close_all()
        views: list[ReplicaView] = []
        for device in self.everyone:
            await self._open(device, online=False)
            try:
                views.append(await _view(device))
            finally:
                await device.close()
        rows = [
            ["list", *(_fmt_items(v.items).replace(", ", "\n") for v in views)],
            ["note", *(" | ".join(map(str, v.note)) or "(none)" for v in views)],
            ["version vector", *(_fmt_vv(v.version_vector, self._names) for v in views)],
            ["replica id", *(v.replica_id[:8] for v in views)],
        ]
        say.table(f"{LIST_KEY} on every replica", [v.name for v in views], rows)
        equal = all(v.same_data(views[0]) for v in views)
        if equal:
            say.ok(f"all {len(views)} replicas are equal")
        else:
            differ = [v.name for v in views if not v.same_data(views[0])]
            say.fail(f"replicas differ from {views[0].name}: {', '.join(differ)}")
        return equal


def _count_connected(status: Any) -> int:
    connected = _field(status, "connected", None)
    if connected is None:
        connected = _field(status, "peers", ())
    if isinstance(connected, int):
        return connected
    return len(connected)


def _pending_hints(status: Any) -> int:
    hints = _field(status, "pending_hints", 0)
    if isinstance(hints, Mapping):
        return sum(int(v) for v in hints.values())
    return int(hints)


async def _view(device: Device) -> ReplicaView:
    state = await _state_of(device.peer, LIST_KEY)
    vv = dict(state.context.vv) if state is not None else {}
    return ReplicaView(
        name=device.name,
        replica_id=device.replica_id,
        items=await device.items(),
        note=await device.note(),
        version_vector=vv,
    )


async def _state_of(peer: Any, key: str) -> Any:
    """The CRDT state a peer holds for ``key`` (for its version vector)."""
    handle = peer.orset(key)
    return await handle.state()


# -- entry point ----------------------------------------------------------------------------


async def run_demo(config: DemoConfig, say: Narrator) -> int:
    """Run every step; return the exit status (0 only if all went well and all are equal).

    The steps build on each other, so the first one that fails ends the story; the final
    comparison runs anyway, to show where the replicas stand.
    """
    demo = _Demo(config, say)
    steps = [
        demo.start,
        demo.everyone_adds,
        demo.bob_goes_offline,
        demo.others_edit,
        demo.bob_returns,
        demo.siblings,
        demo.quorum_write,
        demo.read_repair,
    ]
    started = time.perf_counter()
    try:
        for step in steps:
            if not await _attempt(step, demo, say):
                break
        verdict: list[bool] = []

        async def final() -> None:
            verdict.append(await demo.final())

        await _attempt(final, demo, say)
        equal = bool(verdict) and verdict[0]
    finally:
        await demo.close_all()
    took = time.perf_counter() - started
    if demo.failures:
        say.fail(f"the demo failed after {took:.1f} s: {demo.failures[0]}")
        return 1
    if not equal:
        return 1
    say.ok(f"done in {took:.1f} s")
    return 0


async def _attempt(step: Callable[[], Awaitable[object]], demo: _Demo, say: Narrator) -> bool:
    """Run one step; report a failure (with a traceback on stderr if unexpected)."""
    try:
        await step()
    except StepFailed as exc:
        say.fail(str(exc))
        demo.failures.append(str(exc))
        return False
    except Exception as exc:  # a bug or a broken peer: say so, then still compare replicas
        traceback.print_exc(file=sys.stderr)
        message = f"{type(exc).__name__}: {exc}"
        say.fail(message)
        demo.failures.append(message)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """``shoal demo [--keep DIR] [--seed N]``; returns the exit status."""
    args = parse_args(argv)
    say = Narrator(sys.stdout)
    with tempfile.TemporaryDirectory(prefix="shoal-demo-") as scratch:
        if args.keep is not None:
            folder: Path = args.keep
            if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                print(
                    f"shoal demo: --keep {folder}: must be an empty or new folder "
                    "(the demo starts from empty databases)",
                    file=sys.stderr,
                )
                return 2
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(scratch)
        config = DemoConfig(folder=folder, keep=args.keep is not None, seed=args.seed)
        where = (
            f"databases in {folder} (kept)"
            if config.keep
            else f"databases in {folder} (deleted at the end; --keep DIR keeps them)"
        )
        say.banner(
            f"shoal demo {say.dash} a shared shopping list on three devices and a relay "
            f"(seed {config.seed})",
            where,
        )
        try:
            return asyncio.run(asyncio.wait_for(run_demo(config, say), DEMO_TIMEOUT))
        except TimeoutError:
            say.fail(f"the demo did not finish within {DEMO_TIMEOUT:.0f} s")
            return 1
        except KeyboardInterrupt:
            say.fail("interrupted")
            return 130
