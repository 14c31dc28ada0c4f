"""Type checkers see the public API's real types: ``from shoal import Peer`` is the class
``Peer`` (not ``object``, as a lazy ``__getattr__`` alone would make it), and so on through a
handle and a write. Checked by running mypy (strict, the project's configuration) on a small
file that uses the API the way the README does; and mypy's ``files`` cover ``shoal/``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USER_CODE = """\
from __future__ import annotations

from typing import assert_type

import shoal
import sync
from shoal import ORSetHandle, Peer, QuorumNotReached, Subscription, WriteResult
from sync.effects import WriteResult as RealWriteResult
from sync.transport.handles import ORSetHandle as RealORSetHandle
from sync.transport.peer import Peer as RealPeer
from sync.transport.subscription import Subscription as RealSubscription


async def app() -> None:
    assert_type(Peer, type[RealPeer])
    assert_type(shoal.Peer, type[RealPeer])
    assert_type(sync.Peer, type[RealPeer])
    assert_type(shoal.__version__, str)
    async with Peer.open("phone.db", secret=b"s") as peer:
        assert_type(peer, RealPeer)
        cart = peer.orset("cart")
        assert_type(cart, ORSetHandle)
        assert_type(cart, RealORSetHandle)
        try:
            result = await cart.add("milk", w=2)
        except QuorumNotReached as exc:
            print(exc.result)
        else:
            assert_type(result, WriteResult)
            assert_type(result, RealWriteResult)
        assert_type(peer.subscribe("cart"), Subscription)
        assert_type(peer.subscribe("cart"), RealSubscription)
"""


def test_mypy_covers_the_application_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert {"crdt", "store", "sync", "shoal"} <= set(config["files"])
    assert config["strict"] is True


@pytest.mark.slow
def test_mypy_sees_the_real_types_of_the_public_api(tmp_path: Path) -> None:
    user = tmp_path / "user_app.py"
    user.write_text(USER_CODE)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", str(user)],
        cwd=ROOT,  # the packages are found here; the cache of `make lint` is reused
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
