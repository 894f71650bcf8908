"""The calls of one pass for each traffic router: Istio (host-level and subsets), NGINX,
and header and mirror routes on Gateway API and Istio.

As in ``test_reconcile_calls``: scale up first, then Services, then the router's
objects, then scale down. An abort takes the weight, the header routes and the mirror
routes off the canary before the canary's pods go; a router whose object is missing
is InvalidSpec and nothing else is touched.
"""

from __future__ import annotations

import json
from typing import Any

from controller.names import REQUEST_ANNOTATION
from tests.engine.fixture import (
    CANARY_INGRESS,
    CANARY_SVC,
    DR,
    INGRESS,
    ROUTE,
    STABLE_SVC,
    VS,
    Fixture,
    canary_spec,
    destinationrule_object,
    ingress_object,
    rollout_object,
    route_object,
    virtualservice_object,
)

STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]
HEADER: dict[str, Any] = {
    "setHeaderRoute": {
        "name": "beta",
        "match": [{"headerName": "X-Beta", "headerValue": {"exact": "yes"}}],
    }
}
MIRROR: dict[str, Any] = {
    "setMirrorRoute": {
        "name": "shadow",
        "percentage": 40,
        "match": [{"method": {"exact": "GET"}, "path": {"prefix": "/"}}],
    }
}


def deployed(fixture: Fixture) -> str:
    fixture.pass_and_settle()
    fixture.pass_and_settle()
    assert fixture.status["phase"] == "Healthy"
    return fixture.revision


def abort(fixture: Fixture) -> None:
    request = {"action": "abort", "id": "abort-1", "by": "ana"}
    fixture.annotate(**{REQUEST_ANNOTATION: json.dumps(request)})


def test_istio_host_level_weights_move_after_scale_up_and_back_before_scale_down() -> None:
    fixture = Fixture(
        rollout_object(canary_spec(STEPS, routed="istio")),
        virtualservices=(virtualservice_object(),),
    )
    deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    canary = fixture.revision
    assert fixture.pass_and_settle()[:2] == [
        ("create", fixture.rs_name(canary), 1),
        ("select", CANARY_SVC, canary),
    ]
    assert fixture.pass_and_settle() == [
        ("vs", VS, (("primary", {STABLE_SVC: 75, CANARY_SVC: 25}, None),)),
        ("status", "checkout"),
        ("event", "Normal", "WeightSet"),
        ("event", "Normal", "StepStarted"),
    ]
    abort(fixture)
    _result, calls = fixture.run()
    # The canary Service loses its weight, so it is pointed at stable only after the
    # VirtualService has moved the weight away.
    assert calls == [
        ("vs", VS, (("primary", {STABLE_SVC: 100, CANARY_SVC: 0}, None),)),
        ("select", CANARY_SVC, fixture.status["stableRevision"]),
        ("scale", fixture.rs_name(canary), 0),
        ("status", "checkout"),
        ("event", "Warning", "Aborted"),
    ]


def test_istio_subsets_get_the_revision_label_before_the_weight_moves_to_them() -> None:
    fixture = Fixture(
        rollout_object(canary_spec(STEPS, routed="istio-subsets"), replicas=4),
        services=(),
        virtualservices=(virtualservice_object(subsets=True),),
        destinationrules=(destinationrule_object(),),
    )
    stable = deployed(fixture)
    assert fixture.destinationrules is not None
    labels = [s["labels"] for s in fixture.destinationrules.list()[0]["spec"]["subsets"]]
    assert [lab["deployctl.io/revision"] for lab in labels] == [stable, stable]
    fixture.edit_spec(image="shop/checkout:2")
    canary = fixture.revision
    # The canary subset names the new pods while it carries no weight, before any moves.
    assert fixture.pass_and_settle() == [
        ("create", fixture.rs_name(canary), 1),
        ("subsets", DR, {"stable": stable, "canary": canary}),
        ("status", "checkout"),
        ("event", "Normal", "NewRevision"),
        ("event", "Normal", "StepStarted"),
    ]
    assert fixture.pass_and_settle()[0] == (
        "vs",
        VS,
        (("primary", {"stable": 75, "canary": 25}, None),),
    )
    # A newer revision while the canary subset carries 25%: the weight leaves it first.
    fixture.edit_spec(image="shop/checkout:3")
    newer = fixture.revision
    _result, calls = fixture.run()
    assert calls[:4] == [
        ("create", fixture.rs_name(newer), 1),
        ("vs", VS, (("primary", {"stable": 100, "canary": 0}, None),)),
        ("subsets", DR, {"stable": stable, "canary": newer}),
        ("scale", fixture.rs_name(canary), 0),
    ]


def test_nginx_canary_ingress_is_created_then_annotated_and_zeroed_before_scale_down() -> None:
    fixture = Fixture(
        rollout_object(canary_spec(STEPS, routed="nginx")), ingresses=(ingress_object(),)
    )
    _result, calls = fixture.run()
    assert ("create-ingress", CANARY_INGRESS, "0") in calls
    fixture.settle()
    fixture.pass_and_settle()
    assert fixture.ingresses.get("shop", CANARY_INGRESS) is not None
    fixture.edit_spec(image="shop/checkout:2")
    canary = fixture.revision
    fixture.pass_and_settle()
    assert fixture.pass_and_settle()[0] == ("ingress", CANARY_INGRESS, {"canary-weight": "25"})
    abort(fixture)
    _result, calls = fixture.run()
    assert calls[:3] == [
        ("ingress", CANARY_INGRESS, {"canary-weight": "0"}),
        ("select", CANARY_SVC, fixture.status["stableRevision"]),
        ("scale", fixture.rs_name(canary), 0),
    ]
    body = fixture.ingresses.get("shop", CANARY_INGRESS)
    assert body is not None
    backend = body["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert backend == CANARY_SVC and body["spec"]["ingressClassName"] == "nginx"


def test_nginx_header_route_sets_and_removes_the_canary_by_header_annotations() -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 10},
        HEADER,
        {"pause": {}},
        {"setHeaderRoute": {"name": "beta"}},
    ]
    fixture = Fixture(
        rollout_object(canary_spec(steps, routed="nginx", managed=("beta",))),
        ingresses=(ingress_object(),),
    )
    deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    fixture.pass_and_settle()
    assert fixture.pass_and_settle()[0] == (
        "ingress",
        CANARY_INGRESS,
        {"canary-by-header": "X-Beta", "canary-by-header-value": "yes", "canary-weight": "10"},
    )
    assert fixture.status["currentStepIndex"] == 2
    fixture.annotate(
        **{REQUEST_ANNOTATION: json.dumps({"action": "promote", "id": "p", "by": "ana"})}
    )
    # The route is removed in the pass that passes its step (the canary scales to full
    # size first: every step is done).
    assert fixture.pass_and_settle()[:2] == [
        ("scale", fixture.rs_name(fixture.revision), 4),
        ("ingress", CANARY_INGRESS, {"canary-by-header": None, "canary-by-header-value": None}),
    ]


def test_gateway_api_header_and_mirror_rules_come_and_go_with_their_steps() -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 20}, HEADER, MIRROR, {"pause": {}}]
    fixture = Fixture(
        rollout_object(canary_spec(steps, routed=True, managed=("beta", "shadow"))),
        route=route_object(),
    )
    deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    canary = fixture.revision
    fixture.pass_and_settle()
    calls = fixture.pass_and_settle()
    weighted = {STABLE_SVC: 80, CANARY_SVC: 20}
    assert calls[0] == (
        "rules",
        ROUTE,
        (
            ("beta", {CANARY_SVC: 1}, None),
            ("shadow", weighted, (CANARY_SVC, 40)),
            (None, weighted, None),
        ),
    )
    assert [c[2] for c in calls if c[0] == "event" and c[2] == "RouteSet"] == ["RouteSet"] * 2
    abort(fixture)
    _result, calls = fixture.run()
    assert calls[:3] == [
        ("weights", ROUTE, {STABLE_SVC: 100, CANARY_SVC: 0}),
        ("select", CANARY_SVC, fixture.status["stableRevision"]),
        ("scale", fixture.rs_name(canary), 0),
    ]


def test_istio_header_and_mirror_routes_go_first_and_leave_on_abort_before_scale_down() -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 20}, MIRROR, HEADER, {"pause": {}}]
    fixture = Fixture(
        rollout_object(canary_spec(steps, routed="istio", managed=("beta", "shadow"))),
        virtualservices=(virtualservice_object(),),
    )
    deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    canary = fixture.revision
    fixture.pass_and_settle()
    weighted = {STABLE_SVC: 80, CANARY_SVC: 20}
    assert fixture.pass_and_settle()[0] == (
        "vs",
        VS,
        (
            ("beta", {CANARY_SVC: 100}, None),
            ("shadow", weighted, (CANARY_SVC, 40)),
            ("primary", weighted, None),
        ),
    )
    abort(fixture)
    _result, calls = fixture.run()
    assert calls[:3] == [
        ("vs", VS, (("primary", {STABLE_SVC: 100, CANARY_SVC: 0}, None),)),
        ("select", CANARY_SVC, fixture.status["stableRevision"]),
        ("scale", fixture.rs_name(canary), 0),
    ]


def test_a_missing_virtualservice_is_invalid_spec_and_nothing_is_touched() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS, routed="istio")), virtualservices=())
    _result, calls = fixture.run()
    assert calls == [("status", "checkout"), ("event", "Warning", "InvalidSpec")]
    message = fixture.kube.messages[0]
    assert message == (
        "spec.strategy.canary.trafficRouting.istio.virtualService.name: VirtualService "
        "checkout-vs not found in namespace shop: create it, or fix the name"
    )
    fixture.settle()
    fixture.virtualservices.put(virtualservice_object())  # type: ignore[union-attr]
    _result, calls = fixture.run()
    assert calls[0] == ("create", fixture.rs_name(fixture.revision), 4)


def test_istio_without_its_crds_and_nginx_without_the_stable_ingress_say_so() -> None:
    istio = Fixture(rollout_object(canary_spec(STEPS, routed="istio")))
    istio.run()
    assert (
        "Istio VirtualService CRD (networking.istio.io) is not installed"
        in (istio.kube.messages[0])
    )
    nginx = Fixture(rollout_object(canary_spec(STEPS, routed="nginx")))
    nginx.run()
    assert nginx.kube.messages[0] == (
        "spec.strategy.canary.trafficRouting.nginx.stableIngress: Ingress checkout-ingress "
        "not found in namespace shop: create it (with a backend to Service checkout), or "
        "fix the name"
    )
    assert INGRESS in nginx.kube.messages[0]
