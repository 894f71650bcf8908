"""Shared pieces of the release-workflow integration tests: shell Jobs, hooks, a canary."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from controller.names import REVISION_LABEL, ROLLOUT_LABEL
from tests.integration.harness import Cluster, demo_rollout


def shell_job(script: str) -> dict[str, Any]:
    return {
        "spec": {
            "activeDeadlineSeconds": 60,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "run", "image": "sandbox/shell", "command": ["sh", "-c", script]}
                    ]
                }
            },
        }
    }


def with_hooks(rollout: dict[str, Any], **hooks: list[dict[str, Any]]) -> dict[str, Any]:
    rollout["spec"]["hooks"] = hooks
    return rollout


def smoke_template(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [{"name": "smoke", "provider": {"job": shell_job(script)}}]},
    }


def pods_of(cluster: Cluster, revision: str) -> list[Any]:
    return list(
        cluster.core.list_namespaced_pod(
            cluster.namespace, label_selector=f"{REVISION_LABEL}={revision}"
        ).items
    )


def jobs_of(cluster: Cluster, rollout: str) -> list[Any]:
    batch: Any = k8s.BatchV1Api(cluster.api)
    return list(
        batch.list_namespaced_job(
            cluster.namespace, label_selector=f"{ROLLOUT_LABEL}={rollout}"
        ).items
    )


def canary(name: str, version: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return demo_rollout(
        name,
        version=version,
        replicas=2,
        strategy={
            "canary": {
                "stableService": name,
                "canaryService": f"{name}-canary",
                "scaleDownDelaySeconds": 1,
                "steps": steps,
            }
        },
    )
