"""``shoal demo``: it runs through the CLI, narrates every step, exits 0, and writes plain text
(no ANSI escape codes) when its output is a pipe; the narrator colours only on a terminal."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

from shoal.narration import Narrator, plain_table
from tests.shoal.shoal_run import run_process

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT = 60.0

# What each step must say, in order: the narration is the demo's product.
STEPS = [
    "1. A relay and three devices start on loopback",
    "2. Everyone adds to the shared list",
    "3. bob-phone goes offline and keeps working",
    "4. Meanwhile alice edits the list and the same note",
    "5. bob-phone comes back online",
    "6. The note was edited concurrently: siblings, then a resolution",
    "7. A quorum write waits for two acknowledgements",
    "8. A read with r=ALL repairs a stale replica",
    "9. Every replica, reopened from its SQLite file",
]


async def _shoal(*args: str) -> tuple[int, str, str]:
    """Run ``shoal ARGS`` the way the console script does, with stdout a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["PYTHONPATH"] = str(ROOT)
    main = "import sys; from shoal.cli import main; sys.exit(main(sys.argv[1:]))"
    return await run_process(sys.executable, "-c", main, *args, env=env, timeout=DEMO_TIMEOUT)


async def test_shoal_demo_exits_0_and_narrates_every_step_in_plain_text(tmp_path: Path) -> None:
    keep = tmp_path / "dbs"
    code, out, err = await _shoal("demo", "--keep", str(keep), "--seed", "3")
    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert "\x1b[" not in out, "ANSI escape codes in piped output"
    positions = [out.find(step) for step in STEPS]
    assert all(p >= 0 for p in positions), [
        s for s, p in zip(STEPS, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions), "steps out of order"
    for phrase in (
        "QuorumNotReached",  # the offline write
        "hint(s) for bob-phone",  # the relay holds hints
        "reads 2 siblings:",  # the concurrent note
        "with w=2: 2 acks from",  # the quorum write
        "reads with r=ALL",  # the repairing read
        "no hint left undelivered",
    ):
        assert phrase in out, phrase
    assert sorted(p.name for p in keep.glob("*.db")) == [
        "alice-laptop.db",
        "alice-phone.db",
        "bob-phone.db",
        "relay.db",
    ]


def _final_table(out: str) -> tuple[str, dict[str, dict[str, list[str]]]]:
    """The list's key and the demo's final table (plain text): row label -> column -> the
    cell's lines."""
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith(" on every replica"))
    key = lines[at].removesuffix(" on every replica")
    header = lines[at + 1]
    names = header.split()
    starts = [header.index(f" {name}") + 1 for name in names]
    table: dict[str, dict[str, list[str]]] = {}
    label = ""
    for line in lines[at + 3 :]:
        if line[:1] not in ("", " "):  # a row's first line starts with its label
            label = line[: starts[0]].strip()
            table[label] = {name: [] for name in names}
        elif line[: starts[0]].strip():  # the narration again (indented 3 spaces)
            break
        for name, start, end in zip(names, starts, [*starts[1:], None], strict=True):
            cell = line[start:end].strip()
            if cell:
                table[label][name].append(cell)
    return key, table


async def test_the_final_table_shows_what_the_relays_file_holds(tmp_path: Path) -> None:
    # The relay is not a home of the list, but it holds a copy (docs/concepts.md: "a relay
    # holds a copy of all the group's data"); the table showed "(not a home)" and an
    # "(empty)" version vector for it.
    keep = tmp_path / "dbs"
    code, out, err = await _shoal("demo", "--keep", str(keep), "--seed", "3")
    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}"
    key, table = _final_table(out)
    code, text, err = await _shoal("inspect", "--db", str(keep / "relay.db"), key, "--json")
    assert code == 0, err
    (held,) = json.loads(text)["objects"]
    assert held["value"]["items"], held  # the relay's file holds the list...
    relay = {label: cells["relay"] for label, cells in table.items()}
    assert relay["list"] == sorted(held["value"]["items"]), out  # ...and the table shows it
    assert relay["note"] == [" | ".join(held["value"]["note"])], out
    ids = {cells[0]: name for name, cells in table["replica id"].items() if cells}
    shown = sorted(f"{ids[r[:8]]} {n}" for r, n in held["version_vector"].items())
    assert relay["version vector"] == shown, out
    homes = {label: cells["alice-phone"] for label, cells in table.items()}
    same = all(relay[row] == homes[row] for row in ("list", "note", "version vector"))
    assert ("holds the same copy" in out, "holds an older copy" in out) == (same, not same)
    assert relay["role"] == ["relay, not a home"], out
    assert {name: cells for name, cells in table["role"].items() if name != "relay"} == {
        name: ["home"] for name in ("alice-phone", "alice-laptop", "bob-phone")
    }


async def test_keep_refuses_a_folder_that_holds_files_and_changes_nothing(tmp_path: Path) -> None:
    keep = tmp_path / "busy"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    code, _out, err = await _shoal("demo", "--keep", str(keep))
    assert code == 2
    assert err == (  # in the form of every command's mistakes: "shoal: COMMAND: ..."
        f"shoal: demo: --keep {keep}: must be an empty or new folder "
        "(the demo starts from empty databases)\n"
    )
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
    assert (keep / "notes.txt").read_text() == "mine"


class _FakeTTY(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def _narrate(say: Narrator) -> None:
    say.banner("shoal demo", "databases in /tmp/x")
    say.step(1, "A step")
    say.line(say.who("alice-phone"), "+ milk")
    say.ok("fine")
    say.warn("careful")
    say.fail("broken")
    say.table("t", ["relay", "bob-phone"], [["list", "milk\neggs", "milk"]])


def test_narrator_writes_no_escape_codes_to_a_pipe_and_colours_a_terminal() -> None:
    plain = io.StringIO()
    _narrate(Narrator(plain))
    assert "\x1b[" not in plain.getvalue()
    assert "1. A step" in plain.getvalue()
    assert "   alice-phone   + milk\n" in plain.getvalue()

    tty = _FakeTTY()
    _narrate(Narrator(tty))
    assert "\x1b[" in tty.getvalue()
    assert "milk" in tty.getvalue()


def test_narrator_falls_back_to_ascii_symbols_on_a_non_utf_stream() -> None:
    class Latin1(io.StringIO):
        encoding = "latin-1"

    out = Latin1()
    say = Narrator(out)
    say.ok("fine")
    say.fail("broken")
    assert out.getvalue().splitlines() == ["   ok fine", "   FAIL broken"]


def test_plain_table_puts_replicas_side_by_side() -> None:
    text = plain_table(["", "a", "b"], [["list", "milk\neggs", "milk"], ["note", "x", "x"]])
    assert text.splitlines() == [
        "      a     b",
        "----  ----  ----",
        "list  milk  milk",
        "      eggs",
        "",
        "note  x     x",
    ]
