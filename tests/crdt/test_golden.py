"""Golden vectors: the exact ``to_dict()`` encoding of every kind, pinned in JSON lines.

``tests/crdt/golden/<kind>.jsonl`` holds one case per line::

    {"name": "...", "ops": [...], "replica": "A", "encoded": {...}}

``ops`` are steps in the form of ``tests/crdt/conftest.py`` (mutations on replicas A, B, C,
``["merge", dst, src]``, ``["deliver", dst, i]``); ``replica`` (default ``"A"``) names whose
final state ``encoded`` is. The test rebuilds that state from ``ops`` and requires its
encoding to be exactly ``encoded`` (as canonical JSON text, so ``1``, ``1.0`` and ``true``
differ), and decodes ``encoded`` and requires it to equal the rebuilt state and to re-encode
to the same text.

A change to the encoding is a format change: it needs a new format version and a migration,
not new vectors. To add a case, append a line with ``"encoded": null`` and run
``SHOAL_REGEN_GOLDEN=1 .venv/bin/pytest tests/crdt/test_golden.py``, which fills in (and
rewrites) every ``encoded`` from the implementation; review the diff by eye before committing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import crdt
from tests.crdt.conftest import KINDS, run_history

__all__: list[str] = []

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("SHOAL_REGEN_GOLDEN") == "1"


def _text(d: Any) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _build(kind: str, case: dict[str, Any]) -> Any:
    return run_history(kind, case["ops"]).states[case.get("replica", "A")]


def _regenerate(kind: str) -> None:
    path = GOLDEN / f"{kind}.jsonl"
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        case = json.loads(raw)
        encoded = json.loads(_text(_build(kind, case).to_dict()))  # keys sorted, recursively
        ordered = {"name": case["name"], "ops": case["ops"]}
        if "replica" in case:
            ordered["replica"] = case["replica"]
        ordered["encoded"] = encoded
        lines.append(json.dumps(ordered, separators=(",", ":"), ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cases() -> list[Any]:
    out = []
    for kind in KINDS:
        if REGEN:
            _regenerate(kind)
        path = GOLDEN / f"{kind}.jsonl"
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if raw.strip():
                case = json.loads(raw)
                out.append(pytest.param(kind, case, id=f"{kind}:{n}:{case['name']}"))
    return out


def test_every_kind_has_golden_vectors() -> None:
    for kind in KINDS:
        lines = (GOLDEN / f"{kind}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len([x for x in lines if x.strip()]) >= 3, kind


@pytest.mark.parametrize(("kind", "case"), _cases())
def test_golden_vector_rebuilt_from_ops_encodes_exactly_and_decodes_back(
    kind: str, case: dict[str, Any]
) -> None:
    assert case["encoded"] is not None, "no encoding yet: run with SHOAL_REGEN_GOLDEN=1"
    assert case["encoded"]["type"] == kind
    built = _build(kind, case)
    assert _text(built.to_dict()) == _text(case["encoded"])
    decoded = crdt.from_dict(case["encoded"])
    assert decoded == built
    assert decoded.value == built.value
    assert _text(decoded.to_dict()) == _text(case["encoded"])
