"""The demo's output: a narrator that writes rich or plain text, and what it shows.

:class:`Narrator` writes one short line per event, coloured with rich on a terminal and as
plain text (no escape codes at all) anywhere else, and prints tables of replicas side by
side (:func:`plain_table` without rich). :class:`ReplicaView` is what one replica holds at
the end of the demo, with the comparisons and the cell texts the final table uses.
rich belongs to the ``cli`` extra: without it everything is plain text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = [
    "Narrator",
    "ReplicaView",
    "Segment",
    "format_items",
    "format_version_vector",
    "plain_table",
]

Segment = tuple[str, str]
"""A piece of a line: ``(text, style)``; the style is a rich style name, or ``""``."""


class Narrator:
    """Writes the demo's lines: rich with colours on a terminal, plain text otherwise.

    ``color=None`` decides from ``stream.isatty()``. Plain mode writes no escape codes at
    all, whatever ``FORCE_COLOR`` says, and falls back to ASCII symbols when the stream's
    encoding is not UTF. ``styles`` maps a name (a device) to the rich style it is shown in.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        color: bool | None = None,
        styles: Mapping[str, str] | None = None,
    ) -> None:
        self.stream = stream
        self.styles: Mapping[str, str] = styles or {}
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
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower()
        unicode = encoding.replace("-", "").startswith("utf")
        self.tick = "✓" if unicode else "ok"
        self.cross = "✗" if unicode else "FAIL"
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
        return (f"{name:<14}", self.styles.get(name, "bold"))

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
                table.add_column(name, style=self.styles.get(name, ""), overflow="fold")
            for row in rows:
                table.add_row(*row)
            self._console.print(table)
            return
        self._write([("", "")])
        self._write([(title, "")])
        self.stream.write(plain_table(["", *columns], rows) + "\n")
        self.stream.flush()


def plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
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


# -- what a replica holds ------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaView:
    """What one peer's file holds at the end: the list, the note's siblings, the list's
    version vector, the hints it still holds, and whether it is a home of the list (the
    relay is not, yet it holds a copy: a relay holds every partition its peers are homes
    of)."""

    name: str
    replica_id: str
    items: frozenset[str]
    note: tuple[Any, ...]
    version_vector: dict[str, int]
    hints: int = 0
    home: bool = True

    def same_data(self, other: ReplicaView) -> bool:
        return (
            self.items == other.items
            and sorted(map(repr, self.note)) == sorted(map(repr, other.note))
            and self.version_vector == other.version_vector
        )

    def show_role(self) -> str:
        return "home" if self.home else "relay, not a home"

    def show_items(self) -> str:
        return "\n".join(sorted(self.items)) if self.items else "(empty)"

    def show_note(self) -> str:
        return " | ".join(map(str, self.note)) if self.note else "(none)"


def format_items(items: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(items)) if items else "(empty)"


def format_version_vector(vv: Mapping[str, int], names: Mapping[str, str]) -> str:
    parts = sorted(f"{names.get(r, r[:8])} {n}" for r, n in vv.items())
    return "\n".join(parts) if parts else "(empty)"
