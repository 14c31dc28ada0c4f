"""``shoal demo``: a shared shopping list on three devices and a relay, narrated step by step.

What it runs (the user's first five minutes with shoal), all on loopback with one SQLite
file per peer in a temporary folder, every peer a real :class:`~sync.transport.peer.Peer`
talking websockets to the others:

1. a relay and three devices (``alice-phone``, ``alice-laptop``, ``bob-phone``) start; each
   device dials the relay and the devices already running, so all four are connected;
2. every device adds items to one shared list and the three replicas converge;
3. ``bob-phone`` goes offline and keeps working: a ``w=2`` write cannot reach its quorum
   (``QuorumNotReached``) yet is durable on the phone, and bob edits the shared note;
4. meanwhile alice edits the list and the same note; the relay, the fallback of the list's
   home replicas, holds hints for bob (sloppy quorum);
5. ``bob-phone`` comes back: the relay hands its hints off and bob's offline writes reach
   everyone (anti-entropy);
6. the note shows both concurrent values as siblings; a later ``set`` that has seen both
   resolves them everywhere;
7. a quorum write waits for two acknowledgements (``w=2``) and shows who acked;
8. bob restarts where he reaches alice-phone and the relay but not alice-laptop, and makes a
   ``strict`` write (home replicas only, so no hint): alice-laptop is stale while online. A
   read with ``r=ALL`` from alice-phone joins the three replicas and repairs the laptop;
9. every peer is closed, every database reopened from its file, and the replicas' lists,
   notes, version vectors and leftover hints are printed side by side, with the copy the
   relay holds (it is no home of the list, so nothing waits for it to be up to date).

The shared list is one ORMap key (``items`` -> an ORSet, ``note`` -> an MVRegister) with
``n=3`` home replicas. With four peers on the ring the relay could be one of them; the demo
names the list after the first of :data:`LIST_NAMES` whose three homes are the devices, so
that the relay plays the part the story needs: a fallback that holds hints, not a replica.

"Offline" is what it is for an embedded app: the device closes its peer and reopens the same
database with no network (no listen address, no peers to dial). Reopening resumes the same
replica id and data (see :mod:`sync.transport.peer`).

Output: one short line per step; colours when stdout is a terminal (rich), plain text with no
ANSI escape codes when it is not (a pipe, a file, a CI log). Every wait is bounded by a
timeout. The steps build on each other: the first one that fails ends the story, and the
final comparison still runs to show where the replicas stand.

Exit status: 0 when every step succeeded, the three replicas are equal at the end and no hint
is left undelivered; 1 otherwise; 2 for bad usage (argparse, or ``--keep`` naming a folder
that already holds files).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crdt import ORMap
from sync.consistency import ALL
from sync.effects import WriteResult
from sync.errors import QuorumNotReached
from sync.ring import Ring
from sync.transport.handles import ORMapHandle

from .devices import Device, StepFailed, contains, until
from .narration import Narrator, ReplicaView, format_items, format_version_vector

__all__ = [
    "DEVICES",
    "DemoConfig",
    "StepFailed",
    "main",
    "parse_args",
    "run_demo",
]

DEVICES = ("alice-phone", "alice-laptop", "bob-phone")
RELAY = "relay"

N_HOMES = 3
ITEMS = "items"
NOTE = "note"
# The shared list is one ORMap key: ITEMS -> an ORSet of items, NOTE -> an MVRegister. Its
# name is the first of these whose n=3 home replicas are the three devices (see _choose_key).
LIST_NAMES = (
    "groceries",
    "weekend",
    "picnic",
    "party",
    "brunch",
    "barbecue",
    "camping",
    "dinner",
    "holiday",
    "birthday",
    "breakfast",
    "potluck",
    "road-trip",
    "beach",
    "hiking",
    "movie-night",
)
MAX_NAME_TRIES = 200

BOB_NOTE = "get the cheap coffee"
ALICE_NOTE = "decaf please"
RESOLVED_NOTE = "decaf, the cheap one"
CAKE = "birthday cake"
CANDLES = "candles"

# Bounds on the waits of the steps (devices.STEP_TIMEOUT bounds the others): a broken network
# or a bug shows up as a failed step, never as a hang.
QUORUM_TIMEOUT = 5.0
OFFLINE_QUORUM_TIMEOUT = 0.5
DEMO_TIMEOUT = 60.0

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


def _list_names() -> Iterator[str]:
    yield from LIST_NAMES
    for k in range(2, MAX_NAME_TRIES):
        yield f"groceries-{k}"


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
        self.key = f"list:{LIST_NAMES[0]}"
        self._names: dict[str, str] = {}

    # -- plumbing

    @property
    def everyone(self) -> list[Device]:
        return [*self.devices.values(), self.relay]

    def _who(self, replica_ids: Sequence[str]) -> str:
        return ", ".join(self._names.get(r, r[:8]) for r in replica_ids) or "nobody"

    async def _open(self, device: Device, *, online: bool) -> None:
        """Open ``device``; online, it listens and dials the relay and every running device."""
        dial: list[str] = []
        if online and not device.relay:
            others = [d for d in self.everyone if d is not device and d.online and d.url]
            dial = [d.url for d in others]
        await device.open(listen=online, dial=dial, secret=self.config.secret, n=N_HOMES)
        self._names[device.replica_id] = device.name

    async def close_all(self) -> None:
        for device in self.everyone:
            await device.close()

    def handle(self, device: Device) -> ORMapHandle:
        return device.peer.ormap(self.key)

    async def items(self, device: Device) -> frozenset[str]:
        value = await self.handle(device).value()
        return frozenset(value.get(ITEMS, frozenset()))

    async def note(self, device: Device) -> tuple[Any, ...]:
        value = await self.handle(device).value()
        return tuple(value.get(NOTE, ()))

    async def add(self, device: Device, item: str, **kw: Any) -> WriteResult:
        return await self.handle(device).update(ITEMS, "orset", lambda s: s.add(item), **kw)

    async def remove(self, device: Device, item: str, **kw: Any) -> WriteResult:
        return await self.handle(device).update(ITEMS, "orset", lambda s: s.remove(item), **kw)

    async def set_note(self, device: Device, text: str, **kw: Any) -> WriteResult:
        return await self.handle(device).update(NOTE, "mvregister", lambda r: r.set(text), **kw)

    async def _converged(self, devices: Sequence[Device], what: str) -> frozenset[str]:
        """Wait until every device in ``devices`` holds the same list and note; return it."""
        seen: list[tuple[frozenset[str], tuple[str, ...]]] = []

        async def same() -> bool:
            seen[:] = []
            for d in devices:
                value = await self.handle(d).value()
                notes = tuple(sorted(map(repr, value.get(NOTE, ()))))
                seen.append((frozenset(value.get(ITEMS, frozenset())), notes))
            return all(s == seen[0] for s in seen)

        took = await until(same, what)
        self.say.ok(f"{len(devices)} replicas agree in {took:.2f} s: {format_items(seen[0][0])}")
        return seen[0][0]

    # -- the steps

    async def start(self) -> None:
        say = self.say
        say.step(1, "A relay and three devices start on loopback")
        await self._open(self.relay, online=True)
        say.line(say.who(RELAY), f"{self.relay.url}  replica {self.relay.replica_id[:8]}")
        for device in self.devices.values():
            await self._open(device, online=True)
            say.line(say.who(device.name), f"{device.url}  replica {device.replica_id[:8]}")
        t0 = time.perf_counter()
        ids = {d.replica_id for d in self.everyone}

        async def meshed() -> bool:
            for d in self.everyone:
                if not (ids - {d.replica_id}) <= await d.connected():
                    return False
            return True

        await until(meshed, "every peer to connect to every other")
        say.ok(f"every peer is connected to the 3 others ({time.perf_counter() - t0:.2f} s)")
        self.key = self._choose_key(ids)
        say.line(f"the shared list {self.key!r}: n={N_HOMES} home replicas, the three devices")
        say.line(("the relay is their fallback: it holds hints for a device that is away", "dim"))

    def _choose_key(self, ids: set[str]) -> str:
        """The first list name whose n=3 homes are the three devices (not the relay)."""
        cfg = self.relay.peer.config
        ring = Ring(ids, n=cfg.n, partitions=cfg.partitions, vnodes=cfg.vnodes)
        for name in _list_names():
            key = f"list:{name}"
            if self.relay.replica_id not in ring.homes_of(key):
                return key
        raise StepFailed("no list name has the three devices as its homes")

    async def everyone_adds(self) -> None:
        say = self.say
        say.step(2, "Everyone adds to the shared list")
        for name, device in self.devices.items():
            first, second = self.picks[name][:2]
            await self.add(device, first)
            await self.add(device, second)
            say.line(say.who(name), f"+ {first}, + {second}")
        await self._converged(list(self.devices.values()), "every replica to hold all six items")

    async def bob_goes_offline(self) -> None:
        say = self.say
        bob = self.devices["bob-phone"]
        say.step(3, "bob-phone goes offline and keeps working")
        await bob.close()
        await self._open(bob, online=False)
        items = await self.items(bob)
        say.line(
            say.who(bob.name),
            f"reopened without network: same replica {bob.replica_id[:8]}, "
            f"{len(items)} items on its disk",
        )
        extra = self.picks[bob.name][2]
        try:
            result = await self.add(bob, extra, w=2, timeout=OFFLINE_QUORUM_TIMEOUT)
        except QuorumNotReached as exc:
            acks = exc.result.acks if exc.result is not None else 1
            say.line(
                say.who(bob.name),
                f"+ {extra} with w=2: QuorumNotReached ({acks} of 2 acks) ",
                (f"{say.dash} durable on the phone, will sync later", "dim"),
            )
        else:
            raise StepFailed(f"an offline w=2 write reached its quorum: {result!r}")
        await self.set_note(bob, BOB_NOTE)
        say.line(say.who(bob.name), f"note := {BOB_NOTE!r}")

    async def others_edit(self) -> None:
        say = self.say
        say.step(4, "Meanwhile alice edits the list and the same note")
        phone, laptop = self.devices["alice-phone"], self.devices["alice-laptop"]
        bob_id = self.devices["bob-phone"].replica_id
        gone = self.picks["alice-phone"][0]
        await self.remove(phone, gone)
        say.line(say.who(phone.name), f"- {gone}")
        extra = self.picks["alice-laptop"][2]
        await self.add(laptop, extra)
        say.line(say.who(laptop.name), f"+ {extra}")
        await self.set_note(phone, ALICE_NOTE)
        say.line(say.who(phone.name), f"note := {ALICE_NOTE!r}")
        await self._converged([phone, laptop], "alice's two devices to agree")
        hints = 0

        async def held() -> bool:
            nonlocal hints
            hints = await self.relay.hints_for(bob_id)
            return hints >= 3

        await until(held, "the relay to hold alice's 3 writes for bob-phone")
        say.line(say.who(RELAY), f"holds {hints} hint(s) for bob-phone (sloppy quorum)")

    async def bob_returns(self) -> None:
        say = self.say
        bob = self.devices["bob-phone"]
        say.step(5, "bob-phone comes back online")
        held = await self.relay.hints_for(bob.replica_id)
        await bob.close()
        await self._open(bob, online=True)
        say.line(say.who(bob.name), f"reopened at {bob.url}, dials the relay and alice")
        left = -1

        async def drained() -> bool:
            nonlocal left
            left = await self.relay.hints_for(bob.replica_id)
            return left == 0

        await until(drained, "the relay to hand off its hints to bob-phone")
        say.line(say.who(RELAY), f"handed {held} hint(s) to bob-phone: 0 pending")
        items = await self._converged(
            list(self.devices.values()), "bob's offline writes and alice's to meet"
        )
        extra = self.picks[bob.name][2]
        if extra not in items:
            raise StepFailed(f"bob-phone's offline {extra!r} did not reach the others")

    async def siblings(self) -> None:
        say = self.say
        laptop = self.devices["alice-laptop"]
        say.step(6, "The note was edited concurrently: siblings, then a resolution")
        values: tuple[Any, ...] = ()

        async def both() -> bool:
            nonlocal values
            values = await self.note(laptop)
            return len(values) >= 2

        await until(both, "the note's two concurrent values to reach alice-laptop")
        say.line(
            say.who(laptop.name),
            f"reads {len(values)} siblings: " + "  |  ".join(repr(v) for v in values),
        )
        await self.set_note(laptop, RESOLVED_NOTE)
        say.line(say.who(laptop.name), f"note := {RESOLVED_NOTE!r} (it has seen both)")

        async def one_everywhere() -> bool:
            notes = [await self.note(d) for d in self.devices.values()]
            return all(n == (RESOLVED_NOTE,) for n in notes)

        took = await until(one_everywhere, "the resolution to reach every replica")
        say.ok(f"one value on every replica in {took:.2f} s")

    async def quorum_write(self) -> None:
        say = self.say
        phone = self.devices["alice-phone"]
        say.step(7, "A quorum write waits for two acknowledgements")
        t0 = time.perf_counter()
        result = await self.add(phone, CAKE, w=2, timeout=QUORUM_TIMEOUT)
        took = (time.perf_counter() - t0) * 1000
        if result.acks < 2:
            raise StepFailed(f"a w=2 write returned {result.acks} ack(s): {result!r}")
        hinted = f" (hinted: {self._who(result.hinted)})" if result.hinted else ""
        say.line(
            say.who(phone.name),
            f"+ {CAKE} with w=2: {result.acks} acks from {self._who(result.acked_by)} "
            f"in {took:.0f} ms{hinted}",
        )

    async def read_repair(self) -> None:
        say = self.say
        phone, laptop = self.devices["alice-phone"], self.devices["alice-laptop"]
        bob = self.devices["bob-phone"]
        say.step(8, "A read with r=ALL repairs a stale replica")
        # bob restarts reaching only the relay and alice-phone: his strict write below then
        # reaches alice-phone but neither alice-laptop nor, as a hint, the relay.
        await bob.close()
        await bob.open(
            listen=True, dial=[self.relay.url, phone.url], secret=self.config.secret, n=N_HOMES
        )
        ids = {self.relay.replica_id, phone.replica_id}
        await until(lambda: contains(bob.connected(), ids), "bob-phone to reconnect")
        say.line(say.who(bob.name), "restarts where it reaches alice-phone and the relay only")
        await self.add(bob, CANDLES, strict=True)
        say.line(
            say.who(bob.name),
            f"+ {CANDLES} ",
            ("(strict: only home replicas count, no hint for alice-laptop)", "dim"),
        )
        if CANDLES in await self.items(laptop):
            say.warn(f"alice-laptop already has {CANDLES} (it reached bob-phone after all)")
        else:
            say.line(say.who(laptop.name), f"its own copy (r=1) has no {CANDLES}: stale")
        done = await phone.peer.node.read(self.key, r=ALL, timeout=QUORUM_TIMEOUT)
        value = done.state.value if done.state is not None else {}
        items = frozenset(value.get(ITEMS, frozenset()))
        if CANDLES not in items:
            raise StepFailed(f"a read with r=ALL missed {CANDLES!r}: {format_items(items)}")
        repaired = (
            f"{self._who(done.repaired)} was behind: repaired"
            if done.repaired
            else "nobody was behind any more (anti-entropy got there first)"
        )
        say.line(
            say.who(phone.name),
            f"reads with r=ALL: {done.replies} replies joined, {CANDLES} included; {repaired}",
        )

        async def fresh() -> bool:
            return CANDLES in await self.items(laptop)

        took = await until(fresh, "alice-laptop's copy to hold the candles")
        say.ok(f"alice-laptop's own copy has {CANDLES} ({took:.2f} s)")

    async def final(self) -> bool:
        """Wait for quiet, close everyone, reopen every file, compare; True if all equal."""
        say = self.say
        say.step(9, "Every replica, reopened from its SQLite file")
        running = [d for d in self.devices.values() if d.online]
        if len(running) > 1:
            try:
                await self._converged(running, "the last changes to reach every replica")
            except StepFailed as exc:
                say.fail(str(exc))
        await self.close_all()
        views: list[ReplicaView] = []
        for device in self.everyone:
            await self._open(device, online=False)
            try:
                views.append(await self._view(device))
            finally:
                await device.close()
        homes = [v for v in views if v.home]
        rows = [
            ["role", *(v.show_role() for v in views)],
            ["list", *(v.show_items() for v in views)],
            ["note", *(v.show_note() for v in views)],
            [
                "version vector",
                *(format_version_vector(v.version_vector, self._names) for v in views),
            ],
            ["pending hints", *(str(v.hints) for v in views)],
            ["replica id", *(v.replica_id[:8] for v in views)],
        ]
        say.table(f"{self.key} on every replica", [v.name for v in views], rows)
        for copy in (v for v in views if not v.home):  # the relay: what its copy is
            if copy.same_data(homes[0]):
                held = "the same copy: not a home, no write waits for it"
            else:
                lacks = homes[0].items - copy.items
                without = f" (without {format_items(lacks)})" if lacks else ""
                held = (
                    f"an older copy{without}: not a home, no write waits for it; "
                    "anti-entropy catches it up"
                )
            say.line(say.who(copy.name), (f"holds {held}", "dim"))
        equal = all(v.same_data(homes[0]) for v in homes)
        undelivered = sum(v.hints for v in views)
        if equal and not undelivered:
            say.ok(f"all {len(homes)} replicas of {self.key} are equal; no hint left undelivered")
            return True
        if not equal:
            differ = [v.name for v in homes if not v.same_data(homes[0])]
            say.fail(f"replicas differ from {homes[0].name}: {', '.join(differ)}")
        if undelivered:
            say.fail(f"{undelivered} hint(s) were never delivered")
        return False

    async def _view(self, device: Device) -> ReplicaView:
        """What ``device``'s file holds (opened off line: every read is of its own copy)."""
        hints = await device.pending_hints()
        state = await self.handle(device).state()
        value = state.value if state is not None else {}
        vv = dict(state.context.vv) if isinstance(state, ORMap) else {}
        return ReplicaView(
            name=device.name,
            replica_id=device.replica_id,
            items=frozenset(value.get(ITEMS, frozenset())),
            note=tuple(value.get(NOTE, ())),
            version_vector=vv,
            hints=hints,
            home=not device.relay,
        )


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
    say = Narrator(sys.stdout, styles=STYLES)
    with tempfile.TemporaryDirectory(prefix="shoal-demo-") as scratch:
        if args.keep is not None:
            folder: Path = args.keep
            if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                print(
                    f"shoal: demo: --keep {folder}: must be an empty or new folder "
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
