"""Objects as the apiserver returns them for a canary whose v5 broke after a while and was
rolled back (taken from a sandbox run, trimmed), for the fast tests of the dashboard."""

from __future__ import annotations

import copy
from typing import Any

NS, NAME = "demo", "shop"
STABLE, CANARY = "4rg6qp45q4", "lgffmbcl4m"


def measurement(at: str, value: str, phase: str) -> dict[str, Any]:
    verb = "<=" if phase == "Successful" else ">"
    return {
        "at": at,
        "value": value,
        "phase": phase,
        "message": f"error-rate {value} {verb} max 0.05",
    }


ROLLED_BACK: dict[str, Any] = {
    "apiVersion": "deployctl.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {
        "name": NAME,
        "namespace": NS,
        "creationTimestamp": "2026-12-04T05:23:10Z",
        "generation": 5,
        "resourceVersion": "1234",
    },
    "spec": {
        "replicas": 4,
        "selector": {"matchLabels": {"app": NAME}},
        "template": {
            "metadata": {"labels": {"app": NAME}},
            "spec": {"containers": [{"name": "app", "image": "deployctl/demo-app:v5"}]},
        },
        "strategy": {
            "canary": {
                "stableService": "shop-stable",
                "canaryService": "shop-canary",
                "steps": [
                    {"setWeight": 25},
                    {"pause": {"duration": "3s"}},
                    {"analysis": {"templates": [{"name": "error-rate-slow"}]}},
                    {"setWeight": 50},
                    {"pause": {}},
                ],
            }
        },
    },
    "status": {
        "phase": "Degraded",
        "reason": "AnalysisFailed",
        "message": "error-rate 0.1792 > max 0.05 for 4s at step 2 (weight 25%) [analysis step-2]",
        "observedGeneration": 5,
        "currentStepIndex": 2,
        "stableRevision": STABLE,
        "canaryRevision": CANARY,
        "weight": 0,
        "aborted": True,
        "abortedAt": "2026-12-04T05:25:41Z",
        "analysisRuns": [
            {
                "key": "step-2",
                "revision": CANARY,
                "phase": "Failed",
                "startedAt": "2026-12-04T05:25:25Z",
                "message": "error-rate 0.1792 > max 0.05 for 4s",
                "metrics": [
                    {
                        "name": "error-rate",
                        "phase": "Failed",
                        "successful": 6,
                        "failed": 1,
                        "message": "error-rate 0.1792 > max 0.05 for 4s",
                        "query": "sum(rate(http_requests_total{...}[10s]))",
                        "measurements": [
                            measurement("2026-12-04T05:25:25Z", "0", "Successful"),
                            measurement("2026-12-04T05:25:27Z", "0", "Successful"),
                            measurement("2026-12-04T05:25:29Z", "0", "Successful"),
                            measurement("2026-12-04T05:25:31Z", "0", "Successful"),
                            measurement("2026-12-04T05:25:33Z", "0", "Successful"),
                            measurement("2026-12-04T05:25:35Z", "0", "Successful"),
                            measurement("2026-12-04T05:25:37Z", "0.05486", "Pending"),
                            measurement("2026-12-04T05:25:39Z", "0.1221", "Pending"),
                            measurement("2026-12-04T05:25:41Z", "0.1792", "Failed"),
                        ],
                    }
                ],
            }
        ],
        "history": [
            {
                "revision": STABLE,
                "images": {"app": "deployctl/demo-app:v3"},
                "strategy": "canary",
                "requestedBy": "make demo",
                "reason": "demo: roll out v3",
                "outcome": "Promoted",
                "startedAt": "2026-12-04T05:23:25Z",
                "finishedAt": "2026-12-04T05:23:37Z",
                "message": "revision 4rg6qp45q4 promoted to stable after 5 step(s)",
            },
            {
                "revision": CANARY,
                "images": {"app": "deployctl/demo-app:v5"},
                "strategy": "canary",
                "requestedBy": "alice",
                "reason": "v5: faster checkout",
                "outcome": "RolledBack",
                "startedAt": "2026-12-04T05:25:20Z",
                "finishedAt": "2026-12-04T05:25:41Z",
                "message": "error-rate 0.1792 > max 0.05 for 4s at step 2 (weight 25%)",
            },
        ],
    },
}

TEMPLATE: dict[str, Any] = {
    "apiVersion": "deployctl.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "error-rate-slow", "namespace": NS},
    "spec": {
        "metrics": [
            {
                "name": "error-rate",
                "errorRate": {"max": 0.05, "window": "10s"},
                "interval": "2s",
                "count": 30,
                "failureLimit": 0,
                "for": "4s",
            }
        ]
    },
}


def replicaset(revision: str, *, replicas: int, ready: int, image: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{NAME}-{revision}",
            "namespace": NS,
            "labels": {"deployctl.io/rollout": NAME, "deployctl.io/revision": revision},
        },
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "app", "image": image}]}},
        },
        "status": {"readyReplicas": ready, "availableReplicas": ready},
    }


REPLICASETS = [
    replicaset(CANARY, replicas=0, ready=0, image="deployctl/demo-app:v5"),
    replicaset(STABLE, replicas=4, ready=4, image="deployctl/demo-app:v3"),
]


def rollout(**status: Any) -> dict[str, Any]:
    """The sample with some status fields replaced (None removes one)."""
    copied = copy.deepcopy(ROLLED_BACK)
    for key, value in status.items():
        if value is None:
            copied["status"].pop(key, None)
        else:
            copied["status"][key] = value
    return copied
