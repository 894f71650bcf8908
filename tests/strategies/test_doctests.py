"""The worked examples in the strategy docstrings are run, so they stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "strategies.traffic",
        "strategies.baseline",
        "controller.analysis.score",
        "strategies.rolling",
        "strategies.scaling",
        "strategies.runkeys",
        "strategies.managed_routes",
        "controller.api.reasons",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
