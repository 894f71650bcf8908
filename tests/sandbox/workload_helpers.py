"""Small HTTP and polling helpers shared by the workload tests (no fixtures here)."""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from kubernetes import client as k8s

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    seconds: float


def get(url: str, *, timeout: float = 10.0) -> Reply:
    """One GET on a fresh connection; 4xx/5xx are replies, not exceptions."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    start = time.perf_counter()
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        body = response.read()
        return Reply(
            status=response.status,
            body=body,
            headers={k.lower(): v for k, v in response.getheaders()},
            seconds=time.perf_counter() - start,
        )
    finally:
        connection.close()


def replica_set(
    name: str,
    *,
    replicas: int,
    app: str,
    revision: str,
    image: str = "shop/demo:v1",
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    """A ReplicaSet body as the controller writes one: labelled with app and revision."""
    labels = {"app": app, "deployctl.io/revision": revision}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                        }
                    ]
                },
            },
        },
    }


def service(name: str, selector: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
    }


# The client's models type every field Optional; in tests a missing field is a failing
# assertion anyway, so the API handles are Any rather than a None-check per line.
def core_api(api_client: Any) -> Any:
    return k8s.CoreV1Api(api_client)


def apps_api(api_client: Any) -> Any:
    return k8s.AppsV1Api(api_client)


def custom_api(api_client: Any) -> Any:
    return k8s.CustomObjectsApi(api_client)


def coordination_api(api_client: Any) -> Any:
    return k8s.CoordinationV1Api(api_client)
