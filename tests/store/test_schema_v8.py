"""Schema version 8: no table changed; a stored seal may be one of a group (sync.signing), so a
database of version 7 is moved to 8 as it is, and keeps and serves its seals of both kinds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import crdt
from store import SCHEMA_VERSION, Store
from store import default_partition_of as partition_of
from sync.effects import LogEntry, Persist
from sync.signing import SEAL_MAX, Seal, Signer, Verifier

__all__: list[str] = []

SIGNER = Signer(bytes([5]) * 32)


def _entries(count: int) -> list[LogEntry]:
    key = "cart"
    out = []
    for seq in range(1, count + 1):
        delta = crdt.ORSet().add(SIGNER.replica_id, f"x{seq}")
        out.append(
            LogEntry(SIGNER.replica_id, partition_of(key), seq, key, "orset", delta.to_json())
        )
    return out


def _version(path: Path) -> str:
    with sqlite3.connect(path) as raw:
        (value,) = raw.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    raw.close()
    return str(value)


async def test_a_version_7_database_moves_to_8_with_its_seals_of_both_kinds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v7.sqlite"
    entries = _entries(2 * SEAL_MAX + 1)  # two seals of a group, then one signed alone
    group = SIGNER.seal_all(entries[: 2 * SEAL_MAX])
    alone = SIGNER.seal_all(entries[2 * SEAL_MAX :])
    for i, e in enumerate(entries):
        e.seal = (group + alone)[i // SEAL_MAX]
    async with await Store.open(path) as store:
        await store.apply(Persist(log=tuple(entries)))
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '7' WHERE name = 'schema_version'")
    raw.close()
    async with await Store.open(path) as store:
        assert store.migrated_from == 7 and SCHEMA_VERSION == 8
        loaded = await store.load()
    assert _version(path) == "8"
    stored = [Seal(*row.seal) for row in loaded.log]
    assert stored == [e.seal for e in entries]
    verifier = Verifier()
    assert all(verifier.covers(seal, e) is None for seal, e in zip(stored, entries, strict=True))
