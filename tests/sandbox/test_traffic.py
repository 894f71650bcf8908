"""The traffic generator splits requests as the cluster says: selectors or HTTPRoute weights.

Cluster tests on real demo-app pods; the split is deterministic (smooth weighted
round-robin), so the stated tolerance only absorbs requests in flight at the moment of
reading, not sampling noise.
"""

from __future__ import annotations

import math

import pytest
from kubernetes import client as k8s

from sandbox.traffic import (
    GATEWAY_GROUP,
    Backend,
    Endpoint,
    TrafficStats,
    _WeightedRoundRobin,
)
from tests.sandbox.workload_helpers import apps_api, core_api, custom_api, replica_set, service
from tests.waiting import wait_until

# The canary's share of traffic must be within this of the asked-for weight.
TOLERANCE = 0.04
MIN_REQUESTS = 500


def test_smooth_weighted_round_robin_is_exact_over_every_cycle() -> None:
    backends = [Backend("stable", 90, ()), Backend("canary", 10, ())]
    wrr = _WeightedRoundRobin()
    picks = [wrr.pick(backends).service for _ in range(1000)]
    for start in range(0, 1000, 100):
        assert picks[start : start + 100].count("canary") == 10
    # Spread out, not bunched: never two canary picks in a row at 10 %.
    assert "canary,canary" not in ",".join(picks)


def test_stats_arithmetic() -> None:
    stats = TrafficStats(
        counts={("r1", "200"): 85, ("r2", "200"): 5, ("r2", "500"): 5, ("", "no-backend"): 5}
    )
    assert stats.total == 100
    assert stats.share("r2") == 0.10
    assert stats.error_ratio("r2") == 0.5
    assert stats.error_ratio() == 0.10
    assert stats.by_code("r1") == {"200": 85}
    assert Endpoint("127.1.0.1", 8080, "p", "r1").revision == "r1"


def deploy_two_revisions(kube_api, namespace: str, *, canary_env: dict[str, str] | None = None):
    apps = apps_api(kube_api)
    apps.create_namespaced_replica_set(
        namespace, replica_set("shop-r1", replicas=3, app="shop", revision="r1")
    )
    apps.create_namespaced_replica_set(
        namespace,
        replica_set(
            "shop-r2", replicas=1, app="shop", revision="r2", image="shop/demo:v2", env=canary_env
        ),
    )

    def all_ready() -> bool:
        return all(
            (apps.read_namespaced_replica_set(name, namespace).status.ready_replicas or 0) == n
            for name, n in (("shop-r1", 3), ("shop-r2", 1))
        )

    wait_until(all_ready, timeout=30, what="both revisions ready")


def test_service_selector_spreads_over_ready_pods(node_agent, kube_api, namespace, traffic) -> None:
    deploy_two_revisions(kube_api, namespace)
    core_api(kube_api).create_namespaced_service(namespace, service("shop", {"app": "shop"}))
    generator = traffic(namespace, service="shop", rate_per_second=100)
    wait_until(lambda: generator.stats().total >= 400, timeout=30, what="400 requests")
    stats = generator.stats()
    # Without traffic routing the split is the share of Ready pods: 1 of 4.
    assert stats.share("r2") == pytest.approx(0.25, abs=TOLERANCE)
    assert stats.by_code() == {"200": stats.total}


@pytest.fixture
def weighted_route(kube_api, namespace, httproute_crd):
    core = core_api(kube_api)
    core.create_namespaced_service(
        namespace, service("shop-stable", {"app": "shop", "deployctl.io/revision": "r1"})
    )
    core.create_namespaced_service(
        namespace, service("shop-canary", {"app": "shop", "deployctl.io/revision": "r2"})
    )
    custom = custom_api(kube_api)

    def set_weights(stable: int, canary: int) -> None:
        body = {
            "apiVersion": f"{GATEWAY_GROUP}/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "shop"},
            "spec": {
                "parentRefs": [{"name": "sandbox-gateway"}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "shop-stable", "port": 80, "weight": stable},
                            {"name": "shop-canary", "port": 80, "weight": canary},
                        ]
                    }
                ],
            },
        }
        try:
            custom.create_namespaced_custom_object(
                GATEWAY_GROUP, "v1", namespace, "httproutes", body
            )
        except k8s.ApiException as error:
            if error.status != 409:
                raise
            custom.patch_namespaced_custom_object(
                GATEWAY_GROUP,
                "v1",
                namespace,
                "httproutes",
                "shop",
                {"spec": body["spec"]},
                _content_type="application/merge-patch+json",
            )

    return set_weights


def measure_share(generator, revision: str, *, weight: float) -> TrafficStats:
    # Wait until the generator routes by the new weights, then count afresh.
    wait_until(
        lambda: [b.weight for b in generator.view().backends][-1:] == [weight],
        timeout=10,
        what=f"route weight {weight} to be seen",
    )
    generator.reset()
    wait_until(
        lambda: generator.stats().total >= MIN_REQUESTS, timeout=60, what=f"{MIN_REQUESTS} requests"
    )
    stats: TrafficStats = generator.stats()
    return stats


def test_httproute_weights_90_10(node_agent, kube_api, namespace, traffic, weighted_route) -> None:
    deploy_two_revisions(kube_api, namespace, canary_env={"DEMO_ERROR_RATE": "0.5"})
    weighted_route(90, 10)
    generator = traffic(namespace, http_route="shop", rate_per_second=150)
    stats = measure_share(generator, "r2", weight=10)
    share = stats.share("r2")
    print(f"\ncanary share at weight 10: {share:.3f} over {stats.total} requests")
    assert share == pytest.approx(0.10, abs=TOLERANCE)
    assert stats.error_ratio("r1") == 0
    assert stats.error_ratio("r2") == pytest.approx(0.5, abs=0.1)

    weighted_route(50, 50)
    stats = measure_share(generator, "r2", weight=50)
    print(f"canary share at weight 50: {stats.share('r2'):.3f} over {stats.total} requests")
    assert stats.share("r2") == pytest.approx(0.50, abs=TOLERANCE)


def test_v1beta1_route_and_missing_backend(
    node_agent, kube_api, namespace, traffic, httproute_crd
) -> None:
    # The route points at a Service with no Ready pods: its share is counted as no-backend.
    core_api(kube_api).create_namespaced_service(namespace, service("empty", {"app": "nobody"}))
    custom_api(kube_api).create_namespaced_custom_object(
        GATEWAY_GROUP,
        "v1beta1",
        namespace,
        "httproutes",
        {
            "apiVersion": f"{GATEWAY_GROUP}/v1beta1",
            "kind": "HTTPRoute",
            "metadata": {"name": "old"},
            "spec": {"rules": [{"backendRefs": [{"name": "empty", "port": 80}]}]},
        },
    )
    generator = traffic(namespace, http_route="old", rate_per_second=100)
    wait_until(lambda: generator.stats().total >= 20, timeout=20, what="20 ticks")
    assert set(generator.stats().by_code()) == {"no-backend"}


def test_prometheus_sees_per_revision_series(
    node_agent, kube_api, namespace, traffic, prometheus, weighted_route
) -> None:
    deploy_two_revisions(kube_api, namespace, canary_env={"DEMO_ERROR_RATE": "0.5"})
    weighted_route(80, 20)
    selector = f'namespace="{namespace}",app="shop"'
    # Every pod is discovered and scraped once before traffic, so rate() sees it all.
    wait_until(
        lambda: len(prometheus.query(f"up{{{selector}}} == 1")) == 4,
        timeout=30,
        what="4 targets up",
    )
    traffic(namespace, http_route="shop", rate_per_second=100)
    query = (
        f'sum by (revision) (rate(http_requests_total{{{selector},code=~"5.."}}[10s]))'
        f" / sum by (revision) (rate(http_requests_total{{{selector}}}[10s]))"
    )

    def both_revisions() -> dict[str, float] | None:
        found = {s.labels["revision"]: s.value for s in prometheus.query(query)}
        # NaN (0/0) until a revision's first requests are inside the rate window.
        ready = {"r1", "r2"} <= found.keys() and all(math.isfinite(v) for v in found.values())
        return found if ready else None

    ratios = wait_until(both_revisions, timeout=30, interval=0.5, what="per-revision error ratios")
    assert ratios["r1"] == 0
    assert ratios["r2"] == pytest.approx(0.5, abs=0.1)
