"""``python -m shoal.faults``: run the fault workloads and report their figures.

::

    python -m shoal.faults list
    python -m shoal.faults run [NAME ...] [--scale short|long] [--seed N]
        [--workdir DIR] [--report PATH] [--known NAME=ISSUE ...]

``run`` runs the named workloads (all by default) one after the other, prints one line per
run, and with ``--report`` writes the Markdown report (:mod:`shoal.faults.report`). ``--known
NAME=ISSUE`` marks a workload as failing today for a known issue: its failure is reported as
such, and its passing is reported as XPASS (remove the mark). Exit code 0 when every run
passed or failed as marked, 1 otherwise (a failure, an XPASS, a workload that could not run),
2 on bad usage. The databases and logs of the runs stay in ``--workdir`` (default: a
temporary directory, removed at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .report import Outcome, commit, machine, render
from .workloads import WORKLOADS
from .workloads.common import Scale, timed
from .workloads.skew import FaketimeMissing

__all__ = ["main"]

_ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m shoal.faults", description=__doc__.split("::")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the workloads")
    run = sub.add_parser("run", help="run workloads and report")
    run.add_argument("names", nargs="*", metavar="NAME", help="workloads (default: all)")
    run.add_argument("--scale", choices=["short", "long"], default="short")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--workdir", type=Path, help="keep databases and logs here")
    run.add_argument("--report", type=Path, help="write the Markdown report here")
    run.add_argument(
        "--known",
        action="append",
        default=[],
        metavar="NAME=ISSUE",
        help="expect NAME to fail today for ISSUE (repeatable)",
    )
    return p


def _command(name: str, scale: str, seed: int) -> str:
    argv = ["python", "-m", "shoal.faults", "run", name, "--scale", scale, "--seed", str(seed)]
    return shlex.join(argv)


async def _run_all(
    names: list[str], scale: Scale, seed: int, workdir: Path, known: dict[str, str]
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for name in names:
        command = _command(name, scale, seed)
        try:
            run = WORKLOADS[name](workdir / f"{name}-{seed}", seed=seed, scale=scale)
            result = await timed(run)
        except FaketimeMissing as exc:
            outcome = Outcome(name, command, not_run=str(exc), known_issue=known.get(name))
        else:
            outcome = Outcome(name, command, result, known_issue=known.get(name))
        outcomes.append(outcome)
        _print(outcome)
    return outcomes


def _print(o: Outcome) -> None:
    if o.result is None:
        print(f"{o.workload:14} NOT RUN  {o.not_run}", flush=True)
        return
    f = o.result.verdict.figures
    brief = "  ".join(f"{k} {f[k]}" for k in ("attempted", "acknowledged", "lost") if k in f)
    print(f"{o.workload:14} {o.status:13} {brief}  ({o.result.seconds:g} s)", flush=True)
    for problem in o.result.verdict.problems:
        print(f"    {problem}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for w in WORKLOADS.values():
            print(f"{w.name:14} {w.scenario}")
        return 0
    names = args.names or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    known: dict[str, str] = {}
    for mark in args.known:
        name, sep, issue = mark.partition("=")
        if not sep or name not in WORKLOADS:
            print(f"shoal.faults: --known needs NAME=ISSUE, got {mark!r}", file=sys.stderr)
            return 2
        known[name] = issue
    if unknown:
        print(f"shoal.faults: no workload {', '.join(unknown)} (see: list)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="shoal-faults-") as tmp:
        workdir = args.workdir or Path(tmp)
        outcomes = asyncio.run(_run_all(names, args.scale, args.seed, workdir, known))
    if args.report is not None:
        given = list(argv) if argv is not None else sys.argv[1:]
        invoked = shlex.join(["python", "-m", "shoal.faults", *given])
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = render(outcomes, command=invoked, when=when, host=machine(), rev=commit(_ROOT))
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        print(f"report written to {args.report}")
    return 0 if all(o.good for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
