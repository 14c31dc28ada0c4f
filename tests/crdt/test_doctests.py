"""Runs the runnable examples in the docstrings of every crdt/ module."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import crdt

MODULES = sorted(
    f"crdt.{m.name}" for m in pkgutil.iter_modules(crdt.__path__) if not m.name.startswith("_")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests_pass(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize(
    "cls",
    [
        crdt.GCounter,
        crdt.PNCounter,
        crdt.LWWRegister,
        crdt.MVRegister,
        crdt.ORSet,
        crdt.ORMap,
        crdt.EmbeddedCounter,
        crdt.EmbeddedPNCounter,
        crdt.EmbeddedLWW,
        crdt.VersionVector,
        crdt.CausalContext,
        crdt.HybridLogicalClock,
    ],
)
def test_every_crdt_class_has_a_runnable_example(cls: type) -> None:
    tests = doctest.DocTestFinder(recurse=False).find(cls)
    assert tests and tests[0].examples, f"{cls.__name__} has no example"
