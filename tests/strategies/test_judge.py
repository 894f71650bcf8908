"""The one analysis rule (``strategies.judge.judge_run``) as each strategy applies it.

Every analysis run a strategy starts (canary step and background, blue-green pre- and
post-promotion, rolling gates) goes through the same judge: Failed aborts with the
evidence, Inconclusive pauses for a person, and a provider that does not answer pauses
the rollout, holds the world still, and lets it go on by itself once it answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from controller.api import Rollout
from controller.api import reasons as r
from controller.api.status import Phase
from strategies import Plan
from tests.strategies.world import World, make_rollout

REF = {"templates": [{"name": "health"}]}


@dataclass(frozen=True)
class Case:
    """A rollout, its analysis run key, and when that run is under way."""

    key: str
    rollout: Callable[[], Rollout]
    reached: Callable[[Plan], bool]


def running(key: str) -> Callable[[Plan], bool]:
    return lambda plan: any(x.key == key for x in plan.status.analysis_runs)


CASES = {
    "canary-step": Case(
        "step-1",
        lambda: make_rollout(
            {
                "canary": {
                    "stableService": "s",
                    "canaryService": "c",
                    "steps": [{"setWeight": 20}, {"analysis": REF}, {"setWeight": 60}],
                }
            },
            replicas=5,
        ),
        running("step-1"),
    ),
    "canary-background": Case(
        "background",
        lambda: make_rollout(
            {
                "canary": {
                    "stableService": "s",
                    "canaryService": "c",
                    "steps": [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 60}],
                }
            },
            replicas=5,
            analysis=REF,
        ),
        running("background"),
    ),
    "bluegreen-pre": Case(
        "prePromotion",
        lambda: make_rollout(
            {
                "blueGreen": {
                    "activeService": "a",
                    "previewService": "p",
                    "prePromotionAnalysis": REF,
                }
            },
            replicas=4,
        ),
        running("prePromotion"),
    ),
    "bluegreen-post": Case(
        "postPromotion",
        lambda: make_rollout(
            {
                "blueGreen": {
                    "activeService": "a",
                    "previewService": "p",
                    "postPromotionAnalysis": REF,
                }
            },
            replicas=4,
        ),
        running("postPromotion"),
    ),
    "rolling-gate": Case(
        "gate-50",
        lambda: make_rollout(
            {
                "rolling": {
                    "maxSurge": 1,
                    "maxUnavailable": 0,
                    "gates": [{"atPercent": 50, "analysis": REF}],
                }
            },
            replicas=4,
        ),
        running("gate-50"),
    ),
}
ids = list(CASES)


def at_the_run(case: Case) -> tuple[World, Plan]:
    """A world whose new revision has reached ``case``'s run, which keeps running."""
    world = World.settled(case.rollout())
    world.default_verdict = None
    plan = world.run_until(case.reached)
    return world, plan


def world_of(plan: Plan) -> tuple[Any, ...]:
    return (plan.replicas, plan.service_selectors, plan.route_weights)


@pytest.mark.parametrize("name", ids)
def test_a_failed_run_aborts_with_its_evidence(name: str) -> None:
    case = CASES[name]
    world, _ = at_the_run(case)
    world.verdicts[case.key] = "Failed"
    plan = world.run_until(lambda p: p.status.aborted)
    assert plan.status.reason == r.ANALYSIS_FAILED
    assert "error-rate 0.124 > max 0.05" in plan.status.message
    assert f"[analysis {case.key}]" in plan.status.message
    plan = world.run_until(lambda p: set(p.replicas) == {"old"})
    assert set(plan.service_selectors.values()) <= {"old"}
    assert plan.status.stable_revision == "old"


@pytest.mark.parametrize("name", ids)
def test_an_inconclusive_run_pauses_for_a_person(name: str) -> None:
    case = CASES[name]
    world, _ = at_the_run(case)
    world.verdicts[case.key] = "Inconclusive"
    plan = world.run_until(lambda p: p.status.reason == r.ANALYSIS_INCONCLUSIVE)
    held = world_of(plan)
    for _ in range(5):
        plan = world.step(seconds=60)
        assert plan.status.phase is Phase.PAUSED and world_of(plan) == held
    assert "deployctl retry" in plan.status.message and not plan.status.aborted


@pytest.mark.parametrize("name", ids)
def test_an_unreachable_provider_pauses_holds_and_goes_on_by_itself(name: str) -> None:
    case = CASES[name]
    world, _ = at_the_run(case)
    world.outage = True
    plan = world.run_until(lambda p: p.status.reason == r.ANALYSIS_PROVIDER_UNREACHABLE)
    assert plan.status.phase is Phase.PAUSED and f"[analysis {case.key}]" in plan.status.message
    assert "continues by itself" in plan.status.message
    held = world_of(plan)
    # However long it lasts: paused, the world held still, never promoted nor aborted,
    # and the run itself stays Running, so the engine keeps measuring.
    for _ in range(30):
        plan = world.step(seconds=20)
        assert plan.status.reason == r.ANALYSIS_PROVIDER_UNREACHABLE, plan.status.message
        assert world_of(plan) == held
        assert plan.status.stable_revision == "old" and not plan.status.aborted
        run = next(x for x in plan.status.analysis_runs if x.key == case.key)
        assert run.phase == "Running"
    # The provider answers again, the run passes, and the rollout finishes on its own.
    world.outage = False
    world.verdicts[case.key] = "Successful"
    world.default_verdict = "Successful"
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert world.step().status.phase is Phase.HEALTHY


def test_no_data_is_not_an_outage_and_waits_for_a_person() -> None:
    world, _ = at_the_run(CASES["rolling-gate"])
    world.verdicts["gate-50"] = "Inconclusive"
    world.run_until(lambda p: p.status.reason == r.ANALYSIS_INCONCLUSIVE)
    for _ in range(10):
        plan = world.step(seconds=60)
    assert plan.status.reason == r.ANALYSIS_INCONCLUSIVE and plan.status.stable_revision == "old"
