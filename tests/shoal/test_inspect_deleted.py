"""``shoal inspect`` leaves deleted objects out of its listings and says how many there are;
a ``KEY`` that was deleted is reported as deleted, not as absent. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json

from shoal import cli
from tests.transport.conftest import open_peer
from tests.transport.test_keys_live import NewDatabase, new_db

__all__ = ["new_db"]


def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


async def inspect(*args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(_cli, ["inspect", *args])


async def test_inspect_leaves_deleted_objects_out_and_counts_them(new_db: NewDatabase) -> None:
    db = await new_db("shop")
    peer = await open_peer(db, listen=None)
    try:
        await peer.orset("cart").add("milk")
        await peer.pncounter("visits").increment(3)
        await peer.lww("title").set("Groceries")
        await peer.orset("old:list").add("eggs")
        await peer.delete("title")
        await peer.delete("old:list")
    finally:
        await peer.aclose()

    code, out, err = await inspect("--db", db)
    assert code == 0, err
    lines = out.splitlines()
    assert "keys 2  deleted 2  log " in lines[1]
    assert [line.split()[0] for line in lines[2:]] == ["cart", "visits"]

    code, out, err = await inspect("--db", db, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["keys"], report["deleted"]) == (2, 2)
    assert [o["key"] for o in report["objects"]] == ["cart", "visits"]
    assert report["kind_clashes"] == {}

    for extra in ([], ["--json"]):
        code, out, err = await inspect("--db", db, "title", *extra)
        assert (code, out) == (1, "")
        assert f"inspect: key 'title' was deleted (in {db})" in err
    code, out, err = await inspect("--db", db, "nothing")
    assert code == 1 and f"inspect: no key 'nothing' in {db}" in err
    code, out, err = await inspect("--db", db, "cart", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 0

    code, out, err = await inspect("--db", db, "--keys")
    assert code == 0, err
    assert out == "cart\nvisits\n"  # one key a line: the count goes to stderr
    assert "deleted keys (not listed): 2" in err
    code, out, err = await inspect("--db", db, "--keys", "--json")
    assert code == 0 and json.loads(out) == ["cart", "visits"]
    code, out, err = await inspect("--db", db, "--keys", "old")
    assert (code, out) == (0, "") and "deleted keys (not listed): 1" in err
