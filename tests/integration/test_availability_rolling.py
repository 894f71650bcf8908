"""Rolling updates as users feel them: Ready pods watched through whole rollouts.

Seventeen Rollouts at once (sizes 1, 3, 8 and 20 replicas with maxSurge/maxUnavailable
0/1, 25%/0, 1/0 and 50%/50%, and 8 with 2/1) are rolled to a new version by the real
controller process, while ``tests.integration.podwatch`` records every change to their
pods from the apiserver and replays them in order. On **every** state the cluster went through, each
Rollout must have

- at least ``replicas - maxUnavailable`` pods Ready and not terminating, and
- at most ``replicas + maxSurge`` pods not terminating.

Three settings, one sandbox (namespace, node agents, controller) for the file: nodes
that make a pod Ready after 0.2 s; slow nodes (Ready after 1-2 s, a deleted pod stays
Terminating for 1 s); fast nodes with every request of the controller delayed 0.1 s by
the fault proxy (its caches and writes lag what the nodes do). Each test rolls every
Rollout one version on, so they run in any order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controller.api.revision import template_hash
from controller.api.rollout import PodTemplateSpec
from strategies.rolling import surge_and_unavailable
from tests.integration.harness import demo_rollout
from tests.integration.pinned import Pinned, pin, pinned_sandbox
from tests.integration.podwatch import Recorder
from tests.waiting import wait_until

SIZES = (1, 3, 8, 20)
SETTINGS: tuple[tuple[int | str, int | str], ...] = ((0, 1), ("25%", 0), (1, 0), ("50%", "50%"))
NO_PROMETHEUS = "http://127.0.0.1:9"  # no analysis here: nothing is ever asked


@dataclass(frozen=True)
class Case:
    name: str
    replicas: int
    surge: int | str
    unavailable: int | str

    @property
    def bounds(self) -> tuple[int, int]:
        """(floor, ceiling) in pods."""
        surge, unavailable = surge_and_unavailable(
            self.surge, self.unavailable, replicas=self.replicas
        )
        return self.replicas - unavailable, self.replicas + surge


def label(value: int | str) -> str:
    return str(value).replace("%", "p")


CASES = [
    Case(f"r{size}-{label(surge)}-{label(unavailable)}", size, surge, unavailable)
    for size in SIZES
    for surge, unavailable in SETTINGS
] + [Case("r8-2-1", 8, 2, 1)]  # where the first release overshot its surge (12 of 10 pods)


@dataclass
class Fleet:
    sandbox: Pinned
    version: int = 1
    revisions: dict[str, str] = field(default_factory=dict)

    def body(self, case: Case, node: str) -> dict[str, Any]:
        body = demo_rollout(
            case.name,
            version=f"v{self.version}",
            replicas=case.replicas,
            strategy={"rolling": {"maxSurge": case.surge, "maxUnavailable": case.unavailable}},
            progress_deadline=600,
        )
        return pin(body, node)

    def roll(self, node: str) -> None:
        """Every Rollout to the next version on ``node``; wait until all are promoted."""
        cluster = self.sandbox.cluster
        self.version += 1
        for case in CASES:
            body = self.body(case, node)
            template = PodTemplateSpec.model_validate(body["spec"]["template"])
            self.revisions[case.name] = template_hash(template)
            cluster.apply_rollout(body)
        for case in CASES:
            revision = self.revisions[case.name]
            wait_until(
                lambda: cluster.status(case.name),  # noqa: B023 - polled at once
                ok=lambda s: (
                    s.get("phase") == "Healthy"
                    and s.get("stableRevision") == revision  # noqa: B023
                    and s.get("availableReplicas") == case.replicas  # noqa: B023
                ),
                timeout=420,
                what=f"{case.name} promoted to v{self.version}",
            )


@pytest.fixture(scope="module")
def fleet(control_plane: Any, kube_api: Any, tmp_path_factory: Any) -> Iterator[Fleet]:
    workdir: Path = tmp_path_factory.mktemp("availability-rolling")
    with pinned_sandbox(control_plane, kube_api, workdir, prometheus_url=NO_PROMETHEUS) as box:
        fleet = Fleet(box)
        for case in CASES:
            box.cluster.apply_rollout(fleet.body(case, box.fast))
        for case in CASES:
            wait_until(
                lambda: box.cluster.status(case.name),  # noqa: B023 - polled at once
                ok=lambda s: s.get("phase") == "Healthy",
                timeout=300,
                what=f"{case.name} v1 Healthy",
            )
        yield fleet


def watched_roll(fleet: Fleet, node: str) -> dict[str, tuple[int, int]]:
    """Roll every Rollout on, recording; (fewest serving, most pods) per Rollout."""
    with Recorder(fleet.sandbox.api, fleet.sandbox.namespace) as recorder:
        fleet.roll(node)
        wait_until(recorder.caught_up, ok=bool, timeout=60, what="the recording to catch up")
    assert not recorder.errors, recorder.errors
    seen = {case.name: (case.replicas, 0) for case in CASES}
    violations: list[str] = []
    for view in recorder.replay():
        for case in CASES:
            serving, pods = view.serving(case.name), view.existing(case.name)
            low, high = seen[case.name]
            seen[case.name] = (min(low, serving), max(high, pods))
            floor, ceiling = case.bounds
            if (serving < floor or pods > ceiling) and len(violations) < 20:
                violations.append(
                    f"{case.name} at resourceVersion {view.rv}: {serving} serving "
                    f"(floor {floor}), {pods} pods (ceiling {ceiling})"
                )
    report = ", ".join(f"{name} {low}/{high}" for name, (low, high) in seen.items())
    print(f"\nmin serving / peak pods over {len(recorder.changes)} changes: {report}")
    assert not violations, "\n".join(violations)
    return seen


def test_fast_nodes(fleet: Fleet) -> None:
    seen = watched_roll(fleet, fleet.sandbox.fast)
    assert seen["r8-25p-0"][0] == 8  # the anchor: the first release fell to 3 here


def test_slow_nodes(fleet: Fleet) -> None:
    watched_roll(fleet, fleet.sandbox.slow)


def test_api_latency(fleet: Fleet) -> None:
    proxy = fleet.sandbox.proxy
    proxy.latency_seconds = 0.1
    try:
        watched_roll(fleet, fleet.sandbox.fast)
    finally:
        proxy.latency_seconds = 0.0
    assert proxy.stats().total > 0  # the controller did go through the proxy
