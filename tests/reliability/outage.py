"""A Prometheus outage in the middle of analysis, under every strategy.

Seven Rollouts wait on an analysis measured against a Prometheus of the test's own: a
canary step, a blue-green pre-promotion analysis and a rolling gate at 50%, each once
with ``inconclusiveLimit: 0`` and once with 30 (above ``consecutiveErrorLimit``, the case
that used to roll back), plus one canary whose template says ``onProviderError: abort``.
The query (``vector(1) >= 0``) always answers while Prometheus is up, so what the test
sees is the outage only. ``run_outage`` stops Prometheus once every analysis is under way
and checks, while it is down, that the six pause (AnalysisProviderUnreachable, the
status and ``deployctl status`` saying so), that none becomes Healthy or moves on,
and that the abort one aborts; then it starts Prometheus again and every paused
rollout finishes by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.api.revision import template_hash
from controller.api.rollout import PodTemplateSpec
from sandbox.prometheus import PrometheusServer
from tests.integration.harness import GROUP, VERSION, demo_rollout, poll
from tests.integration.pinned import Pinned, pin

COUNT = 20  # measurements a run needs (one a second): the window to stop Prometheus in


@dataclass(frozen=True)
class Member:
    name: str
    kind: str  # canary, bluegreen, rolling
    template: str  # low, high, abort

    @property
    def key(self) -> str:
        return {"canary": "step-1", "bluegreen": "prePromotion", "rolling": "gate-50"}[self.kind]


MEMBERS = [
    Member(f"{kind[:2]}-{template}", kind, template)
    for kind in ("canary", "bluegreen", "rolling")
    for template in ("low", "high")
] + [Member("ca-abort", "canary", "abort")]


def template(name: str) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "name": "alive",
        "interval": "1s",
        "count": COUNT,
        "inconclusiveLimit": 0 if name == "low" else 30,
        "threshold": {"min": 0},
        "provider": {"prometheus": {"query": "vector(1)"}},
    }
    if name == "abort":
        metric.update(onProviderError="abort", consecutiveErrorLimit=2)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [metric]},
    }


def strategy(member: Member) -> dict[str, Any]:
    analysis = {"templates": [{"name": member.template}]}
    if member.kind == "canary":
        return {"canary": {"steps": [{"setWeight": 50}, {"analysis": analysis}]}}
    if member.kind == "bluegreen":
        return {"blueGreen": {"activeService": member.name, "prePromotionAnalysis": analysis}}
    gate = {"atPercent": 50, "analysis": analysis}
    return {"rolling": {"maxSurge": 1, "maxUnavailable": 0, "gates": [gate]}}


def body(member: Member, version: str, node: str) -> dict[str, Any]:
    return pin(
        demo_rollout(member.name, version=version, replicas=2, strategy=strategy(member)), node
    )


def run_of(status: dict[str, Any], member: Member, revision: str) -> dict[str, Any] | None:
    runs = status.get("analysisRuns") or []
    return next((r for r in runs if r["key"] == member.key and r["revision"] == revision), None)


def measured(run: dict[str, Any] | None) -> int:
    metrics = (run or {}).get("metrics") or [{}]
    return int(metrics[0].get("successful", 0))


def cli_status(box: Pinned, kubeconfig: str, name: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "controller.cli", "status", name, "-n", box.namespace, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": kubeconfig},
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def deploy(box: Pinned) -> None:
    for name in ("low", "high", "abort"):
        box.cluster.create_template(template(name))
    for member in MEMBERS:
        if member.kind == "bluegreen":
            box.cluster.create_service(member.name, {"app": member.name})
        box.cluster.apply_rollout(body(member, "v1", box.fast))
    for member in MEMBERS:
        poll(
            lambda: box.cluster.status(member.name),  # noqa: B023 - polled at once
            lambda s: s.get("phase") == "Healthy",
            timeout=180,
            what=f"{member.name} v1",
        )


def run_outage(
    box: Pinned, prometheus: PrometheusServer, *, kubeconfig: str, seconds: float
) -> dict[str, Any]:
    """The scenario above with Prometheus down for ``seconds``; returns figures."""
    cluster = box.cluster
    new: dict[str, str] = {}
    stable = {m.name: cluster.status(m.name)["stableRevision"] for m in MEMBERS}
    for member in MEMBERS:
        spec = body(member, "v2", box.fast)
        new[member.name] = template_hash(PodTemplateSpec.model_validate(spec["spec"]["template"]))
        cluster.apply_rollout(spec)

    def statuses() -> dict[str, dict[str, Any]]:
        return {m.name: cluster.status(m.name) for m in MEMBERS}

    # Stop Prometheus once every analysis has measured, or as soon as one is halfway
    # (a slower one then meets the outage at its first measurement).
    def under_way(now: dict[str, dict[str, Any]]) -> bool:
        counts = [measured(run_of(now[m.name], m, new[m.name])) for m in MEMBERS]
        return min(counts) >= 1 or max(counts) >= COUNT // 2

    poll(statuses, under_way, timeout=180, what="every analysis under way")
    prometheus.stop()
    down_at = time.monotonic()
    pausing = [m for m in MEMBERS if m.template != "abort"]
    watcher = OutageWatch(cluster, pausing, stable).start()

    def paused(s: dict[str, Any]) -> bool:
        return s.get("phase") == "Paused" and s.get("reason") == "AnalysisProviderUnreachable"

    try:
        poll(
            statuses,
            lambda now: all(paused(now[m.name]) for m in pausing),
            timeout=60,
            what="every rollout paused by the outage",
        )
        # Once paused, paused for the rest of the outage, whatever inconclusiveLimit says.
        watcher.expect_paused = True
        aborted = poll(
            lambda: cluster.status("ca-abort"),
            lambda s: s.get("phase") == "Degraded",
            timeout=60,
            what="the onProviderError: abort canary to abort",
        )
        assert aborted["reason"] == "AnalysisFailed", aborted
        assert "onProviderError: abort" in aborted["message"], aborted["message"]
        assert aborted["stableRevision"] == stable["ca-abort"]
        shown = cli_status(box, kubeconfig, "ca-low")
        assert shown["reason"] == "AnalysisProviderUnreachable", shown
        assert "continues by itself" in shown["message"], shown["message"]
        assert any(m.get("unreachableSince") for m in shown["measurements"]), shown
        while time.monotonic() - down_at < seconds:
            time.sleep(0.5)  # the outage lasting, not synchronisation
    finally:
        watcher.stop()
    assert watcher.samples > 0 and not watcher.violations, watcher.violations[:10]
    prometheus.start()
    back_at = time.monotonic()
    finished: Callable[[dict[str, dict[str, Any]]], bool] = lambda now: all(  # noqa: E731
        now[m.name].get("phase") == "Healthy" and now[m.name].get("stableRevision") == new[m.name]
        for m in pausing
    )
    poll(statuses, finished, timeout=120 + COUNT, what="every paused rollout finished")
    return {
        "outage_seconds": round(back_at - down_at),
        "finished_after_seconds": round(time.monotonic() - back_at),
        "status_samples_while_down": watcher.samples,
    }


@dataclass
class OutageWatch:
    """Reads the pausing rollouts' status every quarter second while Prometheus is down:
    none may become Healthy or change its stable revision; once ``expect_paused`` is
    set, each must stay Paused with AnalysisProviderUnreachable."""

    cluster: Any
    members: list[Member]
    stable: dict[str, str]
    expect_paused: bool = False
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> OutageWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for member in self.members:
                try:
                    status = self.cluster.status(member.name)
                except Exception as exc:  # noqa: BLE001 - a failed read is no evidence
                    self.violations.append(f"{member.name}: status not read: {exc!r}")
                    continue
                self.samples += 1
                name, phase, reason = member.name, status.get("phase"), status.get("reason")
                if status.get("stableRevision") != self.stable[name]:
                    self.violations.append(f"{name}: stable became {status['stableRevision']}")
                if phase == "Healthy":
                    self.violations.append(f"{name}: Healthy while Prometheus was down")
                waiting = (phase, reason) == ("Paused", "AnalysisProviderUnreachable")
                if self.expect_paused and not waiting:
                    self.violations.append(f"{name}: {phase} {reason}: {status.get('message')}")
