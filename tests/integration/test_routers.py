"""Canaries through each traffic router, measured by the traffic generator.

The real controller process writes an Istio VirtualService (host-level, and with
DestinationRule subsets), an NGINX canary Ingress, and Gateway API header and mirror
rules; the sandbox's traffic generator routes each request by what those objects say
(``sandbox/dataplane.py``) to real demo-app pods. A test asks for two classes of
requests (plain ones, and ones carrying the header a header route matches) and reads
the split per class, and the mirrored copies, from the generator's counts. The split is
a weighted rotation, not random, so the tolerance only absorbs requests in flight when
the counts are read (a request sent before the routing changed may be answered after
the counts were reset). ``pytest -s`` prints the measured figures.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client as k8s

from sandbox.dataplane import RequestClass
from sandbox.traffic import ISTIO_GROUP, TrafficGenerator, TrafficStats
from tests.integration.harness import Cluster, demo_rollout
from tests.waiting import wait_until

TOLERANCE = 0.04
# Shared objects consent to the Rollout that changes them (controller.tenancy).
CONSENT = {"deployctl.io/rollout": "shop"}
MIN_REQUESTS = 400
REQUESTS = (
    RequestClass("plain", weight=4),
    RequestClass("beta", headers={"X-Beta": "yes"}, weight=1),
)
HEADER_STEP = {
    "setHeaderRoute": {
        "name": "beta",
        "match": [{"headerName": "X-Beta", "headerValue": {"exact": "yes"}}],
    }
}
MIRROR_STEP = {
    "setMirrorRoute": {
        "name": "shadow",
        "percentage": 50,
        "match": [{"method": {"exact": "GET"}, "path": {"prefix": "/"}}],
    }
}

MIRROR_BY_PATH = {
    "setMirrorRoute": {"name": "shadow", "percentage": 50, "match": [{"path": {"prefix": "/"}}]}
}


def request_annotation(action: str, id: str) -> dict[str, Any]:
    value = json.dumps({"action": action, "id": id, "by": "test"})
    return {"metadata": {"annotations": {"deployctl.io/request": value}}}


def status_where(cluster: Cluster, what: str, ok: Any, timeout: float = 90) -> dict[str, Any]:
    return dict(wait_until(lambda: cluster.status("shop"), ok=ok, timeout=timeout, what=what))


def paused_at(cluster: Cluster, index: int) -> dict[str, Any]:
    return status_where(
        cluster,
        f"paused at step {index}",
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == index,
    )


def measure(generator: TrafficGenerator, ready: Any, what: str) -> TrafficStats:
    """Counts taken afresh once the generator's view satisfies ``ready``."""
    wait_until(lambda: ready(generator.view()), timeout=20, what=what)
    generator.reset()
    wait_until(
        lambda: generator.stats().class_total("plain") >= MIN_REQUESTS,
        timeout=90,
        what=f"{MIN_REQUESTS} plain requests",
    )
    return generator.stats()


def report(label: str, stats: TrafficStats, canary: str) -> None:
    mirrored = stats.mirrored_by_revision().get(canary, 0)
    print(
        f"\n{label}: plain -> canary {stats.class_share('plain', canary):.3f} "
        f"({stats.class_total('plain')} requests), beta -> canary "
        f"{stats.class_share('beta', canary):.3f} ({stats.class_total('beta')}), "
        f"mirrored to canary {mirrored} ({mirrored / max(stats.class_total('plain'), 1):.3f} "
        "of plain)"
    )


def rule_names(view: Any) -> list[str]:
    return [rule.key for rule in view.rules]


def test_istio_host_level_canary_with_header_and_mirror_routes_then_abort(
    cluster: Cluster, start_controller: Any, traffic: Any, istio_crds: list[str]
) -> None:
    for name in ("shop-stable", "shop-canary"):
        cluster.create_service(name, {"app": "shop"}, rollout="shop")
    cluster.custom.create_namespaced_custom_object(
        ISTIO_GROUP,
        "v1",
        cluster.namespace,
        "virtualservices",
        {
            "apiVersion": f"{ISTIO_GROUP}/v1",
            "kind": "VirtualService",
            "metadata": {"name": "shop", "annotations": CONSENT},
            "spec": {
                "hosts": ["shop.example"],
                "http": [
                    {
                        "name": "primary",
                        "route": [
                            {"destination": {"host": "shop-stable"}, "weight": 100},
                            {"destination": {"host": "shop-canary"}, "weight": 0},
                        ],
                    }
                ],
            },
        },
    )
    strategy = {
        "canary": {
            "stableService": "shop-stable",
            "canaryService": "shop-canary",
            "trafficRouting": {
                "istio": {"virtualService": {"name": "shop", "routes": ["primary"]}},
                "managedRoutes": [{"name": "beta"}, {"name": "shadow"}],
            },
            "steps": [{"setWeight": 20}, {"pause": {}}, HEADER_STEP, MIRROR_STEP, {"pause": {}}],
        }
    }
    start_controller()
    cluster.apply_rollout(demo_rollout("shop", version="v1", strategy=strategy))
    stable = status_where(cluster, "v1 Healthy", lambda s: s.get("phase") == "Healthy")
    v1 = stable["stableRevision"]
    generator = traffic(
        cluster.namespace, virtual_service="shop", requests=REQUESTS, rate_per_second=100
    )
    cluster.apply_rollout(demo_rollout("shop", version="v2", strategy=strategy))
    v2 = paused_at(cluster, 1)["canaryRevision"]

    stats = measure(
        generator,
        lambda v: [w for _, w in v.rules[0].targets] == [80, 20],
        "weights 80/20 seen",
    )
    report("istio setWeight 20", stats, v2)
    assert stats.class_share("plain", v2) == pytest.approx(0.20, abs=TOLERANCE)
    assert stats.class_share("beta", v2) == pytest.approx(0.20, abs=0.08)
    assert stats.mirrored == {}

    cluster.patch_rollout("shop", request_annotation("promote", "p1"))
    paused_at(cluster, 4)
    stats = measure(
        generator,
        lambda v: rule_names(v) == ["vs/beta", "vs/shadow", "vs/primary"],
        "header and mirror routes seen",
    )
    report("istio header + mirror routes", stats, v2)
    assert stats.class_share("plain", v2) == pytest.approx(0.20, abs=TOLERANCE)
    assert stats.class_share("beta", v2) == pytest.approx(1.0, abs=TOLERANCE)
    mirrored = stats.mirrored_by_revision()
    assert set(mirrored) == {v2}
    assert mirrored[v2] / stats.class_total("plain") == pytest.approx(0.5, abs=TOLERANCE)

    cluster.patch_rollout("shop", request_annotation("abort", "a1"))
    status_where(cluster, "aborted", lambda s: s.get("phase") == "Degraded")
    stats = measure(generator, lambda v: rule_names(v) == ["vs/primary"], "managed routes removed")
    report("istio after abort", stats, v2)
    assert stats.class_share("plain", v1) == pytest.approx(
        1.0, abs=TOLERANCE
    ) and stats.class_share("beta", v1) == pytest.approx(1.0, abs=TOLERANCE)
    assert sum(stats.mirrored.values()) <= 0.02 * stats.total  # copies in flight at the abort


def test_istio_subset_canary_moves_the_split_by_revision_labels(
    cluster: Cluster, start_controller: Any, traffic: Any, istio_crds: list[str]
) -> None:
    cluster.create_service("shop", {"app": "shop"}, rollout="shop")
    for kind, body in (
        (
            "destinationrules",
            {
                "host": "shop",
                "subsets": [
                    {"name": "stable", "labels": {"app": "shop"}},
                    {"name": "canary", "labels": {"app": "shop"}},
                ],
            },
        ),
        (
            "virtualservices",
            {
                "hosts": ["shop"],
                "http": [
                    {
                        "name": "primary",
                        "route": [
                            {"destination": {"host": "shop", "subset": "stable"}, "weight": 100},
                            {"destination": {"host": "shop", "subset": "canary"}, "weight": 0},
                        ],
                    }
                ],
            },
        ),
    ):
        cluster.custom.create_namespaced_custom_object(
            ISTIO_GROUP,
            "v1",
            cluster.namespace,
            kind,
            {
                "apiVersion": f"{ISTIO_GROUP}/v1",
                "kind": "DestinationRule" if kind == "destinationrules" else "VirtualService",
                "metadata": {"name": "shop", "annotations": CONSENT},
                "spec": body,
            },
        )
    strategy = {
        "canary": {
            "trafficRouting": {
                "istio": {
                    "virtualService": {"name": "shop"},
                    "destinationRule": {
                        "name": "shop",
                        "canarySubsetName": "canary",
                        "stableSubsetName": "stable",
                    },
                }
            },
            "steps": [{"setWeight": 25}, {"pause": {}}],
        }
    }
    start_controller()
    cluster.apply_rollout(demo_rollout("shop", version="v1", strategy=strategy))
    v1 = status_where(cluster, "v1 Healthy", lambda s: s.get("phase") == "Healthy")[
        "stableRevision"
    ]
    generator = traffic(cluster.namespace, virtual_service="shop", rate_per_second=100)
    cluster.apply_rollout(demo_rollout("shop", version="v2", strategy=strategy))
    v2 = paused_at(cluster, 1)["canaryRevision"]
    stats = measure(
        generator,
        lambda v: [w for _, w in v.rules[0].targets] == [75, 25],
        "weights 75/25 seen",
    )
    report("istio subsets setWeight 25", stats, v2)
    assert stats.class_share("plain", v2) == pytest.approx(0.25, abs=TOLERANCE)
    assert stats.class_share("plain", v1) == pytest.approx(0.75, abs=TOLERANCE)

    cluster.patch_rollout("shop", request_annotation("promote", "p1"))
    promoted = status_where(
        cluster,
        "v2 promoted",
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == v2,
    )
    assert promoted["stableRevision"] == v2
    stats = measure(
        generator,
        lambda v: (
            [w for _, w in v.rules[0].targets] == [100, 0]
            and all(e.revision == v2 for b in v.backends for e in b.endpoints)
        ),
        "everything on v2's subset",
    )
    report("istio subsets promoted", stats, v2)
    assert stats.class_share("plain", v2) == pytest.approx(1.0, abs=TOLERANCE)


def test_nginx_canary_ingress_weight_and_header_route(
    cluster: Cluster, start_controller: Any, traffic: Any
) -> None:
    for name in ("shop-stable", "shop-canary"):
        cluster.create_service(name, {"app": "shop"}, rollout="shop")
    networking: Any = k8s.NetworkingV1Api(cluster.api)
    backend = {"service": {"name": "shop-stable", "port": {"number": 8080}}}
    networking.create_namespaced_ingress(
        cluster.namespace,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "shop", "annotations": CONSENT},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [
                    {
                        "host": "shop.example",
                        "http": {
                            "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]
                        },
                    }
                ],
            },
        },
    )
    strategy = {
        "canary": {
            "stableService": "shop-stable",
            "canaryService": "shop-canary",
            "trafficRouting": {
                "nginx": {"stableIngress": "shop"},
                "managedRoutes": [{"name": "beta"}],
            },
            "steps": [{"setWeight": 30}, HEADER_STEP, {"pause": {}}],
        }
    }
    start_controller()
    cluster.apply_rollout(demo_rollout("shop", version="v1", strategy=strategy))
    v1 = status_where(cluster, "v1 Healthy", lambda s: s.get("phase") == "Healthy")[
        "stableRevision"
    ]

    def canary_ingress() -> Any:
        found = networking.list_namespaced_ingress(cluster.namespace).items
        return next((i for i in found if i.metadata.name == "shop-shop-canary"), None)

    ingress = wait_until(canary_ingress, timeout=30, what="the canary Ingress")
    assert ingress.metadata.owner_references[0].kind == "Rollout"
    generator = traffic(cluster.namespace, ingress="shop", requests=REQUESTS, rate_per_second=100)
    cluster.apply_rollout(demo_rollout("shop", version="v2", strategy=strategy))
    v2 = paused_at(cluster, 2)["canaryRevision"]
    stats = measure(
        generator,
        lambda v: (
            rule_names(v) == ["ingress/shop/header", "ingress/shop"]
            and [w for _, w in v.rules[1].targets] == [70, 30]
        ),
        "canary-weight 30 and the header annotations seen",
    )
    report("nginx setWeight 30 + header route", stats, v2)
    assert stats.class_share("plain", v2) == pytest.approx(0.30, abs=TOLERANCE)
    assert stats.class_share("beta", v2) == pytest.approx(1.0, abs=TOLERANCE)
    annotations = networking.read_namespaced_ingress(
        "shop-shop-canary", cluster.namespace
    ).metadata.annotations
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-value"] == "yes"

    cluster.patch_rollout("shop", request_annotation("promote", "p1"))
    status_where(
        cluster,
        "v2 promoted",
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == v2,
    )
    stats = measure(
        generator,
        lambda v: (
            rule_names(v) == ["ingress/shop"] and [w for _, w in v.rules[0].targets] == [100, 0]
        ),
        "weight 0 and no header route once promoted",
    )
    report("nginx promoted", stats, v2)
    assert stats.class_share("plain", v2) == pytest.approx(
        1.0, abs=TOLERANCE
    ) and stats.class_share("beta", v2) == pytest.approx(1.0, abs=TOLERANCE)
    assert v1 != v2


def test_gateway_api_header_and_mirror_rules(
    cluster: Cluster, start_controller: Any, traffic: Any, httproute_crd: str
) -> None:
    for name in ("shop-stable", "shop-canary"):
        cluster.create_service(name, {"app": "shop"}, rollout="shop")
    cluster.custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io",
        "v1",
        cluster.namespace,
        "httproutes",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "shop", "annotations": CONSENT},
            "spec": {
                "parentRefs": [{"name": "sandbox-gateway"}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "shop-stable", "port": 8080, "weight": 100},
                            {"name": "shop-canary", "port": 8080, "weight": 0},
                        ]
                    }
                ],
            },
        },
    )
    strategy = {
        "canary": {
            "stableService": "shop-stable",
            "canaryService": "shop-canary",
            "trafficRouting": {
                "gatewayAPI": {"httpRoute": "shop"},
                "managedRoutes": [{"name": "beta"}, {"name": "shadow"}],
            },
            # Gateway API ranks a method match above header matches, so this mirror
            # matches by path alone and the header rule keeps the header's requests.
            "steps": [{"setWeight": 10}, HEADER_STEP, MIRROR_BY_PATH, {"pause": {}}],
        }
    }
    start_controller()
    cluster.apply_rollout(demo_rollout("shop", version="v1", strategy=strategy))
    status_where(cluster, "v1 Healthy", lambda s: s.get("phase") == "Healthy")
    generator = traffic(
        cluster.namespace, http_route="shop", requests=REQUESTS, rate_per_second=100
    )
    cluster.apply_rollout(demo_rollout("shop", version="v2", strategy=strategy))
    v2 = paused_at(cluster, 3)["canaryRevision"]
    stats = measure(
        generator,
        lambda v: len(v.rules) == 3 and any(rule.mirror for rule in v.rules),
        "header and mirror rules seen",
    )
    report("gateway API setWeight 10 + header + mirror", stats, v2)
    assert stats.class_share("plain", v2) == pytest.approx(0.10, abs=TOLERANCE)
    assert stats.class_share("beta", v2) == pytest.approx(1.0, abs=TOLERANCE)
    mirrored = stats.mirrored_by_revision().get(v2, 0)
    assert mirrored / stats.class_total("plain") == pytest.approx(0.5, abs=TOLERANCE)
