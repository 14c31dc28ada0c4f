"""Unit tests of sync.consistency and the validation of sync.config.ReplicaConfig."""

from __future__ import annotations

import dataclasses

import pytest

from sync.config import ReplicaConfig
from sync.consistency import ALL, LOCAL_QUORUM, ONE, QUORUM, check_level, required_acks


@pytest.mark.parametrize(
    ("level", "n", "expected"),
    [(ONE, 3, 1), (QUORUM, 3, 2), (QUORUM, 4, 3), (QUORUM, 5, 3), (ALL, 3, 3), (2, 3, 2)],
)
def test_required_acks(level: int | str, n: int, expected: int) -> None:
    assert required_acks(level, n) == expected


def test_local_quorum_is_a_majority_of_the_local_homes() -> None:
    assert required_acks(LOCAL_QUORUM, 5, local_homes=3) == 2
    assert required_acks(LOCAL_QUORUM, 5, local_homes=1) == 1
    assert required_acks(LOCAL_QUORUM, 5, local_homes=0) == 1
    with pytest.raises(ValueError, match="local site"):
        required_acks(LOCAL_QUORUM, 3)


@pytest.mark.parametrize("bad", [0, 4, -1, "TWO", "quorum"])
def test_impossible_or_unknown_levels_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        check_level(bad, 3)


@pytest.mark.parametrize("bad", [True, 1.0, None, [1]])
def test_levels_of_the_wrong_type_are_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        check_level(bad, 3)


def test_config_defaults() -> None:
    cfg = ReplicaConfig()
    assert (cfg.n, cfg.w, cfg.r, cfg.partitions, cfg.vnodes) == (3, 1, 1, 64, 16)
    assert cfg.anti_entropy_on and cfg.max_message_bytes == 4 * 1024 * 1024
    assert not ReplicaConfig(anti_entropy_interval=0).anti_entropy_on
    assert not ReplicaConfig(anti_entropy_interval=None).anti_entropy_on
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "n must be >= 1"),
        ({"n": 2, "w": 3}, ValueError, "w=3 is impossible"),
        ({"r": "MOST"}, ValueError, "r must be"),
        ({"w": LOCAL_QUORUM}, ValueError, "needs site"),
        ({"write_timeout": 0}, ValueError, "write_timeout"),
        ({"read_timeout": "5"}, TypeError, "read_timeout"),
        ({"anti_entropy_interval": -1.0}, ValueError, "anti_entropy_interval"),
        ({"ae_batch": True}, TypeError, "ae_batch"),
        ({"strict": 1}, TypeError, "strict"),
        ({"site": ""}, ValueError, "site"),
    ],
)
def test_config_refuses_bad_values(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ReplicaConfig(**kwargs)  # type: ignore[arg-type]


def test_local_quorum_config_with_a_site() -> None:
    assert ReplicaConfig(w=LOCAL_QUORUM, site="eu").w == LOCAL_QUORUM


@pytest.mark.parametrize(
    "module",
    [
        "sync.config",
        "sync.consistency",
        "sync.errors",
        "sync.messages",
        "sync.replica",
        "sync.ring",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
