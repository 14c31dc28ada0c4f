"""The defaults and signatures the docs state are the code's.

* docs/api.md, ``ReplicaConfig`` and ``TransportConfig``: each field written as
  ``- `name` (DEFAULT)`` (or ``, `name` (DEFAULT)`` within a bullet) has that default, and
  every field with a default is given one there.
* docs/api.md, ``Peer.open``: each parameter written as ``- `name` (TYPE, default `X`)``
  has that default.
* docs/api.md, the peer's "Other methods and properties" and the handles' reads: each
  ``name(ARGS)`` written in a bullet's code span takes those parameters (names, kinds,
  defaults) in that order.
* docs/operations.md, the table of ``shoal serve``'s options: it lists every option of the
  command and nothing else.
* docs/operations.md, "Upgrades": the schema and link protocol versions it gives as today's
  are :data:`store.SCHEMA_VERSION` and the handshake's ``PROTO_VERSION``.

test_api_reference.py checks that every name is mentioned; this checks what is said of it.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal import cli
from tests.docs.test_api_reference import sections

ROOT = Path(__file__).resolve().parent.parent.parent
API = ROOT / "docs" / "api.md"
OPERATIONS = ROOT / "docs" / "operations.md"

_UNITS = {"KiB": 2**10, "MiB": 2**20, "days": 86_400.0}
# `name` (DEFAULT) in a bullet: DEFAULT is a number (with a unit) or a code span.
_FIELD = re.compile(r"`(\w+)` \((`[^`]+`|[0-9][0-9.,]*(?: (?:KiB|MiB|days))?)\)")
_PARAM = re.compile(r"^- `(\w+)` \([^\n]*?default `([^`]+)`\)", re.M)


def section(markdown: str, name: str) -> str:
    """The text of the section headed by the code span ``name``."""
    found = [s.text for s in sections(markdown) if name in s.names]
    assert found, f"docs/api.md has no section for {name}"
    return found[0]


def documented_value(text: str) -> Any:
    """A default as the docs write it: ``5.0``, ``100000``, ``4 MiB``, ``7 days``, ```None```."""
    if text.startswith("`"):
        return ast.literal_eval(text.strip("`"))
    number, _, unit = text.partition(" ")
    value = ast.literal_eval(number.replace(",", "_"))
    return value * _UNITS[unit] if unit else value


def documented_fields(markdown: str, name: str) -> dict[str, str]:
    """``{name: default as written}`` of the bullets of the section ``name`` (a property
    such as ``objects_at_start`` too: the caller keeps the fields)."""
    out: dict[str, str] = {}
    for bullet in bullets(section(markdown, name)):
        out |= dict(_FIELD.findall(bullet))
    return out


def bullets(text: str) -> list[str]:
    """The top-level bullets of ``text``, each with its indented continuation lines."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            out.append(line)
        elif line.startswith("  ") and out:
            out[-1] += " " + line.strip()
    return out


def wrong_defaults(markdown: str, cls: type) -> dict[str, tuple[Any, Any]]:
    """``{field: (documented, actual)}`` for every field whose default the docs misstate or
    leave out (documented ``None``: not given)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    doc = documented_fields(markdown, cls.__name__)
    wrong = {}
    for name, field in fields.items():
        if field.default is dataclasses.MISSING:
            continue
        value = documented_value(doc[name]) if name in doc else None
        if name not in doc or value != field.default or type(value) is not type(field.default):
            wrong[name] = (value, field.default)
    return wrong


@pytest.mark.parametrize("cls", [shoal.ReplicaConfig, shoal.TransportConfig])
def test_every_configuration_default_is_the_documented_one(cls: type) -> None:
    wrong = wrong_defaults(API.read_text(), cls)
    if cls is shoal.TransportConfig:  # documented as replaced by ReplicaConfig's: no default
        wrong.pop("max_message_bytes", None)
    assert not wrong, f"docs/api.md, {cls.__name__}: (documented, actual) defaults {wrong}"


def test_every_documented_default_of_peer_open_is_its_own() -> None:
    text = section(API.read_text(), "Peer.open(path_or_url, *, ...)")
    params = inspect.signature(shoal.Peer.open).parameters
    documented = dict(_PARAM.findall(text))
    assert {"listen", "n", "subscriber_queue", "http"} <= set(documented)
    wrong = {
        name: (value, params[name].default if name in params else "no such parameter")
        for name, value in documented.items()
        if name not in params or ast.literal_eval(value) != params[name].default
    }
    assert not wrong, f"docs/api.md, Peer.open: (documented, actual) defaults {wrong}"


# -- signatures written as calls ---------------------------------------------------------------

_CALL = re.compile(r"^- `(?:await )?(\w+)\(([^`]*)\)`", re.M)


def _shape(args: str) -> list[tuple[str, str, Any]]:
    """(name, kind, default) of each parameter of ``def f(ARGS)``."""
    tree = ast.parse(f"def f({args}): pass").body[0]
    assert isinstance(tree, ast.FunctionDef)
    a = tree.args
    positional = [*a.posonlyargs, *a.args]
    defaults = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + [
        ast.literal_eval(d) for d in a.defaults
    ]
    out = [(p.arg, "positional", d) for p, d in zip(positional, defaults, strict=True)]
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        default = inspect.Parameter.empty if d is None else ast.literal_eval(d)
        out.append((p.arg, "keyword", default))
    return out


def _actual(fn: Any) -> list[tuple[str, str, Any]]:
    return [
        (p.name, "keyword" if p.kind is inspect.Parameter.KEYWORD_ONLY else "positional", p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.name != "self"
    ]


# Written otherwise on purpose: subscribe(key, *, maxsize=None) and subscribe(prefix=P) are
# the two ways to call subscribe(key=None, *, prefix=None, maxsize=None).
_SEVERAL_FORMS = {"subscribe"}


def wrong_signatures(text: str, cls: type) -> dict[str, tuple[str, list[Any]]]:
    """``{method: (documented args, actual shape)}`` for each call written in ``text`` whose
    parameters are not the method's. A keyword-only parameter with a default that the docs
    leave out (``forget``'s ``by``, for tools) is not counted."""
    wrong = {}
    for name, args in _CALL.findall(text):
        if name in _SEVERAL_FORMS:
            continue
        documented = _shape(args)
        named = {p for p, _, _ in documented}
        actual = [
            (p, kind, default)
            for p, kind, default in _actual(getattr(cls, name))
            if p in named or kind != "keyword" or default is inspect.Parameter.empty
        ]
        if documented != actual:
            wrong[name] = (args, actual)
    return wrong


def test_the_peers_methods_take_the_documented_parameters() -> None:
    text = section(API.read_text(), "Peer")
    assert len(_CALL.findall(text)) >= 8
    wrong = wrong_signatures(text, shoal.Peer)
    assert not wrong, f"docs/api.md, Peer: (documented, actual) parameters {wrong}"


def test_the_handles_reads_take_the_documented_parameters() -> None:
    text = re.search(r"^## Handles\n(.*?)^### ", API.read_text(), re.S | re.M)
    assert text is not None
    assert len(_CALL.findall(text[1])) == 2
    wrong = wrong_signatures(text[1], shoal.ORSetHandle)
    assert not wrong, f"docs/api.md, Handles: (documented, actual) parameters {wrong}"


# -- shoal serve's options ---------------------------------------------------------------------


def serve_options() -> set[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    serve = sub.choices["serve"]  # type: ignore[index]
    return {
        opt
        for action in serve._actions
        for opt in action.option_strings
        if opt not in ("-h", "--help")
    }


def table_options(markdown: str) -> set[str]:
    """The options in the first column of the table of ``shoal serve``'s options."""
    found = re.search(r"^\| option \| meaning \|\n(.*?)\n\n", markdown, re.S | re.M)
    assert found, "docs/operations.md has no table of shoal serve's options"
    cells = [row.split("|")[1] for row in found[1].splitlines()[1:]]
    return {m for cell in cells for m in re.findall(r"`(--[\w-]+)", cell)}


def test_the_serve_table_lists_every_option_of_shoal_serve() -> None:
    documented, actual = table_options(OPERATIONS.read_text()), serve_options()
    assert "--secret-file" in actual
    assert documented == actual, (
        f"docs/operations.md's serve table lacks {sorted(actual - documented)} "
        f"and names {sorted(documented - actual)}, which shoal serve does not take"
    )


# -- the checks themselves, on the docs with one thing changed ---------------------------------


def test_a_misstated_configuration_default_is_caught() -> None:
    text = API.read_text()
    changed = text.replace("`hint_window` (3600.0)", "`hint_window` (600.0)")
    assert wrong_defaults(changed, shoal.ReplicaConfig) == {"hint_window": (600.0, 3600.0)}
    changed = text.replace("`queue_bytes` (64 MiB)", "`queue_bytes` (16 MiB)")
    assert "queue_bytes" in wrong_defaults(changed, shoal.TransportConfig)
    left_out = text.replace("`vnodes` (16)", "`vnodes`")
    assert wrong_defaults(left_out, shoal.ReplicaConfig) == {"vnodes": (None, 16)}


def test_a_misstated_signature_is_caught() -> None:
    text = section(API.read_text(), "Peer")
    changed = text.replace("page=500)", "page=100)")
    assert set(wrong_signatures(changed, shoal.Peer)) == {"keys"}
    changed = text.replace('connected(timeout=10.0, *, until="settled")', "connected(timeout=5.0)")
    assert set(wrong_signatures(changed, shoal.Peer)) == {"connected"}


def test_an_option_left_out_of_the_serve_table_is_caught() -> None:
    text = OPERATIONS.read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("| `--relay`"))
    assert "--relay" not in table_options(text.replace(row + "\n", ""))


def _today(text: str, what: str) -> int:
    """The version docs/operations.md's Upgrades gives ``what`` ("N today")."""
    found = re.search(rf"\*\*{what}\*\* (?:has a version \(|\(the handshake and the framing\) "
                      r"has a version, )(\d+) today", text)  # fmt: skip
    assert found, f"docs/operations.md does not say which version {what} is today"
    return int(found[1])


def test_the_upgrades_section_gives_todays_schema_and_protocol_versions() -> None:
    from store import SCHEMA_VERSION
    from sync.transport.auth import PROTO_VERSION

    text = OPERATIONS.read_text()
    assert _today(text, "The database schema") == SCHEMA_VERSION
    assert f"version {SCHEMA_VERSION - 1} to {SCHEMA_VERSION}" in text  # what the last changed
    assert _today(text, "The link protocol") == PROTO_VERSION
