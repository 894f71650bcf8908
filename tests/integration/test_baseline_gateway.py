"""Baseline pods behind a Gateway API HTTPRoute, end to end: real apiserver, published
Gateway API CRDs, node agent running demo-app pods (latency a log-normal distribution),
real Prometheus, the operator as a process, the traffic generator following the route.

One Rollout goes through two canaries. During the first the baseline's pods and its
Service (created by the controller, owned by the Rollout) exist, the HTTPRoute carries a
third backendRef with the canary's weight, requests reach the baseline's pods, and the
comparison judge (``compare.against: baseline``) measures the canary against the
baseline's samples and passes it; it is promoted. The second is aborted while the route
gives the baseline its share, to a controller started afresh after the one that began it
was killed. Each time the third backendRef, the Service and the baseline's pods are gone
afterwards.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from controller.names import REQUEST_ANNOTATION
from controller.requests import new_request
from sandbox.traffic import GATEWAY_GROUP
from tests.bench.judge import latency_template
from tests.integration.harness import Cluster, demo_rollout
from tests.integration.test_gateway_api import gateway_objects, weights
from tests.waiting import wait_until

ROLE = "deployctl.io/role"
REVISION = "deployctl.io/revision"
BASELINE_SVC = "shop-stable-baseline"
MEDIAN = "0.05"  # seconds, every version's median latency
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"analysis": {"templates": [{"name": "latency"}]}},
    {"pause": {}},
]


def shop(version: str) -> dict[str, Any]:
    return demo_rollout(
        "shop",
        version=version,
        replicas=2,
        env={"DEMO_LATENCY_SECONDS": MEDIAN, "DEMO_LATENCY_SPREAD": "0.25"},
        strategy={
            "canary": {
                "stableService": "shop-stable",
                "canaryService": "shop-canary",
                "trafficRouting": {"gatewayAPI": {"httpRoute": "shop"}},
                "scaleDownDelaySeconds": 1,
                "baseline": {"enabled": True},
                "steps": STEPS,
            }
        },
        progress_deadline=300,
    )


def request(cluster: Cluster, action: str) -> None:
    """What ``deployctl <action>`` writes: a request annotation with a fresh id."""
    body = new_request(action, by="baseline-test")  # type: ignore[arg-type]
    cluster.patch_rollout(
        "shop", {"metadata": {"annotations": {REQUEST_ANNOTATION: body.to_annotation()}}}
    )


def pods(cluster: Cluster, *, baseline: bool) -> list[Any]:
    role = f"{ROLE}=baseline" if baseline else f"!{ROLE}"
    return [
        p
        for p in cluster.core.list_namespaced_pod(
            cluster.namespace, label_selector=f"deployctl.io/rollout=shop,{role}"
        ).items
        if p.metadata.deletion_timestamp is None
    ]


def baseline_service(cluster: Cluster) -> Any | None:
    try:
        return cluster.core.read_namespaced_service(BASELINE_SVC, cluster.namespace)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_a_routed_canary_with_a_baseline_behind_an_httproute(
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

        def route_now() -> dict[str, int]:
            return weights(
                custom.get_namespaced_custom_object(
                    GATEWAY_GROUP, "v1", cluster.namespace, "httproutes", "shop"
                )
            )

        for name in ("shop-stable", "shop-canary"):
            cluster.create_service(name, {"app": "shop"}, rollout="shop")
        cluster.create_template(latency_template())
        # One sample a scrape: the sandbox's Prometheus scrapes every second.
        args = ["--no-leader-elect", "--scrape-interval", "1"]
        controller = start_controller(args=args)
        cluster.apply_rollout(shop("v1"))
        v1 = wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: s.get("phase") == "Healthy",
            timeout=120,
            what="v1 Healthy",
        )["stableRevision"]
        baseline = f"{v1}-baseline"
        generator = traffic(cluster.namespace, http_route="shop", rate_per_second=30)

        # ---- the first canary: baseline pods, Service, three backendRefs, the judge.
        cluster.apply_rollout(shop("v2"))
        three = {"shop-stable": 50, "shop-canary": 25, BASELINE_SVC: 25}
        wait_until(route_now, ok=lambda w: w == three, timeout=180, what="three backendRefs")
        service = baseline_service(cluster)
        assert service is not None, "the router names the baseline Service only once it exists"
        rollout_uid = cluster.rollout("shop")["metadata"]["uid"]
        assert [ref.uid for ref in service.metadata.owner_references] == [rollout_uid]
        assert service.metadata.labels["app.kubernetes.io/managed-by"] == "deployctl"
        assert service.spec.selector == {"app": "shop", REVISION: baseline}
        found = pods(cluster, baseline=True)
        assert found and all(p.metadata.labels[REVISION] == baseline for p in found)
        assert all(p.spec.containers[0].image == "deployctl/demo-app:v1" for p in found)
        v2 = cluster.status("shop")["canaryRevision"]
        canary_pods = [
            p for p in pods(cluster, baseline=False) if p.metadata.labels[REVISION] == v2
        ]
        assert len(found) == len(canary_pods), (len(found), len(canary_pods))

        # The generator follows the route: the baseline's pods answer their share.
        generator.reset()
        served = wait_until(
            lambda: generator.stats().by_revision(),
            ok=lambda by: by.get(baseline, 0) >= 60 and by.get(v2, 0) >= 60,
            timeout=120,
            what="requests answered by the baseline's and the canary's pods",
        )
        total = sum(served.values())
        assert 0.15 < served[baseline] / total < 0.35, served

        paused = wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: s.get("currentStepIndex") == 2 or s.get("phase") == "Degraded",
            timeout=300,
            what="the judge's verdict on the canary against its baseline",
        )
        assert paused.get("currentStepIndex") == 2, paused
        (run,) = [r for r in paused["analysisRuns"] if r["key"] == "step-1"]
        assert run["phase"] == "Successful", run
        evidence = run["metrics"][0]["measurements"][-1]["comparison"]
        assert evidence["against"] == "baseline", evidence
        assert evidence["canarySamples"] >= 40 and evidence["comparisonSamples"] >= 40, evidence
        assert route_now() == three

        request(cluster, "promote")

        def gone_after(what: str) -> None:
            wait_until(
                lambda: (
                    BASELINE_SVC in route_now(),
                    baseline_service(cluster) is not None,
                    len(pods(cluster, baseline=True)),
                ),
                ok=lambda state: state == (False, False, 0),
                timeout=120,
                what=f"the third backendRef, the baseline Service and pods gone after {what}",
            )

        gone_after("the promotion")
        promoted = wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == v2,
            timeout=120,
            what="v2 promoted",
        )
        assert route_now() == {"shop-stable": 100, "shop-canary": 0}, promoted

        # ---- the second canary, aborted while the baseline has its share.
        cluster.apply_rollout(shop("v3"))
        three_again = {"shop-stable": 50, "shop-canary": 25, BASELINE_SVC: 25}
        wait_until(route_now, ok=lambda w: w == three_again, timeout=180, what="three again")
        assert pods(cluster, baseline=True)
        service = baseline_service(cluster)
        assert service is not None and service.spec.selector[REVISION] == f"{v2}-baseline"
        # A new controller takes over: what it undoes it reads from status and the cluster.
        controller.kill()
        request(cluster, "abort")
        start_controller(args=args)
        gone_after("the abort, by a restarted controller")
        wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: s.get("phase") == "Degraded" and s.get("stableRevision") == v2,
            timeout=120,
            what="v3 aborted",
        )
        assert route_now() == {"shop-stable": 100, "shop-canary": 0}
    finally:
        try:
            custom.delete_cluster_custom_object(
                GATEWAY_GROUP, "v1", "gatewayclasses", f"sandbox-{cluster.namespace}"
            )
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
