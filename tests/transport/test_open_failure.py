"""A ``Peer.open`` refused for its listen address changes nothing on disk.

The listen address is taken before the database is touched: a busy port is one error naming
the address, a database that did not exist is not created (nor any file beside it), and an
existing one is left as it was (same files, same bytes, same identity token), so that the
next open resumes it as if the failed one had never happened.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import sidecar_path

from .conftest import open_peer


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port of 127.0.0.1 another socket listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def _files(directory: Path) -> dict[str, str]:
    """Every file in ``directory`` and the SHA-256 of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


async def test_a_busy_port_fails_the_open_before_a_new_database_is_made(
    tmp_path: Path, busy_port: int
) -> None:
    with pytest.raises(OSError) as info:
        await open_peer(tmp_path / "new.db", listen=f"127.0.0.1:{busy_port}")
    assert info.value.errno == errno.EADDRINUSE
    assert info.value.strerror == (
        f"cannot listen on 127.0.0.1:{busy_port}: {os.strerror(errno.EADDRINUSE)}"
    )
    assert list(tmp_path.iterdir()) == []  # no database, no -wal, -shm, .shoal-id, lock file
    peer = await open_peer(tmp_path / "new.db")
    try:
        assert peer.store.created
    finally:
        await peer.aclose()


async def test_a_busy_port_leaves_an_existing_database_as_it_was(
    tmp_path: Path, busy_port: int
) -> None:
    db = tmp_path / "kept.db"
    peer = await open_peer(db)
    try:
        await peer.orset("cart").add("milk")
        replica_id = peer.replica_id
    finally:
        await peer.aclose()
    before = _files(tmp_path)
    assert sidecar_path(db).name in before
    with pytest.raises(OSError, match=f"^.*cannot listen on 127.0.0.1:{busy_port}: "):
        await open_peer(db, listen=f"127.0.0.1:{busy_port}")
    assert _files(tmp_path) == before  # not opened at all: the identity token was not renewed
    peer = await open_peer(db)
    try:
        assert (peer.replica_id, peer.store.identity_rotated) == (replica_id, False)
        assert await peer.orset("cart").value() == frozenset({"milk"})
    finally:
        await peer.aclose()


async def test_a_second_peer_of_this_process_is_told_to_close_the_first(tmp_path: Path) -> None:
    """The holder is named as an app knows it, a Peer (the message said "the other Store",
    a name the public API does not use)."""
    from shoal import DatabaseLocked

    db = tmp_path / "phone.db"
    first = await open_peer(db, listen=None)
    try:
        with pytest.raises(DatabaseLocked) as raised:
            await open_peer(db, listen=None)
        assert str(raised.value).startswith(
            f"database {db} is in use by process {os.getpid()} (this process: close the other "
            "Peer (or Store) that has it open first, since "
        ), raised.value
        assert "the other Store" not in str(raised.value)
    finally:
        await first.aclose()
