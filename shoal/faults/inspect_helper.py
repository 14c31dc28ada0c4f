"""The inspector's helper process: ``shoal`` commands in, their output out, one per line.

Run by :class:`shoal.faults.inspector.Inspector` as ``python -m shoal.faults.inspect_helper``
(see there for the protocol). Its own module, imported by nothing, so that ``-m`` runs it
fresh.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

__all__ = ["serve_requests"]


def serve_requests() -> None:
    """The helper's loop: one command line in, one answer out, until stdin closes."""
    from .commands import cli_main

    for line in sys.stdin:
        argv = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli_main(argv)
            except SystemExit as exc:  # argparse on bad usage
                code = exc.code if isinstance(exc.code, int) else 2
        answer = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve_requests()
