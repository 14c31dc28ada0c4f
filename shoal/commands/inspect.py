"""``shoal inspect``: print a database's keys, types, values, siblings and version vectors
without starting a peer (the options, output and exit statuses are in :mod:`shoal.cli`).

The records are :func:`store.report.report_database`'s (and :func:`store.report.report_keys`'
for ``--keys``); this module only formats them: JSON, a rich table and progress bar on a
terminal, plain text otherwise or when rich is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from shoal.commands.common import about_db, error, fail

if TYPE_CHECKING:
    from store.report import DatabaseReport, ObjectReport

__all__ = ["cmd_inspect"]

PROGRESS_THRESHOLD = 2000


def _object_json(obj: ObjectReport) -> dict[str, Any]:
    """One object as ``shoal inspect --json`` lists it."""
    entry: dict[str, Any] = {"key": obj.key, "type": obj.kind, "value": obj.value}
    if obj.siblings is not None:
        entry["siblings"] = obj.siblings
    entry["version_vector"] = obj.version_vector
    return entry


def _report_json(report: DatabaseReport) -> dict[str, Any]:
    """The report as ``shoal inspect --json`` prints it (its ``objects`` as the report has
    them: none when they were streamed)."""
    return {
        "db": report.db,
        "replica_id": report.replica_id,
        "schema_version": report.schema_version,
        "keys": report.keys,
        "deleted": report.deleted,
        "log_size": report.log_size,
        "pending_hints": report.pending_hints,
        "applied": report.applied,
        "peers": [
            {
                "replica_id": p.replica_id,
                "address": p.address,
                "site": p.site,
                "forgotten": p.forgotten,
            }
            for p in report.peers
        ],
        "objects": [_object_json(obj) for obj in report.objects],
        "kind_clashes": {key: list(kinds) for key, kinds in report.kind_clashes.items()},
        "map_clashes": {
            key: [{"path": list(path), "kinds": list(kinds)} for path, kinds in inner]
            for key, inner in report.map_clashes.items()
        },
    }


def _have_rich() -> bool:
    return importlib.util.find_spec("rich") is not None


class _ProgressBar:
    """A rich progress bar that appears only once the work is large (>= threshold rows).
    Made only when rich is installed (without it, inspect shows no progress)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_THRESHOLD:
            return
        if self._progress is None:
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.start()
            self._task = self._progress.add_task("reading the database", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def cmd_inspect(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from store.errors import StoreError
    from store.report import report_database

    if args.keys:
        return _inspect_keys(args)
    tty = sys.stdout.isatty() and not args.json and _have_rich()
    bar = _ProgressBar() if tty else None
    # The summary comes first and is known only once every object is read: the objects are
    # rendered as they are read into a spool (a file past SPOOL_BYTES), so memory stays
    # bounded however many keys the database holds.
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES, "w+", encoding="utf-8") as spool:
        listed = 0

        def emit(obj: ObjectReport) -> None:
            nonlocal listed
            if args.json:
                text = json.dumps(_object_json(obj), indent=2, sort_keys=True)
                spool.write(("" if listed == 0 else ",\n") + textwrap.indent(text, "    "))
            else:
                spool.write(json.dumps(_row(obj)) + "\n")
            listed += 1

        try:
            data = _report_json(report_database(args.db, args.key, bar, emit))
        except (ValueError, SQLAlchemyError, StoreError, OSError) as exc:
            return error(args, exc, f"inspect: {about_db(exc, args.db)}")
        finally:
            if bar is not None:
                bar.close()
        if args.key is not None and listed == 0:
            if data["deleted"]:
                return fail(f"inspect: key {args.key!r} was deleted (in {args.db})")
            return fail(f"inspect: no key {args.key!r} in {args.db}")
        spool.seek(0)
        if args.json:
            _print_json(data, spool, listed)
        elif tty:
            _print_inspect_rich(data, spool)
        else:
            _print_inspect_plain(data, spool)
    return 0


SPOOL_BYTES = 8 << 20
_TABLE_ROWS = 1000  # rows per rich table on a terminal
_SPOOLED = "\x00objects\x00"


def _print_json(data: dict[str, Any], spool: IO[str], listed: int) -> None:
    """``data`` as ``json.dumps(indent=2, sort_keys=True)`` prints it, its ``objects`` the
    ``listed`` ones in ``spool`` (already indented as list items)."""
    if listed == 0:
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    text = json.dumps({**data, "objects": [_SPOOLED]}, indent=2, sort_keys=True)
    before, after = text.split(f"    {json.dumps(_SPOOLED)}\n")
    out = sys.stdout
    out.write(before)
    shutil.copyfileobj(spool, out)
    out.write("\n" + after + "\n")


def _row(obj: ObjectReport) -> list[Any]:
    """An object as a line of the text listing shows it: key, type, the value and version
    vector shortened, its siblings (None: not a multi-value register)."""
    return [obj.key, obj.kind, _short(obj.value), obj.siblings, obj.version_vector]


def _inspect_keys(args: argparse.Namespace) -> int:
    """``shoal inspect --db DB --keys [PREFIX]``: one key per line (JSON: a list); the
    count of deleted keys left out goes to stderr, so stdout stays a plain listing."""
    from sqlalchemy.exc import SQLAlchemyError

    from store.errors import StoreError
    from store.report import report_keys

    found: list[str] = []

    def emit(page: list[str]) -> None:
        if args.json:
            found.extend(page)
        else:
            sys.stdout.write("".join(f"{k}\n" for k in page))

    try:
        listed = report_keys(args.db, args.key, emit)
    except (ValueError, SQLAlchemyError, StoreError) as exc:
        return fail(f"inspect: {exc}")
    if args.json:
        print(json.dumps(found))
    print(f"deleted keys (not listed): {listed.deleted}", file=sys.stderr)
    return 0


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_clashes(data: dict[str, Any], out: Callable[[str], Any]) -> None:
    """One line naming the keys that hold live objects of several types, if any, and one
    naming the keys of maps that hold several types."""
    clashes = data["kind_clashes"]
    if clashes:
        named = ", ".join(f"{key} ({' and '.join(kinds)})" for key, kinds in clashes.items())
        out(f"kind clashes {len(clashes)}: {named}")
    inside = data["map_clashes"]
    if inside:
        named = "; ".join(
            f"{key}: "
            + ", ".join(
                f"{json.dumps(c['path'], ensure_ascii=False)} ({' and '.join(c['kinds'])})"
                for c in found
            )
            for key, found in inside.items()
        )
        out(f"kind clashes inside maps {sum(len(found) for found in inside.values())}: {named}")


def _print_inspect_plain(data: dict[str, Any], rows: IO[str]) -> None:
    print(f"database {data['db']}  replica {data['replica_id']}  schema v{data['schema_version']}")
    print(
        f"keys {data['keys']}  deleted {data['deleted']}  log {data['log_size']}  "
        f"hints {data['pending_hints']}  writes held per origin {_short(data['applied'], 200)}"
    )
    _print_clashes(data, print)
    # Columns lined up with spaces, each as wide as its widest cell: a first pass over the
    # spool finds the widths, a second prints (memory stays bounded).
    widths = [0, 0, 0]
    for line in rows:
        cells = _plain_cells(line)
        widths = [max(w, len(cell)) for w, cell in zip(widths, cells[:-1], strict=True)]
    rows.seek(0)
    for line in rows:
        cells = _plain_cells(line)
        padded = [cell.ljust(w) for cell, w in zip(cells[:-1], widths, strict=True)]
        print("  ".join([*padded, cells[-1]]))


def _plain_cells(line: str) -> list[str]:
    """A spooled row as the plain listing's cells: key, type, the value (and its siblings,
    if several), ``vv=`` and the version vector."""
    key, kind, value, siblings, vv = json.loads(line)
    sib = f"  siblings={siblings}" if (siblings or 0) > 1 else ""
    return [key, kind, f"{value}{sib}", f"vv={_short(vv, 120)}"]


def _print_inspect_rich(data: dict[str, Any], rows: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{data['db']}[/]  replica [cyan]{data['replica_id']}[/]  "
        f"schema v{data['schema_version']}  keys {data['keys']}  deleted {data['deleted']}  "
        f"log {data['log_size']}  hints {data['pending_hints']}"
    )
    _print_clashes(data, console.print)
    lines = iter(rows)
    first = True
    while True:  # ends: each table takes up to _TABLE_ROWS lines of the spool
        chunk = list(itertools.islice(lines, _TABLE_ROWS))
        if not chunk and not first:
            return
        table = Table("key", "type", "value", "siblings", "version vector", show_header=first)
        for line in chunk:
            key, kind, value, sib, vv = json.loads(line)
            table.add_row(
                key, kind, value, f"[yellow]{sib}[/]" if sib and sib > 1 else "", _short(vv, 60)
            )
        console.print(table)
        if len(chunk) < _TABLE_ROWS:
            return
        first = False
