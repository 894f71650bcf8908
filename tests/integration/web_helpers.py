"""Pieces of the web-check security tests on the sandbox: a template with one web metric,
rollouts taken from v1 to v2 together, and waiting for a v2 measurement."""

from __future__ import annotations

import secrets as random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kubernetes import client as k8s

from tests.integration.harness import Cluster, demo_rollout, settled
from tests.waiting import wait_until


def web_template(name: str, web: Mapping[str, Any], **metric: Any) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "metrics": [
                {
                    "name": "probe",
                    "interval": "2s",
                    "count": 1,
                    "provider": {"web": dict(web)},
                    **metric,
                }
            ]
        },
    }


def checked_rollout(name: str, version: str, template: str | None) -> dict[str, Any]:
    """One replica; v2 and later run ``template`` as a step (a first deploy has no steps)."""
    steps: list[dict[str, Any]] = [{"setWeight": 50}]
    steps.append(
        {"analysis": {"templates": [{"name": template}]}}
        if template
        else {"pause": {"duration": "1s"}}
    )
    return demo_rollout(
        name,
        version=version,
        replicas=1,
        strategy={"canary": {"scaleDownDelaySeconds": 1, "steps": steps}},
    )


def deploy_v1_then_v2(cluster: Cluster, checks: Mapping[str, str | None]) -> dict[str, str]:
    """Every rollout (name -> template) to a stable v1, then all to v2; v1's revisions."""
    for name, template in checks.items():
        cluster.apply_rollout(checked_rollout(name, "v1", template))
    stable = {name: str(settled(cluster, name, timeout=120)["stableRevision"]) for name in checks}
    for name, template in checks.items():
        cluster.apply_rollout(checked_rollout(name, "v2", template))
    return stable


def measured(cluster: Cluster, name: str, stable: str, *, timeout: float = 120) -> dict[str, Any]:
    """The first analysis metric of the revision after ``stable`` once it has a verdict."""

    def metric() -> dict[str, Any] | None:
        status = cluster.status(name)
        for run in status.get("analysisRuns") or []:
            if run["revision"] != stable:
                for result in run.get("metrics") or []:
                    if result.get("measurements"):
                        return dict(result)
        return None

    found: dict[str, Any] = wait_until(metric, timeout=timeout, what=f"{name} measured")
    return found


@contextmanager
def other_namespace(api: Any, base: str) -> Iterator[str]:
    """A second namespace for the test, deleted afterwards."""
    core: Any = k8s.CoreV1Api(api)
    name = f"{base}-o{random.token_hex(2)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"deployctl.io/test": "true"}}})
    try:
        yield name
    finally:
        core.delete_namespace(name)
