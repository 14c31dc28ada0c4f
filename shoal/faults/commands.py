"""The one place that names how the fault suite reaches shoal itself.

The harness runs ``shoal serve`` as a subprocess (:func:`serve_command`), reads databases and
peers with ``shoal inspect`` and ``shoal status`` through the command line's entry point
(:func:`cli_main`, in a helper process: :mod:`shoal.faults.inspector`), and writes through
embedded peers (:data:`Peer`). When the command line or the embedding API moves, change it here
and nowhere else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from shoal import Peer, QuorumNotReached, TransportConfig, WriteResult

__all__ = [
    "SERVE_MODULE",
    "Peer",
    "QuorumNotReached",
    "TransportConfig",
    "WriteResult",
    "cli_main",
    "serve_command",
]

#: The module run as ``python -m MODULE serve ...`` (``shoal serve``).
SERVE_MODULE = "shoal"


def serve_command(args: Sequence[str]) -> list[str]:
    """The argv of ``shoal serve ARGS`` in this interpreter."""
    return [sys.executable, "-m", SERVE_MODULE, "serve", *args]


def cli_main(argv: Sequence[str]) -> int:
    """Run the ``shoal`` command line in this process (``inspect``, ``status``); its exit code."""
    from shoal.cli import main

    return main(list(argv))
