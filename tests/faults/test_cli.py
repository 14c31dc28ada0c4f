"""``python -m shoal.faults``: usage errors, the workload list, and the report it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shoal.faults.__main__ import main
from shoal.faults.checkers import Verdict
from shoal.faults.report import Outcome, render
from shoal.faults.workloads import WORKLOADS, Result

ROOT = Path(__file__).resolve().parents[2]


def test_list_names_every_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == list(WORKLOADS)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no-such-workload"], "no workload no-such-workload"),
        (["run", "--known", "g-set"], "--known needs NAME=ISSUE"),
        (["run", "--known", "nope=issue 1"], "--known needs NAME=ISSUE"),
    ],
)
def test_bad_usage_exits_2_and_runs_nothing(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--workdir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_runs_as_a_module_from_the_checkout() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shoal.faults", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "relay-handoff" in done.stdout


def _result(ok: bool) -> Result:
    problems = [] if ok else ["p1: 1 acknowledged adds lost: 'w-3'"]
    verdict = Verdict(problems, {"attempted": 10, "acknowledged": 9, "lost": 0 if ok else 1})
    return Result("g-set", 5, "long", {"peers": 5}, verdict, seconds=12.5)


def test_report_gives_each_figure_with_its_command_and_verdict() -> None:
    good = Outcome("g-set", "python -m shoal.faults run g-set --scale long --seed 5", _result(True))
    known = Outcome("kill-9", "cmd-k", _result(False), known_issue="issue 9: lost writes")
    missing = Outcome("clock-skew", "cmd-s", not_run="needs faketime")
    text = render(
        [good, known, missing], command="python -m shoal.faults", when="today", host="h", rev="r"
    )
    assert "python -m shoal.faults run g-set --scale long --seed 5" in text
    assert "| [g-set](#g-set) | pass | 10 | 9 | 0 |" in text
    assert "| [kill-9](#kill-9) | known failure | 10 | 9 | 1 |" in text
    assert "as expected today: issue 9: lost writes" in text
    assert "- p1: 1 acknowledged adds lost: 'w-3'" in text
    assert "**Not run:** needs faketime" in text
    assert [good.good, known.good, missing.good] == [True, True, False]
    assert Outcome("g-set", "c", _result(True), known_issue="x").status == "XPASS"
    assert not Outcome("g-set", "c", _result(True), known_issue="x").good
