"""Steps paced by traffic: the pure rule (``strategies.pacing``) and the canary using it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.api import reasons as r
from controller.api.rollout import AnalysisStep, Pause
from controller.api.status import Phase
from strategies import Request
from strategies.pacing import RequestCount, decide_pace
from tests.strategies.world import World, canary, make_rollout

PACED: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {"untilRequests": 2000, "maxDuration": "30m"}},
    {"setWeight": 50},
]


def pace(served: float | None, recent: float | None = 10.0, *, elapsed: float = 60.0) -> str:
    count = RequestCount(step=1, served=served, recent=recent)
    decision = decide_pace(
        count, until_requests=2000, elapsed=elapsed, max_duration=1800.0, no_traffic_after=300.0
    )
    return f"{decision.state}: {decision.message}"


def test_progress_is_shown_as_people_count() -> None:
    assert pace(1240.0, elapsed=720.0) == (
        "waiting: 1,240 of 2,000 requests served by the canary, 18m left"
    )


def test_enough_requests_is_done_whatever_the_clock() -> None:
    assert pace(2000.0).startswith("done: the canary served 2,000 of 2,000 requests")
    assert pace(2500.0, recent=0.0, elapsed=5000.0).startswith("done")


def test_a_canary_without_traffic_says_so_only_once_the_quiet_is_long_enough() -> None:
    assert pace(0.0, recent=0.0, elapsed=120.0).startswith("waiting")
    assert pace(12.0, recent=0.0, elapsed=300.0) == (
        "noTraffic: no traffic to the canary for 5m (12 of 2,000 requests, 25m left); "
        "is traffic routed to it?"
    )


def test_max_duration_pauses_for_a_person_and_never_passes() -> None:
    assert pace(1999.0, elapsed=1800.0) == (
        "timedOut: the canary served only 1,999 of 2,000 requests in 30m (maxDuration); "
        "`deployctl promote` to go on anyway or `deployctl abort`"
    )


def test_a_count_prometheus_could_not_give_is_never_enough() -> None:
    count = RequestCount(step=1, served=None, recent=None, problem="connection refused")
    decision = decide_pace(
        count, until_requests=1, elapsed=10.0, max_duration=None, no_traffic_after=300.0
    )
    assert decision.state == "unmeasured" and "connection refused" in decision.message


@given(
    served=st.one_of(st.none(), st.floats(min_value=0, max_value=1e7)),
    recent=st.one_of(st.none(), st.floats(min_value=0, max_value=1e7)),
    elapsed=st.floats(min_value=0, max_value=1e6),
    target=st.integers(min_value=1, max_value=10**6),
)
def test_done_exactly_when_the_count_reached_the_target(
    served: float | None, recent: float | None, elapsed: float, target: int
) -> None:
    decision = decide_pace(
        RequestCount(step=0, served=served, recent=recent),
        until_requests=target,
        elapsed=elapsed,
        max_duration=1800.0,
        no_traffic_after=300.0,
    )
    assert decision.done == (served is not None and served >= target)


def paced_world() -> World:
    world = World.settled(make_rollout(canary(PACED)))
    world.run_until(lambda p: p.status.current_step_index == 1)
    return world


def test_a_paced_step_waits_for_its_requests_then_moves_on() -> None:
    world = paced_world()
    world.canary_requests = RequestCount(step=1, served=1240.0, recent=300.0)
    plan = world.step()
    assert plan.status.current_step_index == 1
    assert plan.status.reason == r.WAITING_FOR_REQUESTS
    assert "1,240 of 2,000 requests" in plan.status.message
    assert plan.requeue_after is not None and plan.requeue_after <= 15
    world.canary_requests = RequestCount(step=1, served=2001.0, recent=300.0)
    plan = world.step()
    assert plan.status.current_step_index == 2
    assert any("2,001 of 2,000" in e.message for e in plan.events)


def test_a_count_for_another_step_is_not_evidence() -> None:
    world = paced_world()
    world.canary_requests = RequestCount(step=0, served=99999.0, recent=99999.0)
    assert world.step().status.current_step_index == 1


def assert_never_promoted_without_traffic(world: World) -> None:
    """Ten minutes of passes with no canary traffic pause the step and say so; its
    maxDuration then times it out, and a person can still promote."""
    world.canary_requests = RequestCount(step=1, served=0.0, recent=0.0)
    for _ in range(60):  # ten minutes of passes
        plan = world.step()
    assert plan.status.current_step_index == 1 and plan.status.phase is Phase.PAUSED
    assert plan.status.reason == r.NO_CANARY_TRAFFIC
    assert "no traffic to the canary for 5m" in plan.status.message
    world.now += timedelta(minutes=30)
    plan = world.step()
    assert plan.status.reason == r.REQUESTS_TIMED_OUT
    assert plan.status.current_step_index == 1 and plan.requeue_after is None
    world.request = Request("promote", "r1", "ana")
    assert world.step().status.current_step_index == 2, "a person can still go on"


def test_a_canary_without_traffic_says_so_and_is_never_promoted() -> None:
    assert_never_promoted_without_traffic(paced_world())


def test_no_traffic_after_shorter_than_two_scrapes_is_refused() -> None:
    with pytest.raises(ValidationError, match="noTrafficAfter must be at least 30s"):
        Pause.model_validate({"untilRequests": 10, "noTrafficAfter": "10s"})
    with pytest.raises(ValidationError, match="either duration or untilRequests"):
        Pause.model_validate({"untilRequests": 10, "duration": "1m"})


PACED_ANALYSIS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {
        "analysis": {
            "templates": [{"name": "http-health"}],
            "untilRequests": 2000,
            "maxDuration": "30m",
        }
    },
    {"setWeight": 50},
]


def paced_analysis_world(verdict: str | None = "Successful") -> World:
    world = World.settled(make_rollout(canary(PACED_ANALYSIS)))
    world.default_verdict = verdict
    world.run_until(lambda p: p.status.current_step_index == 1)
    return world


def test_a_paced_analysis_step_needs_both_a_passing_run_and_its_requests() -> None:
    world = paced_analysis_world()
    world.canary_requests = RequestCount(step=1, served=1240.0, recent=300.0)
    for _ in range(5):  # the run passes on the first pass; the requests are not there yet
        plan = world.step()
    (run,) = [run for run in plan.status.analysis_runs if run.key == "step-1"]
    assert run.phase == "Successful"
    assert plan.status.current_step_index == 1
    assert plan.status.reason == r.WAITING_FOR_REQUESTS
    assert "1,240 of 2,000 requests" in plan.status.message
    assert plan.requeue_after is not None and plan.requeue_after <= 15
    world.canary_requests = RequestCount(step=1, served=2001.0, recent=300.0)
    plan = world.step()
    assert plan.status.current_step_index == 2
    assert any("2,001 of 2,000" in e.message for e in plan.events)


def test_enough_requests_do_not_pass_a_running_analysis() -> None:
    world = paced_analysis_world(verdict=None)
    world.canary_requests = RequestCount(step=1, served=99999.0, recent=300.0)
    for _ in range(5):
        plan = world.step()
    assert plan.status.current_step_index == 1
    assert plan.status.reason == r.ANALYSIS_RUNNING


def test_a_paced_analysis_without_traffic_is_never_promoted() -> None:
    # The step's run passes within the first passes; the missing traffic still holds it.
    assert_never_promoted_without_traffic(paced_analysis_world())


def test_an_analysis_step_paces_with_the_pause_steps_rules() -> None:
    with pytest.raises(ValidationError, match="analysis: noTrafficAfter must be at least 30s"):
        AnalysisStep.model_validate(
            {"templates": [{"name": "a"}], "untilRequests": 10, "noTrafficAfter": "10s"}
        )
    with pytest.raises(ValidationError, match="analysis: maxDuration is for untilRequests"):
        AnalysisStep.model_validate({"templates": [{"name": "a"}], "maxDuration": "5m"})
    step = AnalysisStep.model_validate({"templates": [{"name": "a"}], "untilRequests": 10})
    assert step.no_traffic_after == 300.0 and step.requests_metric == "http_requests_total"


def test_the_reconciler_counts_requests_for_a_paced_analysis_step_only() -> None:
    from controller.reconciler import paced_pause

    world = paced_analysis_world(verdict=None)
    pacing = paced_pause(world.rollout, world.status)
    assert pacing is not None and pacing.until_requests == 2000
    unpaced = [PACED_ANALYSIS[0], {"analysis": {"templates": [{"name": "http-health"}]}}]
    plain = World.settled(make_rollout(canary(unpaced)))
    plain.default_verdict = None
    plain.run_until(lambda p: p.status.current_step_index == 1)
    assert paced_pause(plain.rollout, plain.status) is None
