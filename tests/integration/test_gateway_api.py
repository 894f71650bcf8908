"""A canary routed by a Gateway API HTTPRoute, on the Gateway API CRDs as published.

The sandbox installs the standard-channel CRDs of Gateway API v1.7.0 unmodified (their
defaulting and, on clusters with CEL, their validation rules included). A GatewayClass,
a Gateway and an HTTPRoute are created as a platform team would; the controller moves
the route's backendRef weights step by step (every write passing the CRD's validation),
the traffic generator follows the route, and the canary is promoted with all traffic
back on one backend.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from sandbox.traffic import GATEWAY_GROUP
from tests.integration.harness import Cluster, demo_rollout
from tests.waiting import wait_until

STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {"duration": "3s"}},
    {"setWeight": 60},
    {"pause": {"duration": "3s"}},
]


def shop(version: str) -> dict[str, Any]:
    return demo_rollout(
        "shop",
        version=version,
        replicas=2,
        strategy={
            "canary": {
                "stableService": "shop-stable",
                "canaryService": "shop-canary",
                "trafficRouting": {"gatewayAPI": {"httpRoute": "shop"}},
                "scaleDownDelaySeconds": 1,
                "steps": STEPS,
            }
        },
    )


def gateway_objects(namespace: str) -> list[tuple[str, dict[str, Any]]]:
    route = {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        # Consent: the Rollout shop may change this route's weights.
        "metadata": {"name": "shop", "annotations": {"deployctl.io/rollout": "shop"}},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "hostnames": ["shop.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": "shop-stable", "port": 8080, "weight": 100},
                        {"name": "shop-canary", "port": 8080, "weight": 0},
                    ],
                }
            ],
        },
    }
    gateway = {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {
            "gatewayClassName": f"sandbox-{namespace}",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
        },
    }
    return [("gateways", gateway), ("httproutes", route)]


def weights(route: dict[str, Any]) -> dict[str, int]:
    refs = route["spec"]["rules"][0]["backendRefs"]
    return {ref["name"]: int(ref.get("weight", 1)) for ref in refs}


def test_a_canary_moves_the_weights_of_a_published_httproute(
    cluster: Cluster, httproute_crd: str, start_controller: Any, traffic: Any
) -> None:
    custom: Any = k8s.CustomObjectsApi(cluster.api)
    custom.create_cluster_custom_object(
        GATEWAY_GROUP,
        "v1",
        "gatewayclasses",
        {
            "apiVersion": f"{GATEWAY_GROUP}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": f"sandbox-{cluster.namespace}"},
            "spec": {"controllerName": "example.com/sandbox-gateway"},
        },
    )
    try:
        for plural, body in gateway_objects(cluster.namespace):
            custom.create_namespaced_custom_object(
                GATEWAY_GROUP, "v1", cluster.namespace, plural, body
            )

        def route_now() -> dict[str, Any]:
            return dict(
                custom.get_namespaced_custom_object(
                    GATEWAY_GROUP, "v1", cluster.namespace, "httproutes", "shop"
                )
            )

        # The published CRD defaulted what was left out (the backends' group and kind).
        assert route_now()["spec"]["rules"][0]["backendRefs"][0]["kind"] == "Service"
        for name in ("shop-stable", "shop-canary"):
            cluster.create_service(name, {"app": "shop"}, rollout="shop")
        start_controller()
        cluster.apply_rollout(shop("v1"))
        v1 = wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: s.get("phase") == "Healthy",
            timeout=90,
            what="v1 Healthy",
        )["stableRevision"]
        generator = traffic(cluster.namespace, http_route="shop", rate_per_second=30)

        cluster.apply_rollout(shop("v2"))
        seen: set[tuple[int, int]] = set()

        def promoted() -> bool:
            current = weights(route_now())
            seen.add((current["shop-stable"], current["shop-canary"]))
            status = cluster.status("shop")
            return status.get("phase") == "Healthy" and status.get("stableRevision") != v1

        wait_until(promoted, timeout=120, what="v2 promoted through the HTTPRoute")
        assert {(80, 20), (40, 60)} <= seen, seen  # each step's weights, as the CRD stored them
        final = weights(route_now())
        assert final == {"shop-stable": 100, "shop-canary": 0}, final
        v2 = cluster.status("shop")["stableRevision"]
        assert cluster.service_selector("shop-stable")["deployctl.io/revision"] == v2
        served = generator.stats().by_revision()
        assert served.get(v2, 0) > 0 and served.get(v1, 0) > 0, served
    finally:
        try:
            custom.delete_cluster_custom_object(
                GATEWAY_GROUP, "v1", "gatewayclasses", f"sandbox-{cluster.namespace}"
            )
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
