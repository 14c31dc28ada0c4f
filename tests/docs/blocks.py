"""The fenced code blocks of the README and the docs, and how the tests run them.

The rules a page follows (docs/index.md says them to writers too):

* Every fenced block names its language: ``python`` (a program: run), ``console`` (commands a
  user types, each line after a ``$ `` prompt, followed by what it prints: run, and the
  output compared) or ``text`` (output, a diagram, a layout: never run, and it may not hold a
  ``$ `` prompt line, so no command hides in one).
* A ``python`` or ``console`` block that must not run (it starts a long-lived server, needs
  other hosts, runs the test suite itself) is preceded by ``<!-- not run: REASON -->``; the
  reason is required.
* The runnable blocks of one page run in order, in one fresh temporary folder (so a
  ``console`` block can inspect the database an earlier ``python`` block made), each in its
  own process with a bounded timeout. A ``console`` command must exit 0; the lines after it
  are its expected output, compared as doctest does with ``ELLIPSIS`` and
  ``NORMALIZE_WHITESPACE`` (``...`` stands for any text, such as a replica id).
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXEMPT",
    "ROOT",
    "Block",
    "BlockError",
    "check_rules",
    "pages",
    "parse",
    "run_page",
]

ROOT = Path(__file__).resolve().parent.parent.parent

# Pages whose blocks are not held to the rules, each with the reason.
EXEMPT = {
    "docs/architecture.md": "its python blocks state contracts as signatures without bodies",
}

LANGUAGES = ("python", "console", "text")
TIMEOUT = 90.0  # seconds, per block

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)(?P<info>[^`\n]*)$")
_MARKER = re.compile(r"^<!--\s*not run:(?P<reason>.*?)-->\s*$")


class BlockError(AssertionError):
    """A block breaks a rule or fails to run; the message names the page and line."""


@dataclass(frozen=True, slots=True)
class Block:
    page: str  # relative to ROOT
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    not_run: str | None  # the reason of a <!-- not run: ... --> marker, or None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[str]:
    """README.md and every page of docs/, relative to ROOT."""
    found = ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]
    return [p for p in found if (ROOT / p).is_file()]


def parse(page: str, text: str | None = None) -> list[Block]:
    """The fenced blocks of ``page`` (``text`` if given, else the file's content)."""
    lines = (ROOT / page).read_text().splitlines() if text is None else text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening["fence"], opening["info"].strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise BlockError(f"{page}:{start + 1}: a code block is never closed")
        i += 1
        blocks.append(Block(page, start + 1, lang, "\n".join(body) + "\n", _marker(lines, start)))
    return blocks


def _marker(lines: list[str], fence_index: int) -> str | None:
    """The reason of the ``<!-- not run: ... -->`` line just above the fence (blank lines
    between them allowed), or None."""
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None
    found = _MARKER.match(lines[j].strip())
    return found["reason"].strip() if found else None


def check_rules(block: Block) -> None:
    """Raise :class:`BlockError` if ``block`` breaks a rule of the module docstring."""
    if block.lang not in LANGUAGES:
        raise BlockError(
            f"{block.where}: a code block must be one of {', '.join(LANGUAGES)}, "
            f"got {block.lang or 'no language'!r}"
        )
    if block.not_run is not None:
        if block.lang == "text":
            raise BlockError(f"{block.where}: a text block is never run; drop the marker")
        if not block.not_run:
            raise BlockError(f"{block.where}: <!-- not run: --> needs a reason")
    if block.lang == "text" and any(ln.startswith("$ ") for ln in block.code.splitlines()):
        raise BlockError(f"{block.where}: a text block holds a '$ ' command: make it console")
    if block.lang == "console" and not block.code.startswith("$ "):
        raise BlockError(f"{block.where}: a console block starts with a '$ ' command")


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
    }


def _run(args: list[str], folder: Path, where: str) -> str:
    try:
        done = subprocess.run(
            args,
            cwd=folder,
            env=_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise BlockError(f"{where}: still running after {TIMEOUT:g} s") from exc
    if done.returncode != 0:
        raise BlockError(
            f"{where}: exited {done.returncode}\n--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
        )
    return done.stdout + done.stderr


def _commands(block: Block) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    pairs: list[tuple[str, list[str]]] = []
    continued = False
    for line in block.code.splitlines():
        if continued:
            pairs[-1] = (pairs[-1][0] + "\n" + line, pairs[-1][1])
            continued = line.endswith("\\")
        elif line.startswith("$ "):
            pairs.append((line[2:], []))
            continued = line.endswith("\\")
        else:
            pairs[-1][1].append(line)
    return [(cmd, "\n".join(out).strip() + "\n" if any(out) else "") for cmd, out in pairs]


_CHECKER = doctest.OutputChecker()
_OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def run_block(block: Block, folder: Path, *, exact_spaces: bool = False) -> None:
    """Run one runnable block in ``folder``; :class:`BlockError` if it fails. With
    ``exact_spaces``, a console block's output is compared space for space (``...`` still
    stands for any text): for a page that shows how output lines up."""
    if block.lang == "python":
        script = folder / f"block_{block.line}.py"
        script.write_text(block.code)
        _run([sys.executable, script.name], folder, block.where)
        return
    for command, expected in _commands(block):
        got = _run(["bash", "-c", command], folder, f"{block.where}: $ {command}")
        options = doctest.ELLIPSIS if exact_spaces else _OPTIONS
        if expected and not _CHECKER.check_output(expected, got, options):
            raise BlockError(f"{block.where}: $ {command}\n--- expected\n{expected}--- got\n{got}")


def run_page(page: str, folder: Path) -> int:
    """Run the runnable blocks of ``page`` in order in ``folder``; how many ran."""
    ran = 0
    for block in parse(page):
        check_rules(block)
        if block.lang == "text" or block.not_run is not None:
            continue
        run_block(block, folder)
        ran += 1
    return ran
