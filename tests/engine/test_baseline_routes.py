"""Three backends on a router: the weight maths of a canary with baseline pods
(``baseline_split``) and the HTTPRoute rules the Gateway API router writes for it.

The baseline gets the canary's share through its own Service; the stable keeps the
rest; above 50 both are capped at 50. Without a baseline the rule (Gateway API) or route
(Istio, host-level) is the two-backend one it always was, and a baseline backend left
from an earlier pass goes.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import Rollout
from controller.routers.base import (
    RouterCaches,
    TrafficTarget,
    baseline_service_of,
    baseline_split,
)
from controller.routers.gatewayapi import GatewayAPIRouter
from controller.routers.istio import IstioRouter
from tests.engine.fixture import (
    CANARY_SVC,
    STABLE_SVC,
    canary_spec,
    rollout_object,
    route_object,
    virtualservice_object,
)

BASELINE_SVC = baseline_service_of(STABLE_SVC)


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        (0, (100, 0, 0)),
        (1, (98, 1, 1)),
        (25, (50, 25, 25)),
        (50, (0, 50, 50)),
        (51, (0, 50, 50)),
        (100, (0, 50, 50)),
        (150, (0, 50, 50)),
    ],
)
def test_the_baseline_gets_the_canary_share_and_both_cap_at_half(
    weight: int, expected: tuple[int, int, int]
) -> None:
    split = baseline_split(TrafficTarget("s", "c", weight, baseline=True))
    assert (split["stable"], split["canary"], split["baseline"]) == expected
    assert sum(split.values()) == 100


def test_without_a_canary_or_a_baseline_the_split_is_two_way() -> None:
    assert baseline_split(TrafficTarget("s", None, 30, baseline=True)) == {
        "stable": 100,
        "canary": 0,
        "baseline": 0,
    }
    assert baseline_split(TrafficTarget("s", "c", 70)) == {
        "stable": 30,
        "canary": 70,
        "baseline": 0,
    }


def router() -> GatewayAPIRouter:
    rollout = Rollout.model_validate(
        rollout_object(canary_spec([{"setWeight": 20}, {"pause": {}}], routed=True))
    )
    return GatewayAPIRouter(rollout, caches=RouterCaches(), kube=None)  # type: ignore[arg-type]


def weights_of(rules: list[Any]) -> list[dict[str, int]]:
    return [{ref["name"]: ref["weight"] for ref in rule["backendRefs"]} for rule in rules]


def test_the_weighted_rule_gets_a_baseline_backend_with_the_canary_weight() -> None:
    route = route_object()
    route["spec"]["rules"][0]["backendRefs"][1]["port"] = 8080
    rules = router().desired_rules(route, TrafficTarget("s", "c", 20, baseline=True))
    assert weights_of(rules) == [{STABLE_SVC: 60, CANARY_SVC: 20, BASELINE_SVC: 20}]
    baseline_ref = rules[0]["backendRefs"][2]
    assert baseline_ref == {"name": BASELINE_SVC, "port": 8080, "weight": 20}


def test_the_baseline_backend_is_written_once_and_leaves_with_the_baseline() -> None:
    routes = router()
    route = route_object()
    with_baseline = routes.desired_rules(route, TrafficTarget("s", "c", 40, baseline=True))
    route["spec"]["rules"] = with_baseline
    again = routes.desired_rules(route, TrafficTarget("s", "c", 60, baseline=True))
    assert weights_of(again) == [{STABLE_SVC: 0, CANARY_SVC: 50, BASELINE_SVC: 50}]
    route["spec"]["rules"] = again
    aborted = routes.desired_rules(route, TrafficTarget("s", None, 0))
    assert weights_of(aborted) == [{STABLE_SVC: 100, CANARY_SVC: 0}]


def test_a_rule_without_the_canary_service_gets_no_baseline_backend() -> None:
    route = route_object({STABLE_SVC: 100})
    route["spec"]["rules"].append(route_object()["spec"]["rules"][0])
    rules = router().desired_rules(route, TrafficTarget("s", "c", 10, baseline=True))
    assert weights_of(rules) == [
        {STABLE_SVC: 80},
        {STABLE_SVC: 80, CANARY_SVC: 10, BASELINE_SVC: 10},
    ]


def istio_router() -> tuple[IstioRouter, Any]:
    rollout = Rollout.model_validate(
        rollout_object(canary_spec([{"setWeight": 20}, {"pause": {}}], routed="istio"))
    )
    routing = rollout.spec.strategy.canary.traffic_routing  # type: ignore[union-attr]
    ref = routing.istio.all_virtual_services[0]  # type: ignore[union-attr]
    return IstioRouter(rollout, caches=RouterCaches(), kube=None), ref  # type: ignore[arg-type]


def destinations_of(http: list[Any]) -> list[dict[str, int]]:
    return [{d["destination"]["host"]: d["weight"] for d in route["route"]} for route in http]


def test_istio_host_level_gets_a_baseline_destination_and_loses_it_on_abort() -> None:
    routes, ref = istio_router()
    vs = virtualservice_object()
    http = routes.desired_http(vs, ref, TrafficTarget("s", "c", 30, baseline=True))
    assert http is not None
    assert destinations_of(http) == [{STABLE_SVC: 40, CANARY_SVC: 30, BASELINE_SVC: 30}]
    vs["spec"]["http"] = http
    again = routes.desired_http(vs, ref, TrafficTarget("s", "c", 30, baseline=True))
    assert again == http
    aborted = routes.desired_http(vs, ref, TrafficTarget("s", None, 0))
    assert aborted is not None
    assert destinations_of(aborted) == [{STABLE_SVC: 100, CANARY_SVC: 0}]
