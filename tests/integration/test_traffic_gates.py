"""Steps paced by traffic, the burn-rate gate and the error-budget freeze, end to end:
real apiserver, node agent running demo-app pods, real Prometheus, the operator as a
real process. ``DEMO_ERROR_RATE`` makes a version fail that share of its requests.
"""

from __future__ import annotations

from typing import Any

from controller.analysis.budget import budget_left
from controller.analysis.prometheus import PrometheusMeasurer
from controller.api.policy import ErrorBudgetFreeze
from tests.integration.harness import GROUP, VERSION, Cluster, demo_rollout
from tests.waiting import wait_until

PACED: list[dict[str, Any]] = [
    {"setWeight": 50},
    {"pause": {"untilRequests": 150, "maxDuration": "10m", "noTrafficAfter": "30s"}},
]


def services(cluster: Cluster) -> None:
    for name in ("shop", "shop-stable", "shop-canary"):
        cluster.create_service(name, {"app": "shop"}, rollout="shop")


def canary(version: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    env = extra.pop("env", None)
    return demo_rollout(
        "shop",
        version=version,
        env=env,
        strategy={
            "canary": {
                "stableService": "shop-stable",
                "canaryService": "shop-canary",
                "steps": steps,
            }
        },
        **extra,
    )


def status_when(cluster: Cluster, ok: Any, *, what: str, timeout: float = 120) -> dict[str, Any]:
    return dict(wait_until(lambda: cluster.status("shop"), ok=ok, timeout=timeout, what=what))


def healthy_at(cluster: Cluster) -> dict[str, Any]:
    return status_when(
        cluster,
        lambda s: (
            s.get("phase") == "Healthy"
            and s.get("observedGeneration") == cluster.rollout("shop")["metadata"]["generation"]
        ),
        what="rollout Healthy",
    )


def quiet_step(cluster: Cluster, v1: str) -> dict[str, Any]:
    """The paced step, with no traffic at all: paused, saying so, never promoting."""
    quiet = status_when(
        cluster,
        lambda s: s.get("reason") == "NoCanaryTraffic",
        what="the paced step to say there is no traffic",
    )
    assert quiet["phase"] == "Paused" and quiet["currentStepIndex"] == 1
    assert quiet["stableRevision"] == v1
    assert "no traffic to the canary for 30s (0 of 150 requests" in quiet["message"]
    return quiet


def promoted_once_served(cluster: Cluster, v1: str, quiet: dict[str, Any]) -> None:
    """The canary the quiet step held is promoted once it served its 150 requests, and an
    Event says so."""
    promoted = status_when(
        cluster,
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != v1,
        what="the canary promoted once it served its requests",
    )
    assert promoted["stableRevision"] == quiet["canaryRevision"]
    served = cluster.events_when(
        lambda events: any("the canary served" in e.message for e in events),
        reason="PauseStep",
        what="the Event saying the canary served its requests",
    )
    assert any("of 150 requests" in e.message for e in served), [e.message for e in served]


def test_a_paced_step_says_there_is_no_traffic_then_moves_on_once_it_has_its_requests(
    cluster: Cluster, start_controller: Any, traffic: Any
) -> None:
    services(cluster)
    controller = start_controller()
    cluster.apply_rollout(canary("v1", PACED))
    v1 = healthy_at(cluster)["stableRevision"]

    # No traffic at all: the step says so and never promotes.
    cluster.apply_rollout(canary("v2", PACED))
    quiet = quiet_step(cluster, v1)

    # Traffic comes: the step waits for its 150 requests and moves on by itself.
    traffic(cluster.namespace, service="shop", rate_per_second=40)
    promoted_once_served(cluster, v1, quiet)
    assert controller.process.poll() is None, controller.log_text()[-3000:]


PACED_ANALYSIS: list[dict[str, Any]] = [
    {"setWeight": 50},
    {
        "analysis": {
            "templates": [{"name": "always"}],
            "untilRequests": 150,
            "maxDuration": "10m",
            "noTrafficAfter": "30s",
        }
    },
]


def test_a_paced_analysis_step_passes_its_run_but_waits_for_traffic_then_moves_on(
    cluster: Cluster, start_controller: Any, traffic: Any
) -> None:
    services(cluster)
    # A check that passes at once, traffic or not: the requests alone hold the step.
    cluster.create_template(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "always"},
            "spec": {
                "metrics": [
                    {
                        "name": "up",
                        "interval": "1s",
                        "count": 1,
                        "threshold": {"min": 0},
                        "provider": {"prometheus": {"query": "vector(1)"}},
                    }
                ]
            },
        }
    )
    controller = start_controller()
    cluster.apply_rollout(canary("v1", PACED_ANALYSIS))
    v1 = healthy_at(cluster)["stableRevision"]

    # The run passes, no traffic comes: the step says so and never promotes.
    cluster.apply_rollout(canary("v2", PACED_ANALYSIS))
    quiet = quiet_step(cluster, v1)
    (run,) = [r for r in quiet["analysisRuns"] if r["key"] == "step-1"]
    assert run["phase"] == "Successful", run

    # Traffic comes: the step waits for its 150 requests and moves on by itself.
    traffic(cluster.namespace, service="shop", rate_per_second=40)
    promoted_once_served(cluster, v1, quiet)
    assert controller.process.poll() is None, controller.log_text()[-3000:]


def slo_template() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "budget"},
        "spec": {
            "metrics": [
                {
                    "name": "error-budget",
                    "initialDelay": "6s",
                    "interval": "2s",
                    "failureLimit": 0,
                    "inconclusiveLimit": 100,
                    # A 30s step: both workbook rules scale to 30s and 10s (the floor).
                    "slo": {"objective": 99.9, "step": "30s", "minWindow": "10s"},
                }
            ]
        },
    }


def test_a_canary_burning_its_error_budget_at_20x_is_aborted_before_its_step_ends(
    cluster: Cluster, start_controller: Any, traffic: Any
) -> None:
    services(cluster)
    cluster.create_template(slo_template())
    start_controller()
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "10m"}}]
    analysis = {"templates": [{"name": "budget"}]}
    cluster.apply_rollout(canary("v1", steps, analysis=analysis))
    v1 = healthy_at(cluster)["stableRevision"]
    traffic(cluster.namespace, service="shop", rate_per_second=40)
    # 2% errors against a 0.1% budget: a burn rate of 20.
    cluster.apply_rollout(canary("v2", steps, analysis=analysis, env={"DEMO_ERROR_RATE": "0.02"}))
    aborted = status_when(
        cluster, lambda s: s.get("phase") == "Degraded", what="the burning canary aborted"
    )
    assert aborted["reason"] == "AnalysisFailed" and aborted["stableRevision"] == v1
    assert "error-budget" in aborted["message"] and "> max 1" in aborted["message"]
    assert aborted["currentStepIndex"] == 1, "aborted during the 10m pause, not after it"


BUDGET = {"objective": 99.9, "window": "1h", "minRemaining": 0.1}


def test_an_exhausted_error_budget_holds_new_rollouts_until_an_override(
    cluster: Cluster, start_controller: Any, traffic: Any, prometheus: Any
) -> None:
    services(cluster)
    cluster.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        cluster.namespace,
        "deliverypolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DeliveryPolicy",
            "metadata": {"name": "budget"},
            "spec": {
                "exemptions": ["hotfix"],
                "errorBudget": BUDGET,
            },
        },
    )
    start_controller()
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    # The running version fails 30% of its requests: the budget is soon spent.
    cluster.apply_rollout(canary("v1", steps, env={"DEMO_ERROR_RATE": "0.3"}))
    v1 = healthy_at(cluster)["stableRevision"]
    traffic(cluster.namespace, service="shop", rate_per_second=40)
    # Prometheus must have seen the errors first: an unknown budget does not hold.
    rule = ErrorBudgetFreeze.model_validate(BUDGET)
    measurer = PrometheusMeasurer(prometheus.url)
    wait_until(
        lambda: budget_left(measurer, rule, cluster.namespace, "shop"),
        ok=lambda left: left[0] is not None and left[0] < 0,
        timeout=60,
        what="the error budget spent, as Prometheus sees it",
    )

    cluster.apply_rollout(canary("v2", steps))
    held = status_when(
        cluster,
        lambda s: s.get("reason") == "ErrorBudgetExhausted",
        what="v2 held by the error-budget freeze",
    )
    assert held["phase"] == "Paused" and held["stableRevision"] == v1
    assert "error budget of the 99.9% SLO over the last 1h is overspent" in held["message"]
    assert "--override-freeze" in held["message"]
    assert set(cluster.replicas_by_revision()) == {v1}, "nothing of v2 was started"

    body = canary("v2", steps)
    body["metadata"]["annotations"] = {
        "deployctl.io/exempt": "hotfix",
        "deployctl.io/override-reason": "the fix for the errors burning the budget",
    }
    cluster.apply_rollout(body)
    released = status_when(
        cluster,
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != v1,
        what="v2 released by the override and promoted",
    )
    notes = [n for h in released["history"] for n in h.get("events", [])]
    assert any("overridden: hotfix" in n for n in notes), notes
