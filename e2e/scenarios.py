"""The objects the e2e scenarios and the kind demo create, and the waits between steps.

Bodies are plain dicts, as ``kubectl apply`` would send them. The demo app runs from the
operator image with a second entry point (``python -m sandbox.demo_app``); a small load
generator (same image, ``python -c``) sends steady traffic to the Service that selects
every revision, so a canary's share of requests is its share of pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.names import REVISION_LABEL
from e2e.kind import demo_image
from tests.integration.harness import GROUP, VERSION, Cluster
from tests.waiting import wait_until

APP = "demo"
PORT = 8080
ANALYSIS = "error-rate"

# Fast but not flaky on a laptop's kind: Prometheus scrapes every 5 s, so a 30 s rate()
# window holds ~6 samples; three measurements 10 s apart; missing data tolerated while
# the first pods warm up (inconclusive never promotes, it only waits).
TEMPLATE_METRIC: dict[str, Any] = {
    "name": "error-rate",
    "interval": "10s",
    "count": 3,
    "failureLimit": 0,
    "inconclusiveLimit": 10,
    "errorRate": {"max": 0.05, "window": "30s"},
    "for": "0s",
}

LOADGEN_SCRIPT = """
import os, time, urllib.request
url, pause = os.environ["TARGET"], 1.0 / float(os.environ["RATE"])
while True:
    try:
        urllib.request.urlopen(url, timeout=2).read()
    except Exception:
        pass  # 500s are the point of the broken version; keep sending
    time.sleep(pause)
"""

RESTRICTED: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def analysis_template(name: str = ANALYSIS) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [dict(TEMPLATE_METRIC)]},
    }


def pod_template(version: str) -> dict[str, Any]:
    """The demo app at ``version`` (a derived image tag: v1, v2, v3, broken)."""
    return {
        "metadata": {
            "labels": {"app": APP},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": demo_image(version),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-m", "sandbox.demo_app"],
                    "args": ["--host", "0.0.0.0", "--port", str(PORT)],
                    "ports": [{"containerPort": PORT, "name": "http"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": PORT},
                        "periodSeconds": 2,
                    },
                    "resources": {"requests": {"cpu": "20m", "memory": "48Mi"}},
                    "securityContext": RESTRICTED,
                }
            ]
        },
    }


def canary_strategy(steps: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "canary": {
            "stableService": f"{APP}-stable",
            "canaryService": f"{APP}-canary",
            "steps": list(
                steps
                or [
                    {"setWeight": 25},
                    {"pause": {"duration": "10s"}},
                    {"analysis": {"templates": [{"name": ANALYSIS}]}},
                    {"setWeight": 50},
                    {"pause": {"duration": "5s"}},
                ]
            ),
        }
    }


def bluegreen_strategy() -> dict[str, Any]:
    # No pre-promotion analysis on purpose: the broken version must reach the active
    # Service, so that only the post-promotion analysis can catch it and switch back.
    return {
        "blueGreen": {
            "activeService": APP,
            "previewService": f"{APP}-preview",
            "autoPromotionEnabled": True,
            "postPromotionAnalysis": {"templates": [{"name": ANALYSIS}]},
            "scaleDownDelaySeconds": 120,
        }
    }


def rollout(
    version: str, *, strategy: Mapping[str, Any], replicas: int = 4, name: str = APP
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": pod_template(version),
            "strategy": dict(strategy),
            "progressDeadlineSeconds": 300,
        },
    }


def services_for(strategy: Mapping[str, Any]) -> list[str]:
    """The Services a strategy names, plus ``APP`` (selecting every revision)."""
    names = {APP}
    for spec in strategy.values():
        for key in ("stableService", "canaryService", "activeService", "previewService"):
            if key in spec:
                names.add(str(spec[key]))
    return sorted(names)


def prepare(cluster: Cluster, *, strategy: Mapping[str, Any]) -> None:
    """Services, the analysis template and the load generator of one scenario."""
    for service in services_for(strategy):
        cluster.create_service(service, {"app": APP}, rollout=APP)
    cluster.create_template(analysis_template())
    cluster.apps.create_namespaced_deployment(cluster.namespace, loadgen(f"http://{APP}:{PORT}/"))


def loadgen(target: str, *, rate: float = 20.0) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "loadgen"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "loadgen"}},
            "template": {
                "metadata": {"labels": {"app": "loadgen"}},
                "spec": {
                    "containers": [
                        {
                            "name": "loadgen",
                            "image": demo_image("v1"),
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-c", LOADGEN_SCRIPT],
                            "env": [
                                {"name": "TARGET", "value": target},
                                {"name": "RATE", "value": str(rate)},
                            ],
                            "securityContext": RESTRICTED,
                        }
                    ]
                },
            },
        },
    }


def wait_phase(
    cluster: Cluster, phase: str, *, name: str = APP, timeout: float = 300
) -> dict[str, Any]:
    """Status once the Rollout is in ``phase`` for its current generation."""

    def current(status: Mapping[str, Any]) -> bool:
        generation = cluster.rollout(name)["metadata"]["generation"]
        return status.get("phase") == phase and status.get("observedGeneration") == generation

    return dict(
        wait_until(
            lambda: cluster.status(name), ok=current, timeout=timeout, what=f"{name} {phase}"
        )
    )


def wait_new_revision(
    cluster: Cluster, old: str, *, name: str = APP, timeout: float = 120
) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: cluster.status(name),
            ok=lambda s: s.get("canaryRevision") not in (None, old),
            timeout=timeout,
            what=f"{name}: a new revision after {old}",
        )
    )


def revision_selector(cluster: Cluster, service: str) -> str | None:
    return cluster.service_selector(service).get(REVISION_LABEL)
