"""Prometheus outages in the middle of analysis, under every strategy.

Two Prometheus servers of the test's own, stopped together: one for 30 s, one for 3
minutes. Against the short one (the controller's ``--prometheus-url``), seven Rollouts
wait on an analysis: a canary step, a blue-green pre-promotion analysis and a rolling
gate at 50%, each once with ``inconclusiveLimit: 0`` and once with 30 (above
``consecutiveErrorLimit``, the case that used to roll back), plus one canary whose
template says ``onProviderError: abort``. Against the long one (the template's
``address``), the three strategies once more. The query (``vector(1)``) always answers
while a Prometheus is up, so what the test sees is the outage only.

``run_outages`` stops both once every analysis is under way and checks, while they are
down, that every pausing Rollout pauses (AnalysisProviderUnreachable, its status and
``deployctl status`` saying so) and stays paused, that none becomes Healthy or changes
its stable revision, and that the abort one aborts saying why; each group finishes by
itself once its Prometheus is back (the short group while the long one is still down).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from controller.api.revision import template_hash
from controller.api.rollout import PodTemplateSpec
from sandbox.prometheus import PrometheusServer
from tests.integration.harness import GROUP, VERSION, demo_rollout
from tests.integration.pinned import Pinned, pin
from tests.waiting import wait_until

COUNT = 20  # measurements a run needs (one a second): the window to stop Prometheus in
SHORT, LONG = 30.0, 180.0
UNREACHABLE = ("Paused", "AnalysisProviderUnreachable")


@dataclass(frozen=True)
class Member:
    name: str
    kind: str  # canary, bluegreen, rolling
    template: str  # low, high, abort (short outage); long (long outage)

    @property
    def key(self) -> str:
        return {"canary": "step-1", "bluegreen": "prePromotion", "rolling": "gate-50"}[self.kind]

    @property
    def pauses(self) -> bool:
        return self.template != "abort"


KINDS = ("canary", "bluegreen", "rolling")
SHORT_GROUP = [Member(f"{k[:2]}-{t}", k, t) for k in KINDS for t in ("low", "high")] + [
    Member("ca-abort", "canary", "abort")
]
LONG_GROUP = [Member(f"{k[:2]}-long", k, "long") for k in KINDS]
MEMBERS = SHORT_GROUP + LONG_GROUP


def template(name: str, *, long_address: str) -> dict[str, Any]:
    prometheus: dict[str, Any] = {"query": "vector(1)"}
    if name == "long":
        prometheus["address"] = long_address
    metric: dict[str, Any] = {
        "name": "alive",
        "interval": "1s",
        "count": COUNT,
        "inconclusiveLimit": 30 if name == "high" else 0,
        "threshold": {"min": 0},
        "provider": {"prometheus": prometheus},
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


def measured(status: dict[str, Any], member: Member, revision: str) -> int:
    for run in status.get("analysisRuns") or []:
        if run["key"] == member.key and run["revision"] == revision:
            return int(((run.get("metrics") or [{}])[0]).get("successful", 0))
    return 0


def cli_status(box: Pinned, kubeconfig: str, name: str) -> dict[str, Any]:
    """``deployctl status NAME -o json``, as a person or a script would ask."""
    result = subprocess.run(
        [sys.executable, "-m", "controller.cli", "status", name, "-n", box.namespace, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": kubeconfig},
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def deploy(box: Pinned, *, long_address: str) -> None:
    for name in ("low", "high", "abort", "long"):
        box.cluster.create_template(template(name, long_address=long_address))
    for member in MEMBERS:
        if member.kind == "bluegreen":
            box.cluster.create_service(member.name, {"app": member.name}, rollout=member.name)
        box.cluster.apply_rollout(body(member, "v1", box.fast))
    for member in MEMBERS:
        wait_until(
            lambda: box.cluster.status(member.name),  # noqa: B023 - polled at once
            ok=lambda s: s.get("phase") == "Healthy",
            timeout=180,
            what=f"{member.name} v1",
        )


@dataclass
class OutageWatch:
    """Reads the pausing Rollouts' status every quarter second while their Prometheus is
    down: none may become Healthy or change its stable revision; once a member is in
    ``settled`` it must stay Paused with AnalysisProviderUnreachable."""

    cluster: Any
    stable: dict[str, str]
    watching: set[str]
    settled: set[str] = field(default_factory=set)
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> OutageWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def release(self, names: set[str]) -> None:
        """Their Prometheus is back: stop watching them."""
        with self._lock:
            self.watching -= names
            self.settled -= names

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                names, settled = sorted(self.watching), set(self.settled)
            for name in names:
                try:
                    status = self.cluster.status(name)
                except Exception as exc:  # noqa: BLE001 - a failed read is no evidence
                    self.violations.append(f"{name}: status not read: {exc!r}")
                    continue
                self.samples += 1
                phase, reason = status.get("phase"), status.get("reason")
                if status.get("stableRevision") != self.stable[name]:
                    self.violations.append(f"{name}: stable became {status['stableRevision']}")
                if phase == "Healthy":
                    self.violations.append(f"{name}: Healthy while its Prometheus was down")
                if name in settled and (phase, reason) != UNREACHABLE:
                    self.violations.append(f"{name}: {phase} {reason}: {status.get('message')}")


def run_outages(
    box: Pinned, short: PrometheusServer, long: PrometheusServer, *, kubeconfig: str
) -> dict[str, Any]:
    """The scenario above; returns the figures to print."""
    cluster = box.cluster
    stable = {m.name: cluster.status(m.name)["stableRevision"] for m in MEMBERS}
    new: dict[str, str] = {}
    for member in MEMBERS:
        spec = body(member, "v2", box.fast)
        new[member.name] = template_hash(PodTemplateSpec.model_validate(spec["spec"]["template"]))
        cluster.apply_rollout(spec)

    def statuses(group: list[Member]) -> dict[str, dict[str, Any]]:
        return {m.name: cluster.status(m.name) for m in group}

    def paused(group: list[Member]) -> None:
        wait_until(
            lambda: statuses(group),
            ok=lambda now: all(
                (now[m.name].get("phase"), now[m.name].get("reason")) == UNREACHABLE for m in group
            ),
            timeout=60,
            what=f"{', '.join(m.name for m in group)} paused by the outage",
        )

    def finished(group: list[Member]) -> float:
        started = time.monotonic()
        wait_until(
            lambda: statuses(group),
            ok=lambda now: all(
                now[m.name].get("phase") == "Healthy"
                and now[m.name].get("stableRevision") == new[m.name]
                for m in group
            ),
            timeout=120 + COUNT,
            what="every paused rollout to finish",
        )
        return round(time.monotonic() - started)

    # Stop both once every analysis has measured, or as soon as one is halfway (a slower
    # one then meets the outage at its first measurement).
    def under_way(now: dict[str, dict[str, Any]]) -> bool:
        counts = [measured(now[m.name], m, new[m.name]) for m in MEMBERS]
        return min(counts) >= 1 or max(counts) >= COUNT // 2

    wait_until(
        lambda: statuses(MEMBERS), ok=under_way, timeout=180, what="every analysis under way"
    )
    short.stop()
    long.stop()
    down_at = time.monotonic()
    pausing = [m for m in MEMBERS if m.pauses]
    watch = OutageWatch(cluster, stable, {m.name for m in pausing}).start()
    try:
        paused(pausing)
        watch.settled = {m.name for m in pausing}
        aborted = wait_until(
            lambda: cluster.status("ca-abort"),
            ok=lambda s: s.get("phase") == "Degraded",
            timeout=60,
            what="the onProviderError: abort canary to abort",
        )
        assert aborted["reason"] == "AnalysisFailed", aborted
        assert "onProviderError: abort" in aborted["message"], aborted["message"]
        assert aborted["stableRevision"] == stable["ca-abort"]
        shown = cli_status(box, kubeconfig, "ca-low")
        assert (shown["phase"], shown["reason"]) == UNREACHABLE, shown
        assert "continues by itself" in shown["message"], shown["message"]
        assert any(m.get("unreachableSince") for m in shown["measurements"]), shown

        short_group = [m for m in SHORT_GROUP if m.pauses]
        while time.monotonic() - down_at < SHORT:
            time.sleep(0.5)  # the outage lasting, not synchronisation
        watch.release({m.name for m in short_group})
        short.start()
        short_back = finished(short_group)
        # The long outage goes on: that group is still paused, untouched by the other.
        while time.monotonic() - down_at < LONG:
            time.sleep(0.5)  # the outage lasting, not synchronisation
    finally:
        watch.stop()
    assert watch.samples > 0 and not watch.violations, watch.violations[:10]
    long.start()
    long_back = finished(LONG_GROUP)
    return {
        "short_group_finished_after_s": short_back,
        "long_group_finished_after_s": long_back,
        "long_outage_s": round(time.monotonic() - down_at - long_back),
        "status_samples_while_down": watch.samples,
    }
