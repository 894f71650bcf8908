"""Property tests on a cluster whose ReplicaSet status lags (``tests.strategies.cluster``).

The planners decide on what the controller's stale caches show, through the real
``controller.observe``; the promises are checked on the real pods, Ready and not
terminating, after every change the cluster makes:

- rolling: never fewer than ``replicas - maxUnavailable`` such pods, never more than
  ``replicas + maxSurge`` pods that are not terminating;
- canary: every Service the HTTPRoute sends a share of traffic to has Ready pods for
  that share (so stable is never shrunk below its share, and an abort moves traffic only
  onto Ready pods); without traffic routing the stable Service keeps all its replicas;
- blue-green: the active Service always selects a revision with all its pods Ready (it
  never switches to, or back to, a revision that is not).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api import Rollout
from strategies import Request
from strategies.rolling import surge_and_unavailable
from strategies.traffic import share
from tests.strategies.cluster import LaggingCluster, Lags
from tests.strategies.test_properties import (
    ACTIONS,
    SETTINGS,
    Move,
    blue_green_rollouts,
    canary_rollouts,
    rolling_rollouts,
)
from tests.strategies.world import make_rollout

# Each example plays 10-40 passes through the real observe(); fewer than the World tests.
LAGGING = settings(SETTINGS, max_examples=max(1, SETTINGS.max_examples * 2 // 3))

lags = st.builds(
    Lags,
    rs_lag=st.integers(0, 2),
    status_lag=st.integers(0, 3),
    ready_after=st.integers(1, 3),
    terminate_after=st.integers(0, 2),
    cache_lag=st.integers(0, 1),
)


# Passes close together (pods take ticks, not seconds, to come up), mostly quiet ones,
# so that rollouts get far enough for the interesting moments: a weight set, a switch,
# a newer revision or a revert while old pods are still going away.
moves = st.builds(
    Move,
    seconds=st.integers(1, 30),
    verdict=st.sampled_from(["Successful"] * 6 + ["Running", "Failed", "Inconclusive", "Error"]),
    action=st.sampled_from([None] * 16 + [a for a in ACTIONS if a is not None]),
    revision=st.sampled_from(["new"] * 12 + ["newer", "old"]),
    paused=st.sampled_from([False] * 19 + [True]),
    broken=st.sampled_from([False] * 14 + [True]),
    crashing=st.sampled_from([False] * 29 + [True]),
)
sequences = st.lists(moves, min_size=10, max_size=40)


@st.composite
def sized(draw: st.DrawFn, rollouts: st.SearchStrategy[Rollout]) -> Rollout:
    """A generated rollout with pods to watch and a deadline the lags do not hit at once."""
    rollout = draw(rollouts)
    spec = rollout.spec.model_copy(
        update={
            "replicas": draw(st.integers(1, 12)),
            "progress_deadline_seconds": draw(st.integers(120, 900)),
        }
    )
    return rollout.model_copy(update={"spec": spec})


@st.composite
def shrinking_stables(draw: st.DrawFn) -> Rollout:
    """Canaries whose stable shrinks as traffic moves (dynamicStableScale): the case
    where moving traffic back is only safe onto pods that have come back."""
    weights = sorted(set(draw(st.lists(st.integers(1, 100), min_size=1, max_size=4))))
    steps: list[dict[str, Any]] = []
    for weight in weights:
        steps += [{"setWeight": weight}, {"pause": {"duration": draw(st.integers(0, 60))}}]
    spec = {
        "stableService": "s",
        "canaryService": "c",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "r"}},
        "dynamicStableScale": True,
        "steps": steps,
    }
    return make_rollout({"canary": spec}, replicas=draw(st.integers(1, 12)), deadline=900)


def play(rollout: Rollout, lags: Lags, sequence: list[Move], check: Any) -> LaggingCluster:
    cluster = LaggingCluster.settled(rollout, lags, check)
    for index, move in enumerate(sequence):
        cluster.set_spec(paused=move.paused)
        cluster.verdict = move.verdict
        cluster.broken = {move.revision} if move.broken else set()
        cluster.crashing = {move.revision} if move.crashing and move.revision != "old" else set()
        if move.action is not None:
            cluster.request = Request(move.action, f"req-{index}", "prop")  # type: ignore[arg-type]
        cluster.step(move.revision, seconds=move.seconds)
    return cluster


def fail(cluster: LaggingCluster, when: str, what: str) -> None:
    status = cluster.status
    pods = sorted(
        (p.revision, "ready" if p.ready_since else "-", "terminating" if p.terminating else "")
        for p in cluster.pods
    )
    specs = {r.revision: r.spec for r in cluster.replicasets.values()}
    raise AssertionError(
        f"{what} {when} (tick {cluster.tick}): {status.reason} {status.message}; "
        f"specs {specs}; selectors {cluster.selectors}; route {cluster.route}; pods {pods}"
    )


def check_rolling(cluster: LaggingCluster, when: str) -> None:
    spec = cluster.rollout.spec
    assert spec.strategy.rolling is not None
    surge, unavailable = surge_and_unavailable(
        spec.strategy.rolling.max_surge,
        spec.strategy.rolling.max_unavailable,
        replicas=spec.replicas,
    )
    if cluster.serving_total() < spec.replicas - unavailable:
        fail(
            cluster,
            when,
            f"{cluster.serving_total()} pods serving, below {spec.replicas - unavailable}",
        )
    if cluster.existing_total() > spec.replicas + surge:
        fail(cluster, when, f"{cluster.existing_total()} pods, above {spec.replicas + surge}")


def check_canary(cluster: LaggingCluster, when: str) -> None:
    spec = cluster.rollout.spec
    canary = spec.strategy.canary
    assert canary is not None
    replicas = spec.replicas
    if cluster.route is None:
        stable = cluster.selected(canary.stable_service)
        if cluster.serving(stable) < replicas:
            fail(cluster, when, f"stable {stable} serving {cluster.serving(stable)} < {replicas}")
        return
    for service, weight in cluster.route.items():
        revision = cluster.selected(service)
        needed = share(weight, replicas)
        if weight > 0 and cluster.serving(revision) < needed:
            fail(
                cluster,
                when,
                f"{service} ({revision}) has {weight}% of traffic on "
                f"{cluster.serving(revision)} Ready pods, needs {needed}",
            )


def check_blue_green(cluster: LaggingCluster, when: str) -> None:
    spec = cluster.rollout.spec
    assert spec.strategy.blue_green is not None
    active = cluster.selected(spec.strategy.blue_green.active_service)
    if cluster.serving(active) < spec.replicas:
        fail(cluster, when, f"active on {active} with {cluster.serving(active)} Ready pods")


@LAGGING
@given(rollout=sized(rolling_rollouts()), lags=lags, sequence=sequences)
def test_rolling_keeps_its_floor_and_ceiling_on_real_pods(
    rollout: Rollout, lags: Lags, sequence: list[Move]
) -> None:
    play(rollout, lags, sequence, check_rolling)


@LAGGING
@given(rollout=sized(canary_rollouts()), lags=lags, sequence=sequences)
def test_canary_traffic_only_reaches_ready_pods(
    rollout: Rollout, lags: Lags, sequence: list[Move]
) -> None:
    play(rollout, lags, sequence, check_canary)


@LAGGING
@given(rollout=shrinking_stables(), lags=lags, sequence=sequences)
def test_a_shrunk_stable_gets_traffic_back_only_onto_ready_pods(
    rollout: Rollout, lags: Lags, sequence: list[Move]
) -> None:
    play(rollout, lags, sequence, check_canary)


@LAGGING
@given(rollout=sized(blue_green_rollouts()), lags=lags, sequence=sequences)
def test_blue_green_active_always_fully_ready(
    rollout: Rollout, lags: Lags, sequence: list[Move]
) -> None:
    play(rollout, lags, sequence, check_blue_green)
