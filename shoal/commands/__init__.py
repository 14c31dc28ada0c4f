"""The commands of the ``shoal`` command line, one module each: :mod:`~shoal.commands.serve`,
:mod:`~shoal.commands.inspect`, :mod:`~shoal.commands.status`, :mod:`~shoal.commands.forget`,
and :mod:`~shoal.commands.common` (what they share: exit statuses, the one-line error).

The parser, the entry point and the contract of every command (options, output, exit
statuses) are :mod:`shoal.cli`'s; ``shoal demo`` is :func:`shoal.demo.main`.
"""

from __future__ import annotations

__all__: list[str] = []
