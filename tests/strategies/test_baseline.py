"""Baseline pods beside a canary by replica share (``strategies.baseline``).

The arithmetic on its own, then the planner played against the lagging cluster
(``tests.strategies.cluster``): after every change the pods stay within the surge and
availability rules, the baseline is never asked to grow above the canary's pods while the
canary heads forward, and once the canary is promoted or aborted and the pods have
settled no baseline is left.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api import Rollout
from strategies.baseline import baseline_revision, baseline_split, is_baseline
from strategies.plan import Plan
from strategies.traffic import canary_replicas, share_targets
from tests.strategies.cluster import LaggingCluster, Lags
from tests.strategies.test_lagging_properties import (
    LAGGING,
    check_replica_share,
    fail,
    lags,
    play,
    sequences,
)
from tests.strategies.world import make_rollout


@given(canary=st.integers(0, 200), stable=st.integers(0, 200))
def test_the_split_takes_the_baseline_out_of_the_stable(canary: int, stable: int) -> None:
    baseline, kept = baseline_split(canary, stable)
    assert 0 <= baseline <= canary
    assert baseline + kept == stable
    if stable >= 1:
        assert kept >= 1
    if canary >= 1 and stable >= canary + 1:
        assert baseline == canary


def test_baseline_names() -> None:
    assert baseline_revision("abc") == "abc-baseline"
    assert is_baseline(baseline_revision("abc")) and not is_baseline("abc")


def test_a_full_stable_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="baseline pods are built for a canary by replica"):
        with_baseline([{"setWeight": 10}], stable_scale="full")


def with_baseline(
    steps: list[dict[str, Any]],
    *,
    replicas: int = 10,
    stable_scale: str = "share",
    surge: int | str = "25%",
    unavailable: int | str = "25%",
) -> Rollout:
    return make_rollout(
        {
            "canary": {
                "steps": steps,
                "stableScale": stable_scale,
                "maxSurge": surge,
                "maxUnavailable": unavailable,
                "baseline": {"enabled": True},
            }
        },
        replicas=replicas,
        deadline=900,
    )


def specs(cluster: LaggingCluster) -> dict[str, int]:
    return {r.revision: r.spec for r in cluster.replicasets.values() if r.spec}


def live(cluster: LaggingCluster, revision: str) -> int:
    return sum(1 for p in cluster.pods if p.revision == revision and not p.terminating)


def test_baseline_comes_with_the_canary_and_goes_at_promotion() -> None:
    rollout = with_baseline([{"setWeight": 20}, {"pause": {}}, {"setWeight": 40}, {"pause": {}}])
    cluster = LaggingCluster.settled(rollout, Lags(), lambda c, w: None)
    baseline = baseline_revision("old")
    for _ in range(12):
        cluster.step("new", seconds=5)
    assert specs(cluster) == {"new": 2, baseline: 2, "old": 6}
    assert live(cluster, baseline) == 2
    assert cluster.status.weight == 20  # the canary's share is the weight, baseline or not
    from strategies import Request

    cluster.request = Request("promote", "r1", "test")
    for _ in range(12):
        cluster.step("new", seconds=5)
    assert specs(cluster) == {"new": 4, baseline: 4, "old": 2}
    cluster.request = Request("promoteFull", "r2", "test")
    for _ in range(20):
        cluster.step("new", seconds=5)
    assert cluster.status.stable_revision == "new"
    assert specs(cluster) == {"new": 10}
    assert live(cluster, baseline) == 0


def test_baseline_goes_at_an_abort() -> None:
    rollout = with_baseline([{"setWeight": 30}, {"pause": {}}])
    cluster = LaggingCluster.settled(rollout, Lags(), lambda c, w: None)
    for _ in range(12):
        cluster.step("new", seconds=5)
    assert specs(cluster) == {"new": 3, baseline_revision("old"): 3, "old": 4}
    from strategies import Request

    cluster.request = Request("abort", "r1", "test")
    for _ in range(20):
        cluster.step("new", seconds=5)
    assert cluster.status.aborted
    assert specs(cluster) == {"old": 10}
    assert live(cluster, baseline_revision("old")) == 0


@st.composite
def baseline_rollouts(draw: st.DrawFn) -> Rollout:
    weights = sorted(set(draw(st.lists(st.integers(1, 100), min_size=1, max_size=4))))
    steps: list[dict[str, Any]] = []
    for weight in weights:
        steps += [{"setWeight": weight}, {"pause": {"duration": draw(st.integers(0, 60))}}]
    budgets: list[tuple[int | str, int | str]] = [
        ("25%", "25%"),
        (1, 0),
        (0, 1),
        ("50%", 0),
        (2, "10%"),
        (0, "40%"),
    ]
    surge, unavailable = draw(st.sampled_from(budgets))
    return with_baseline(
        steps, replicas=draw(st.integers(1, 12)), surge=surge, unavailable=unavailable
    )


def check_baseline(cluster: LaggingCluster, when: str) -> None:
    """Surge and availability as any canary by replica share; the baseline's asked-for
    pods never grown above the canary's while the canary is heading forward; no baseline
    beside a stable with no canary in flight once the pods have settled."""
    check_replica_share(cluster, when)
    status = cluster.status
    spec = specs(cluster)
    canary = status.canary_revision
    baselines = {rev: n for rev, n in spec.items() if is_baseline(rev)}
    # What this cluster's baselines were asked for at the previous check, kept on it.
    before: dict[str, int] = getattr(cluster, "baselines_before", {})
    setattr(cluster, "baselines_before", baselines)  # noqa: B010 - not a field of it
    if canary and not status.aborted and canary != status.stable_revision:
        # The canary's pods for the step being worked on (a new canary replacing a
        # superseded one starts below them, beside the baseline already there).
        steps = cluster.rollout.spec.strategy.canary.steps  # type: ignore[union-attr]
        index = status.current_step_index or 0
        weight = 100 if index >= len(steps) else max(s.set_weight or 0 for s in steps[: index + 1])
        target = max(spec.get(canary, 0), share_targets(weight, cluster.rollout.spec.replicas)[0])
        for rev, n in baselines.items():
            # A canary superseded by a newer one at a lower weight leaves a baseline above
            # the newcomer's pods; it shrinks once the ReplicaSets are in sync (shrinking
            # unsynced could spend availability on pods already going), so what must
            # never happen is a baseline *asked to grow* above the canary's pods.
            if n > target and n > before.get(rev, 0):
                fail(cluster, when, f"baseline {rev} asked for {n} > canary's {target}")


@LAGGING
@given(rollout=baseline_rollouts(), lags=lags, sequence=sequences)
def test_baseline_within_the_rules_on_real_pods(
    rollout: Rollout, lags: Lags, sequence: list[Any]
) -> None:
    cluster = play(rollout, lags, sequence, check_baseline)
    # Then quiet, successful passes: the rollout ends promoted or aborted, with no
    # baseline left once the pods have settled.
    from strategies import Request

    cluster.verdict = "Successful"
    cluster.broken, cluster.crashing = set(), set()
    cluster.set_spec(paused=False)
    revision = cluster.status.canary_revision or cluster.status.stable_revision or "old"
    for index in range(80):
        if index % 5 == 0 and not cluster.status.aborted:
            cluster.request = Request("promoteFull", f"end-{index}", "prop")
        cluster.step(revision, seconds=30)
        if cluster.status.canary_revision is None and not any(
            is_baseline(r) for r in specs(cluster)
        ):
            break
    assert not any(is_baseline(r) for r in specs(cluster)), specs(cluster)


# -- behind a router ------------------------------------------------------------------


@st.composite
def routed_baseline_rollouts(draw: st.DrawFn) -> Rollout:
    weights = sorted(set(draw(st.lists(st.integers(1, 100), min_size=1, max_size=4))))
    steps: list[dict[str, Any]] = []
    for weight in weights:
        steps += [{"setWeight": weight}, {"pause": {"duration": draw(st.integers(0, 60))}}]
    spec = {
        "stableService": "s",
        "canaryService": "c",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "r"}},
        "baseline": {"enabled": True},
        "steps": steps,
    }
    return make_rollout({"canary": spec}, replicas=draw(st.integers(1, 12)), deadline=900)


def check_routed_baseline(cluster: LaggingCluster, plan: Plan, when: str) -> None:
    """The route names a baseline only beside a canary in flight and only while its
    Ready pods are as many as the canary needs for its weight; the baseline never has
    more pods asked for than the canary's for the step being worked on."""
    status = plan.status
    in_flight = status.canary_revision not in (None, status.stable_revision)
    for revision, weight in (plan.route_weights or {}).items():
        if not is_baseline(revision) or weight == 0:
            continue
        if not in_flight or status.aborted:
            fail(cluster, when, f"baseline {revision} routed {weight}% with no canary in flight")
        needed = canary_replicas(status.weight, cluster.rollout.spec.replicas, routed=True)
        if cluster.serving(revision) < needed:
            fail(cluster, when, f"baseline {revision} routed {weight}% on too few Ready pods")
        if weight != plan.route_weights.get(str(status.canary_revision)):  # type: ignore[union-attr]
            fail(cluster, when, f"baseline {revision} routed {weight}%, not the canary's share")
    canary = status.canary_revision
    for revision, n in plan.replicas.items():
        if is_baseline(revision) and n > 0:
            if not in_flight or status.aborted:
                fail(cluster, when, f"baseline {revision} kept with no canary in flight")
            steps = cluster.rollout.spec.strategy.canary.steps  # type: ignore[union-attr]
            index = status.current_step_index or 0
            weight = max([status.weight] + [s.set_weight or 0 for s in steps[: index + 1]])
            most = canary_replicas(weight, cluster.rollout.spec.replicas, routed=True)
            if n > max(most, plan.replicas.get(str(canary), 0)):
                fail(cluster, when, f"baseline {revision} asked for {n} > canary's {most}")


@LAGGING
@given(rollout=routed_baseline_rollouts(), lags=lags, sequence=sequences)
def test_a_routed_baseline_gets_traffic_only_on_ready_pods(
    rollout: Rollout, lags: Lags, sequence: list[Any]
) -> None:
    from strategies import Request
    from tests.strategies.test_lagging_properties import check_canary

    cluster = LaggingCluster.settled(rollout, lags, check_canary)
    for index, move in enumerate(sequence):
        cluster.set_spec(paused=move.paused)
        cluster.verdict = move.verdict
        cluster.broken = {move.revision} if move.broken else set()
        cluster.crashing = {move.revision} if move.crashing and move.revision != "old" else set()
        if move.action is not None:
            cluster.request = Request(move.action, f"req-{index}", "prop")
        plan = cluster.step(move.revision, seconds=move.seconds)
        check_routed_baseline(cluster, plan, f"after move {index}")
    # Quiet, successful passes: promoted or aborted, no baseline pods or route left.
    cluster.verdict = "Successful"
    cluster.broken, cluster.crashing = set(), set()
    cluster.set_spec(paused=False)
    revision = cluster.status.canary_revision or cluster.status.stable_revision or "old"
    for index in range(80):
        if index % 5 == 0 and not cluster.status.aborted:
            cluster.request = Request("promoteFull", f"end-{index}", "prop")
        plan = cluster.step(revision, seconds=30)
        check_routed_baseline(cluster, plan, f"after quiet pass {index}")
        if cluster.status.canary_revision is None and not any(
            is_baseline(r) for r in specs(cluster)
        ):
            break
    assert not any(is_baseline(r) for r in specs(cluster)), specs(cluster)
    assert not any(is_baseline(r) for r in plan.route_weights or {})
