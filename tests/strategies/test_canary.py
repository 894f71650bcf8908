"""Canary scenarios, one behaviour each, read as sentences."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from controller.api import reasons as r
from controller.api.status import Phase
from strategies import Plan, Request
from strategies.observed import RevisionState
from tests.strategies.world import (
    World,
    canary,
    failed_run,
    gateway,
    make_rollout,
)

HEALTH = {"templates": [{"name": "http-health"}]}


def at_step(world: World, index: int, *, limit: int = 50) -> Plan:
    return world.run_until(lambda p: p.status.current_step_index == index, limit=limit)


def test_first_deploy_goes_straight_to_100_percent_without_analysis() -> None:
    world = World(rollout=make_rollout(canary(), analysis=HEALTH))
    plan = world.step("new")
    assert plan.replicas == {"new": 10}
    assert plan.service_selectors == {"shop": "new", "shop-canary": "new"}
    assert plan.status.stable_revision == "new" and plan.status.analysis_runs == []
    assert plan.status.reason == r.FIRST_DEPLOY and plan.status.phase is Phase.PROGRESSING
    assert [e.reason for e in plan.events] == [r.FIRST_DEPLOY]
    assert world.step("new").status.phase is Phase.HEALTHY
    assert world.status.history[-1].outcome == "Promoted"


def test_first_sight_with_no_status_and_nothing_observed_is_a_first_deploy() -> None:
    world = World(rollout=make_rollout(gateway()))
    plan = world.decide()
    assert world.rollout.status is None
    assert plan.route_weights == {"new": 100}
    assert plan.status.observed_generation == 3
    types = {c.type: c.status for c in plan.status.conditions}
    assert types == {
        "Available": "False",
        "Degraded": "False",
        "Paused": "False",
        "Progressing": "True",
    }


def test_new_revision_starts_at_step_0_and_takes_its_share_from_the_stable() -> None:
    world = World.settled(make_rollout(canary()))
    plan = world.step()
    assert plan.status.canary_revision == "new" and plan.status.current_step_index == 0
    assert plan.replicas == {"old": 9, "new": 1}
    assert plan.service_selectors == {"shop": "old", "shop-canary": "new"}
    assert plan.status.weight == 0, "the weight moves only once the canary pod is available"
    assert r.NEW_REVISION in [e.reason for e in plan.events]
    assert plan.status.history[-1].outcome == "Progressing"


def test_set_weight_advances_once_the_canary_pods_for_it_are_available() -> None:
    world = World.settled(make_rollout(canary()))
    world.step()
    plan = world.step()
    assert plan.status.weight == 10 and plan.status.current_step_index == 1
    assert plan.status.phase is Phase.PAUSED and plan.status.reason == r.PAUSE_STEP


def test_by_replica_share_the_weight_is_the_canary_share_of_the_pods() -> None:
    world = World.settled(make_rollout(canary([{"setWeight": 33}, {"pause": {}}]), replicas=10))
    plan = world.run_until(lambda p: p.status.current_step_index == 1)
    assert plan.replicas == {"old": 7, "new": 3}
    assert plan.status.weight == 30, "status says the share users get: 3 of 10 pods"
    assert plan.route_weights is None
    assert any("3 canary and 7 stable pod(s)" in e.message for e in plan.events)


def test_stable_scale_full_keeps_the_stable_and_says_the_smaller_share() -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 80}, {"pause": {}}]
    world = World.settled(make_rollout(canary(steps, stableScale="full"), replicas=5))
    plan = world.run_until(lambda p: p.status.current_step_index == 1)
    assert plan.replicas == {"old": 5, "new": 4}
    assert plan.status.weight == 44, "4 canary pods of 9"


def test_by_replica_share_the_pods_move_within_max_surge_and_max_unavailable() -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    world = World.settled(make_rollout(canary(steps, maxSurge=1, maxUnavailable=0), replicas=4))
    sizes = []
    for _ in range(8):
        plan = world.step()
        sizes.append((plan.replicas.get("new", 0), plan.replicas.get("old", 0)))
    # One pod above 4 at a time, and an old pod goes only once a new one is available.
    assert sizes[:4] == [(1, 4), (1, 3), (2, 3), (2, 2)]
    assert world.status.current_step_index == 1 and world.status.weight == 50


def test_gateway_api_routes_the_step_weight_with_a_canary_floor_of_one_pod() -> None:
    world = World.settled(make_rollout(gateway([{"setWeight": 5}, {"pause": {}}]), replicas=10))
    first = world.step()
    assert first.replicas == {"old": 10, "new": 1}
    assert first.route_weights == {"old": 100, "new": 0}
    plan = world.step()
    assert plan.route_weights == {"old": 95, "new": 5}


def test_timed_pause_requeues_for_the_time_left_and_then_advances() -> None:
    world = World.settled(make_rollout(canary()))
    world.step()
    plan = world.step(seconds=30)
    assert plan.status.current_step_index == 1
    assert plan.requeue_after == 120
    assert world.step().requeue_after == 90
    world.now += timedelta(seconds=90)
    assert world.step().status.current_step_index == 2


def test_indefinite_pause_waits_for_promote() -> None:
    world = World.settled(
        make_rollout(canary([{"setWeight": 20}, {"pause": {}}, {"setWeight": 40}]))
    )
    plan = at_step(world, 1)
    for _ in range(5):
        plan = world.step()
    assert plan.status.current_step_index == 1 and plan.status.phase is Phase.PAUSED
    assert plan.requeue_after is None
    world.request = Request("promote", "r1", "ana")
    plan = world.step()
    assert plan.status.current_step_index == 2
    assert plan.status.last_handled_request == "r1"
    assert any(e.reason == r.PROMOTED and "ana" in e.message for e in plan.events)


def test_canary_at_step_2_with_failed_analysis_aborts_to_stable() -> None:
    world = World.settled(make_rollout(gateway()))
    world.verdicts["step-2"] = "Failed"
    plan = world.run_until(lambda p: p.status.aborted, seconds=60)
    assert plan.status.phase is Phase.DEGRADED and plan.status.reason == r.ANALYSIS_FAILED
    assert "error-rate 0.124 > max 0.05 for 2m at step 2 (weight 10%)" in plan.status.message
    assert plan.replicas == {"old": 10}
    assert plan.route_weights == {"old": 100, "new": 0}
    assert set(plan.service_selectors.values()) == {"old"}
    assert plan.status.history[-1].outcome == "RolledBack"
    assert any(e.type == "Warning" and e.reason == r.ANALYSIS_FAILED for e in plan.events)


def test_an_aborted_canary_stays_degraded_until_retry() -> None:
    world = World.settled(make_rollout(canary()))
    world.verdicts["step-2"] = "Failed"
    world.run_until(lambda p: p.status.aborted, seconds=60)
    for _ in range(3):
        plan = world.step()
    assert plan.status.phase is Phase.DEGRADED and plan.replicas == {"old": 10}


def test_inconclusive_analysis_pauses_never_advances_and_retry_measures_again() -> None:
    world = World.settled(make_rollout(canary()))
    world.verdicts["step-2"] = "Inconclusive"
    plan = world.run_until(lambda p: p.status.reason == r.ANALYSIS_INCONCLUSIVE, seconds=60)
    for _ in range(3):
        plan = world.step()
    assert plan.status.phase is Phase.PAUSED and plan.status.current_step_index == 2
    assert not plan.status.aborted and plan.replicas == {"old": 9, "new": 1}
    world.verdicts["step-2"] = "Successful"
    world.request = Request("retry", "r2", "bo")
    plan = world.step()
    assert plan.status.reason == r.ANALYSIS_RUNNING
    assert world.step().status.current_step_index == 3


def test_no_data_is_not_an_outage_and_waits_for_a_person() -> None:
    world = World.settled(make_rollout(canary()))
    world.verdicts["step-2"] = "Inconclusive"
    plan = world.run_until(lambda p: p.status.reason == r.ANALYSIS_INCONCLUSIVE, seconds=60)
    for _ in range(5):
        plan = world.step(seconds=30)
    assert (
        plan.status.reason == r.ANALYSIS_INCONCLUSIVE and "deployctl retry" in plan.status.message
    )
    assert not any(e.reason == r.RETRIED for e in plan.events)


def test_background_analysis_failure_aborts_at_any_step() -> None:
    world = World.settled(make_rollout(canary(), analysis=HEALTH))
    world.verdicts["background"] = "Failed"
    first = world.step()
    assert [x.key for x in first.status.analysis_runs] == ["background"]
    plan = world.step()
    assert (
        plan.status.reason == r.ANALYSIS_FAILED and "[analysis background]" in plan.status.message
    )
    assert plan.replicas == {"old": 10}


def test_promote_full_skips_every_step_and_promotes_once_the_canary_is_full() -> None:
    world = World.settled(make_rollout(canary()))
    world.step()
    world.request = Request("promoteFull", "r3", "ci")
    plan = world.step()
    assert plan.status.current_step_index == 5
    # To 100% within the budget: surge 3, 2 of the 10 available may go, per pass.
    assert plan.replicas == {"old": 7, "new": 4}
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert plan.replicas == {"new": 10}
    assert world.step().status.phase is Phase.HEALTHY


def test_abort_request_sends_all_traffic_to_stable_and_scales_the_canary_to_zero() -> None:
    world = World.settled(make_rollout(gateway()))
    at_step(world, 2)
    world.request = Request("abort", "r4", "sre")
    plan = world.step()
    assert plan.status.phase is Phase.DEGRADED and plan.status.reason == r.ABORTED
    assert "aborted by sre" in plan.status.message
    assert plan.replicas == {"old": 10} and plan.route_weights == {"old": 100, "new": 0}
    assert plan.status.weight == 0 and plan.status.history[-1].outcome == "Aborted"


def test_retry_after_abort_restarts_the_canary_from_step_0() -> None:
    world = World.settled(make_rollout(canary()))
    at_step(world, 2)
    world.request = Request("abort", "r5", "sre")
    world.step()
    world.request = Request("retry", "r6", "sre")
    plan = world.step()
    assert not plan.status.aborted and plan.status.current_step_index == 0
    assert plan.replicas == {"old": 9, "new": 1}
    assert [h.outcome for h in plan.status.history[-2:]] == ["Aborted", "Progressing"]
    assert any(e.reason == r.RETRIED for e in plan.events)


def test_new_revision_mid_rollout_replaces_the_half_done_canary_and_keeps_stable() -> None:
    world = World.settled(make_rollout(canary()))
    at_step(world, 4)  # 5 of the 10 pods are the canary's
    plan = world.step("newer")
    assert plan.status.canary_revision == "newer" and plan.status.current_step_index == 0
    # The stable grows first; the superseded canary's pods serve until the budget lets them go.
    assert plan.replicas == {"old": 8, "new": 3}
    assert plan.status.stable_revision == "old"
    plan = world.run_until(lambda p: p.status.current_step_index == 1, revision="newer")
    assert plan.replicas == {"old": 9, "newer": 1}
    outcomes = [(h.revision, h.outcome) for h in plan.status.history]
    assert ("new", "Superseded") in outcomes and outcomes[-1] == ("newer", "Progressing")
    assert all(x.revision == "newer" for x in plan.status.analysis_runs)


def test_reverting_the_template_to_stable_supersedes_the_canary() -> None:
    world = World.settled(make_rollout(canary(maxUnavailable=0)))
    at_step(world, 1)
    plan = world.step("old")
    # The stable had given one pod to the canary: it comes back before the canary goes.
    assert plan.replicas == {"old": 10, "new": 1}
    assert plan.status.history[-1].outcome == "Superseded"
    plan = world.run_until(lambda p: p.status.phase is Phase.HEALTHY, revision="old")
    assert plan.replicas == {"old": 10}


def test_by_replica_share_the_old_stable_is_gone_by_promotion() -> None:
    world = World.settled(make_rollout(canary(scaleDownDelaySeconds=30)))
    at_step(world, 4)
    world.request = Request("promote", "r7", "ana")
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert plan.replicas == {"new": 10} and plan.status.phase is Phase.HEALTHY
    assert plan.status.previous_revision is None and plan.status.weight == 100


def test_full_canary_becomes_stable_and_the_old_revision_is_scaled_down_after_the_delay() -> None:
    world = World.settled(make_rollout(canary(scaleDownDelaySeconds=30, stableScale="full")))
    at_step(world, 4)
    world.request = Request("promote", "r7", "ana")
    world.step()
    plan = world.step()
    assert plan.status.stable_revision == "new" and plan.status.phase is Phase.HEALTHY
    assert plan.replicas == {"old": 10, "new": 10}
    assert set(plan.service_selectors.values()) == {"new"}
    assert plan.requeue_after == 30 and plan.status.history[-1].outcome == "Promoted"
    world.now += timedelta(seconds=30)
    assert world.step().replicas == {"new": 10}


def test_progress_deadline_aborts_a_canary_whose_pods_never_become_available() -> None:
    world = World.settled(make_rollout(canary(), deadline=60))
    world.broken.add("new")
    plan = world.step()
    assert plan.requeue_after == 60
    plan = world.run_until(lambda p: p.status.aborted, seconds=30)
    assert plan.status.reason == r.PROGRESS_DEADLINE_EXCEEDED
    assert "0/1 pods available" in plan.status.message
    assert plan.replicas == {"old": 10}


def test_crash_looping_canary_aborts_at_once() -> None:
    world = World.settled(make_rollout(canary()))
    world.crashing.add("new")
    world.step()
    plan = world.step()
    assert plan.status.reason == r.CANARY_CRASH_LOOPING and "5 restarts" in plan.status.message
    assert plan.replicas == {"old": 10}


def test_approval_step_waits_for_approve_and_records_who() -> None:
    world = World.settled(
        make_rollout(canary([{"setWeight": 10}, {"approval": {"groups": ["sre"]}}]))
    )
    plan = at_step(world, 1)
    assert plan.status.reason == r.AWAITING_APPROVAL and "sre" in plan.status.message
    world.request = Request("approve", "r8", "ana")
    plan = world.step()
    assert plan.status.approved_by == "ana"
    assert any("approved by ana" in note for note in plan.status.history[-1].events)


def test_a_request_is_consumed_exactly_once() -> None:
    world = World.settled(make_rollout(canary([{"pause": {}}, {"pause": {}}, {"pause": {}}])))
    world.step()
    request = Request("promote", "same-id", "ana")
    world.request = request
    assert world.step().status.current_step_index == 1
    world.request = request  # the annotation is still there on the next pass
    assert world.step().status.current_step_index == 1


def test_a_request_with_nothing_to_act_on_is_consumed_with_an_explanation() -> None:
    world = World.settled(make_rollout(canary()))
    world.request = Request("promote", "r9", "ana")
    plan = world.step("old")
    assert plan.status.last_handled_request == "r9"
    assert any(e.reason == r.REQUEST_IGNORED for e in plan.events)


def test_spec_paused_holds_everything_and_a_timed_pause_keeps_its_remaining_time() -> None:
    world = World.settled(make_rollout(canary()))
    world.step()
    world.step(seconds=30)  # step 1 (pause 2m) begins; 30s of it pass
    world.set_spec(paused=True)
    plan = world.step(seconds=600)
    assert plan.status.phase is Phase.PAUSED and plan.status.reason == r.PAUSED
    assert plan.replicas == {"old": 9, "new": 1}
    world.set_spec(paused=False)
    plan = world.step()
    assert plan.status.current_step_index == 1 and plan.requeue_after == 90
    assert any(e.reason == r.RESUMED for e in plan.events)


def test_decide_twice_on_the_same_inputs_gives_the_same_plan() -> None:
    world = World.settled(make_rollout(gateway(), analysis=HEALTH))
    for _ in range(4):
        assert world.decide() == world.decide()
        world.step(seconds=45)


def test_history_records_who_asked_why_and_the_ci_job() -> None:
    annotations = {
        "deployctl.io/requested-by": "ana@example.com",
        "deployctl.io/reason": "fix checkout timeout",
        "deployctl.io/ci-pipeline": "1234",
    }
    world = World.settled(make_rollout(canary(), annotations=annotations))
    entry = world.step().status.history[-1]
    assert entry.requested_by == "ana@example.com" and entry.reason == "fix checkout timeout"
    assert entry.ci == {"pipeline": "1234"} and entry.images == {"app": "shop:2"}
    assert entry.strategy == "canary" and entry.started_at == "2026-03-01T12:00:00Z"


def test_dynamic_stable_scale_shrinks_stable_only_after_traffic_has_moved() -> None:
    world = World.settled(
        make_rollout(gateway([{"setWeight": 50}, {"pause": {}}], dynamicStableScale=True))
    )
    first = world.step()
    assert first.replicas == {"old": 10, "new": 5}
    second = world.step()
    assert second.status.weight == 50 and second.replicas == {"old": 5, "new": 5}


def test_an_existing_failed_run_in_status_is_quoted_as_evidence() -> None:
    world = World.settled(make_rollout(canary([{"setWeight": 20}, {"analysis": HEALTH}])))
    at_step(world, 1)
    status = world.status.model_copy(
        update={"analysis_runs": [failed_run("step-1", "new", "p90-latency 2.4 > max 2 for 5m")]}
    )
    world.rollout = world.rollout.model_copy(update={"status": status})
    plan = world.decide()
    assert plan.status.message.startswith("p90-latency 2.4 > max 2 for 5m at step 1 (weight 20%)")


def test_timestamps_are_rfc3339_utc() -> None:
    world = World.settled(make_rollout(canary()))
    status = world.step().status
    assert status.revision_started_at == "2026-03-01T12:00:00Z"  # T0


def test_while_spec_paused_requests_wait_except_abort() -> None:
    world = World.settled(make_rollout(canary()))
    at_step(world, 4)
    world.set_spec(paused=True)
    world.request = Request("promote", "w1", "ana")
    plan = world.step()
    assert plan.status.last_handled_request != "w1" and plan.status.current_step_index == 4
    world.request = Request("abort", "w2", "sre")
    plan = world.step()
    assert plan.status.reason == r.ABORTED and plan.replicas == {"old": 8, "new": 3}
    plan = world.run_until(lambda p: p.replicas == {"old": 10})
    assert plan.status.reason == r.ABORTED and plan.status.weight == 0


def test_the_promotion_writes_the_counts_its_scale_down_leads_to() -> None:
    world = World.settled(make_rollout(canary([{"setWeight": 50}]), replicas=2))
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert plan.replicas == {"new": 2}
    # The old stable still had its pods when the promotion was planned, but the status
    # counts them as gone, as the passes after their deletion do: the pass that scales
    # a revision down writes its counts, and those passes have nothing to write.
    counts = ("replicas", "ready_replicas", "available_replicas", "updated_replicas")
    assert [getattr(plan.status, c) for c in counts] == [2, 2, 2, 2]
    after = world.step()
    assert [getattr(after.status, c) for c in counts] == [2, 2, 2, 2]
    assert after.status.conditions == plan.status.conditions


def test_a_scale_down_never_counts_pods_a_revision_does_not_have() -> None:
    world = World.settled(make_rollout(canary([{"setWeight": 50}]), replicas=4))
    world.revisions["old"] = RevisionState("old", desired=4, current=4, ready=2, available=2)
    plan = world.decide()
    # The stable gives pods up for the canary's share: at most what it keeps, at most
    # what it had (not-ready pods are the ones deleted first).
    assert plan.replicas["old"] < 4
    kept = plan.replicas["old"]
    assert plan.status.ready_replicas == min(2, kept)
    assert plan.status.available_replicas == min(2, kept)


def test_promoted_in_the_pass_that_ends_the_steps_records_one_event() -> None:
    world = World.settled(
        make_rollout(canary([{"setWeight": 50}, {"pause": {"duration": "1s"}}]), replicas=1)
    )
    plan = world.run_until(lambda p: p.status.stable_revision == "new")
    assert [e.reason for e in plan.events] == [r.PROMOTED]
    assert "after 2 step(s)" in plan.events[0].message


def test_a_canary_still_short_of_full_size_announces_the_end_of_the_steps() -> None:
    world = World.settled(make_rollout(canary([{"setWeight": 10}]), replicas=10))
    plan = world.run_until(lambda p: p.status.current_step_index == 1)
    assert plan.status.stable_revision == "old"
    assert (r.STEP_STARTED, "all 1 step(s) done; scaling the canary to full") in [
        (e.reason, e.message) for e in plan.events
    ]
    promoted = world.run_until(lambda p: p.status.stable_revision == "new")
    assert [e.reason for e in promoted.events] == [r.PROMOTED]
