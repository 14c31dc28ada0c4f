"""Read-only media for the command-line tests, for any user.

An unprivileged user gets a read-only directory with ``chmod``; root ignores permission
bits, so for root the command runs in a mount namespace of its own where the directory is
bind-mounted read-only (the rest of the machine sees nothing of it), which is what a
read-only medium is: every write fails with EROFS, even root's.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["read_only"]

_SCRIPT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--", "sh", "-c", _SCRIPT, "sh", "/tmp", "true"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


@contextmanager
def read_only(directory: Path) -> Iterator[list[str]]:
    """Make ``directory`` and its files read-only for the commands run inside the block;
    yields the prefix to put before such a command (empty when ``chmod`` is enough)."""
    if os.geteuid() == 0:
        if not _can_unshare():
            pytest.skip("root without unshare/mount: cannot make a read-only directory")
        yield ["unshare", "--mount", "--", "sh", "-c", _SCRIPT, "sh", str(directory)]
        return
    modes = {p: p.stat().st_mode for p in [directory, *directory.iterdir()]}
    for path in modes:
        path.chmod(stat.S_IMODE(modes[path]) & ~0o222)
    try:
        yield []
    finally:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode))
