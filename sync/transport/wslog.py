"""The loggers websockets writes to for this transport's connections, with credentials taken
out.

At DEBUG, websockets logs every header of every HTTP request and response it handles, one
record each (``"< %s: %s"``, name and value). On a peer's port those requests include
``GET /status`` and ``GET /metrics`` with ``Authorization: Bearer TOKEN``: with the default
loggers, ``shoal serve --log-level DEBUG`` wrote the token to its log. The transport hands
websockets :data:`SERVER_LOG` and :data:`CLIENT_LOG` instead (the same names as websockets'
own, so a logging configuration for ``websockets.server`` still applies), each with
:class:`RedactCredentials`: the value of a credential header is logged as ``[redacted]``,
every other header as it was. (A peer link's frames carry no credential: the handshake
proves the secret with a MAC and never sends it.)
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["CLIENT_LOG", "CREDENTIAL_HEADERS", "SERVER_LOG", "RedactCredentials"]

#: Headers whose values are credentials (compared lowercased).
CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie"}
)
#: websockets' format for one header line, received and sent.
_HEADER_FORMATS: Final = frozenset({"< %s: %s", "> %s: %s"})
REDACTED: Final = "[redacted]"


class RedactCredentials(logging.Filter):
    """Replaces the value of a credential header in websockets' header records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.msg in _HEADER_FORMATS
            and type(args) is tuple
            and len(args) == 2
            and str(args[0]).lower() in CREDENTIAL_HEADERS
        ):
            record.args = (args[0], REDACTED)
        return True


def _redacting(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactCredentials) for f in logger.filters):
        logger.addFilter(RedactCredentials())
    return logger


#: The logger of the connections the transport accepts.
SERVER_LOG: Final = _redacting("websockets.server")
#: The logger of the connections the transport dials.
CLIENT_LOG: Final = _redacting("websockets.client")
