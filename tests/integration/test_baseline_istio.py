"""Baseline pods behind an Istio VirtualService (host-level), end to end: the published
Istio CRDs, the operator as a process, the traffic generator following the route.

The route gets a third destination, the baseline's Service, with the canary's weight;
the generator's requests split 60/20/20 between stable, canary and baseline pods; after
promotion the destination, the Service and the baseline's pods are gone.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from sandbox.traffic import ISTIO_GROUP
from tests.integration.harness import Cluster, demo_rollout
from tests.integration.test_routers import (
    CONSENT,
    MIN_REQUESTS,
    TOLERANCE,
    paused_at,
    request_annotation,
    status_where,
)
from tests.waiting import wait_until

BASELINE_SVC = "shop-stable-baseline"
STRATEGY = {
    "canary": {
        "stableService": "shop-stable",
        "canaryService": "shop-canary",
        "trafficRouting": {"istio": {"virtualService": {"name": "shop"}}},
        "baseline": {"enabled": True},
        "steps": [{"setWeight": 20}, {"pause": {}}],
    }
}


def test_istio_host_level_gives_the_baseline_a_third_destination(
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

    def destinations() -> dict[str, int]:
        vs = cluster.custom.get_namespaced_custom_object(
            ISTIO_GROUP, "v1", cluster.namespace, "virtualservices", "shop"
        )
        route = vs["spec"]["http"][0]["route"]
        return {d["destination"]["host"]: int(d.get("weight", 0)) for d in route}

    def baseline_service() -> Any | None:
        try:
            return cluster.core.read_namespaced_service(BASELINE_SVC, cluster.namespace)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    start_controller()
    cluster.apply_rollout(demo_rollout("shop", version="v1", replicas=2, strategy=STRATEGY))
    v1 = status_where(cluster, "v1 Healthy", lambda s: s.get("phase") == "Healthy")[
        "stableRevision"
    ]
    generator = traffic(cluster.namespace, virtual_service="shop", rate_per_second=100)
    cluster.apply_rollout(demo_rollout("shop", version="v2", replicas=2, strategy=STRATEGY))
    v2 = paused_at(cluster, 1)["canaryRevision"]
    assert destinations() == {"shop-stable": 60, "shop-canary": 20, BASELINE_SVC: 20}
    assert baseline_service() is not None

    wait_until(
        lambda: [w for _, w in generator.view().rules[0].targets],
        ok=lambda weights: weights == [60, 20, 20],
        timeout=20,
        what="the generator sees three destinations",
    )
    generator.reset()
    stats = wait_until(
        generator.stats,
        ok=lambda s: s.total >= MIN_REQUESTS,
        timeout=90,
        what=f"{MIN_REQUESTS} requests",
    )
    by_revision = stats.by_revision()
    share = {rev: n / stats.total for rev, n in by_revision.items()}
    assert share.get(f"{v1}-baseline", 0) == pytest.approx(0.20, abs=TOLERANCE), share
    assert share.get(v2, 0) == pytest.approx(0.20, abs=TOLERANCE), share
    assert share.get(v1, 0) == pytest.approx(0.60, abs=TOLERANCE), share

    cluster.patch_rollout("shop", request_annotation("promoteFull", "p1"))
    wait_until(
        lambda: (
            BASELINE_SVC in destinations(),
            baseline_service() is not None,
            len(
                cluster.core.list_namespaced_pod(
                    cluster.namespace, label_selector="deployctl.io/role=baseline"
                ).items
            ),
        ),
        ok=lambda state: state == (False, False, 0),
        timeout=120,
        what="the third destination, the baseline Service and pods gone after promotion",
    )
    status_where(
        cluster,
        "v2 promoted",
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == v2,
    )
