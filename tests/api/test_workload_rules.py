"""The strategy a workload kind refuses, and the message that says why (pure)."""

from __future__ import annotations

import doctest

import pytest

from controller.api import workload_rules
from controller.api.workload_rules import DAEMONSET, STATEFULSET, strategy_problem


def test_blue_green_on_a_statefulset_says_why_and_what_to_use() -> None:
    message = strategy_problem(STATEFULSET, "blueGreen")
    assert message is not None
    assert message.startswith("blue-green has no meaning for a StatefulSet: ")
    assert "spec.strategy.canary" in message and "partition" in message


def test_blue_green_on_a_daemonset_is_refused_too() -> None:
    message = strategy_problem(DAEMONSET, "blueGreen")
    assert message is not None and "one pod per Node" in message


@pytest.mark.parametrize("kind", [STATEFULSET, DAEMONSET, "Deployment", "ReplicaSet"])
@pytest.mark.parametrize("strategy", ["canary", "rolling"])
def test_other_strategies_are_allowed(kind: str, strategy: str) -> None:
    assert strategy_problem(kind, strategy) is None
    assert strategy_problem("Deployment", "blueGreen") is None


def test_docstring_examples() -> None:
    result = doctest.testmod(workload_rules)
    assert result.attempted > 0 and result.failed == 0
