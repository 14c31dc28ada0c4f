"""A batch as table rows: validating and encoding a batch before any SQL is run.

:func:`prepare` (pure, no database) validates a :class:`~store.records.BatchLike` and turns
it into a :class:`PreparedBatch` of table rows -- JSON-encoded blobs, object rows
deduplicated per (key, kind) (last wins), log rows per log dot (first wins). Bad input
raises :class:`~store.errors.InvalidInput` before any SQL. An object is named by its key
and kind (schema version 3): one key given two kinds is two objects, never an error.
Prepared batches are merged (:meth:`PreparedBatch.absorb`) and written by
:func:`store.writes.apply_prepared`, whose statements take the row layouts defined here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json

import crdt

from .codec import _is_count, _preview, _seal, check_card, check_context, encode
from .errors import InvalidInput
from .records import BatchLike
from .schema import SEGMENT_COLUMNS, segment_fields

__all__ = ["PreparedBatch", "prepare"]


# Row layouts (tuples, in the column order of store.writes' statements).
_OBJECT_COLS = ("key", "kind", "partition", "state", "live")
_LOG_COLS = ("partition", "origin", "seq", "key", "kind", "delta", "seal")  # prepared, per entry
_SEGMENT_COLS = SEGMENT_COLUMNS  # written
_HINT_COLS = (
    "target",
    "origin",
    "partition",
    "seq",
    "key",
    "kind",
    "delta",
    "stored_ms",
    "seal",
)
_PEER_COLS = ("replica_id", "address", "site", "summary", "last_seen_ms", "forgotten", "card")

Row = tuple[Any, ...]
Dot = tuple[int, str, int]
HintKey = tuple[str, str, int, int]


@dataclass(slots=True)
class PreparedBatch:
    """A validated batch as table rows (see :func:`prepare`); merge with :meth:`absorb`."""

    objects: dict[tuple[str, str], Row] = field(default_factory=dict)  # by (key, kind)
    #: Per (partition, origin), per seq, the entry to store: the caller's own entry object
    #: when it is in the engine's form (checked: its ``seq``, ``key``, ``kind``,
    #: ``delta_json`` and ``seal`` are stored as they are), else a ``SegmentEntry`` tuple
    #: ``(seq, key, kind, delta_text, seal)`` made here. No row per entry: a busy peer logs
    #: thousands of entries a second, and a tuple each (two, with a dict key) brought the
    #: garbage collector's next young collection, and its full ones, that much closer.
    log: dict[tuple[int, str], dict[int, Any]] = field(default_factory=dict)
    summaries: dict[int, str] = field(default_factory=dict)
    hints_add: dict[HintKey, Row] = field(default_factory=dict)
    peers: dict[str, Row] = field(default_factory=dict)
    hints_drop: set[HintKey] = field(default_factory=set)
    compact: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    #: Whether the caller wants to know how many log dots ``compact`` removed (reading what
    #: each dropped segment held); else segments wholly below a watermark go unread.
    count_compacted: bool = False
    fold: bool = False  # record that the log is folded into the objects (mark_folded)

    @property
    def rows(self) -> int:
        return (
            len(self.objects)
            + sum(len(by_seq) for by_seq in self.log.values())
            + len(self.summaries)
            + len(self.hints_add)
            + len(self.peers)
            + len(self.hints_drop)
            + len(self.compact)
            + self.fold
        )

    def text_size(self) -> int:
        """Characters of text in its rows (states, deltas, summaries): what committing it
        writes, roughly."""
        size = sum(len(text) for text in self.summaries.values())
        for by_seq in self.log.values():
            for entry in by_seq.values():
                size += len(segment_fields(entry)[3])
        for table in (self.objects, self.hints_add, self.peers):
            for row in table.values():
                size += sum(len(v) for v in row if type(v) is str)
        return size

    def log_rows(self) -> list[Row]:
        """The log as rows ``(partition, origin, seq, key, kind, delta_text, seal)``, by
        segment then seq as they were put (made on each call: for tests and inspection)."""
        return [
            (part, origin, *segment_fields(entry))
            for (part, origin), by_seq in self.log.items()
            for entry in by_seq.values()
        ]

    @property
    def ordered(self) -> bool:
        """True if it holds deletions, which must not be reordered with later inserts."""
        return bool(self.hints_drop or self.compact or self.fold)

    def absorb(self, later: PreparedBatch) -> None:
        """Merge ``later`` in as if it were applied after this one (no deletions here)."""
        self.objects.update(later.objects)
        for segment, entries in later.log.items():
            mine = self.log.get(segment)
            if mine is None:
                self.log[segment] = dict(entries)
            else:
                for seq, entry in entries.items():
                    mine.setdefault(seq, entry)
        self.summaries.update(later.summaries)
        for hid, row in later.hints_add.items():
            self.hints_add.setdefault(hid, row)
        self.peers.update(later.peers)
        self.hints_drop |= later.hints_drop
        self.compact.extend(later.compact)
        self.count_compacted = self.count_compacted or later.count_compacted
        self.fold = self.fold or later.fold


def _text(value: Any, what: str) -> str:
    if type(value) is not str or not value:
        raise InvalidInput(f"{what} must be a non-empty string, got {value!r}")
    return value


def _int(value: Any, what: str, low: int, high: int | None = None) -> int:
    if type(value) is not int or value < low or (high is not None and value >= high):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise InvalidInput(f"{what} must be an integer {bound}, got {value!r}")
    return value


def _ms(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number of seconds, got {value!r}")
    return round(value * 1000)


def _blob(value: Any, kind: str, what: Callable[[], str], text: Any = None) -> str:
    """The blob of a to_dict() ``value`` declared as ``kind``: ``text`` verbatim if given
    (the caller's JSON of ``value``, see :func:`prepare`), else ``value`` encoded."""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise InvalidInput(f"{what()} must be a to_dict() mapping, got {type(value).__name__}")
    if value.get("type") != kind:
        raise InvalidInput(f"{what()} encodes a {value.get('type')!r}, not the declared {kind!r}")
    if text is not None:
        if type(text) is not str or not text.startswith("{"):
            raise InvalidInput(
                f"{what()}: delta_json must be the JSON text of the delta (a str starting "
                f"with '{{'), got {_preview(text)}"
            )
        return text
    try:
        return encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what()} is not JSON-encodable: {exc}") from exc


_KINDS = frozenset(crdt.KINDS)


def _kind(value: Any, what: str) -> str:
    if value not in _KINDS:
        raise InvalidInput(f"{what} must be one of {sorted(_KINDS)}, got {value!r}")
    return str(value)


class _Partitions:
    """``partition_of`` with a per-batch memo (a key's partition is computed once); also the
    last seal checked (consecutive entries share their seal: checked once)."""

    __slots__ = ("_fn", "count", "last_seal", "memo", "seal_ok")

    def __init__(self, fn: Callable[[str], int], count: int) -> None:
        self._fn, self.count = fn, count
        self.memo: dict[str, int] = {}
        self.last_seal: tuple[Any, tuple[str, str, str, str] | None] = (None, None)
        self.seal_ok: Any = None  # the last seal found to be four strings

    def __call__(self, key: str) -> int:
        part = self.memo.get(key)
        if part is None:
            part = self.memo[key] = self._fn(key)
        return part


# The canonical to_dict() forms put "type" first, so compact JSON of a delta of kind k
# starts with this: the kind is checked on the text without decoding it.
_TYPE_PREFIX = {kind: f'{{"type":"{kind}"' for kind in _KINDS}


def _log_dot_ok(key: Any, kind: Any, part: Any, origin: Any, seq: Any, parts: _Partitions) -> bool:
    """The fast check of a log entry's name: a key and origin that are non-empty strings, a
    seq >= 1, a known kind, the key's own partition (anything else takes the checked path,
    which says what is wrong)."""
    return (
        type(key) is str
        and type(origin) is str
        and type(part) is int
        and type(seq) is int
        and bool(key)
        and bool(origin)
        and seq >= 1
        and 0 <= part < parts.count
        and kind in _KINDS
        and part == (parts.memo.get(key) or parts(key))
    )


def _log_row(entry: Any, parts: _Partitions, what: str, i: int) -> Row:
    """One entry as a ``_LOG_COLS`` row; ``what.format(i)`` names it in errors.

    The fast path is one combined check per row (this runs for every delta the engine
    persists); anything it does not accept goes to :func:`_checked_log_row`, which raises
    the precise error (or, should the combined check be stricter, builds the same row).
    With ``delta_json`` the fast path does not read ``entry.delta`` at all (the engine's
    ``LogEntry.delta`` decodes the text on each access)."""
    key, kind, part, origin, seq = entry.key, entry.kind, entry.partition, entry.origin, entry.seq
    text = getattr(entry, "delta_json", None)
    seal = getattr(entry, "seal", None)
    if seal is not None:
        given, checked = parts.last_seal
        if seal is given:
            seal = checked
        else:
            parts.last_seal = (seal, _seal(seal, f"{what.format(i)}.seal"))
            seal = parts.last_seal[1]
    if _log_dot_ok(key, kind, part, origin, seq, parts):
        if type(text) is str:
            if text.startswith(_TYPE_PREFIX[kind]):
                return (part, origin, seq, key, kind, text, seal)
        elif text is None:
            delta = entry.delta
            if type(delta) is dict and delta.get("type") == kind:
                try:
                    text = to_json(delta, inf_nan_mode="constants").decode()
                except (TypeError, ValueError):
                    pass  # not JSON: reported below, naming the key
                else:
                    return (part, origin, seq, key, kind, text, seal)
    return (*_checked_log_row(entry, parts, what.format(i)), seal)


def _put_log(
    log: dict[tuple[int, str], dict[int, Any]], entry: Any, parts: _Partitions, i: int
) -> None:
    """Check ``entry`` (``log[i]`` of a batch) and put it in ``log``, by segment and seq (a
    log dot already there stays: the first wins). The engine's entries (``delta_json`` in
    the compact form of their kind, a seal of four strings or none) go in as they are;
    anything else as the row :func:`_log_row` checks and makes."""
    key, kind, part, origin, seq = entry.key, entry.kind, entry.partition, entry.origin, entry.seq
    text = getattr(entry, "delta_json", None)
    seal = getattr(entry, "seal", None)
    if (
        _log_dot_ok(key, kind, part, origin, seq, parts)
        and type(text) is str
        and text.startswith(_TYPE_PREFIX[kind])
        and (seal is None or seal is parts.seal_ok or _plain_seal(seal))
    ):
        parts.seal_ok = seal
        found = log.get((part, origin))
        if found is None:
            log[(part, origin)] = {seq: entry}
        elif seq not in found:
            found[seq] = entry
        return
    row = _log_row(entry, parts, "log[{}]", i)
    found = log.get((row[0], row[1]))
    if found is None:
        log[(row[0], row[1])] = {row[2]: row[2:]}
    elif row[2] not in found:
        found[row[2]] = row[2:]


def _put_logs(
    log: dict[tuple[int, str], dict[int, Any]], entries: Iterable[Any], parts: _Partitions
) -> None:
    """:func:`_put_log` for each of ``entries`` (a batch's ``log``), with its common case
    inlined: an engine's entry (the checks of :func:`_log_dot_ok`, its key's partition
    known from an earlier entry, its delta text in the compact form of its kind, its seal
    the one checked last) costs no call. Anything else goes through :func:`_put_log`, which
    checks it and says what is wrong."""
    count, memo, kinds, prefix = parts.count, parts.memo, _KINDS, _TYPE_PREFIX
    segment: dict[int, Any] = {}
    at_part, at_origin = -1, ""
    for i, entry in enumerate(entries):
        try:
            key, kind, part, origin, seq = (
                entry.key,
                entry.kind,
                entry.partition,
                entry.origin,
                entry.seq,
            )
            seal, text = entry.seal, entry.delta_json
        except AttributeError:
            fast = False
        else:
            fast = (
                type(key) is str
                and type(origin) is str
                and type(part) is int
                and type(seq) is int
                and seq >= 1
                and 0 <= part < count
                and kind in kinds
                and part == memo.get(key)  # (so the key is a non-empty str)
                and origin != ""
                and (seal is None or seal is parts.seal_ok)
                and type(text) is str
                and text.startswith(prefix[kind])
            )
        if not fast:
            _put_log(log, entry, parts, i)
            at_part = -1  # (it may have made the segment the next entry belongs to)
            continue
        if part != at_part or origin != at_origin:
            at_part, at_origin = part, origin
            found = log.get((part, origin))
            if found is None:
                found = log[(part, origin)] = {}
            segment = found
        if seq not in segment:
            segment[seq] = entry


def _plain_seal(seal: Any) -> bool:
    """Whether ``seal`` is four strings (what the store keeps and writes as they are)."""
    return (
        isinstance(seal, tuple)
        and len(seal) == 4
        and type(seal[0]) is str
        and type(seal[1]) is str
        and type(seal[2]) is str
        and type(seal[3]) is str
    )


def _checked_log_row(entry: Any, parts: _Partitions, what: str) -> Row:
    key = _text(entry.key, f"{what}.key")
    kind = _kind(entry.kind, f"{what}.kind")
    part = _int(entry.partition, f"{what}.partition", 0, parts.count)
    if part != parts(key):
        raise InvalidInput(
            f"{what}: key {key!r} belongs to partition {parts(key)}, not {part} "
            "(is the store opened with the engine's partition count?)"
        )
    return (
        part,
        _text(entry.origin, f"{what}.origin"),
        _int(entry.seq, f"{what}.seq", 1),
        key,
        kind,
        _blob(
            entry.delta,
            kind,
            lambda: f"{what}.delta for key {key!r}",
            getattr(entry, "delta_json", None),
        ),
    )


def prepare(batch: BatchLike, partitions: int, partition_of: Callable[[str], int]) -> PreparedBatch:
    """Validate ``batch`` and turn it into rows; raises before anything is written.

    Pre-encoded deltas: a log entry (or a hint's entry) may carry its delta's JSON text as
    an attribute ``delta_json``. If it is not None, it is stored verbatim as the delta blob
    instead of encoding ``delta`` again. The caller guarantees that it is the JSON of
    ``delta`` (what :func:`encode` would give, up to formatting): the store only checks that
    it is a ``str`` starting with ``{`` (else :class:`~store.errors.InvalidInput`), and
    still checks the delta's ``"type"`` against the declared ``kind``: on the text when it
    begins ``{"type":"<kind>"`` (compact JSON of a canonical ``to_dict()`` form, which puts
    ``"type"`` first; ``delta`` is then not read, as decoding it may cost a parse), else on
    ``delta["type"]``. Reads decode the
    stored text as usual, so a ``delta_json`` that breaks the guarantee is read back as
    itself (or as :class:`~store.errors.CorruptBlob`), not as ``delta``.
    """
    out = PreparedBatch()
    parts = _Partitions(partition_of, partitions)
    try:
        _prepare_objects(out, batch, parts)
        for i, (part, ctx) in enumerate(batch.summaries):
            part = _int(part, f"summaries[{i}] partition", 0, partitions)
            try:
                out.summaries[part] = encode(check_context(ctx, f"summaries[{i}]"))
            except ValueError as exc:
                raise InvalidInput(str(exc)) from exc
        for i, hint in enumerate(batch.hints_add):
            row = _log_row(hint.entry, parts, "hints_add[{}].entry", i)
            target = _text(hint.target, f"hints_add[{i}].target")
            stored_ms = _ms(hint.stored_at, f"hints_add[{i}].stored_at")
            part, origin, seq, key, kind, delta, seal = row
            out.hints_add.setdefault(
                (target, origin, part, seq),
                (
                    *(target, origin, part, seq, key, kind, delta, stored_ms),  # _HINT_COLS
                    None if seal is None else to_json(seal).decode(),
                ),
            )
        for i, peer in enumerate(batch.peers):
            out.peers[_text(peer.replica_id, f"peers[{i}].replica_id")] = _peer_row(peer, i)
        for i, hid in enumerate(batch.hints_drop):
            out.hints_drop.add(
                (
                    _text(hid.target, f"hints_drop[{i}].target"),
                    _text(hid.origin, f"hints_drop[{i}].origin"),
                    _int(hid.partition, f"hints_drop[{i}].partition", 0, partitions),
                    _int(hid.seq, f"hints_drop[{i}].seq", 1),
                )
            )
        for i, (part, watermark) in enumerate(batch.compact):
            out.compact.append(
                (
                    _int(part, f"compact[{i}] partition", 0, partitions),
                    _watermark(watermark, f"compact[{i}] watermark"),
                )
            )
        out.fold = getattr(batch, "log_folded", False) is True
    except (AttributeError, TypeError) as exc:
        raise InvalidInput(f"not a batch of store records: {exc}") from exc
    return out


def _live(obj: Any, i: int, state: Any) -> bool:
    """The object's ``live`` flag (see :class:`~store.records.ObjectLike`): as the caller
    says it, else from its state decoded (``state``: the to_dict() form or its text)."""
    live = getattr(obj, "live", None)
    if type(live) is bool:
        return live
    if live is not None:
        raise InvalidInput(f"objects[{i}].live must be a bool or None, got {live!r}")
    try:
        decoded: crdt.CRDT = crdt.from_dict(json.loads(state) if type(state) is str else state)
    except (ValueError, crdt.DecodeError) as exc:
        raise InvalidInput(
            f"objects[{i}].state for key {obj.key!r} is not a valid encoding of its kind: {exc}"
        ) from exc
    return decoded.is_live()


def _prepare_objects(out: PreparedBatch, batch: BatchLike, parts: _Partitions) -> None:
    objects_out, log_out = out.objects, out.log
    for i, obj in enumerate(batch.objects):
        key, kind = obj.key, obj.kind
        text = getattr(obj, "state_json", None)
        if (
            type(text) is str
            and type(key) is str
            and key
            and kind in _KINDS
            and text.startswith(_TYPE_PREFIX[kind])
        ):
            # Pre-encoded by the caller (the engine): stored as it is, kind read off the text.
            objects_out[(key, kind)] = (key, kind, parts(key), text, _live(obj, i, text))
            continue
        try:
            state = obj.state
        except ValueError as exc:  # a state_json that is not JSON (decoded by the property)
            raise InvalidInput(f"objects[{i}].state_json is not JSON: {exc}") from exc
        if type(key) is str and key and type(state) is dict and kind in _KINDS:
            if state.get("type") != kind:
                _blob(state, kind, lambda: f"objects[{i}].state for key {key!r}")  # noqa: B023
            try:
                blob = to_json(state, inf_nan_mode="constants").decode()
            except (TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"objects[{i}].state for key {key!r} is not JSON-encodable: {exc}"
                ) from exc
        else:
            key = _text(key, f"objects[{i}].key")
            kind = _kind(kind, f"objects[{i}].kind")
            blob = _blob(state, kind, lambda: f"objects[{i}].state for key {key!r}")  # noqa: B023
        objects_out[(key, kind)] = (key, kind, parts(key), blob, _live(obj, i, state))
    _put_logs(log_out, batch.log, parts)


def _watermark(value: Any, what: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or not all(
        isinstance(o, str) and _is_count(n) for o, n in value.items()
    ):
        raise InvalidInput(f"{what} must map replica ids to non-negative integers")
    return dict(value)


def _peer_row(peer: Any, i: int) -> Row:
    for attr in ("address", "site"):
        value = getattr(peer, attr)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"peers[{i}].{attr} must be a string or None, got {value!r}")
    summary = peer.summary
    encoded: str | None = None
    if summary is not None:
        if not isinstance(summary, Mapping):
            raise InvalidInput(f"peers[{i}].summary must map partition -> context")
        try:
            encoded = encode(
                {
                    str(_int(p, f"peers[{i}].summary partition", 0)): check_context(
                        ctx, f"peers[{i}].summary[{p}]"
                    )
                    for p, ctx in summary.items()
                }
            )
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
    if not isinstance(peer.forgotten, bool):
        raise InvalidInput(f"peers[{i}].forgotten must be a bool")
    card = getattr(peer, "card", None)
    try:
        check_card(card, peer.replica_id, f"peers[{i}].card")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    return (
        peer.replica_id,
        peer.address,
        peer.site,
        encoded,
        _ms(peer.last_seen, f"peers[{i}].last_seen"),
        peer.forgotten,
        card,
    )
