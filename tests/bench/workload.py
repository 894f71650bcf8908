"""What the benchmark creates: namespaces, Services, Rollouts and templates, through the
official client, and how it reads them back (lists, not per-object GETs, at scale)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client as k8s

GROUP, VERSION = "deployctl.io", "v1alpha1"


class Cluster:
    def __init__(self, api: k8s.ApiClient) -> None:
        self.core: Any = k8s.CoreV1Api(api)
        self.apps: Any = k8s.AppsV1Api(api)
        self.custom: Any = k8s.CustomObjectsApi(api)

    def namespace(self, name: str) -> str:
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def service(self, ns: str, name: str, app: str) -> None:
        """A Service the Rollout named ``app`` may manage (the consent annotation)."""
        self.core.create_namespaced_service(
            ns,
            {
                "metadata": {"name": name, "annotations": {"deployctl.io/rollout": app}},
                "spec": {"selector": {"app": app}, "ports": [{"port": 8080}]},
            },
        )

    def create(self, ns: str, plural: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)

    def replace_template(self, ns: str, name: str, body: dict[str, Any]) -> None:
        """Give the Rollout ``body``'s pod template (and steps), retrying on conflicts."""
        for _ in range(20):
            current = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "rollouts", name)
            current["spec"]["template"] = body["spec"]["template"]
            current["spec"]["strategy"] = body["spec"]["strategy"]
            try:
                self.custom.replace_namespaced_custom_object(
                    GROUP, VERSION, ns, "rollouts", name, current
                )
                return
            except k8s.ApiException as exc:
                if exc.status != 409:
                    raise
        raise RuntimeError(f"{ns}/{name} kept conflicting")

    def rollouts(self, ns: str) -> list[dict[str, Any]]:
        """Every Rollout of ``ns`` (paginated, so 10,000 do not make one huge answer).

        A continue token outlives the sandbox's etcd compaction (every 10 s) when the
        pages come slowly on a busy machine; the apiserver then answers 410 and the list
        starts over, as an informer re-lists."""
        for _attempt in range(5):
            items: list[dict[str, Any]] = []
            token = None
            try:
                while True:
                    page = self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, ns, "rollouts", limit=2000, _continue=token
                    )
                    items.extend(page["items"])
                    token = (page.get("metadata") or {}).get("continue")
                    if not token:
                        return items
            except k8s.ApiException as exc:
                if exc.status != 410:
                    raise
        raise RuntimeError(f"listing the Rollouts of {ns} kept expiring (410 Gone)")

    def statuses(self, ns: str) -> dict[str, dict[str, Any]]:
        return {i["metadata"]["name"]: i.get("status") or {} for i in self.rollouts(ns)}

    def status(self, ns: str, name: str) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "rollouts", name).get(
                "status"
            )
            or {}
        )


def in_parallel(work: Callable[[str], None], names: Iterable[str], *, threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, names))


def rollout(
    name: str,
    version: str,
    *,
    replicas: int,
    steps: list[dict[str, Any]],
    env: dict[str, str] | None = None,
    **strategy: Any,
) -> dict[str, Any]:
    container_env = [{"name": "DEMO_VERSION", "value": version}] + [
        {"name": k, "value": v} for k, v in (env or {}).items()
    ]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"deployctl/demo-app:{version}",
                            "env": container_env,
                        }
                    ]
                },
            },
            "strategy": {"canary": {"steps": steps, **strategy}},
        },
    }


def error_rate_template(
    name: str = "errors",
    *,
    interval: str = "2s",
    window: str = "10s",
    count: int | None = None,
    min_requests: int | None = None,
) -> dict[str, Any]:
    """The errorRate preset (max 5%) measured every ``interval`` over ``window``."""
    preset: dict[str, Any] = {"max": 0.05, "window": window}
    if min_requests is not None:
        preset["minRequests"] = min_requests
    metric: dict[str, Any] = {
        "name": "error-rate",
        "interval": interval,
        "failureLimit": 0,
        "inconclusiveLimit": 30,
        "errorRate": preset,
        "for": "0s",
    }
    if count is not None:
        metric["count"] = count
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [metric]},
    }
