"""Builders and a fake world for strategy tests.

``make_rollout`` builds a valid Rollout from a strategy dict; ``World`` applies each
Plan as a cluster would (scale-downs take effect at once, new pods become available one
pass later unless the revision is broken), plays the analysis engine from a table of
verdicts, and advances a frozen clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.api import Rollout
from controller.api.status import AnalysisRunStatus, Measurement, MetricResult, RolloutStatus
from controller.times import timestamp
from strategies import Observed, Plan, Request, RevisionState, decide
from strategies.pacing import RequestCount

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_rollout(
    strategy: dict[str, Any],
    *,
    replicas: int = 10,
    analysis: dict[str, Any] | None = None,
    paused: bool = False,
    deadline: int = 600,
    annotations: dict[str, str] | None = None,
) -> Rollout:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "shop"}},
        "template": {
            "metadata": {"labels": {"app": "shop"}},
            "spec": {"containers": [{"name": "app", "image": "shop:2"}]},
        },
        "strategy": strategy,
        "progressDeadlineSeconds": deadline,
        "paused": paused,
    }
    if analysis is not None:
        spec["analysis"] = analysis
    return Rollout.model_validate(
        {
            "metadata": {
                "name": "shop",
                "namespace": "ns",
                "generation": 3,
                "annotations": annotations or {},
            },
            "spec": spec,
        }
    )


def healthy(revision: str, replicas: int) -> RevisionState:
    return RevisionState(revision, replicas, replicas, replicas, replicas)


def failed_run(key: str, revision: str, message: str, phase: str = "Failed") -> AnalysisRunStatus:
    return AnalysisRunStatus(
        key=key,
        revision=revision,
        phase=phase,
        started_at="2026-03-01T12:00:00Z",
        metrics=[MetricResult(name="error-rate", phase=phase, message=message)],
    )


@dataclass
class World:
    """A cluster in miniature: ReplicaSets, Services, an HTTPRoute and a clock."""

    rollout: Rollout
    revisions: dict[str, RevisionState] = field(default_factory=dict)
    selectors: dict[str, str | None] = field(default_factory=dict)
    routes: dict[str, int] | None = None
    now: datetime = T0
    request: Request | None = None
    verdicts: dict[str, str] = field(default_factory=dict)
    """Analysis run key -> the phase the engine reports after one pass."""
    default_verdict: str | None = "Successful"
    """The phase of runs not in ``verdicts`` (None: they keep running)."""
    outage: bool = False
    """The metrics provider does not answer: running runs wait (onProviderError: pause)."""
    broken: set[str] = field(default_factory=set)
    """Revisions whose pods never become available."""
    crashing: set[str] = field(default_factory=set)
    plans: list[Plan] = field(default_factory=list)
    resized_from: int | None = None
    canary_requests: RequestCount | None = None
    """What the reconciler counted of the canary's requests (a step paced by traffic)."""
    """spec.replicas before the last resize (kubectl scale, an HPA), if any."""

    @classmethod
    def settled(cls, rollout: Rollout, *, stable: str = "old") -> World:
        """A world where ``stable`` has been rolled out and is fully available."""
        world = cls(rollout=rollout)
        world.revisions[stable] = healthy(stable, rollout.spec.replicas)
        plan = decide(rollout, world.observed(), now=world.now, revision=stable)
        world.apply(plan)
        return world

    def observed(self) -> Observed:
        return Observed(
            revisions=dict(self.revisions),
            service_selectors=dict(self.selectors),
            route_weights=None if self.routes is None else dict(self.routes),
            request=self.request,
            canary_requests=self.canary_requests,
        )

    @property
    def status(self) -> RolloutStatus:
        assert self.rollout.status is not None
        return self.rollout.status

    def decide(self, revision: str = "new") -> Plan:
        return decide(self.rollout, self.observed(), now=self.now, revision=revision)

    def apply(self, plan: Plan) -> None:
        """Scale (down at once; up takes a pass), switch selectors and routes, keep status."""
        self.plans.append(plan)
        for revision in set(self.revisions) | set(plan.replicas):
            old = self.revisions.get(revision, RevisionState(revision))
            desired = plan.replicas.get(revision, 0)
            available = min(old.available, desired)
            self.revisions[revision] = RevisionState(
                revision,
                desired=desired,
                current=desired,
                ready=available,
                available=available,
                restarts=5 if revision in self.crashing else 0,
                crash_looping=revision in self.crashing and desired > 0,
            )
        self.selectors.update(plan.service_selectors)
        self.routes = None if plan.route_weights is None else dict(plan.route_weights)
        status = plan.status
        if status.last_handled_request is not None and self.request is not None:
            if status.last_handled_request == self.request.id:
                self.request = None
        self.rollout = self.rollout.model_copy(update={"status": status})

    def tick(self, seconds: float = 10) -> None:
        """Time passes: pending pods become available; the analysis engine judges runs."""
        self.now += timedelta(seconds=seconds)
        for revision, state in list(self.revisions.items()):
            if revision not in self.broken and revision not in self.crashing:
                self.revisions[revision] = RevisionState(
                    revision, state.desired, state.desired, state.desired, state.desired
                )
        if self.rollout.status is None:
            return
        runs = []
        for run in self.status.analysis_runs:
            verdict = self.verdicts.get(run.key, self.default_verdict)
            if run.phase == "Running" and self.outage:
                # As the engine records it: still Running, waiting for the provider.
                since = run.metrics[0].unreachable_since if run.metrics else None
                metric = MetricResult(
                    name="error-rate",
                    error=1,
                    consecutive_error=1,
                    unreachable_since=since or timestamp(self.now),
                    message="error-rate: Prometheus unavailable: cannot connect",
                    measurements=[Measurement(phase="Error", at=timestamp(self.now))],
                )
                run = run.model_copy(update={"metrics": [metric]})
            elif run.phase == "Running" and verdict is not None:
                message = "error-rate 0.124 > max 0.05 for 2m" if verdict == "Failed" else ""
                metric = MetricResult(name="error-rate", phase=verdict, message=message)
                run = run.model_copy(update={"phase": verdict, "metrics": [metric]})
            elif run.phase == "Running":
                run = run.model_copy(update={"metrics": [MetricResult(name="error-rate")]})
            runs.append(run)
        status = self.status.model_copy(update={"analysis_runs": runs})
        self.rollout = self.rollout.model_copy(update={"status": status})

    def step(self, revision: str = "new", seconds: float = 10) -> Plan:
        """One reconcile pass, then time passes."""
        plan = self.decide(revision)
        self.apply(plan)
        self.tick(seconds)
        return plan

    def run_until(
        self, done: Any, *, revision: str = "new", limit: int = 200, seconds: float = 10
    ) -> Plan:
        for _ in range(limit):
            plan = self.step(revision, seconds)
            if done(plan):
                return plan
        raise AssertionError(
            f"not done after {limit} passes: {self.status.reason} {self.status.message}"
        )

    def set_spec(self, **changes: Any) -> None:
        spec = self.rollout.spec.model_copy(update=changes)
        self.rollout = self.rollout.model_copy(update={"spec": spec})


CANARY_STEPS: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"pause": {"duration": "2m"}},
    {"analysis": {"templates": [{"name": "http-health"}]}},
    {"setWeight": 50},
    {"pause": {}},
]


def canary(steps: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "canary": {
            "stableService": "shop",
            "canaryService": "shop-canary",
            "steps": CANARY_STEPS if steps is None else steps,
            **extra,
        }
    }


def gateway(steps: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return canary(steps, trafficRouting={"gatewayAPI": {"httpRoute": "shop"}}, **extra)
