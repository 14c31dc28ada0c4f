"""Configuration of a :class:`sync.Replica`: one frozen dataclass, validated at construction.

Every field has the default of the embedding API. Levels (``w``, ``r``) are an ``int`` in
``1..n`` or one of ``"ONE"``, ``"QUORUM"``, ``"ALL"``, ``"LOCAL_QUORUM"`` (see
:mod:`sync.consistency`); ``LOCAL_QUORUM`` needs ``site``. Times are seconds on the caller's
clock (the engine never reads a clock: every input carries ``now``). A bad value raises
``ValueError`` or ``TypeError`` naming the field. The same checks serve each operation's own
``w``/``r``, ``strict`` and ``timeout`` (:meth:`ReplicaConfig.write_options`,
:meth:`ReplicaConfig.read_options`), and :func:`check_key` every key a caller hands in.

>>> ReplicaConfig(n=3, w="QUORUM").w
'QUORUM'
>>> ReplicaConfig(n=2, w=3)
Traceback (most recent call last):
...
ValueError: w=3 is impossible with n=2: it must be in 1..2
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.consistency import LOCAL_QUORUM, Level, check_level

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_ENVELOPE",
    "MIN_MESSAGE_BYTES",
    "ReplicaConfig",
]

#: The longest key, in UTF-8 bytes (S3's bound for an object's key). Every store must hold
#: any key a peer takes: PostgreSQL indexes keys in b-trees whose rows hold at most 2,704
#: bytes, so a key of about 2.7 KB, which SQLite took, made a relay on PostgreSQL refuse
#: the commit, stop, and fail every restart (its log fold wrote it again).
MAX_KEY_BYTES = 1024

MAX_MESSAGE_BYTES = 4 * 1024 * 1024

#: Bytes a ``Push`` or ``Deltas`` message takes beyond the log entries it carries: its field
#: names and numbers (about 100 bytes), a hint's target replica id and the seal of its
#: origin (``sync.signing.SEAL_WIRE_MAX``, about 3 KiB), reserved generously. One log entry
#: fits in a message when its size (``sync.replica.outbound.entry_size``) is at most
#: ``max_message_bytes - MESSAGE_ENVELOPE``.
MESSAGE_ENVELOPE = 4096

#: The smallest ``max_message_bytes`` accepted: 64 KiB, 16 envelopes. Below it a message is
#: mostly envelope: at 4 KiB or less not even a one-letter write fits (``entry_limit`` is
#: zero or negative). At 64 KiB a write still carries a value of 32 KiB (``value_limit``,
#: half a message) in an entry of up to 60 KiB (``entry_limit``); a value checked against
#: ``value_limit`` always fits in ``entry_limit`` with ``LIVE_SLACK`` to spare (which needs
#: 16 KiB), so checked writes keep their fast path; and the messages that travel whole, not
#: batched (a partition's summary, a member list, a state of a read), keep some room.
#: Websocket peers commonly allow 1 MiB.
MIN_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """Replication parameters shared by every operation of one replica.

    ``n``: home replicas per partition. ``w``/``r``: default write/read levels. ``strict``:
    count only home replicas (no sloppy quorum). ``anti_entropy_interval``: seconds between
    anti-entropy rounds (``0`` or ``None``: off); each round sends a digest to at most
    ``gossip_fanout`` up peers, chosen by :mod:`sync.replica.gossip` (peers sharing partitions
    first, every up peer in turn). ``anti_entropy_idle_interval``: while rounds find nothing
    different, the interval doubles after each one up to this many seconds (``None``: no
    back-off; below ``anti_entropy_interval``: that one); a difference, or a peer coming up,
    brings it back to ``anti_entropy_interval``. ``ae_batch``: entries per ``Deltas``
    (and per hint hand-off ``Push``). ``ae_max_inflight``: unacknowledged anti-entropy
    messages per peer. ``snapshot_chunk``: objects per ``SnapshotChunk``. ``hint_window``:
    seconds a hint is kept. ``hint_max_per_target``: hints kept per target (the oldest go
    first). ``hint_max_bytes``: bytes of the hints held for other replicas' writes, all
    targets together, each counted as its entry takes in a message (the oldest go first;
    default 256 MiB, at least ``max_message_bytes`` so that the newest hint always fits);
    a replica's hints of its own writes are not counted, as they are never dropped (see
    :mod:`sync.replica.hints`). ``checkpoint_every``: log entries between checkpoint
    rounds; in a round a key is checkpointed again only once it has applied several times the
    entries it had at its last
    checkpoint (geometric spacing: re-encoding a growing object costs O(size) in all), and
    compaction checkpoints the keys it drops entries of. ``max_message_bytes``: the largest
    message a peer accepts (its frames too), at least :data:`MIN_MESSAGE_BYTES` (64 KiB).
    ``max_value_bytes``: the largest value one write may carry, as it takes room in a
    message (UTF-8 bytes of its JSON text, counting the
    escape that each quote and backslash gets when the delta travels as a string), the key of
    the object and, in a map, the keys it sits under included; ``None`` (the default) means
    half of ``max_message_bytes`` (2 MiB of the 4 MiB default), the other half left for the
    rest of the delta (dots, causal context) and the message around it; at most that half.
    A write over it is refused at the call with :class:`~sync.errors.ValueTooLarge` before
    anything changes; the engine refuses any delta that would not fit in one message too.
    ``relay``: this replica is a relay
    (preferred as fallback, holds hints for anyone, forwards new entries to the other homes
    connected to it). ``max_clock_skew``: seconds a hybrid-logical-clock timestamp (an LWW
    register's) received from a peer may be ahead of this replica's clock (its ``now``); an
    entry or a state stamped further ahead is set aside, not applied, until this clock comes
    within the bound of it, and raises an alarm naming the writer. ``home``: this replica
    takes its share of the ring (a home of some partitions); ``False`` for a short-lived
    replica (a command-line session, a test client), which every peer leaves off the ring:
    it never holds data for others and nobody waits for it. ``home_down_window``: seconds
    after which a home not seen (no link, no summary) is reported and stops holding back
    compaction (default 7 days); when it returns it catches up by state transfer. ``seed``:
    the only source of randomness of the engine. ``cache_bytes``: the memory budget of the
    objects held in memory, estimated as each object's encoded size plus a fixed overhead
    per key (default 64 MiB); past it the least recently used objects are evicted (a dirty
    one is checkpointed in the same drain's ``Persist``) and loaded from the store again
    when an input needs them, so memory does not grow with the number of keys. A database
    with few enough objects (about one per 2 KiB of the budget) is loaded whole at open, as
    before.
    """

    n: int = 3
    w: Level = 1
    r: Level = 1
    partitions: int = 64
    vnodes: int = 16
    site: str | None = None
    strict: bool = False
    write_timeout: float = 5.0
    read_timeout: float = 5.0
    anti_entropy_interval: float | None = 5.0
    anti_entropy_idle_interval: float | None = 60.0
    gossip_fanout: int = 3
    ae_batch: int = 500
    ae_max_inflight: int = 4
    snapshot_chunk: int = 500
    hint_window: float = 3600.0
    hint_max_per_target: int = 100_000
    hint_max_bytes: int = 256 * 1024 * 1024
    checkpoint_every: int = 1000
    max_message_bytes: int = MAX_MESSAGE_BYTES
    relay: bool = False
    max_clock_skew: float = 60.0
    home: bool = True
    home_down_window: float = 7 * 86_400.0
    seed: int = 0
    cache_bytes: int = 64 * 1024 * 1024
    max_value_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "n",
            "partitions",
            "vnodes",
            "ae_batch",
            "ae_max_inflight",
            "snapshot_chunk",
            "hint_max_per_target",
            "hint_max_bytes",
            "checkpoint_every",
            "max_message_bytes",
            "cache_bytes",
            "gossip_fanout",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.max_message_bytes < MIN_MESSAGE_BYTES:
            raise ValueError(
                f"max_message_bytes must be >= {MIN_MESSAGE_BYTES} (64 KiB), got "
                f"{self.max_message_bytes}: a message carries {MESSAGE_ENVELOPE} bytes of "
                "envelope beside its entries"
            )
        if self.hint_max_bytes < self.max_message_bytes:
            raise ValueError(
                f"hint_max_bytes must be >= max_message_bytes={self.max_message_bytes}, got "
                f"{self.hint_max_bytes}: a hint of the largest entry must fit"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        for name in (
            "write_timeout",
            "read_timeout",
            "hint_window",
            "max_clock_skew",
            "home_down_window",
        ):
            check_seconds(name, getattr(self, name))
        if self.anti_entropy_interval is not None and self.anti_entropy_interval != 0:
            check_seconds("anti_entropy_interval", self.anti_entropy_interval)
        if self.anti_entropy_idle_interval is not None:
            check_seconds("anti_entropy_idle_interval", self.anti_entropy_idle_interval)
        for name in ("strict", "relay", "home"):
            check_bool(name, getattr(self, name))
        if self.site is not None and (not isinstance(self.site, str) or not self.site):
            raise ValueError(f"site must be a non-empty str or None, got {self.site!r}")
        for name in ("w", "r"):
            check_site_level(name, getattr(self, name), self.n, self.site)
        limit = self.max_value_bytes
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"max_value_bytes must be an int or None, got {limit!r}")
            if not 1 <= limit <= self.max_message_bytes // 2:
                raise ValueError(
                    f"max_value_bytes must be in 1..{self.max_message_bytes // 2} (half of "
                    f"max_message_bytes={self.max_message_bytes}), got {limit}"
                )

    def write_options(
        self, w: object, strict: object, timeout: object
    ) -> tuple[Level, bool, float]:
        """A write's own level, strictness and timeout, each checked as its field is
        (``TypeError``/``ValueError`` naming it); ``None`` is this configuration's."""
        return self._options("w", w, strict, timeout, self.write_timeout)

    def read_options(self, r: object, strict: object, timeout: object) -> tuple[Level, bool, float]:
        """A read's own level, strictness and timeout: see :meth:`write_options`."""
        return self._options("r", r, strict, timeout, self.read_timeout)

    def _options(
        self, name: str, level: object, strict: object, timeout: object, default: float
    ) -> tuple[Level, bool, float]:
        if level is None:
            level_: Level = getattr(self, name)
        else:
            level_ = check_site_level(name, level, self.n, self.site)
        strict_ = self.strict if strict is None else check_bool("strict", strict)
        timeout_ = default if timeout is None else check_seconds("timeout", timeout)
        return level_, strict_, timeout_

    @property
    def objects_at_start(self) -> int:
        """At most this many objects are loaded whole at open (one per 2 KiB of
        ``cache_bytes``); a larger store is loaded on demand."""
        return self.cache_bytes // 2048

    @property
    def anti_entropy_on(self) -> bool:
        """True when periodic anti-entropy is enabled."""
        return bool(self.anti_entropy_interval)

    @property
    def value_limit(self) -> int:
        """``max_value_bytes``, or half of ``max_message_bytes`` when it is None."""
        limit = self.max_value_bytes
        return self.max_message_bytes // 2 if limit is None else limit

    @property
    def entry_limit(self) -> int:
        """The largest log entry (``entry_size``) that fits in one message."""
        return self.max_message_bytes - MESSAGE_ENVELOPE


def check_site_level(name: str, value: object, n: int, site: str | None) -> Level:
    """``value`` if it is a level ``name`` (``"w"`` or ``"r"``) can take with ``n`` homes and
    this ``site`` (:func:`~sync.consistency.check_level`, and ``LOCAL_QUORUM`` only with a
    site); else ``TypeError`` or ``ValueError`` naming ``name``."""
    level = check_level(value, n, name=name)
    if level == LOCAL_QUORUM and site is None:
        raise ValueError(f"{name}=LOCAL_QUORUM needs site, and this replica has none")
    return level


def check_key(key: object, name: str = "key", *, empty_ok: bool = False) -> str:
    """``key`` if a store can keep it as a key: a ``str``, not empty (unless ``empty_ok``: a
    prefix, a bound), without NUL, whose text has a UTF-8 spelling (no lone surrogate, as
    ``os.fsdecode`` makes of bytes that are not UTF-8); else ``TypeError`` or ``ValueError``
    naming ``name``. Every key and key prefix a caller hands in passes here first, so that a
    bad one is refused at the call, not deep in the engine (which hashes its UTF-8 bytes) or
    in the store."""
    if not isinstance(key, str):
        raise TypeError(f"{name} must be a str, got {type(key).__name__}")
    if not key and not empty_ok:
        raise ValueError(f"{name} must not be empty")
    if "\x00" in key:
        raise ValueError(f"{name} must not hold a NUL character (no store can keep it)")
    size = len(key)
    if not key.isascii():  # (O(1) in CPython: ASCII, the common case, always encodes)
        try:
            size = len(key.encode())
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{name} must be UTF-8 text, but {key[exc.start]!r} at {exc.start} is a "
                "lone surrogate (no store can keep it)"
            ) from exc
    if size > MAX_KEY_BYTES:
        raise ValueError(f"{name} takes {size} bytes of UTF-8, over the {MAX_KEY_BYTES} allowed")
    return key


def check_seconds(name: str, value: object) -> float:
    """``value`` as float seconds if it is a number > 0 (bools refused); else TypeError or
    ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool; else TypeError naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value
