"""store.report: the read-only database report behind ``shoal inspect``, on SQLite and
PostgreSQL, in every form of database name the command line accepts."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import make_url

from store import Batch
from store.report import DatabaseReport, ObjectReport, report_database
from tests.store.conftest import Backend, fresh_pg_database, pg_url_or_skip
from tests.store.helpers import counter_row, log_entry, orset_row
from tests.transport.conftest import open_peer


async def _fill(url_or_path: str) -> str:
    """A cart, a note and a counter written by one peer; returns its replica id."""
    peer = await open_peer(url_or_path, listen=None)
    try:
        await peer.orset("cart").add("milk")
        await peer.orset("cart").add("eggs")
        await peer.mvregister("note").set("buy bread")
        await peer.pncounter("visits").increment(3)
        return peer.replica_id
    finally:
        await peer.aclose()


async def test_report_of_a_database_on_either_backend(backend: Backend) -> None:
    rid = await _fill(backend.url)
    report = await asyncio.to_thread(report_database, backend.url)
    assert isinstance(report, DatabaseReport)
    assert report.replica_id == rid and report.keys == 3 and report.log_size == 4
    assert report.applied == {rid: 4} and report.pending_hints == 0 and report.peers == ()
    assert report.objects == (
        ObjectReport("cart", "orset", ["eggs", "milk"], None, {rid: 2}),
        ObjectReport("note", "mvregister", ["buy bread"], 1, {rid: 1}),
        ObjectReport("visits", "pncounter", 3, None, {rid: 3}),
    )
    one = await asyncio.to_thread(report_database, backend.url, "note")
    assert [o.key for o in one.objects] == ["note"] and one.keys == 1


@pytest.mark.postgres
async def test_a_plain_postgresql_url_is_read_with_the_stores_driver() -> None:
    url, drop = await fresh_pg_database(pg_url_or_skip())
    try:
        rid = await _fill(url)
        plain = make_url(url).set(drivername="postgresql").render_as_string(False)
        assert plain.startswith("postgresql://")
        report = await asyncio.to_thread(report_database, plain)
        assert report.replica_id == rid and report.keys == 3
    finally:
        await drop()


async def test_a_sqlite_database_is_read_without_a_single_write(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    await _fill(str(db))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    # The store's identity sidecar and its lock file (which the report never takes).
    assert sorted(before) == ["a.db", "a.db.shoal-id", "a.db.shoal-lock"]
    for name in (str(db), f"sqlite:///{db}", f"sqlite+aiosqlite:///{db}"):
        assert (await asyncio.to_thread(report_database, name)).keys == 3
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {k: after[k] for k in before} == before
    # A reader of a WAL database needs SQLite's shared-memory index; SQLite may leave it and
    # an empty log behind, which hold nothing.
    assert set(after) - set(before) <= {"a.db-shm", "a.db-wal"}
    assert after.get("a.db-wal", b"") == b""


def test_what_is_not_a_shoal_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no database at"):
        report_database(tmp_path / "none.db")
    assert not (tmp_path / "none.db").exists()
    # Another program's database; and a meta table another program made, its version an
    # integer (that raised AttributeError).
    for name, statements, why in (
        ("other.db", ["CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('mine')"], ""),
        (
            "odd.db",
            [
                "CREATE TABLE meta (name TEXT, value)",
                "INSERT INTO meta VALUES ('schema_version', 5)",
            ],
            r": meta\.schema_version is 5",
        ),
    ):
        path = tmp_path / name
        with sqlite3.connect(path) as conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()
        before = path.read_bytes()
        with pytest.raises(ValueError, match="not a shoal database" + why):
            report_database(path)
        assert path.read_bytes() == before


def test_progress_is_reported_every_500_rows_and_at_the_end(tmp_path: Path) -> None:
    async def make() -> None:
        a = await open_peer(tmp_path / "a.db", listen=None)
        await asyncio.gather(*(a.gcounter(f"k{i}").increment() for i in range(1200)))
        await a.aclose()

    asyncio.run(make())
    calls: list[tuple[int, int]] = []
    report = report_database(tmp_path / "a.db", None, lambda d, t: calls.append((d, t)))
    assert report.keys == 1200
    total = calls[-1][1]
    assert total >= 1200 and calls[-1] == (total, total)
    assert [d for d, _ in calls[:-1]] == list(range(500, total + 1, 500))


def _posix_locks_of(path: Path) -> list[str]:
    """This process's POSIX record locks on the file at ``path``, from ``/proc/locks``."""
    ino, pid = path.stat().st_ino, os.getpid()
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "POSIX" and int(fields[4]) == pid and fields[5].endswith(f":{ino}"):
            held.append(" ".join(fields[1:4] + fields[6:]))
    return sorted(held)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
async def test_a_report_in_the_process_of_an_open_peer_keeps_sqlites_locks(
    tmp_path: Path,
) -> None:
    # SQLite's record locks belong to the process: closing any descriptor of the database
    # file drops them all, and another process would take the database for unused. An app
    # that reports on the database its own peer holds must not make its peer lose them.
    db = tmp_path / "a.db"
    rid = await _fill(str(db))
    peer = await open_peer(str(db), listen=None)
    try:
        await peer.orset("cart").add("tea")
        before = _posix_locks_of(db)
        assert before, "the open peer's SQLite connection holds a lock on the file"
        report = await asyncio.to_thread(report_database, str(db))
        assert report.replica_id == rid and report.keys == 3
        assert _posix_locks_of(db) == before
        await peer.orset("cart").add("jam")  # and the peer goes on writing
        assert sorted(await peer.orset("cart").value()) == ["eggs", "jam", "milk", "tea"]
    finally:
        await peer.aclose()


async def test_a_streamed_report_holds_a_page_of_objects_whatever_their_number(
    backend: Backend,
) -> None:
    # `shoal inspect` of a relay's million keys must not hold a million decoded objects:
    # with `emit`, the objects are read a page at a time and handed on in (key, kind)
    # order, the log not yet folded into them joined in its place (a key of the log only
    # between stored ones, a key of both merged), exactly as the whole report lists them.
    n = 3000
    async with await backend.open() as store:
        rows = [orset_row(f"k{i:05}", *(f"item-{i}-{j}" for j in range(5))) for i in range(n)]
        for start in range(0, n, 500):
            await store.apply(Batch(objects=tuple(rows[start : start + 500])))
        await store.apply(Batch(objects=(counter_row("k00007"),)))  # a key of two kinds
        await store.apply(
            Batch(log=(log_entry("k00007", 1, "B"), log_entry("k00011x", 2), log_entry("zz", 3)))
        )
    whole = await asyncio.to_thread(report_database, backend.url)
    assert whole.keys == n + 3 and whole.log_size == 3
    assert whole.kind_clashes == {"k00007": ("gcounter", "orset")}
    streamed: list[ObjectReport] = []
    report = await asyncio.to_thread(report_database, backend.url, None, None, streamed.append)
    assert tuple(streamed) == whole.objects and report.objects == ()
    assert dataclasses.replace(report, objects=whole.objects) == whole
    keys = [o.key for o in streamed]
    assert keys[7:13] == ["k00007", "k00007", "k00008", "k00009", "k00010", "k00011"]
    assert keys[13] == "k00011x" and keys[-1] == "zz"
    assert streamed[7].kind == "gcounter" and streamed[7].value == 2  # stored 1, logged 1
    # What it holds at its peak, against the whole report (which holds every object's
    # report), both measured the same way after the runs above (caches warm).
    peaks = []
    for emit in (lambda _obj: None, None):
        tracemalloc.start()
        try:
            await asyncio.to_thread(report_database, backend.url, None, None, emit)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[0] < peaks[1] / 3, peaks


async def test_a_sqlite_report_reads_one_snapshot_while_a_peer_commits(tmp_path: Path) -> None:
    """The report reads a live database in one snapshot: a commit between two of its reads
    (a peer's compaction deleting the seals of segments already read, say) is not half seen."""
    from sqlalchemy import text

    from store.report import _on_database

    db = tmp_path / "a.db"
    await _fill(str(db))

    def two_reads(conn: object, _name: str) -> tuple[int, int]:
        count = text("SELECT count(*) FROM meta")
        first = conn.execute(count).scalar_one()  # type: ignore[attr-defined]
        with sqlite3.connect(db) as other:  # another writer commits meanwhile
            other.execute("INSERT INTO meta (name, value) VALUES ('x-test', '1')")
        second = conn.execute(count).scalar_one()  # type: ignore[attr-defined]
        return first, second

    first, second = await asyncio.to_thread(_on_database, str(db), two_reads)
    assert first == second
    with sqlite3.connect(db) as check:  # (the commit did land)
        assert check.execute("SELECT value FROM meta WHERE name = 'x-test'").fetchone() == ("1",)
