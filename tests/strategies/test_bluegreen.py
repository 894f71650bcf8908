"""Blue-green scenarios, one behaviour each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from controller.api import reasons as r
from controller.api.status import Phase
from strategies import Request
from tests.strategies.world import World, make_rollout

SMOKE = {"templates": [{"name": "smoke"}]}


def blue_green(**extra: Any) -> dict[str, Any]:
    return {"blueGreen": {"activeService": "pay", "previewService": "pay-preview", **extra}}


def test_new_revision_comes_up_behind_the_preview_service_only() -> None:
    world = World.settled(make_rollout(blue_green(autoPromotionEnabled=False), replicas=4))
    plan = world.step()
    assert plan.replicas == {"old": 4, "new": 4}
    assert plan.service_selectors == {"pay": "old", "pay-preview": "new"}
    assert plan.status.reason == r.WAITING_FOR_REPLICAS


def test_preview_replica_count_scales_the_preview_then_full_size_before_the_switch() -> None:
    world = World.settled(make_rollout(blue_green(previewReplicaCount=1), replicas=4))
    assert world.step().replicas == {"old": 4, "new": 1}
    plan = world.step()
    assert plan.replicas == {"old": 4, "new": 4} and plan.service_selectors["pay"] == "old"
    plan = world.step()
    assert plan.service_selectors["pay"] == "new"


def test_auto_promotion_switches_active_once_the_preview_is_ready() -> None:
    world = World.settled(make_rollout(blue_green(scaleDownDelaySeconds=60), replicas=4))
    world.step()
    plan = world.step()
    assert plan.service_selectors == {"pay": "new", "pay-preview": "new"}
    assert plan.status.stable_revision == "new" and plan.status.phase is Phase.HEALTHY
    assert plan.replicas == {"old": 4, "new": 4} and plan.requeue_after == 60
    assert any(e.reason == r.SERVICE_SWITCHED for e in plan.events)
    world.now += timedelta(seconds=60)
    assert world.step().replicas == {"new": 4}


def test_auto_promotion_seconds_counts_from_when_the_preview_became_ready() -> None:
    world = World.settled(make_rollout(blue_green(autoPromotionSeconds=120), replicas=2))
    world.step()
    plan = world.step(seconds=60)
    assert plan.status.reason == r.AWAITING_PROMOTION and plan.requeue_after == 120
    assert world.step(seconds=60).requeue_after == 60
    assert world.step().service_selectors["pay"] == "new"


def test_without_auto_promotion_the_switch_waits_for_promote() -> None:
    world = World.settled(make_rollout(blue_green(autoPromotionEnabled=False), replicas=2))
    for _ in range(4):
        plan = world.step()
    assert plan.status.phase is Phase.PAUSED and plan.service_selectors["pay"] == "old"
    world.request = Request("promote", "p1", "ana")
    plan = world.step()
    assert plan.service_selectors["pay"] == "new" and plan.status.stable_revision == "new"


def test_pre_promotion_analysis_must_pass_before_the_switch() -> None:
    world = World.settled(make_rollout(blue_green(prePromotionAnalysis=SMOKE), replicas=2))
    world.default_verdict = None
    world.step()
    plan = world.step()
    assert [x.key for x in plan.status.analysis_runs] == ["prePromotion"]
    assert plan.service_selectors["pay"] == "old" and plan.status.reason == r.ANALYSIS_RUNNING
    world.verdicts["prePromotion"] = "Failed"
    world.tick()
    plan = world.step()
    assert plan.status.phase is Phase.DEGRADED and plan.status.reason == r.ANALYSIS_FAILED
    assert plan.replicas == {"old": 2} and plan.service_selectors["pay"] == "old"


def test_failed_post_promotion_analysis_switches_back_at_once_to_the_old_revision() -> None:
    world = World.settled(make_rollout(blue_green(postPromotionAnalysis=SMOKE), replicas=3))
    world.verdicts["postPromotion"] = "Failed"
    world.step()
    switched = world.step()
    assert switched.service_selectors["pay"] == "new" and switched.status.stable_revision == "old"
    assert switched.replicas == {"old": 3, "new": 3}
    plan = world.step()
    assert plan.status.phase is Phase.ROLLED_BACK and plan.status.reason == r.ANALYSIS_FAILED
    assert plan.service_selectors["pay"] == "old" and plan.replicas == {"old": 3}
    assert "error-rate 0.124 > max 0.05 for 2m" in plan.status.message
    assert plan.status.history[-1].outcome == "RolledBack"


def test_inconclusive_pre_promotion_analysis_pauses_and_promote_accepts_it() -> None:
    world = World.settled(make_rollout(blue_green(prePromotionAnalysis=SMOKE), replicas=2))
    world.verdicts["prePromotion"] = "Inconclusive"
    world.step()
    world.step()
    plan = world.step()
    assert plan.status.phase is Phase.PAUSED and plan.status.reason == r.ANALYSIS_INCONCLUSIVE
    world.request = Request("promote", "p2", "ana")
    plan = world.step()
    assert plan.service_selectors["pay"] == "new"


def test_abort_keeps_active_on_the_old_revision_and_scales_the_new_one_to_zero() -> None:
    world = World.settled(make_rollout(blue_green(autoPromotionEnabled=False), replicas=2))
    world.step()
    world.request = Request("abort", "p3", "sre")
    plan = world.step()
    assert plan.status.reason == r.ABORTED and plan.replicas == {"old": 2}
    assert plan.service_selectors == {"pay": "old", "pay-preview": "old"}


def test_a_preview_that_never_becomes_ready_fails_at_the_progress_deadline() -> None:
    world = World.settled(make_rollout(blue_green(), replicas=2, deadline=30))
    world.broken.add("new")
    plan = world.run_until(lambda p: p.status.aborted)
    assert plan.status.reason == r.PROGRESS_DEADLINE_EXCEEDED and plan.replicas == {"old": 2}
