"""Release hooks (spec.hooks) in every strategy, as pure planning: preRollout holds the
new revision at zero pods, postPromotion decides before the new revision becomes stable,
onAbort runs once per abort. The World's engine judges hook runs like any analysis run
(``verdicts`` by run key)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import Rollout
from controller.api import reasons as r
from controller.api.status import Phase
from strategies import Request, runkeys
from tests.strategies.world import World, make_rollout

JOB = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "sandbox/shell"}]}}}}
HOOK_PRE_ROLLOUT = str(runkeys.HOOK_PRE_ROLLOUT)
HOOK_POST_PROMOTION = str(runkeys.HOOK_POST_PROMOTION)
HOOK_ON_ABORT = str(runkeys.HOOK_ON_ABORT)
STRATEGIES: dict[str, dict[str, Any]] = {
    "canary": {"canary": {"steps": [{"setWeight": 50}]}},
    "blueGreen": {"blueGreen": {"activeService": "shop", "previewService": "shop-preview"}},
    "rolling": {"rolling": {"maxSurge": 1, "maxUnavailable": 0}},
}


def with_hooks(strategy: dict[str, Any], **hooks: list[str]) -> Rollout:
    rollout = make_rollout(strategy, replicas=4)
    spec = {kind: [{"name": name, "job": JOB} for name in names] for kind, names in hooks.items()}
    return rollout.model_validate(
        {**rollout.to_dict(), "spec": {**rollout.to_dict()["spec"], "hooks": spec}}
    )


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_pre_rollout_holds_the_new_revision_at_zero_until_it_succeeds(kind: str) -> None:
    world = World.settled(with_hooks(STRATEGIES[kind], preRollout=["migrate"]))
    world.default_verdict = None  # the migration Job keeps running
    for _ in range(5):
        plan = world.step()
        assert plan.replicas.get("new", 0) == 0, plan.replicas
        assert plan.replicas["old"] == 4
        assert plan.status.reason == r.HOOK_RUNNING and "migrate" in plan.status.message
    assert [x.key for x in plan.status.analysis_runs] == [HOOK_PRE_ROLLOUT]
    world.verdicts[HOOK_PRE_ROLLOUT] = "Successful"
    world.tick()
    plan = world.run_until(lambda p: p.replicas.get("new", 0) > 0)
    assert plan.status.phase is Phase.PROGRESSING


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_a_failed_pre_rollout_aborts_without_touching_stable_and_on_abort_runs_once(
    kind: str,
) -> None:
    world = World.settled(with_hooks(STRATEGIES[kind], preRollout=["migrate"], onAbort=["undo"]))
    world.verdicts[HOOK_PRE_ROLLOUT] = "Failed"
    plan = world.run_until(lambda p: p.status.aborted)
    assert plan.status.reason == r.PRE_ROLLOUT_HOOK_FAILED
    assert "never started" in plan.status.message and "old untouched" in plan.status.message
    assert all(p.replicas.get("new", 0) == 0 for p in world.plans)
    for _ in range(4):
        plan = world.step()
    runs = [x for x in plan.status.analysis_runs if x.key == HOOK_ON_ABORT]
    assert len(runs) == 1 and runs[0].phase == "Successful"
    entry = plan.status.history[-1]
    assert entry.outcome == "Aborted"
    assert entry.events.count("onAbort hook(s) undo succeeded") == 1


def test_canary_post_promotion_failure_aborts_back_to_stable_before_promotion() -> None:
    world = World.settled(with_hooks(STRATEGIES["canary"], postPromotion=["smoke"]))
    world.verdicts[HOOK_POST_PROMOTION] = "Failed"
    plan = world.run_until(lambda p: p.status.aborted)
    assert plan.status.reason == r.POST_PROMOTION_HOOK_FAILED
    assert plan.status.stable_revision == "old" and plan.status.history[-1].outcome == "RolledBack"
    assert plan.replicas.get("old") == 4 and plan.replicas.get("new", 0) == 0


def test_rolling_post_promotion_failure_rolls_back_and_success_promotes() -> None:
    world = World.settled(with_hooks(STRATEGIES["rolling"], postPromotion=["smoke"]))
    world.default_verdict = None
    plan = world.run_until(lambda p: p.status.reason == r.HOOK_RUNNING)
    assert plan.replicas.get("new") == 4 and plan.replicas.get("old", 0) == 0
    world.verdicts[HOOK_POST_PROMOTION] = "Failed"
    world.tick()
    plan = world.run_until(lambda p: p.replicas.get("old") == 4 and p.replicas.get("new", 0) == 0)
    assert plan.status.reason == r.POST_PROMOTION_HOOK_FAILED

    world = World.settled(with_hooks(STRATEGIES["rolling"], postPromotion=["smoke"]))
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert plan.status.phase is Phase.HEALTHY
    assert [x.key for x in plan.status.analysis_runs if x.key.startswith("hook-")] == [
        HOOK_POST_PROMOTION
    ]


def test_retry_after_a_failed_migration_runs_it_again() -> None:
    world = World.settled(with_hooks(STRATEGIES["canary"], preRollout=["migrate"]))
    world.verdicts[HOOK_PRE_ROLLOUT] = "Failed"
    world.run_until(lambda p: p.status.aborted)
    world.verdicts[HOOK_PRE_ROLLOUT] = "Successful"
    world.request = Request(id="r1", action="retry", by="sre")
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert plan.status.phase is Phase.HEALTHY
