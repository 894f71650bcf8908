"""Builders and a simulated fleet for release planner tests.

``make_release`` builds a valid Release; ``member`` a member Rollout as its apiserver
would return it. ``Fleet`` plays member clusters by simple rules (each cluster has a
``behaviour``: promote after a while, roll back by analysis, be held by a freeze, never
see the change, be unreachable) and runs the planner pass after pass on a frozen clock,
applying its actions as the members' apiservers would — optionally "crashing" between
the status write and the actions, as a killed release controller does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from controller.api.release import Release
from controller.api.status import timestamp
from controller.release.actions import ReleasePlan as Plan
from controller.release.actions import RollBack, SetTemplate
from controller.release.observe import MemberRollout, Observation, template_revision, unreachable
from controller.release.planner import clusters_to_read, plan

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NAMESPACE = "releases"

Behaviour = Literal["ok", "slow", "fail", "hold", "stuck", "down"]


def template(image: str = "shop:1", **env: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"metadata": {"labels": {"app": "shop"}}, "spec": {"containers": [container]}}


def revision(body: dict[str, Any]) -> str:
    found = template_revision(body)
    assert found is not None
    return found


def member(
    *,
    image: str = "shop:1",
    generation: int = 1,
    status: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A member's Rollout ``shop`` as read; Healthy on its template unless ``status``."""
    pod = body or template(image)
    own = revision(pod)
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": "shop",
            "namespace": "app",
            "generation": generation,
            "resourceVersion": "10",
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": pod,
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
        "status": status
        if status is not None
        else {
            "phase": "Healthy",
            "observedGeneration": generation,
            "stableRevision": own,
        },
    }


def make_release(
    waves: list[dict[str, Any]],
    *,
    on_failure: str = "halt",
    images: dict[str, str] | None = None,
    patch: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    generation: int = 1,
    **spec: Any,
) -> Release:
    body: dict[str, Any] = {
        "rollout": {"namespace": "app", "name": "shop"},
        "waves": waves,
        "onFailure": on_failure,
        **spec,
    }
    if images is not None or patch is None:
        body["images"] = images if images is not None else {"app": "shop:2"}
    if patch is not None:
        body["templatePatch"] = patch
    return Release.model_validate(
        {
            "metadata": {
                "name": "rel",
                "namespace": NAMESPACE,
                "generation": generation,
                "uid": "uid-1",
                "annotations": annotations or {},
            },
            "spec": body,
        }
    )


def three_waves(**extra: Any) -> list[dict[str, Any]]:
    return [
        {"name": "staging", "clusters": ["staging"], **extra},
        {"name": "canary", "clusters": ["eu-1"], "soak": "30s"},
        {"name": "rest", "clusters": ["eu-2", "eu-3"], "maxParallel": 1},
    ]


@dataclass
class SimMember:
    """One member cluster and its operator, played by rules."""

    name: str
    behaviour: Behaviour = "ok"
    promote_after: float = 3.0
    raw: dict[str, Any] = field(default_factory=member)
    changed_at: datetime | None = None
    changes: list[str] = field(default_factory=list)
    """Every template revision written, in order (the member's generation history)."""
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    fast_track: bool = False

    def __post_init__(self) -> None:
        body = self.raw["spec"]["template"]
        self.templates[revision(body)] = copy.deepcopy(body)

    @property
    def revision(self) -> str:
        return revision(self.raw["spec"]["template"])

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.raw["status"])

    def observe(self, now: datetime) -> Observation:
        if self.behaviour == "down":
            return unreachable("connect timeout")
        self._advance(now)
        return MemberRollout(copy.deepcopy(self.raw))

    def _advance(self, now: datetime) -> None:
        status = self.raw["status"]
        generation = self.raw["metadata"]["generation"]
        current = self.revision
        if status.get("observedGeneration") == generation and self.changed_at is None:
            return
        if self.behaviour == "stuck" and not self.fast_track:
            return
        since = (now - self.changed_at).total_seconds() if self.changed_at else 0.0
        stable = status.get("stableRevision")
        base = {"observedGeneration": generation, "stableRevision": stable}
        if current == stable or self.fast_track and since >= 1:
            self.raw["status"] = {**base, "phase": "Healthy", "stableRevision": current}
            self.changed_at = None
            self.fast_track = False
        elif self.behaviour == "hold":
            self.raw["status"] = {
                **base,
                "phase": "Paused",
                "reason": "FrozenUntil",
                "message": "frozen until 2026-03-02T00:00:00Z (freeze 'xmas')",
                "heldSince": timestamp(self.changed_at or now),
            }
        elif self.behaviour == "fail" and since >= 2:
            self.raw["status"] = {
                **base,
                "phase": "Degraded",
                "aborted": True,
                "canaryRevision": current,
                "reason": "AnalysisFailed",
                "message": "error-rate 0.31 > max 0.05 at step 1 (weight 50%)",
                "analysisRuns": [
                    {
                        "key": "step-1",
                        "revision": current,
                        "phase": "Failed",
                        "startedAt": timestamp(now),
                        "metrics": [
                            {
                                "name": "error-rate",
                                "phase": "Failed",
                                "message": "error-rate 0.31 > max 0.05",
                                "measurements": [
                                    {"value": "0.31", "phase": "Failed", "at": timestamp(now)}
                                ],
                            }
                        ],
                    }
                ],
            }
        elif self.behaviour in ("ok", "slow", "fail") and since < self._promote_after():
            self.raw["status"] = {
                **base,
                "phase": "Progressing",
                "canaryRevision": current,
                "reason": "StepStarted",
                "message": "step 0: setWeight 50",
            }
        elif self.behaviour in ("ok", "slow"):
            self.raw["status"] = {**base, "phase": "Healthy", "stableRevision": current}
            self.changed_at = None

    def _promote_after(self) -> float:
        return self.promote_after * (10 if self.behaviour == "slow" else 1)

    def apply(self, action: SetTemplate | RollBack, now: datetime) -> None:
        """What the member's apiserver does with the release controller's patch."""
        if self.behaviour == "down":
            return
        current = self.revision
        wanted = action.revision
        if current == wanted or current != action.expected_revision:
            return  # MemberCluster re-reads first: applied before, or changed meanwhile
        body = action.template if isinstance(action, SetTemplate) else self.templates[wanted]
        self.raw["spec"]["template"] = copy.deepcopy(body)
        self.templates[wanted] = copy.deepcopy(body)
        self.raw["metadata"]["generation"] += 1
        self.raw["metadata"]["annotations"] = {
            k: v for k, v in action.annotations.items() if v is not None
        }
        self.changed_at = now
        self.fast_track = isinstance(action, RollBack)
        self.changes.append(wanted)


@dataclass
class Fleet:
    release: Release
    members: dict[str, SimMember]
    now: datetime = T0
    plans: list[Plan] = field(default_factory=list)

    @classmethod
    def of(cls, release: Release, **behaviours: Behaviour) -> Fleet:
        names = release.spec.clusters()
        return cls(
            release,
            {name: SimMember(name, behaviours.get(name.replace("-", "_"), "ok")) for name in names},
        )

    def step(self, seconds: float = 1.0, *, crash: bool = False) -> Plan:
        """One pass; ``crash``: the status is written but the process dies before acting."""
        wanted = clusters_to_read(self.release, now=self.now)
        observations = {name: self.members[name].observe(self.now) for name in wanted}
        result = plan(self.release, observations, now=self.now, targets=set(self.members))
        self.release = self.release.model_copy(update={"status": result.status})
        if not crash:
            for action in result.actions:
                self.members[action.cluster].apply(action, self.now)
        self.plans.append(result)
        self.now += timedelta(seconds=seconds)
        return result

    def run(
        self,
        until: Callable[[Fleet], bool] | None = None,
        *,
        steps: int = 200,
        seconds: float = 1.0,
        crash: Callable[[int], bool] = lambda _i: False,
    ) -> Fleet:
        for index in range(steps):
            result = self.step(seconds, crash=crash(index))
            if until is not None and until(self):
                return self
            if until is None and not result.active:
                return self
        return self

    @property
    def phase(self) -> str | None:
        status = self.release.status
        return status.phase if status else None

    def cluster(self, name: str) -> Any:
        assert self.release.status is not None
        return self.release.status.cluster(name)

    def wave(self, name: str) -> Any:
        assert self.release.status is not None
        return self.release.status.wave(name)

    def events(self, reason: str | None = None) -> list[Any]:
        return [e for p in self.plans for e in p.events if reason is None or e.reason == reason]
