"""``python -m shoal``: the ``shoal`` command line, for when the console script is not on
PATH (``python -m shoal --version``, ``python -m shoal demo``)."""

from __future__ import annotations

import sys

from shoal.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
