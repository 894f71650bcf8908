"""The real HorizontalPodAutoscaler controller sizes a Rollout through its scale subresource.

The sandbox has no metrics server, so the test serves the external metrics API
(``external.metrics.k8s.io/v1beta1``) itself, the way a metrics adapter (KEDA, the
Prometheus adapter) does: a small HTTPS server in this process, registered with the
kube-apiserver's aggregator by an APIService whose Service is of type ExternalName
pointing at localhost (the aggregator resolves an ExternalName Service to its name and
the APIService's port). ``insecureSkipTLSVerify``: the aggregator checks a server
certificate against ``<service>.<namespace>.svc``, which a throw-away certificate for a
per-test namespace would have to be issued for; what is under test is the HPA and the
Rollout, not that TLS check.

A Rollout takes over a Deployment of 2 (``workloadRef``, replicas left out), and an
autoscaling/v2 HPA targeting the Rollout with an External metric (a queue of 40 items,
10 per pod) scales it to 4: the HPA controller of kube-controller-manager reads the
Rollout's ``/scale`` (replicas and the selector string), writes ``spec.replicas`` through
it, and the Rollout's ReplicaSet follows while the Deployment stays at 0. Before that,
the gap the docs warn of: with ``spec.replicas`` left out the Rollout has no scale to
read (the apiserver answers 500) and the HPA cannot act until the Rollout is given a
size.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from kubernetes import client as k8s

from tests.integration.harness import GROUP, VERSION, Cluster, demo_rollout
from tests.waiting import wait_until

GROUP_VERSION = "external.metrics.k8s.io/v1beta1"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
METRIC = "queue_depth"
NAME = "queue-worker"


class ExternalMetrics:
    """The external metrics API for one metric, over HTTPS; ``value`` may be changed."""

    def __init__(self, directory: Path) -> None:
        self.value = 0
        self.requests: list[str] = []
        cert, key = directory / "metrics.crt", directory / "metrics.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
            + ["-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
            check=True,
            capture_output=True,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                metrics.requests.append(self.path)
                if path == f"/apis/{GROUP_VERSION}":
                    self.reply(200, metrics.resources())
                elif path.startswith(f"/apis/{GROUP_VERSION}/namespaces/") and path.endswith(
                    f"/{METRIC}"
                ):
                    self.reply(200, metrics.values())
                else:
                    self.reply(404, {"kind": "Status", "apiVersion": "v1", "code": 404})

            def reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def resources(self) -> dict[str, Any]:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": GROUP_VERSION,
            "resources": [
                {
                    "name": METRIC,
                    "singularName": "",
                    "namespaced": True,
                    "kind": "ExternalMetricValueList",
                    "verbs": ["get"],
                }
            ],
        }

    def values(self) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "kind": "ExternalMetricValueList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": [
                {
                    "metricName": METRIC,
                    "metricLabels": {},
                    "timestamp": now,
                    "value": str(self.value),
                }
            ],
        }

    def __enter__(self) -> ExternalMetrics:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def external_metrics(cluster: Cluster, kube_api: Any, tmp_path: Path) -> Iterator[ExternalMetrics]:
    """The metrics server, its ExternalName Service and the APIService; the APIService
    (cluster-wide) is removed before the namespace goes, so that no discovery of the
    cluster (the namespace and garbage collector controllers') meets an unavailable API."""
    registration: Any = k8s.ApiregistrationV1Api(kube_api)
    with ExternalMetrics(tmp_path) as metrics:
        cluster.core.create_namespaced_service(
            cluster.namespace,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "external-metrics"},
                "spec": {"type": "ExternalName", "externalName": "localhost"},
            },
        )
        registration.create_api_service(
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": API_SERVICE},
                "spec": {
                    "group": "external.metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {
                        "namespace": cluster.namespace,
                        "name": "external-metrics",
                        "port": metrics.port,
                    },
                    "insecureSkipTLSVerify": True,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            }
        )
        try:
            yield metrics
        finally:
            registration.delete_api_service(API_SERVICE)


def available(api_service: Any) -> bool:
    for condition in (api_service.status.conditions if api_service.status else None) or []:
        if condition.type == "Available":
            return bool(condition.status == "True")
    return False


def condition(hpa: Any, kind: str) -> tuple[str, str] | None:
    """An HPA condition's (status, reason), once it has one."""
    for found in (hpa.status.conditions if hpa.status else None) or []:
        if found.type == kind:
            return str(found.status), str(found.reason)
    return None


def test_the_hpa_controller_scales_a_workload_ref_rollout_through_its_scale_subresource(
    cluster: Cluster, start_controller: Any, kube_api: Any, external_metrics: ExternalMetrics
) -> None:
    registration: Any = k8s.ApiregistrationV1Api(kube_api)
    autoscaling: Any = k8s.AutoscalingV2Api(kube_api)
    custom = k8s.CustomObjectsApi(kube_api)
    # A Deployment of 2 taken over by a Rollout that leaves out replicas (it takes the
    # Deployment's 2), as the migration guide starts.
    template = demo_rollout(NAME, version="v1", strategy={})["spec"]["template"]
    cluster.apps.create_namespaced_deployment(
        cluster.namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": NAME}},
                "template": template,
            },
        },
    )
    rollout = demo_rollout(
        NAME, version="unused", strategy={"canary": {"steps": [{"setWeight": 50}], "maxSurge": 1}}
    )
    del rollout["spec"]["template"], rollout["spec"]["selector"], rollout["spec"]["replicas"]
    rollout["spec"]["workloadRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": NAME,
        "scaleDown": "onsuccess",
    }
    start_controller()
    cluster.apply_rollout(rollout)
    status = wait_until(
        lambda: cluster.status(NAME),
        ok=lambda s: (
            (s.get("workload") or {}).get("phase") == "TakenOver"
            and s.get("phase") == "Healthy"
            and s.get("availableReplicas") == 2
        ),
        timeout=240,
        interval=0.5,
        what="the Deployment taken over by 2 pods of the Rollout",
    )
    stable = status["stableRevision"]

    wait_until(
        lambda: registration.read_api_service(API_SERVICE),
        ok=available,
        timeout=120,
        interval=0.5,
        what=f"the APIService {API_SERVICE} Available",
    )
    # Through the aggregator, as the HPA controller will read it.
    external_metrics.value = 40
    path = f"/apis/{GROUP_VERSION}/namespaces/{cluster.namespace}/{METRIC}"

    def through_aggregator() -> dict[str, Any]:
        request = kube_api.param_serialize("GET", path, auth_settings=["BearerToken"])
        answer = kube_api.call_api(*request)
        answer.read()
        if answer.status != 200:  # 503 until the aggregator's proxy has the Service
            return {"status": answer.status}
        body: dict[str, Any] = json.loads(answer.data)
        return body

    read = wait_until(
        through_aggregator,
        ok=lambda body: bool(body.get("items")),
        timeout=60,
        interval=0.5,
        what="the external metric through the aggregator",
    )
    assert read["items"][0]["value"] == "40"

    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        cluster.namespace,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": NAME},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "deployctl.io/v1alpha1",
                    "kind": "Rollout",
                    "name": NAME,
                },
                "minReplicas": 1,
                "maxReplicas": 6,
                "metrics": [
                    {
                        "type": "External",
                        "external": {
                            "metric": {"name": METRIC},
                            "target": {"type": "AverageValue", "averageValue": "10"},
                        },
                    }
                ],
            },
        },
    )

    def hpa() -> Any:
        return autoscaling.read_namespaced_horizontal_pod_autoscaler(NAME, cluster.namespace)

    # A Rollout that leaves out spec.replicas has no /scale to read: the apiserver
    # answers 500 ("the spec replicas field .spec.replicas does not exist"), and the HPA
    # cannot act (AbleToScale=False, FailedGetScale). docs/workloads.md: give the Rollout
    # its replicas when an HPA or `kubectl scale` is to size it.
    with pytest.raises(k8s.ApiException) as no_scale:
        custom.get_namespaced_custom_object_scale(
            GROUP, VERSION, cluster.namespace, "rollouts", NAME
        )
    assert no_scale.value.status == 500 and ".spec.replicas" in str(no_scale.value.body)
    wait_until(
        hpa,
        ok=lambda h: condition(h, "AbleToScale") == ("False", "FailedGetScale"),
        timeout=120,
        interval=0.5,
        what="the HPA unable to read the scale of a Rollout without replicas",
    )
    assert cluster.replicas_by_revision() == {stable: 2}
    # `kubectl patch rollout queue-worker --type merge -p '{"spec":{"replicas":2}}'`.
    cluster.patch_rollout(NAME, {"spec": {"replicas": 2}})
    # 40 items, 10 per pod: 4 pods, written by the HPA controller through /scale.
    wait_until(
        lambda: cluster.rollout(NAME)["spec"]["replicas"],
        ok=lambda replicas: replicas == 4,
        timeout=180,
        interval=0.5,
        what="the HPA scaling the Rollout to 4",
    )
    wait_until(
        cluster.replicas_by_revision,
        ok=lambda r: r == {stable: 4},
        timeout=120,
        interval=0.5,
        what="the Rollout's ReplicaSet at 4",
    )
    wait_until(
        lambda: cluster.status(NAME),
        ok=lambda s: s.get("availableReplicas") == 4 and s.get("replicas") == 4,
        timeout=120,
        interval=0.5,
        what="4 pods available",
    )
    scaled = wait_until(
        hpa,
        ok=lambda h: (h.status.current_replicas or 0) == 4,
        timeout=120,
        interval=0.5,
        what="the HPA reading 4 replicas from the Rollout's scale",
    )
    assert scaled.status.desired_replicas == 4
    assert condition(scaled, "ScalingActive") == ("True", "ValidMetricFound")
    assert any(r.startswith(path) for r in external_metrics.requests), external_metrics.requests
    final = cluster.status(NAME)
    assert final["phase"] == "Healthy" and final["workload"]["phase"] == "TakenOver"
    # The Deployment stays at 0: the HPA sizes the Rollout, not the Deployment.
    assert cluster.apps.read_namespaced_deployment(NAME, cluster.namespace).spec.replicas == 0
