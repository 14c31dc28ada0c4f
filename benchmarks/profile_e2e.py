"""Where the end-to-end time goes: the ``e2e_bench.py`` shoal scenario, with phase times.

Run: ``.venv/bin/python benchmarks/profile_e2e.py`` (``--updates N``, ``--runs K``,
``--profile`` for a cProfile of the timed part of one run sorted by ``--sort``, ``--top``
rows, ``--gc`` for the time spent in garbage collections per generation during the timed
parts (from the first write until B is durable), ``--heap`` for the objects the garbage
collector tracks once B is durable (by type: what every full collection has to walk),
``--promoted`` for the objects of the two young generations, by type, at each collection of
the middle one (nearly all of them move to the oldest: what brings full collections; the
counting slows the runs, so their times are not comparable to others'),
``--set NAME=INT`` to pass an engine option such as ``checkpoint_every`` to all three peers,
``--collector off`` to run with the garbage collector disabled, ``--collector freeze`` to
``gc.freeze()`` once everything is imported, so that full collections skip the modules'
objects; ``--young N`` to set the young generation's threshold while the peers are open
(``sync.transport.collector.YOUNG_THRESHOLD``, 50,000; CPython's own is 700): with twice
the threshold, collections run as if each update left half as many tracked objects behind;
``--codec`` for the seconds the links spend per run sealing (deflate and tag), unsealing,
encoding and decoding messages (each run's median, in the timed part);
``--unsigned-too`` to alternate each run with one whose three engines have no signer (no
seals made, none checked: never a mode of a real peer, only the measure of what signing
costs end to end), reporting the medians of both).

The scenario is the benchmark's (three peers in one process, A and B dial the relay,
``n=3, w=1``, half ``orset.add`` and half ``ormap.update``, ``--window`` concurrent writes at
a time); this script adds the time at which each phase ended, measured from the first write:

* ``local``: every write on A returned (durable on A, ``w=1``);
* ``relay``: the relay's SQLite file holds every log dot of A;
* ``b``: B's SQLite file holds every log dot of A (the benchmark's figure).

It reuses the benchmark's durability probe (a read-only connection per file) so the figures
agree with ``e2e_bench.py``. Nothing here is asserted; it is a tool for the performance work.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import gc
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e_bench

__all__ = ["main", "phases"]


async def _until(path: Path, origin: str, target: int, start: float) -> float:
    await e2e_bench._wait_durable([path], origin, target)
    return time.perf_counter() - start


def _heap(top: int = 12) -> str:
    """The objects the garbage collector tracks, by type (after a full collection)."""
    gc.collect()
    objects = gc.get_objects()
    counts = collections.Counter(type(o).__name__ for o in objects)
    shown = ", ".join(f"{name} {n}" for name, n in counts.most_common(top))
    return f"{len(objects)} tracked objects: {shown}"


# Switched on for the timed part of each run only (from the first write until B is durable):
# the --gc timer and the --profile profiler, so setup and the final checks are left out.
_TIMED: list[Any] = []


async def _phases(
    updates: int, window: int, folder: Path, engine: dict[str, Any], heap: list[str] | None = None
) -> dict[str, float]:
    async with AsyncExitStack() as stack:
        paths, a, _relay, b = await e2e_bench.three_peers(stack, folder, **engine)
        for hook in _TIMED:
            hook.enable()
        start = time.perf_counter()
        await e2e_bench.make_updates(a, updates, window)
        local = time.perf_counter() - start
        target = await asyncio.to_thread(e2e_bench._applied_dots, paths["a"], a.replica_id)
        at_relay, at_b = await asyncio.gather(
            _until(paths["relay"], a.replica_id, target, start),
            _until(paths["b"], a.replica_id, target, start),
        )
        for hook in _TIMED:
            hook.disable()
        if heap is not None:  # all three peers still open, every update durable on B
            heap.append(_heap())
        got = len(await b.orset(e2e_bench.SET_KEY).value())
        got += len(await b.ormap(e2e_bench.MAP_KEY).value())
        if got != updates:
            raise AssertionError(f"B holds {got} of {updates} updates")
        return {"local": local, "relay": at_relay, "b": at_b}


def phases(
    updates: int,
    window: int,
    engine: dict[str, Any] | None = None,
    heap: list[str] | None = None,
) -> dict[str, float]:
    """One run in a fresh temporary folder: seconds from the first write to each phase.

    ``engine``: extra ``Peer.open`` keyword arguments for all three peers (experiments);
    ``heap``: if given, a line describing the tracked objects once B is durable is appended.
    """
    with tempfile.TemporaryDirectory(prefix="shoal-prof-") as tmp:
        coro = _phases(updates, window, Path(tmp), engine or {}, heap)
        return asyncio.run(asyncio.wait_for(coro, 120.0))


class _Hook:
    """A ``gc.callbacks`` hook that counts only while enabled (the timed parts: _TIMED)."""

    _on = False

    def enable(self) -> None:
        self._on = True

    def disable(self) -> None:
        self._on = False


class _GCTimer(_Hook):
    """Count and seconds of collections per generation."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self._on:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            gen = info["generation"]
            self.count[gen] += 1
            self.seconds[gen] += time.perf_counter() - self._start

    def __str__(self) -> str:
        return ", ".join(f"gen{g}: {self.count[g]} in {self.seconds[g]:.3f} s" for g in range(3))


class _Promoted(_Hook):
    """At the start of each collection of the middle generation, the objects of the two
    young generations by type. Those a collection finds alive (most of them: garbage
    without cycles is freed at once) move to the oldest generation, whose count since the
    last full collection is what brings the next one."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.collections = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if self._on and phase == "start" and info["generation"] == 1:
            self.collections += 1
            young = gc.get_objects(0) + gc.get_objects(1)
            self.counts.update(type(o).__qualname__ for o in young)
            del young

    def report(self, runs: int, top: int = 15) -> str:
        total = sum(self.counts.values())
        shown = ", ".join(f"{name} {n / runs:.0f}" for name, n in self.counts.most_common(top))
        return (
            f"objects in the young generations at the {self.collections / runs:.0f} "
            f"middle-generation collections of a run: {total / runs:.0f}; {shown}"
        )


class _Codec(_Hook):
    """Seconds spent per run in the links' ``Session.seal``, ``Session.unseal``,
    ``WireCodec.encode`` and ``WireCodec.decode`` (wrapped while it is installed)."""

    NAMES = ("seal", "unseal", "encode", "decode")

    def __init__(self) -> None:
        self.runs: list[dict[str, float]] = []
        self._run: dict[str, float] = {}

    def enable(self) -> None:
        super().enable()
        self._run = dict.fromkeys(self.NAMES, 0.0)

    def disable(self) -> None:
        super().disable()
        self.runs.append(self._run)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from sync.transport.auth import Session
        from sync.transport.codec import WireCodec

        places = [
            (Session, "seal"),
            (Session, "unseal"),
            (WireCodec, "encode"),
            (WireCodec, "decode"),
        ]
        saved = [getattr(cls, name) for cls, name in places]
        for (cls, name), real in zip(places, saved, strict=True):
            setattr(cls, name, self._timed(name, real))
        try:
            yield
        finally:
            for (cls, name), real in zip(places, saved, strict=True):
                setattr(cls, name, real)

    def _timed(self, name: str, real: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                if self._on:
                    self._run[name] += time.perf_counter() - began

        return timed

    def report(self) -> str:
        return "links, seconds per run (median): " + "  ".join(
            f"{name} {statistics.median(r[name] for r in self.runs) * 1000:.1f} ms"
            for name in self.NAMES
        )


@contextlib.contextmanager
def _unsigned() -> Iterator[None]:
    """Peers opened meanwhile run engines without a signer (see ``--unsigned-too``)."""
    import sync.transport.peer as peer_module

    signer = peer_module.Signer
    peer_module.Signer = lambda _key: None  # type: ignore[assignment,misc,return-value]
    try:
        yield
    finally:
        peer_module.Signer = signer  # type: ignore[misc]


def _compare_unsigned(args: argparse.Namespace, engine: dict[str, Any]) -> None:
    """Signed and unsigned runs in turn; each run's phases, then the medians of each."""
    runs: dict[str, list[dict[str, float]]] = {"signed": [], "unsigned": []}
    for i in range(1, args.runs + 1):
        for label in runs:
            with _unsigned() if label == "unsigned" else contextlib.nullcontext():
                got = phases(args.updates, args.window, engine)
            runs[label].append(got)
            shown = "  ".join(f"{k} {v:.3f} s" for k, v in got.items())
            print(f"run {i} {label}: {shown}", flush=True)
    for label, done in runs.items():
        med = {k: statistics.median(r[k] for r in done) for k in done[0]}
        print(f"median {label}: " + "  ".join(f"{k} {v:.3f} s" for k, v in med.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    parser.add_argument("--sort", default="tottime", help="pstats sort key")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--gc", action="store_true", help="time garbage collections")
    parser.add_argument(
        "--heap", action="store_true", help="tracked objects by type once B is durable"
    )
    parser.add_argument(
        "--promoted",
        action="store_true",
        help="per run, the young objects by type at each middle-generation collection",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=INT",
        help="a Peer.open option for all three peers, e.g. checkpoint_every=100000",
    )
    parser.add_argument(
        "--collector",
        choices=("on", "off", "freeze"),
        default="on",
        help="the garbage collector during the runs: as usual, disabled, or after gc.freeze()",
    )
    parser.add_argument(
        "--young",
        type=int,
        default=None,
        metavar="N",
        help="the young generation's threshold while the peers are open (50,000 by default, "
        "CPython's own 700)",
    )
    parser.add_argument(
        "--codec",
        action="store_true",
        help="seconds per run sealing, unsealing, encoding and decoding messages",
    )
    parser.add_argument(
        "--unsigned-too",
        action="store_true",
        help="alternate each run with one whose engines have no signer (what signing costs)",
    )
    args = parser.parse_args(argv)
    engine = {k: int(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.young is not None:
        from sync.transport import collector

        collector.YOUNG_THRESHOLD = args.young  # what an open node holds it at
        gc.set_threshold(args.young, *gc.get_threshold()[1:])
    if args.collector == "freeze":
        import sync.transport.peer  # noqa: F401  (everything a run imports, then frozen)

        gc.collect()
        gc.freeze()
    elif args.collector == "off":
        gc.disable()
    if args.profile:
        prof = cProfile.Profile()
        _TIMED.append(prof)
        got = phases(args.updates, args.window, engine)
        _TIMED.remove(prof)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
        print("  ".join(f"{k} {v:.3f} s" for k, v in got.items()), "(under cProfile)")
        return 0
    if args.unsigned_too:
        _compare_unsigned(args, engine)
        return 0
    collections = _GCTimer()
    if args.gc:
        gc.callbacks.append(collections)
        _TIMED.append(collections)
    promoted = _Promoted()
    if args.promoted:
        gc.callbacks.append(promoted)
        _TIMED.append(promoted)
    heap: list[str] | None = [] if args.heap else None
    codec = _Codec()
    if args.codec:
        _TIMED.append(codec)
    with codec.installed() if args.codec else contextlib.nullcontext():
        runs = [phases(args.updates, args.window, engine, heap) for _ in range(args.runs)]
    if args.codec:
        _TIMED.remove(codec)
        print(codec.report())
    if args.gc:
        gc.callbacks.remove(collections)
        print(f"garbage collections in the timed part of the {args.runs} run(s): {collections}")
    if args.promoted:
        gc.callbacks.remove(promoted)
        print(promoted.report(args.runs))
    for line in heap or ():
        print(line)
    for i, got in enumerate(runs, 1):
        print(f"run {i}: " + "  ".join(f"{k} {v:.3f} s" for k, v in got.items()), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print("median: " + "  ".join(f"{k} {v:.3f} s" for k, v in med.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
