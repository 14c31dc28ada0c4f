"""``shoal inspect``'s text listing is one object a line in columns aligned with spaces (key,
type, value with its siblings, version vector), as docs/operations.md shows it, not
separated by tabs; ``--json`` and ``--keys`` print what they printed. A real ``shoal
inspect`` process on a real database (its stdout a pipe: the plain text, not rich's table).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.shoal.shoal_run import run_shoal
from tests.transport.conftest import eventually, local_value, open_peer

KINDS = {"cart:alice": "orset", "visits": "pncounter", "note": "mvregister", "title": "lww"}


async def _make(folder: Path) -> Path:
    """A database whose keys, types and values differ in width, one with two siblings: two
    replicas set the note apart, then meet."""
    a_db, b_db = folder / "a.db", folder / "b.db"
    for db, note in ((a_db, "from a"), (b_db, "from b")):
        peer = await open_peer(db, listen=None)
        await peer.mvregister("note").set(note)
        await peer.aclose()
    a = await open_peer(a_db)
    try:
        await a.orset("cart:alice").add("milk")
        await a.orset("cart:alice").add("eggs")
        await a.pncounter("visits").increment(3)
        await a.lww("title").set("Groceries for the whole week")
        b = await open_peer(b_db, peers=[a.url])
        try:
            await eventually(lambda: len(local_value(a, "note") or ()) == 2, "two siblings")
        finally:
            await b.aclose()
    finally:
        await a.aclose()
    return a_db


async def test_inspect_lists_objects_in_columns_aligned_with_spaces(tmp_path: Path) -> None:
    db = await _make(tmp_path)
    code, out, err = await run_shoal("inspect", "--db", str(db))
    assert code == 0, err
    assert "\t" not in out, out
    lines = out.splitlines()
    rows = {line.split()[0]: line for line in lines[2:]}
    assert sorted(rows) == sorted(KINDS), out
    key_w = max(map(len, KINDS))
    kind_w = max(map(len, KINDS.values()))
    for key, line in rows.items():
        assert line[:key_w].rstrip() == key and line[key_w : key_w + 2] == "  ", line
        kind = line[key_w + 2 :][:kind_w]
        assert kind.rstrip() == KINDS[key], line
        value = line[key_w + 2 + kind_w :]
        assert value[:2] == "  " and value[2] != " ", line
    assert "siblings=2" in rows["note"]
    assert len({line.index("  vv={") for line in rows.values()}) == 1, out

    # The machine-readable forms are as they were.
    code, out, err = await run_shoal("inspect", "--db", str(db), "--json")
    assert code == 0, err
    assert {o["key"]: o["type"] for o in json.loads(out)["objects"]} == KINDS
    code, out, err = await run_shoal("inspect", "--db", str(db), "--keys")
    assert (code, out) == (0, "cart:alice\nnote\ntitle\nvisits\n"), err
