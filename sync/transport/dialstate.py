"""Why a configured peer is (not) linked: one small state machine per dialled URL.

Theory of operation. The transport dials every URL it was given for as long as it runs, or
until it is told to stop dialling it (:mod:`sync.transport.connection`). Each URL it dials
has a :class:`DialState` and the text of its last error, kept by :class:`DialBook`
(:meth:`DialBook.drop` forgets a URL no longer dialled):

* ``connecting``: not known yet (the first dial, or a redial after a link ended);
* ``connected``: a link to the replica at that URL is open (whoever dialled it);
* a failure state, set by the outcome of a dial: ``unreachable`` (connection refused, no
  such host, a timeout), ``tls_failed`` (the certificate did not verify, or the other side
  speaks no TLS), ``wrong_secret``, ``wrong_group``, ``version_mismatch`` (the other side
  speaks another link protocol), ``forgotten`` (the group forgot this replica, or this
  replica forgot the other), ``refused`` (busy: the listener answered HTTP 503) and
  ``failed`` (anything else: not a shoal peer, a malformed handshake, this peer itself).

A URL in a failure state stays there while the dialler retries with backoff and the same
outcome repeats; it moves only when the outcome changes. Each move into a failure state is
logged once at WARNING with the URL and the cause (retries of the same outcome at DEBUG),
moves to ``connected`` and back to ``connecting`` at INFO. So a peer that stays unreachable
for a day costs one line, and an operator sees every change of reason.

The causes are read from what the dial raised (:func:`classify_dial_error`), from the close
frame of a listener that refused the handshake, or from our own refusal of the listener
(:func:`classify_refusal`: by close code and the reasons :mod:`sync.transport.auth` and the
transport send). Every failed attempt is also counted by state (:attr:`DialBook.failures`),
for ``/status`` and ``/metrics``.

:meth:`DialBook.wait` lets an app wait until URLs are connected, or have failed with a
reason (``Peer.connected``); :meth:`DialBook.snapshot` gives one frozen :class:`PeerLink`
per URL.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
import socket
import ssl
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus

__all__ = [
    "FORGOTTEN_REASON",
    "Backoff",
    "Connectivity",
    "DialBook",
    "DialState",
    "PeerLink",
    "classify_dial_error",
    "classify_refusal",
]

log = logging.getLogger("shoal.transport")

#: The close reason of a link (or handshake) refused because the group forgot the dialler.
FORGOTTEN_REASON = "this replica was forgotten by the group"
#: The error of a dialled URL that turned out to be this peer's own (a group's list of URLs
#: often includes each peer's): not dialled again, and no link that anything waits for.
SELF_REASON = "this URL is this peer itself"

Until = Literal["settled", "any", "all"]


class DialState(enum.Enum):
    """Where the link to one configured URL stands (see the module docstring)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    TLS_FAILED = "tls_failed"
    WRONG_SECRET = "wrong_secret"
    WRONG_GROUP = "wrong_group"
    VERSION_MISMATCH = "version_mismatch"
    FORGOTTEN = "forgotten"
    REFUSED = "refused"
    FAILED = "failed"

    @property
    def failed(self) -> bool:
        """True for the failure states (neither connecting nor connected)."""
        return self not in (DialState.CONNECTING, DialState.CONNECTED)

    @property
    def label(self) -> str:
        """A few words for a person: ``"wrong secret"``, ``"TLS verification failed"``."""
        return _LABELS[self]


_LABELS = {
    DialState.CONNECTING: "connecting",
    DialState.CONNECTED: "connected",
    DialState.UNREACHABLE: "unreachable",
    DialState.TLS_FAILED: "TLS verification failed",
    DialState.WRONG_SECRET: "wrong secret",
    DialState.WRONG_GROUP: "wrong group",
    DialState.VERSION_MISMATCH: "version mismatch",
    DialState.FORGOTTEN: "forgotten",
    DialState.REFUSED: "refused (busy)",
    DialState.FAILED: "failed",
}


@dataclass(frozen=True, slots=True)
class PeerLink:
    """One configured URL as it stands: its state, the last error, the replica behind it.

    ``since`` is the Unix time of the last change of state; ``failures`` counts the failed
    attempts since the URL was last connected; ``replica_id`` is known once a handshake with
    it succeeded.
    """

    url: str
    state: DialState
    error: str | None
    replica_id: str | None
    since: float
    failures: int

    @property
    def connected(self) -> bool:
        return self.state is DialState.CONNECTED

    def __str__(self) -> str:
        text = f"{self.state.label} for {self.url}"
        return f"{text}: {self.error}" if self.error and self.state.failed else text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``state`` as its string value)."""
        return {
            "state": self.state.value,
            "error": self.error,
            "replica_id": self.replica_id,
            "since": round(self.since, 3),
            "failures": self.failures,
        }


@dataclass(frozen=True, slots=True)
class Connectivity:
    """What :meth:`DialBook.wait` (``await peer.connected()``) found: the URLs that are up,
    and every other one with its state and last error."""

    up: tuple[str, ...]
    down: Mapping[str, PeerLink]

    @property
    def all_up(self) -> bool:
        return not self.down

    def reasons(self) -> list[str]:
        """One line per URL that is not up, e.g. ``"wrong secret for ws://h:1: ..."``."""
        return [str(link) for link in self.down.values()]


@dataclass(slots=True)
class _Dial:
    url: str
    state: DialState = DialState.CONNECTING
    error: str | None = None
    replica_id: str | None = None
    since: float = 0.0
    failures: int = 0
    reported: DialState | None = None  # the last failure state logged at WARNING

    def freeze(self) -> PeerLink:
        return PeerLink(
            self.url, self.state, self.error, self.replica_id, self.since, self.failures
        )


class DialBook:
    """The :class:`DialState` of every URL a transport dials, and the waiters on them."""

    def __init__(self) -> None:
        self._dials: dict[str, _Dial] = {}
        self.failures: Counter[str] = Counter()  # failed attempts, by state value
        self._changed = asyncio.Event()
        self._ended: Exception | None = None  # (see end)

    def __contains__(self, url: object) -> bool:
        return url in self._dials

    def track(self, url: str) -> None:
        """Start tracking ``url`` (``connecting``); a known URL is left as it is."""
        if url not in self._dials:
            self._dials[url] = _Dial(url, since=time.time())
            self._notify()

    def drop(self, url: str) -> None:
        """Stop tracking ``url`` (no longer dialled): it leaves :meth:`snapshot`,
        :meth:`errors` and :meth:`pending`; its failed attempts stay counted in
        :attr:`failures`. A waiter on it no longer waits for it. Unknown URL: nothing."""
        if self._dials.pop(url, None) is not None:
            self._notify()

    def urls_of(self, replica_id: str) -> list[str]:
        return [d.url for d in self._dials.values() if d.replica_id == replica_id]

    def snapshot(self) -> dict[str, PeerLink]:
        """One frozen :class:`PeerLink` per URL, in the order they were first dialled."""
        return {url: d.freeze() for url, d in self._dials.items()}

    def errors(self) -> dict[str, str]:
        """The last error of every URL in a failure state."""
        return {u: d.error or d.state.label for u, d in self._dials.items() if d.state.failed}

    def pending(self) -> tuple[int, dict[str, str]]:
        """(how many URLs are still connecting, {URL: last error} of those that failed),
        this peer's own URLs left out: what the engine waits for (or gives up on)."""
        connecting = sum(1 for d in self._dials.values() if d.state is DialState.CONNECTING)
        failed = {u: e for u, e in self.errors().items() if e != SELF_REASON}
        return connecting, failed

    # -- transitions -------------------------------------------------------------------------

    def up(self, url: str, replica_id: str) -> None:
        """A link to ``replica_id``, the replica at ``url``, is open."""
        dial = self._dials.get(url)
        if dial is None:
            return
        dial.replica_id = replica_id
        dial.failures = 0
        dial.reported = None  # a later failure is news again
        if dial.state is not DialState.CONNECTED:
            log.info("connected to %s (replica %s)", url, replica_id)
            self._move(dial, DialState.CONNECTED, None)

    def down(self, url: str, error: str, *, shut_down: bool = False) -> None:
        """The link to ``url`` ended; the dialler will redial. ``shut_down``: the other side
        closed it because it is shutting down (close code 1001): its operator stopped it, which
        is logged at INFO here, and the refused dials that follow at DEBUG (a failure of
        another kind, or one after the peer was back, still warns)."""
        dial = self._dials.get(url)
        if dial is not None and dial.state is DialState.CONNECTED:
            if shut_down:
                log.info("peer %s shut down (%s); redialling", url, error)
                dial.reported = DialState.UNREACHABLE
            else:
                log.info("link to %s ended (%s); redialling", url, error)
            self._move(dial, DialState.CONNECTING, error)

    def failed(self, url: str, state: DialState, error: str) -> None:
        """A dial of ``url`` failed with ``state`` (a failure state) and ``error``."""
        if not state.failed:
            raise ValueError(f"not a failure state: {state}")
        dial = self._dials.get(url)
        if dial is None:
            return
        self.failures[state.value] += 1
        dial.failures += 1
        if dial.reported is not state:
            dial.reported = state
            log.warning("peer %s: %s: %s (retrying with backoff)", url, state.label, error)
        else:
            log.debug("dial %s failed again: %s: %s", url, state.label, error)
        if dial.state is not state or dial.error != error:
            self._move(dial, state, error)

    def _move(self, dial: _Dial, state: DialState, error: str | None) -> None:
        if dial.state is not state:
            dial.since = time.time()
        dial.state, dial.error = state, error
        self._notify()

    def end(self, error: Exception) -> None:
        """Nothing will be dialled any more (the peer closes, or stopped serving): every
        :meth:`wait` raises ``error`` now, and so does every later one."""
        if self._ended is None:
            self._ended = error
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- waiting -----------------------------------------------------------------------------

    def _done(self, urls: list[str], until: Until) -> bool:
        states = [self._dials[u].state for u in urls if u in self._dials]
        if until == "all":
            return all(s is DialState.CONNECTED for s in states)
        settled = all(s is not DialState.CONNECTING for s in states)
        if until == "any":
            return settled or any(s is DialState.CONNECTED for s in states)
        return settled

    def connectivity(self, urls: Iterable[str]) -> Connectivity:
        """The state of ``urls`` now."""
        links = self.snapshot()
        up = tuple(u for u in urls if u in links and links[u].connected)
        down = {u: link for u, link in links.items() if u in set(urls) and not link.connected}
        return Connectivity(up, down)

    async def wait(self, urls: Iterable[str], until: Until, timeout: float | None) -> Connectivity:
        """Wait until ``urls`` are (``"all"``) connected, or each is connected or failed at
        least once (``"settled"``), or one is connected (``"any"``, or all settled); at
        most ``timeout`` seconds. Returns what is known then; never raises for a timeout,
        and raises the error given to :meth:`end` once the dialling ended."""
        if until not in ("settled", "any", "all"):
            raise ValueError(f"until must be 'settled', 'any' or 'all', got {until!r}")
        wanted = list(dict.fromkeys(urls))
        with_timeout = asyncio.timeout(timeout)
        try:
            async with with_timeout:
                while self._ended is None and not self._done(wanted, until):
                    await self._changed.wait()
                if self._ended is not None:
                    raise self._ended
        except TimeoutError:
            if not with_timeout.expired():
                raise
        return self.connectivity(wanted)


# -- classifying what a dial ran into ------------------------------------------------------------


def _tls_cause(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc.reason or exc)


def classify_dial_error(exc: BaseException) -> tuple[DialState, str]:
    """The state and error text of a failed connect (TCP, TLS, HTTP upgrade)."""
    if isinstance(exc, ssl.SSLError):
        return DialState.TLS_FAILED, f"TLS failed: {_tls_cause(exc)}"
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = response.body.decode(errors="replace").strip() if response.body else ""
        if response.status_code == 503:
            return DialState.REFUSED, f"busy: HTTP 503 {body or response.reason_phrase}"
        return (
            DialState.FAILED,
            f"not a shoal peer: HTTP {response.status_code} {response.reason_phrase}",
        )
    if isinstance(exc, socket.gaierror):
        return DialState.UNREACHABLE, f"cannot resolve the host name: {exc.strerror or exc}"
    if isinstance(exc, TimeoutError):
        return DialState.UNREACHABLE, "timed out"
    if isinstance(exc, OSError):  # asyncio's strerror repeats the address: say the cause
        cause = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
        return DialState.UNREACHABLE, (cause or type(exc).__name__).lower()
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError | OSError):
        # Accepted, then closed before any HTTP response (a proxy or load balancer without
        # its backend, a listener going down): the peer is not reachable, not a stranger.
        return DialState.UNREACHABLE, "the connection was closed before the handshake"
    if isinstance(exc, InvalidHandshake):
        return DialState.FAILED, f"not a shoal peer: {exc}"
    return DialState.FAILED, str(exc) or type(exc).__name__


def classify_refusal(code: int | None, reason: str, *, by_us: bool) -> tuple[DialState, str]:
    """The state and error text of a refused handshake or link.

    ``by_us``: this side refused the listener (our ``HandshakeError``); otherwise the
    listener closed the connection with ``code`` and ``reason`` (``code`` None: no close
    frame, the connection was cut).
    """
    who = "we refused the listener" if by_us else "the listener refused us"
    text = f"{who}: {reason or 'no reason given'}" + (f" (close code {code})" if code else "")
    if code is None:
        return DialState.UNREACHABLE, "the connection was cut during the handshake"
    if reason.startswith("protocol version"):
        return DialState.VERSION_MISMATCH, text
    if "authentication failed" in reason:
        return DialState.WRONG_SECRET, text
    if reason.startswith("wrong group"):
        return DialState.WRONG_GROUP, text
    if reason.startswith((FORGOTTEN_REASON, "forgotten")):
        return DialState.FORGOTTEN, text
    if code == 1001:
        return DialState.UNREACHABLE, text
    return DialState.FAILED, text


class Backoff:
    """Exponential backoff with equal jitter: ``uniform(c / 2, c)``, ``c = min(cap, base * 2**n)``.

    Half the delay is kept so that a refusing peer is never redialled in a burst; the other
    half is random so that many peers do not redial in step.

    Deterministic for a given ``rng``; :meth:`reset` after a success.
    """

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.rng = rng
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
