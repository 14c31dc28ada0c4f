"""docs/api.md's table of the status snapshot names every field ``peer.status()`` returns:
each top-level field in a row of its own, and each field of ``node``, ``transport``,
``engine``, a ``links`` entry and a ``peers`` entry in a code span of that row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.transport.conftest import linked, open_peer

API = Path(__file__).resolve().parent.parent.parent / "docs" / "api.md"

NESTED = ("node", "transport", "engine", "links", "peers")


def table(markdown: str) -> dict[str, str]:
    """``{field: its row}`` of the table under "The status snapshot"; a row naming several
    fields (``replica_id``, ``url``, ...) is each one's."""
    found = re.search(r"^#### The status snapshot\n(.*?)^#", markdown, re.S | re.M)
    assert found, "docs/api.md has no 'The status snapshot' section"
    rows: dict[str, str] = {}
    for line in found[1].splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            rows |= {name: line for name in re.findall(r"`(\w+)`", first)}
    return rows


def undocumented(status: dict[str, Any], markdown: str) -> list[str]:
    rows = table(markdown)
    missing = [name for name in status if name not in rows]
    for name in NESTED:
        fields = status[name]
        if name in ("links", "peers"):  # url -> fields, replica id -> fields
            fields = next(iter(fields.values()))
        row = rows.get(name, "")
        missing += [f"{name}.{field}" for field in fields if f"`{field}`" not in row]
    return missing


async def test_every_field_of_the_status_snapshot_is_in_the_table(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        status = await b.status()
    finally:
        await b.aclose()
        await a.aclose()
    assert status["links"] and status["peers"] and status["engine"]
    missing = undocumented(status, API.read_text())
    assert not missing, f"docs/api.md's status table does not name {missing}"

    # The check bites: a counter taken out of its row, a row taken out.
    text = API.read_text()
    assert "node.objects_loaded" in undocumented(status, text.replace("`objects_loaded`", "x"))
    row = next(ln for ln in text.splitlines() if ln.startswith("| `uptime_s` |"))
    assert "uptime_s" in undocumented(status, text.replace(row + "\n", ""))
