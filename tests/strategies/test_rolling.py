"""Rolling-update scenarios and the surge/unavailable arithmetic, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import reasons as r
from controller.api.status import Phase
from strategies import Request
from strategies.rolling import rolling_update
from strategies.scaling import Pods, resolve, surge_and_unavailable
from tests.strategies.world import World, make_rollout

GATE = {"templates": [{"name": "latency"}]}


def rolling(**extra: Any) -> dict[str, Any]:
    return {"rolling": {"maxSurge": "25%", "maxUnavailable": "25%", **extra}}


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("25%", 1, True, 1),
        ("25%", 1, False, 0),
        ("100%", 7, False, 7),
        ("0%", 9, True, 0),
        (2, 10, False, 2),
    ],
)
def test_percentages_round_as_kubernetes_rounds_them(
    value: int | str, total: int, round_up: bool, expected: int
) -> None:
    assert resolve(value, total, round_up=round_up) == expected


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),
        ("25%", "25%", 1, (1, 0)),
        ("0%", "10%", 5, (0, 1)),  # both 0: unavailable becomes 1
        (0, 1, 3, (0, 1)),
        (2, "50%", 3, (2, 1)),
    ],
)
def test_surge_and_unavailable(
    surge: int | str, unavailable: int | str, replicas: int, expected: tuple[int, int]
) -> None:
    assert surge_and_unavailable(surge, unavailable, replicas=replicas) == expected


@pytest.mark.parametrize(
    ("replicas", "target", "surge", "unav", "new", "old", "expected"),
    [
        # Kubernetes' first pass: surge up, shrink old by the unavailable budget.
        (10, 10, 3, 2, Pods(0, 0), Pods(10, 10), (3, 8)),
        # New pods not ready yet: surge room (13 - 11) grows new; old keeps its 8 available.
        (10, 10, 3, 2, Pods(3, 0), Pods(8, 8), (5, 8)),
        # New pods ready: old shrinks by what stays above the minimum (11 - 8 = 3).
        (10, 10, 3, 2, Pods(3, 3), Pods(8, 8), (5, 5)),
        # maxSurge 0: old must go first.
        (3, 3, 0, 1, Pods(0, 0), Pods(3, 3), (0, 2)),
        # Unavailable old pods cost no availability: they go first, for free; the one
        # available pod stays, since availability is already below the minimum.
        (4, 4, 0, 1, Pods(0, 0), Pods(4, 1), (0, 1)),
        # A gate at 2 pods keeps 2 old pods serving.
        (4, 2, 1, 1, Pods(2, 2), Pods(3, 3), (2, 2)),
        # Done.
        (4, 4, 1, 1, Pods(4, 4), Pods(0, 0), (4, 0)),
    ],
)
def test_rolling_update_pass(
    replicas: int,
    target: int,
    surge: int,
    unav: int,
    new: Pods,
    old: Pods,
    expected: tuple[int, int],
) -> None:
    new_desired, olds = rolling_update(
        replicas=replicas,
        target=target,
        surge=surge,
        unavailable=unav,
        new=new,
        old=[("old", old)],
    )
    assert (new_desired, olds["old"]) == expected


def test_rolling_update_replaces_every_pod_and_promotes() -> None:
    world = World.settled(make_rollout(rolling(), replicas=4))
    first = world.step()
    assert first.replicas == {"old": 3, "new": 1} and first.status.reason == r.ROLLING_UPDATE
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert plan.replicas == {"new": 4} and plan.status.phase is Phase.HEALTHY
    assert plan.status.history[-1].outcome == "Promoted"


def test_rolling_gate_holds_until_its_analysis_passes() -> None:
    world = World.settled(
        make_rollout(rolling(gates=[{"atPercent": 50, "analysis": GATE}]), replicas=4)
    )
    world.default_verdict = None
    plan = world.run_until(lambda p: p.status.reason == r.ANALYSIS_GATE)
    for _ in range(3):
        plan = world.step()
    assert plan.replicas == {"old": 2, "new": 2}
    assert [x.key for x in plan.status.analysis_runs] == ["gate-50"]
    world.verdicts["gate-50"] = "Successful"
    world.tick()
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert plan.replicas == {"new": 4}


def test_a_failed_gate_rolls_back_within_the_budget_and_restores_old_replicas() -> None:
    world = World.settled(
        make_rollout(rolling(gates=[{"atPercent": 50, "analysis": GATE}]), replicas=4)
    )
    world.verdicts["gate-50"] = "Failed"
    plan = world.run_until(lambda p: p.status.aborted)
    assert plan.status.reason == r.ANALYSIS_FAILED and "at gate 50%" in plan.status.message
    plan = world.run_until(lambda p: p.replicas == {"old": 4})
    assert plan.status.phase is Phase.DEGRADED


def test_abort_request_restores_the_old_revision() -> None:
    world = World.settled(make_rollout(rolling(), replicas=8))
    world.step()
    world.step()
    world.request = Request("abort", "a1", "sre")
    plan = world.run_until(lambda p: p.replicas == {"old": 8})
    assert plan.status.reason == r.ABORTED and plan.status.history[-1].outcome == "Aborted"


def test_promote_passes_a_waiting_gate() -> None:
    world = World.settled(
        make_rollout(rolling(gates=[{"atPercent": 25, "analysis": GATE}]), replicas=4)
    )
    world.default_verdict = None
    world.run_until(lambda p: p.status.reason == r.ANALYSIS_GATE)
    world.request = Request("promote", "a2", "ana")
    world.step()
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert plan.replicas == {"new": 4}


def test_a_stuck_rolling_update_fails_at_the_progress_deadline() -> None:
    world = World.settled(make_rollout(rolling(), replicas=4, deadline=60))
    world.broken.add("new")
    plan = world.run_until(lambda p: p.status.aborted)
    assert plan.status.reason == r.PROGRESS_DEADLINE_EXCEEDED
    plan = world.run_until(lambda p: p.replicas == {"old": 4})


def test_a_crash_looping_new_revision_is_rolled_back_at_once() -> None:
    world = World.settled(make_rollout(rolling(), replicas=4))
    world.crashing.add("new")
    world.step()
    plan = world.step()
    assert plan.status.aborted and plan.status.reason == r.CANARY_CRASH_LOOPING
    plan = world.run_until(lambda p: p.replicas == {"old": 4})


def test_reverting_the_template_mid_rollout_grows_stable_back_within_the_budget() -> None:
    world = World.settled(make_rollout(rolling(maxSurge=0, maxUnavailable=1), replicas=4))
    world.step()
    world.step()
    plan = world.step("old")
    assert (
        plan.status.reason == r.ROLLING_UPDATE and plan.status.history[-1].outcome == "Superseded"
    )
    plan = world.run_until(lambda p: p.replicas == {"old": 4}, revision="old")
