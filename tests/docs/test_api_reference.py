"""docs/api.md documents the public API, all of it and nothing that is not there.

* Every name of ``shoal.__all__`` has a heading of its own in docs/api.md (a code span in a
  heading: ``### `ORSetHandle```).
* Every code span of a heading names something that exists: a public name, or a dotted path
  from one (``Peer.open``), so that a renamed or removed name cannot linger in the docs.
* Within a class's section (its heading down to the next heading of the same or a higher
  level), every public member of the class appears in a code span: its methods and
  properties (inherited from shoal's own classes too), its dataclass fields, an exception's
  constructor parameters, and for ``Peer`` every parameter of ``Peer.open``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import shoal

API = Path(__file__).resolve().parent.parent.parent / "docs" / "api.md"

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_CODE = re.compile(r"`([^`]+)`")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OURS = ("crdt", "store", "sync", "shoal")


@dataclass(frozen=True)
class Section:
    level: int
    names: tuple[str, ...]  # the code spans of its heading
    text: str  # the heading's section, subsections included


def sections(markdown: str) -> list[Section]:
    lines = markdown.splitlines()
    found: list[tuple[int, int, tuple[str, ...]]] = []
    fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading:
            found.append((i, len(heading[1]), tuple(_CODE.findall(heading[2]))))
    out = []
    for k, (start, level, names) in enumerate(found):
        end = next((s for s, lv, _ in found[k + 1 :] if lv <= level), len(lines))
        out.append(Section(level, names, "\n".join(lines[start:end])))
    return out


def code_identifiers(text: str) -> set[str]:
    """Every identifier inside a code span or a code block of ``text``."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    spans = _CODE.findall(re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S))
    return {ident for chunk in [*spans, *blocks] for ident in _IDENT.findall(chunk)}


def public_members(obj: object) -> set[str]:
    if not inspect.isclass(obj):
        return set()
    names: set[str] = set()
    for cls in obj.__mro__:
        if cls.__module__.split(".")[0] in OURS:
            names |= {n for n in vars(cls) if not n.startswith("_")}
    if dataclasses.is_dataclass(obj):
        names |= {f.name for f in dataclasses.fields(obj)}
    if issubclass(obj, BaseException) and "__init__" in vars(obj):
        names |= set(inspect.signature(obj).parameters)
    if obj is shoal.Peer:
        names |= {p for p in inspect.signature(shoal.Peer.open).parameters if p != "engine"}
    return names


def _missing_headings(markdown: str) -> list[str]:
    headed = {name for section in sections(markdown) for name in section.names}
    return [name for name in shoal.__all__ if name not in headed]


def _undocumented_members(markdown: str) -> dict[str, list[str]]:
    by_name = {n: s for s in sections(markdown) for n in s.names if n in shoal.__all__}
    missing: dict[str, list[str]] = {}
    for name, section in by_name.items():
        lacking = sorted(public_members(getattr(shoal, name)) - code_identifiers(section.text))
        if lacking:
            missing[name] = lacking
    return missing


def _resolve(span: str) -> bool:
    """Does the dotted path at the start of ``span`` exist, starting from a public name?"""
    path = re.match(r"[A-Za-z_][A-Za-z0-9_.]*", span)
    if path is None:
        return False
    first, *rest = path[0].rstrip(".").split(".")
    if first not in shoal.__all__:
        return False
    obj: object = getattr(shoal, first)
    for part in rest:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def test_every_public_name_has_a_heading() -> None:
    missing = _missing_headings(API.read_text())
    assert not missing, f"docs/api.md has no heading for {missing}"


def test_every_heading_names_something_that_exists() -> None:
    ghosts = [span for s in sections(API.read_text()) for span in s.names if not _resolve(span)]
    assert not ghosts, f"docs/api.md has headings for names shoal does not have: {ghosts}"


def test_every_public_member_is_documented_in_its_section() -> None:
    missing = _undocumented_members(API.read_text())
    assert not missing, f"docs/api.md does not mention these members: {missing}"


# The checks themselves, on docs/api.md with one thing taken away.


@pytest.mark.parametrize("name", ["Subscription", "LOCAL_QUORUM", "__version__"])
def test_a_name_without_its_heading_is_caught(name: str) -> None:
    text = API.read_text()
    lines = [ln for ln in text.splitlines() if not (ln.startswith("#") and f"`{name}`" in ln)]
    assert len(lines) < len(text.splitlines())
    assert name in _missing_headings("\n".join(lines))


def test_a_heading_for_a_name_that_does_not_exist_is_caught() -> None:
    assert not _resolve("Peer.no_such_method(prefix=None)")
    assert not _resolve("Nope")
    assert _resolve("Peer.open(path_or_url, *, ...)")


def test_a_member_missing_from_its_section_is_caught() -> None:
    text = API.read_text().replace("`dial_learned`", "`the dial option`")
    assert "dial_learned" in _undocumented_members(text).get("Peer", [])
