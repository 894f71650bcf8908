"""Property tests: generated specs and observation sequences, checked after every pass.

Each example builds a valid Rollout, settles a stable revision, then plays a sequence of
passes in the fake ``World``: time passes, pods come up (or not), analysis reports a
verdict, people send requests, a newer revision may arrive, spec.paused may flip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller.api import Rollout
from strategies import Request, decide
from strategies.rolling import surge_and_unavailable
from strategies.traffic import share
from tests.strategies.world import World, make_rollout

# DEPLOYCTL_PROPERTY_EXAMPLES=5000 for a longer hunt than the default run's.
SETTINGS = settings(
    max_examples=int(os.environ.get("DEPLOYCTL_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
VERDICTS = ["Successful", "Successful", "Failed", "Inconclusive", "Running", "Error"]
ACTIONS = [None, None, None, None, "promote", "promoteFull", "abort", "retry", "approve"]
REF = {"templates": [{"name": "t"}]}


@dataclass(frozen=True)
class Move:
    """What happens in one pass of the fake world."""

    seconds: int
    verdict: str
    action: str | None
    revision: str
    paused: bool
    broken: bool
    crashing: bool


moves = st.builds(
    Move,
    seconds=st.integers(1, 400),
    verdict=st.sampled_from(VERDICTS),
    action=st.sampled_from(ACTIONS),
    revision=st.sampled_from(["new"] * 8 + ["newer", "old"]),
    paused=st.sampled_from([False] * 9 + [True]),
    broken=st.sampled_from([False] * 9 + [True]),
    crashing=st.sampled_from([False] * 19 + [True]),
)


@st.composite
def canary_steps(draw: st.DrawFn) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    weight = 0
    for kind in draw(st.lists(st.sampled_from(["w", "p", "pi", "a", "ap"]), max_size=6)):
        if kind == "w":
            weight = draw(st.integers(weight, 100))
            steps.append({"setWeight": weight})
        elif kind == "p":
            steps.append({"pause": {"duration": draw(st.integers(0, 600))}})
        elif kind == "pi":
            steps.append({"pause": {}})
        elif kind == "a":
            steps.append({"analysis": REF})
        else:
            steps.append({"approval": {}})
    return steps


@st.composite
def canary_rollouts(draw: st.DrawFn) -> Rollout:
    routed = draw(st.booleans())
    spec: dict[str, Any] = {
        "stableService": "s",
        "canaryService": "c",
        "steps": draw(canary_steps()),
        "scaleDownDelaySeconds": draw(st.integers(0, 120)),
    }
    if routed:
        spec["trafficRouting"] = {"gatewayAPI": {"httpRoute": "r"}}
        spec["dynamicStableScale"] = draw(st.booleans())
    return make_rollout(
        {"canary": spec},
        replicas=draw(st.integers(0, 12)),
        analysis=REF if draw(st.booleans()) else None,
        deadline=draw(st.integers(30, 900)),
    )


@st.composite
def blue_green_rollouts(draw: st.DrawFn) -> Rollout:
    spec: dict[str, Any] = {
        "activeService": "a",
        "previewService": "p",
        "autoPromotionEnabled": draw(st.booleans()),
        "scaleDownDelaySeconds": draw(st.integers(0, 120)),
    }
    if draw(st.booleans()):
        spec["autoPromotionSeconds"] = draw(st.integers(0, 300))
    if draw(st.booleans()):
        spec["previewReplicaCount"] = draw(st.integers(1, 12))
    if draw(st.booleans()):
        spec["prePromotionAnalysis"] = REF
    if draw(st.booleans()):
        spec["postPromotionAnalysis"] = REF
    return make_rollout(
        {"blueGreen": spec}, replicas=draw(st.integers(0, 12)), deadline=draw(st.integers(30, 900))
    )


int_or_percent = st.one_of(st.integers(0, 4), st.integers(0, 100).map(lambda n: f"{n}%"))


@st.composite
def rolling_rollouts(draw: st.DrawFn) -> Rollout:
    surge, unavailable = draw(int_or_percent), draw(int_or_percent)
    if surge in (0, "0%") and unavailable in (0, "0%"):
        unavailable = 1
    points = sorted(set(draw(st.lists(st.integers(1, 100), max_size=3))))
    spec = {
        "maxSurge": surge,
        "maxUnavailable": unavailable,
        "gates": [{"atPercent": p, "analysis": REF} for p in points],
    }
    return make_rollout(
        {"rolling": spec}, replicas=draw(st.integers(0, 12)), deadline=draw(st.integers(30, 900))
    )


def play(rollout: Rollout, sequence: list[Move], check: Any) -> World:
    """Run the sequence, checking idempotence and ``check`` after every pass."""
    world = World.settled(rollout)
    for index, move in enumerate(sequence):
        world.set_spec(paused=move.paused)
        world.default_verdict = move.verdict
        world.broken = {move.revision} if move.broken else set()
        world.crashing = {move.revision} if move.crashing and move.revision != "old" else set()
        if move.action is not None:
            world.request = Request(move.action, f"req-{index}", "prop")  # type: ignore[arg-type]
        observed = world.observed()
        plan = world.decide(move.revision)
        assert plan == world.decide(move.revision), "decide() is not idempotent"
        # A pass whose status write landed but whose effects are not yet observed (a
        # crash in between, a stale cache) must ask for the same world again.
        again = decide(
            world.rollout.model_copy(update={"status": plan.status}),
            observed,
            now=world.now,
            revision=move.revision,
        )
        assert (again.replicas, again.service_selectors, again.route_weights) == (
            plan.replicas,
            plan.service_selectors,
            plan.route_weights,
        )
        world.apply(plan)
        check(world, plan)
        world.tick(move.seconds)
    return world


def settle_after_abort(world: World, revision: str) -> None:
    """An aborted rollout, left alone, ends with all pods and traffic on stable."""
    event(f"final phase {world.status.phase}")
    if not world.status.aborted or world.status.canary_revision != revision:
        # Not aborted, or the template now names another revision (say, paused before
        # the controller saw it): that is a new rollout starting, not one left alone.
        return
    world.broken, world.crashing, world.request = set(), set(), None
    world.set_spec(paused=False)
    for _ in range(40):
        plan = world.step(revision)
    stable = world.status.stable_revision
    assert stable is not None
    replicas = world.rollout.spec.replicas
    assert plan.replicas == ({stable: replicas} if replicas else {})
    assert set(plan.service_selectors.values()) <= {stable}
    if plan.route_weights is not None:
        assert plan.route_weights.get(stable) == 100


def check_canary(world: World, plan: Any) -> None:
    status, spec = plan.status, world.rollout.spec
    canary = spec.strategy.canary
    assert canary is not None
    replicas = spec.replicas
    stable = status.stable_revision
    assert stable is not None
    on_canary = 0
    if plan.route_weights is not None:
        assert sum(plan.route_weights.values()) == 100
        on_canary = 100 - plan.route_weights.get(stable, 0)
    # The stable revision keeps what the spec promises (all of it without dynamic scaling).
    if spec.paused and status.reason == "Paused":
        return
    promised = share(100 - on_canary, replicas) if canary.dynamic_stable_scale else replicas
    assert plan.replicas.get(stable, 0) >= promised
    if status.canary_revision is not None and not status.aborted:
        index = status.current_step_index or 0
        allowed = max([s.set_weight or 0 for s in canary.steps[: index + 1]], default=0)
        assert status.weight <= allowed
        assert on_canary <= allowed


def check_blue_green(world: World, plan: Any) -> None:
    status, spec = plan.status, world.rollout.spec
    if spec.paused and status.reason == "Paused":
        return
    stable = status.stable_revision
    assert stable is not None and plan.replicas.get(stable, 0) >= spec.replicas
    active = plan.service_selectors.get("a")
    assert active in (stable, status.canary_revision)
    if active != stable:
        # Traffic moves to the new revision only when it is fully scaled.
        assert plan.replicas.get(active, 0) >= spec.replicas


def check_rolling(world: World, plan: Any) -> None:
    spec = world.rollout.spec
    rolling = spec.strategy.rolling
    assert rolling is not None
    _, unavailable = surge_and_unavailable(
        rolling.max_surge, rolling.max_unavailable, replicas=spec.replicas
    )
    available = sum(s.available for s in world.revisions.values())
    assert available >= spec.replicas - unavailable


@SETTINGS
@given(rollout=canary_rollouts(), sequence=st.lists(moves, max_size=40))
def test_canary_properties(rollout: Rollout, sequence: list[Move]) -> None:
    world = play(rollout, sequence, check_canary)
    settle_after_abort(world, sequence[-1].revision if sequence else "old")


@SETTINGS
@given(rollout=blue_green_rollouts(), sequence=st.lists(moves, max_size=40))
def test_blue_green_properties(rollout: Rollout, sequence: list[Move]) -> None:
    world = play(rollout, sequence, check_blue_green)
    settle_after_abort(world, sequence[-1].revision if sequence else "old")


@SETTINGS
@given(rollout=rolling_rollouts(), sequence=st.lists(moves, max_size=40))
def test_rolling_properties(rollout: Rollout, sequence: list[Move]) -> None:
    world = play(rollout, sequence, check_rolling)
    settle_after_abort(world, sequence[-1].revision if sequence else "old")


@SETTINGS
@given(rollout=st.one_of(canary_rollouts(), blue_green_rollouts(), rolling_rollouts()))
def test_a_quiet_world_always_finishes_the_rollout(rollout: Rollout) -> None:
    """With healthy pods, passing analysis and a promote at every pause, it ends Healthy."""
    world = World.settled(rollout)
    for index in range(60):
        world.request = Request("approve" if index % 2 else "promote", f"q{index}", "prop")
        plan = world.step(seconds=700)
        if plan.status.stable_revision == "new":
            break
    assert world.status.stable_revision == "new", world.status.message
    assert world.step().status.phase == "Healthy"
