"""Replica and traffic arithmetic, table-driven (the docstring table of traffic.py)."""

from __future__ import annotations

import pytest

from strategies.traffic import (
    canary_replicas,
    replica_share_percent,
    route_weights,
    share,
    stable_replicas,
)


@pytest.mark.parametrize(
    ("weight", "replicas", "routed", "dynamic", "canary", "stable"),
    [
        (0, 10, False, False, 0, 10),
        (10, 10, False, False, 1, 10),
        (33, 10, False, False, 4, 10),
        (100, 10, False, False, 10, 10),
        (0, 10, True, False, 1, 10),
        (5, 10, True, False, 1, 10),
        (50, 10, True, True, 5, 5),
        (90, 10, True, True, 9, 1),
        (1, 3, True, True, 1, 3),
        (50, 0, True, True, 0, 0),
        (100, 10, True, True, 10, 0),
    ],
)
def test_canary_and_stable_replicas(
    weight: int, replicas: int, routed: bool, dynamic: bool, canary: int, stable: int
) -> None:
    assert canary_replicas(weight, replicas, routed=routed) == canary
    assert stable_replicas(weight, replicas, dynamic=dynamic) == stable


@pytest.mark.parametrize(
    ("weight", "replicas", "expected"),
    [(10, 10, 1), (11, 10, 2), (1, 1000, 10), (1, 1, 1), (0, 7, 0), (99, 100, 99)],
)
def test_share_rounds_up(weight: int, replicas: int, expected: int) -> None:
    assert share(weight, replicas) == expected


def test_route_weights_sum_to_100_and_clamp() -> None:
    assert route_weights(stable="a", canary="b", weight=30) == {"a": 70, "b": 30}
    assert route_weights(stable="a", canary="b", weight=130) == {"a": 0, "b": 100}
    assert route_weights(stable="a", canary="a", weight=30) == {"a": 100}


@pytest.mark.parametrize(("canary", "stable", "percent"), [(1, 10, 9), (5, 5, 50), (0, 0, 0)])
def test_replica_share_percent(canary: int, stable: int, percent: int) -> None:
    assert replica_share_percent(canary, stable) == percent
