"""The checks of ``sync.config`` that every caller shares: keys (``check_key``), an
operation's own options (``ReplicaConfig.write_options`` / ``read_options``, one level check
with the configuration's own ``w`` and ``r``), and the smallest ``max_message_bytes``."""

from __future__ import annotations

from typing import Any

import pytest

from sync.config import (
    MESSAGE_ENVELOPE,
    MIN_MESSAGE_BYTES,
    ReplicaConfig,
    check_key,
    check_site_level,
)
from sync.replica import Replica

__all__: list[str] = []


@pytest.mark.parametrize(
    ("key", "error", "match"),
    [
        (3, TypeError, "key must be a str, got int"),
        (None, TypeError, "key must be a str, got NoneType"),
        ("", ValueError, "key must not be empty"),
        ("a\x00b", ValueError, "key must not hold a NUL character"),
        ("\ud800", ValueError, r"key must be UTF-8 text, but '\\ud800' at 0 is a lone surrogate"),
        ("cart:\udcff", ValueError, r"'\\udcff' at 5 is a lone surrogate"),
    ],
)
def test_check_key_names_what_is_wrong(key: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_key(key)


def test_check_key_takes_any_utf8_text_and_prefixes_may_be_empty() -> None:
    for key in ("cart", "café", "🛒", "\U0010ffff", "a b\tc"):
        assert check_key(key) == key
    assert check_key("", "prefix", empty_ok=True) == ""
    with pytest.raises(ValueError, match="prefix must be UTF-8 text"):
        check_key("\udfff", "prefix", empty_ok=True)


# -- levels and options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "error", "match"),
    [
        (4, ValueError, "w=4 is impossible with n=3"),
        (0, ValueError, "w=0 is impossible"),
        (True, TypeError, "w must be an int or one of"),
        ("most", ValueError, "w must be an int or one of"),
        ("LOCAL_QUORUM", ValueError, "w=LOCAL_QUORUM needs site, and this replica has none"),
    ],
)
def test_one_level_check_for_the_configuration_and_each_operation(
    level: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        check_site_level("w", level, 3, None)
    with pytest.raises(error, match=match):
        ReplicaConfig(w=level)
    with pytest.raises(error, match=match):
        ReplicaConfig().write_options(level, None, None)
    with pytest.raises(error, match=match.replace("w", "r", 1)):
        ReplicaConfig().read_options(level, None, None)


def test_options_default_to_the_configuration() -> None:
    cfg = ReplicaConfig(w=2, r="QUORUM", strict=True, write_timeout=3.0, read_timeout=4.0)
    assert cfg.write_options(None, None, None) == (2, True, 3.0)
    assert cfg.read_options(None, None, None) == ("QUORUM", True, 4.0)
    assert cfg.write_options("ALL", False, 1) == ("ALL", False, 1.0)
    site = ReplicaConfig(site="eu")
    assert site.read_options("LOCAL_QUORUM", None, None)[0] == "LOCAL_QUORUM"
    for bad, error in [({"strict": 1}, TypeError), ({"timeout": 0}, ValueError)]:
        with pytest.raises(error):
            cfg.write_options(bad.get("w"), bad.get("strict"), bad.get("timeout"))


def _increment(counter: Any) -> Any:
    return counter.increment("A")


def test_the_engine_refuses_local_quorum_without_a_site_as_bad_input() -> None:
    """Not ``LocalProtocolError`` (our misuse): the level is the caller's input."""
    r = Replica(ReplicaConfig(n=1), "A")
    r.local_update(1, "k", "gcounter", _increment, 0.0)
    r.effects()
    with pytest.raises(ValueError, match="LOCAL_QUORUM needs site") as err:
        r.local_update(2, "k", "gcounter", _increment, 1.0, w="LOCAL_QUORUM")
    assert type(err.value) is ValueError
    with pytest.raises(ValueError, match="LOCAL_QUORUM needs site") as err:
        r.local_read(3, "k", 1.0, r="LOCAL_QUORUM")
    assert type(err.value) is ValueError
    assert r.effects() == [] and r.value("k").value == 1  # type: ignore[union-attr]


# -- the smallest message --------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 10, MESSAGE_ENVELOPE, 16 * 1024, MIN_MESSAGE_BYTES - 1])
def test_a_message_limit_below_the_minimum_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match=f"max_message_bytes must be >= {MIN_MESSAGE_BYTES}"):
        ReplicaConfig(max_message_bytes=size)


def test_at_the_minimum_every_limit_leaves_room() -> None:
    cfg = ReplicaConfig(max_message_bytes=MIN_MESSAGE_BYTES)
    assert cfg.value_limit == 32 * 1024
    assert cfg.entry_limit == 60 * 1024
    assert ReplicaConfig(max_message_bytes=MIN_MESSAGE_BYTES, max_value_bytes=1).value_limit == 1
