"""Availability counted as the Deployment controller counts it, scenario by scenario.

``controller.observe`` counts pods (terminating never, at most ``spec.replicas`` per
ReplicaSet, minReadySeconds honoured); the planners act on those counts; the lagging
cluster (``tests.strategies.cluster``) checks what users would feel after every change.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import reasons as r
from controller.api.status import Phase
from controller.names import REVISION_LABEL
from controller.observe import revision_states
from strategies import Request
from strategies.rolling import surge_and_unavailable
from tests.strategies.cluster import T0, LaggingCluster, Lags
from tests.strategies.test_lagging_properties import (
    check_blue_green,
    check_canary,
    check_rolling,
)
from tests.strategies.world import make_rollout


def pod(revision: str, *, ready: bool = True, since: str = "2026-03-01T11:00:00Z", **meta: Any):
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if ready:
        conditions[0]["lastTransitionTime"] = since
    return {
        "metadata": {"labels": {REVISION_LABEL: revision}, **meta},
        "status": {"phase": "Running", "conditions": conditions},
    }


def replicaset(revision: str, replicas: int, *, generation: int = 2, observed: int | None = 2):
    status: dict[str, Any] = {"availableReplicas": 99}  # never read: pods are
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "metadata": {"labels": {REVISION_LABEL: revision}, "generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    }


def test_an_old_replicaset_counts_at_most_its_desired_replicas() -> None:
    # Cut from 8 to 6: its 8 pods are still there and Ready, and status still says 8.
    states = revision_states([replicaset("old", 6)], [pod("old") for _ in range(8)], now=T0)
    assert (states["old"].available, states["old"].current) == (6, 8)


def test_terminating_pods_never_count() -> None:
    pods = [pod("a"), pod("a", deletionTimestamp="2026-03-01T11:59:00Z"), pod("a", ready=False)]
    state = revision_states([replicaset("a", 3)], pods, now=T0)["a"]
    assert (state.current, state.ready, state.available) == (2, 1, 1)


def test_a_pod_is_available_once_ready_for_min_ready_seconds() -> None:
    pods = [pod("a", since="2026-03-01T11:59:50Z"), pod("a", since="2026-03-01T11:58:00Z")]
    states = revision_states([replicaset("a", 2)], pods, now=T0, min_ready_seconds=30)
    assert (states["a"].ready, states["a"].available) == (2, 1)


def test_status_not_yet_observed_for_the_generation_is_not_synced() -> None:
    states = revision_states(
        [
            replicaset("a", 2, generation=3, observed=2),
            replicaset("b", 2, generation=1, observed=None),
            replicaset("c", 2, generation=4, observed=4),
        ],
        [],
        now=T0,
    )
    assert [states[x].synced for x in "abc"] == [False, False, True]


ROLLING_CASES = [
    (8, "25%", 0),
    (8, 1, 0),
    (8, 2, 1),
    (1, 0, 1),
    (3, "25%", 0),
    (20, "50%", "50%"),
]


@pytest.mark.parametrize(("replicas", "surge", "unavailable"), ROLLING_CASES)
@pytest.mark.parametrize("lags", [Lags(), Lags(rs_lag=2, status_lag=3, ready_after=3, cache_lag=1)])
def test_rolling_keeps_floor_and_ceiling_with_lagging_status_and_finishes(
    replicas: int, surge: Any, unavailable: Any, lags: Lags
) -> None:
    rollout = make_rollout(
        {"rolling": {"maxSurge": surge, "maxUnavailable": unavailable}}, replicas=replicas
    )
    cluster = LaggingCluster.settled(rollout, lags, check_rolling)
    low, high = replicas, 0
    for _ in range(200):
        plan = cluster.step("new", seconds=1)
        low = min(low, cluster.serving_total())
        high = max(high, cluster.existing_total())
        if plan.status.stable_revision == "new" and plan.status.phase is Phase.HEALTHY:
            break
    assert cluster.status.stable_revision == "new", cluster.status.message
    max_surge, max_unavailable = surge_and_unavailable(surge, unavailable, replicas=replicas)
    assert low >= replicas - max_unavailable and high <= replicas + max_surge
    if max_unavailable == 0:
        assert low == replicas  # never a pod short, as the floor promises


def routed_dynamic(steps: list[dict[str, Any]], replicas: int = 4) -> Any:
    return make_rollout(
        {
            "canary": {
                "stableService": "s",
                "canaryService": "c",
                "trafficRouting": {"gatewayAPI": {"httpRoute": "r"}},
                "dynamicStableScale": True,
                "steps": steps,
            }
        },
        replicas=replicas,
    )


def at_weight_75() -> LaggingCluster:
    cluster = LaggingCluster.settled(
        routed_dynamic([{"setWeight": 75}, {"pause": {}}]), Lags(), check_canary
    )
    for _ in range(20):
        plan = cluster.step("new")
        if plan.status.reason == r.PAUSE_STEP and cluster.serving("old") == 1:
            return cluster
    raise AssertionError(cluster.status.message)


@pytest.mark.parametrize("next_revision", ["newer", "old"])
def test_a_shrunk_stable_takes_traffic_back_only_as_its_pods_come_back(
    next_revision: str,
) -> None:
    """A newer revision, or the template reverted, while stable carries 25% on one pod."""
    cluster = at_weight_75()
    plan = cluster.step(next_revision)
    assert plan.status.reason == r.WAITING_FOR_REPLICAS and "keeps 75%" in plan.status.message
    assert plan.route_weights == {"new": 75, "old": 25} and plan.replicas["old"] == 4
    for _ in range(20):
        plan = cluster.step(next_revision)
        if cluster.route == {"s": 100, "c": 0}:
            break
    assert cluster.serving("old") == 4  # (check_canary held after every change)
    assert plan.replicas.get("new", 0) == 0


def test_an_abort_moves_traffic_back_as_stable_pods_come_back_and_retry_waits() -> None:
    cluster = at_weight_75()
    cluster.request = Request("abort", "a1", "sre")
    plan = cluster.step("new")
    assert plan.status.aborted and plan.route_weights == {"new": 75, "old": 25}
    cluster.request = Request("retry", "r1", "sre")
    plan = cluster.step("new")
    assert plan.status.aborted and cluster.request is not None  # not yet consumed
    for _ in range(20):
        plan = cluster.step("new")
        if not plan.status.aborted:
            break
    assert cluster.request is None and plan.status.reason != r.ABORTED


def test_blue_green_switches_back_only_to_a_fully_ready_old_revision() -> None:
    rollout = make_rollout(
        {
            "blueGreen": {
                "activeService": "a",
                "previewService": "p",
                "postPromotionAnalysis": {"templates": [{"name": "t"}]},
            }
        },
        replicas=3,
    )
    # Caches in step here: the test is about the rule, not about a loss the cache missed.
    cluster = LaggingCluster.settled(rollout, Lags(cache_lag=0), check_blue_green)
    cluster.verdict = None
    for _ in range(20):
        cluster.step("new")
        if cluster.selected("a") == "new":
            break
    assert cluster.selected("a") == "new"
    # One old pod dies (a node goes away); its replacement takes ticks to be Ready.
    dead = next(p for p in cluster.pods if p.revision == "old")
    cluster.pods.remove(dead)
    cluster.replicasets["old"].generation += 1
    cluster.replicasets["old"].changed_at = cluster.tick
    cluster.verdict = "Failed"
    cluster.step("new")  # the engine judges the run Failed
    plan = cluster.step("new")
    assert plan.status.phase is Phase.ROLLED_BACK and "once all its pods" in plan.status.message
    assert cluster.selected("a") == "new"  # held on the revision that is fully Ready
    for _ in range(10):
        cluster.step("new")
    assert cluster.selected("a") == "old" and cluster.serving("old") == 3


def test_the_previous_revision_stays_while_the_new_stable_is_short() -> None:
    rollout = make_rollout(
        {"blueGreen": {"activeService": "a", "scaleDownDelaySeconds": 20}}, replicas=2
    )
    cluster = LaggingCluster.settled(rollout, Lags(ready_after=1, cache_lag=0), lambda *_: None)
    for _ in range(20):
        plan = cluster.step("new")
        if plan.status.stable_revision == "new":
            break
    # A pod of the new stable dies just after the switch; the old revision is still up.
    cluster.pods.remove(next(p for p in cluster.pods if p.revision == "new"))
    cluster.replicasets["new"].generation += 1
    cluster.replicasets["new"].changed_at = cluster.tick
    plan = cluster.step("new", seconds=30)  # the scale-down delay is over
    plan = cluster.step("new")
    assert plan.replicas.get("old") == 2 and plan.status.previous_revision == "old"
    for _ in range(5):
        plan = cluster.step("new")
    assert plan.replicas == {"new": 2} and cluster.serving("new") == 2
