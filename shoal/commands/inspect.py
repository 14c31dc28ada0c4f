"""``shoal inspect``: print a database's keys, types, values, siblings and version vectors
without starting a peer (the options, output and exit statuses are in :mod:`shoal.cli`).

The records are :func:`store.report.report_database`'s (and :func:`store.report.report_keys`'
for ``--keys``); this module only formats them: JSON, a rich table and progress bar on a
terminal, plain text otherwise or when rich is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shoal.commands.common import about_db, error, fail

if TYPE_CHECKING:
    from store.report import DatabaseReport

__all__ = ["cmd_inspect"]

PROGRESS_THRESHOLD = 2000


def _report_json(report: DatabaseReport) -> dict[str, Any]:
    """The report as ``shoal inspect --json`` prints it."""
    objects = []
    for obj in report.objects:
        entry: dict[str, Any] = {"key": obj.key, "type": obj.kind, "value": obj.value}
        if obj.siblings is not None:
            entry["siblings"] = obj.siblings
        entry["version_vector"] = obj.version_vector
        objects.append(entry)
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
        "objects": objects,
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
    try:
        data = _report_json(report_database(args.db, args.key, bar))
    except (ValueError, SQLAlchemyError, StoreError, OSError) as exc:
        return error(args, exc, f"inspect: {about_db(exc, args.db)}")
    finally:
        if bar is not None:
            bar.close()
    if args.key is not None and not data["objects"]:
        if data["deleted"]:
            return fail(f"inspect: key {args.key!r} was deleted (in {args.db})")
        return fail(f"inspect: no key {args.key!r} in {args.db}")
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    if tty:
        _print_inspect_rich(data)
    else:
        _print_inspect_plain(data)
    return 0


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


def _print_inspect_plain(data: dict[str, Any]) -> None:
    print(f"database {data['db']}  replica {data['replica_id']}  schema v{data['schema_version']}")
    print(
        f"keys {data['keys']}  deleted {data['deleted']}  log {data['log_size']}  "
        f"hints {data['pending_hints']}  writes held per origin {_short(data['applied'], 200)}"
    )
    _print_clashes(data, print)
    for obj in data["objects"]:
        sib = f"  siblings={obj['siblings']}" if obj.get("siblings", 0) > 1 else ""
        print(
            f"{obj['key']}\t{obj['type']}\t{_short(obj['value'])}{sib}\t"
            f"vv={_short(obj['version_vector'], 120)}"
        )


def _print_inspect_rich(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{data['db']}[/]  replica [cyan]{data['replica_id']}[/]  "
        f"schema v{data['schema_version']}  keys {data['keys']}  deleted {data['deleted']}  "
        f"log {data['log_size']}  hints {data['pending_hints']}"
    )
    _print_clashes(data, console.print)
    table = Table("key", "type", "value", "siblings", "version vector")
    for obj in data["objects"]:
        sib = obj.get("siblings")
        table.add_row(
            obj["key"],
            obj["type"],
            _short(obj["value"]),
            f"[yellow]{sib}[/]" if sib and sib > 1 else "",
            _short(obj["version_vector"], 60),
        )
    console.print(table)
