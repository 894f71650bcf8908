"""A mixed fleet for reliability tests: canary, blue-green and rolling rollouts, each
once healthy and once broken, with the checks every run must pass.

``Fleet.start`` deploys v1 of each and waits until stable; ``Fleet.roll`` rolls v2 out
(broken ones answer half their requests with 500); a ``Sampler`` thread reads every
status a few times a second to catch what end-state checks cannot see (a weight above
its step's, a broken revision ever becoming stable); ``Fleet.verify`` checks the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.api.revision import template_hash
from controller.api.rollout import PodTemplateSpec
from strategies.traffic import replica_share_percent, share_targets
from tests.integration.harness import Cluster, demo_rollout, error_rate_template
from tests.waiting import wait_until

CANARY_STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "2s"}},
    {"analysis": {"templates": [{"name": "errors"}]}},
    {"setWeight": 50},
    {"pause": {"duration": "2s"}},
]


def _strategy(kind: str, name: str) -> dict[str, Any]:
    if kind == "canary":
        return {"canary": {"steps": CANARY_STEPS, "scaleDownDelaySeconds": 1}}
    if kind == "bluegreen":
        return {
            "blueGreen": {
                "activeService": name,
                "previewService": f"{name}-preview",
                "autoPromotionEnabled": True,
                "postPromotionAnalysis": {"templates": [{"name": "errors"}]},
                "scaleDownDelaySeconds": 1,
            }
        }
    return {
        "rolling": {
            "maxSurge": 1,
            "maxUnavailable": 0,
            "gates": [{"atPercent": 50, "analysis": {"templates": [{"name": "errors"}]}}],
        }
    }


@dataclass
class Member:
    name: str
    kind: str  # canary, bluegreen, rolling
    broken: bool
    stable: str = ""
    new: str = ""


REPLICAS = 2


def max_weight_allowed(step_index: int | None, replicas: int = REPLICAS) -> int:
    """The highest weight the canary steps up to ``step_index`` can show: each
    setWeight's share of the pods (weights are shares: 25% of 2 pods is one pod each,
    50% as users get it)."""
    if step_index is None or step_index >= len(CANARY_STEPS):
        return 100
    shares = []
    for step in CANARY_STEPS[: step_index + 1]:
        if "setWeight" in step:
            canary, stable = share_targets(step["setWeight"], replicas)
            shares.append(replica_share_percent(canary, stable))
    return max(shares, default=0)


@dataclass
class Sampler:
    """Reads every member's status in a loop; records violations as it goes."""

    cluster: Cluster
    members: list[Member]
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    weights_seen: dict[str, set[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for member in self.members:
                try:
                    status = self.cluster.status(member.name)
                except Exception:  # noqa: BLE001 - the apiserver may be faulty on purpose
                    continue
                self.samples += 1
                self.check(member, status)

    def check(self, member: Member, status: dict[str, Any]) -> None:
        new = status.get("canaryRevision")
        if new and new == member.new:
            self.weights_seen.setdefault(member.name, set()).add(int(status.get("weight", 0)))
        if member.broken and member.new and status.get("stableRevision") == member.new:
            self.violations.append(f"{member.name}: broken revision {member.new} became stable")
        if (
            member.kind == "canary"
            and new
            and new == member.new
            and status.get("phase")
            in (
                "Progressing",
                "Paused",
            )
        ):
            allowed = max_weight_allowed(status.get("currentStepIndex"))
            if int(status.get("weight", 0)) > allowed:
                self.violations.append(
                    f"{member.name}: weight {status.get('weight')} above step "
                    f"{status.get('currentStepIndex')}'s {allowed}"
                )


class Fleet:
    def __init__(self, cluster: Cluster, traffic: Callable[..., Any], *, prefix: str = "") -> None:
        self.cluster = cluster
        self.traffic = traffic
        self.members = [
            Member(f"{prefix}{kind[:2]}-{'bad' if broken else 'ok'}", kind, broken)
            for kind in ("canary", "bluegreen", "rolling")
            for broken in (False, True)
        ]

    def body(self, member: Member, version: str) -> dict[str, Any]:
        env = {"DEMO_ERROR_RATE": "0.5"} if member.broken and version != "v1" else None
        return demo_rollout(
            member.name,
            version=version,
            env=env,
            replicas=REPLICAS,
            strategy=_strategy(member.kind, member.name),
            progress_deadline=300,
        )

    def start(self) -> None:
        self.cluster.create_template(error_rate_template("errors", interval="1s", count=3))
        for member in self.members:
            self.cluster.create_service(member.name, {"app": member.name}, rollout=member.name)
            if member.kind == "bluegreen":
                self.cluster.create_service(
                    f"{member.name}-preview", {"app": member.name}, rollout=member.name
                )
            self.cluster.apply_rollout(self.body(member, "v1"))
        for member in self.members:
            name = member.name
            status = wait_until(
                lambda: self.cluster.status(name),  # noqa: B023 - used before the next turn
                ok=lambda s: s.get("phase") == "Healthy" and bool(s.get("stableRevision")),
                timeout=90,
                what=f"{name} v1 healthy",
            )
            member.stable = status["stableRevision"]
            self.traffic(self.cluster.namespace, service=member.name, rate_per_second=15)

    def roll(self, version: str) -> None:
        """Apply ``version`` to every member; its revision is the template's hash."""
        for member in self.members:
            body = self.body(member, version)
            member.new = template_hash(PodTemplateSpec.model_validate(body["spec"]["template"]))
            self.cluster.apply_rollout(body)

    def settled(self, timeout: float) -> dict[str, dict[str, Any]]:
        def read() -> dict[str, dict[str, Any]]:
            return {m.name: self.cluster.status(m.name) for m in self.members}

        def done(statuses: dict[str, dict[str, Any]]) -> bool:
            for m in self.members:
                s = statuses[m.name]
                if m.broken and s.get("phase") not in ("Degraded", "RolledBack"):
                    return False
                if not m.broken and not (
                    s.get("phase") == "Healthy" and s.get("stableRevision") == m.new
                ):
                    return False
            return True

        return dict(
            wait_until(read, ok=done, timeout=timeout, what="every rollout at its end state")
        )

    def verify(self, statuses: dict[str, dict[str, Any]]) -> None:
        """End state: healthy ones promoted, broken ones rolled back, history consistent."""
        for m in self.members:
            s = statuses[m.name]
            if m.broken:
                assert s["stableRevision"] == m.stable, (m.name, s)
                outcomes = [h["outcome"] for h in s["history"] if h["revision"] == m.new]
                assert "Promoted" not in outcomes, (m.name, outcomes)
            else:
                assert s["stableRevision"] == m.new, (m.name, s)
                outcomes = [h["outcome"] for h in s["history"] if h["revision"] == m.new]
                assert outcomes[-1:] == ["Promoted"], (m.name, outcomes)
            if m.kind == "canary" and not m.broken:
                # The analysis step was not skipped: its run is in status, successful.
                runs = [r for r in s.get("analysisRuns", []) if r["revision"] == m.new]
                assert any(r["key"] == "step-2" and r["phase"] == "Successful" for r in runs), (
                    m.name,
                    runs,
                )
