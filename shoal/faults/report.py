"""The reliability report: every run's figures, what was checked, and how to reproduce it.

:func:`render` turns the :class:`Outcome` of each run into the Markdown of
``docs/reliability.md``: for each workload its scenario, its properties, the command that
reproduces the run, the verdict, and the figures; with the machine, the date and the commit
the runs were made on. :func:`machine` describes this machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .workloads import WORKLOADS, Result

__all__ = ["Outcome", "commit", "machine", "render"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One run: its result (None if it could not run), the command that reproduces it, why it
    did not run, and the known issue it is expected to fail for (if any)."""

    workload: str
    command: str
    result: Result | None = None
    not_run: str | None = None
    known_issue: str | None = None

    @property
    def status(self) -> str:
        """``pass``, ``FAIL``, ``known failure``, ``XPASS`` (passed but marked) or ``NOT RUN``."""
        if self.result is None:
            return "NOT RUN"
        if self.result.ok:
            return "XPASS" if self.known_issue else "pass"
        return "known failure" if self.known_issue else "FAIL"

    @property
    def good(self) -> bool:
        """Whether this outcome is what was expected (a pass, or a marked known failure)."""
        return self.status in {"pass", "known failure"}


def machine() -> str:
    """One line: CPU model and count, memory, OS, Python."""
    model = "unknown CPU"
    mem = ""
    with_cpu = Path("/proc/cpuinfo")
    if with_cpu.exists():
        for line in with_cpu.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        mem = f", {int(first[1]) // 2**20} GiB memory"
    return (
        f"{os.cpu_count()} x {model}{mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def commit(root: Path) -> str:
    """The git commit checked out at ``root`` (with ``+dirty`` if it has changes), or "?"."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return head + ("+dirty" if dirty else "")


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def _section(o: Outcome) -> list[str]:
    w = WORKLOADS[o.workload]
    out = [f"## {o.workload}", ""]
    out += [f"**Scenario.** {w.scenario}.", "", f"**Checked.** {w.checks}.", ""]
    if w.note:
        out += [f"**Note.** {w.note}.", ""]
    out += [
        "Reproduce:",
        "",
        "<!-- not run: a long fault run takes minutes; make faults runs it -->",
        "```console",
        f"$ {o.command}",
        "```",
        "",
    ]
    if o.result is None:
        out += [f"**Not run:** {o.not_run}", ""]
        return out
    r = o.result
    verdict = {
        "pass": "every property held",
        "FAIL": "a property failed",
        "known failure": f"a property failed, as expected today: {o.known_issue}",
        "XPASS": f"every property held, although marked as failing for: {o.known_issue}",
    }[o.status]
    out += [f"**Result ({o.status}):** {verdict}. Seed {r.seed}, {r.seconds:g} s.", ""]
    out += ["| figure | value |", "| --- | --- |"]
    for key, value in r.verdict.figures.items():
        out.append(f"| {key.replace('_', ' ')} | {_value(value)} |")
    out.append("")
    if r.verdict.problems:
        out += ["Violations found:", ""]
        out += [f"- {p}" for p in r.verdict.problems]
        out.append("")
    params = ", ".join(f"{k}={_value(v)}" for k, v in r.params.items())
    out += [f"Parameters: {params}.", ""]
    return out


def render(outcomes: Sequence[Outcome], *, command: str, when: str, host: str, rev: str) -> str:
    """The Markdown report of ``outcomes``."""
    lines = [
        "# Reliability under faults",
        "",
        "What the fault suite (`shoal.faults`) found when it ran the long version of each",
        "workload against real `shoal serve` processes on 127.0.0.1: a seeded proxy on every",
        "link between peers (cut, stall, delay, drop, duplicate, reorder of websocket frames),",
        "SIGKILL and restart of served peers, libfaketime for clock skew. Writers are embedded",
        "peers that count a write as acknowledged when it reached the level asked; checkers",
        "read every served peer's database with `shoal inspect --json` once the faults healed.",
        "Short versions of the same workloads run in `make test` (`tests/faults/`).",
        "",
        f"- Made by: `{command}` (or `make faults`)",
        f"- Date: {when}",
        f"- Machine: {host}",
        f"- Commit: {rev}",
        "",
        "| workload | result | writes attempted | acknowledged | lost |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        f = o.result.verdict.figures if o.result else {}
        lines.append(
            f"| [{o.workload}](#{o.workload}) | {o.status} | {f.get('attempted', '')} | "
            f"{f.get('acknowledged', f.get('correct_acknowledged', ''))} | {f.get('lost', '')} |"
        )
    lines.append("")
    for o in outcomes:
        lines += _section(o)
    return "\n".join(lines).rstrip() + "\n"
