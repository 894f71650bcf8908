"""Baseline pods behind a traffic router: the calls of the passes that start, route and
remove them.

The baseline gets as many pods as the canary, on top of the stable's, and its own
Service (created and owned by the controller) before the router names it; the router
gives it the canary's weight only once its pods are available (``baseline_split``). At
an abort or a promotion the router drops the third backend first, then the Service is
deleted, then the baseline's pods go. Everything is read from the Rollout's status and
the caches, so a new controller (a restart) carries on from any pass. Routers that
cannot carry a third backend are refused by the model with a message naming them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from controller.api import Rollout
from controller.names import REQUEST_ANNOTATION, REVISION_LABEL, ROLE_LABEL
from controller.reconciler import Reconciler
from controller.routers.base import baseline_service_of
from tests.engine.doubles import Call
from tests.engine.fixture import (
    CANARY_SVC,
    NS,
    ROUTE,
    STABLE_SVC,
    VS,
    Fixture,
    canary_spec,
    rollout_object,
    route_object,
    virtualservice_object,
)

BASELINE_SVC = baseline_service_of(STABLE_SVC)
STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 80}, {"pause": {}}]


def routed(routed: bool | str = True, **extra: Any) -> dict[str, Any]:
    return rollout_object(
        canary_spec(STEPS, routed=routed, baseline={"enabled": True}, **extra), replicas=4
    )


def started(fixture: Fixture) -> tuple[str, str]:
    """Deploy the first revision, then start a canary of the next one; (stable, canary)."""
    fixture.pass_and_settle()
    fixture.pass_and_settle()
    stable = fixture.revision
    rs = fixture.replicasets.get(NS, fixture.rs_name(stable))
    assert rs is not None
    # The baseline is built from the stable's ReplicaSet (its template), as the API has it.
    rs["spec"]["template"] = {
        "metadata": {"labels": {"app": "checkout", REVISION_LABEL: stable}},
        "spec": {"containers": [{"name": "app", "image": "shop/checkout:1"}]},
    }
    fixture.replicasets.put(rs)
    fixture.edit_spec(image="shop/checkout:2")
    return stable, fixture.revision


def with_ports(fixture: Fixture) -> None:
    stable = fixture.services.get(NS, STABLE_SVC)
    assert stable is not None
    stable["spec"]["ports"] = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 31000}]
    fixture.services.put(stable)


def request(fixture: Fixture, action: str) -> None:
    body = {"action": action, "id": f"{action}-1", "by": "ana"}
    fixture.annotate(**{REQUEST_ANNOTATION: json.dumps(body)})


def until(fixture: Fixture, done: Any, *, passes: int = 12) -> list[Call]:
    seen: list[Call] = []
    for _ in range(passes):
        seen += fixture.pass_and_settle()
        if done():
            return seen
    raise AssertionError(f"not reached in {passes} passes: {fixture.status}")


def weights(calls: list[Call]) -> list[dict[str, int]]:
    return [call[2] for call in calls if call[0] == "weights"]


def position(calls: list[Call], wanted: Any) -> int:
    return next(i for i, call in enumerate(calls) if wanted(call))


def at_25(fixture: Fixture) -> tuple[str, str, list[Call]]:
    stable, canary = started(fixture)
    seen = until(fixture, lambda: fixture.status.get("weight") == 25)
    return stable, canary, seen


def test_the_baseline_gets_its_pods_service_and_the_canary_share() -> None:
    fixture = Fixture(routed(), route=route_object())
    with_ports(fixture)
    stable, canary, seen = at_25(fixture)
    baseline = f"{stable}-baseline"
    # As many pods as the canary (1 of 4 at 25%), beside a stable that keeps all 4.
    assert ("create", fixture.rs_name(canary), 1) in seen
    assert ("create", fixture.rs_name(baseline), 1) in seen
    assert not any(c[0] == "scale" and c[1] == fixture.rs_name(stable) for c in seen)
    # The Service first, then the router names it, with the canary's share.
    created = position(seen, lambda c: c[0] == "create-service")
    assert seen[created] == ("create-service", BASELINE_SVC, baseline)
    three = position(seen, lambda c: c[0] == "weights" and BASELINE_SVC in c[2])
    assert created < three
    assert seen[three][2] == {STABLE_SVC: 50, CANARY_SVC: 25, BASELINE_SVC: 25}
    service = fixture.services.get(NS, BASELINE_SVC)
    assert service is not None
    assert service["spec"]["selector"] == {"app": "checkout", REVISION_LABEL: baseline}
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080}]
    assert service["metadata"]["labels"][ROLE_LABEL] == "baseline"
    assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "deployctl"
    assert service["metadata"]["ownerReferences"][0]["uid"] == "rollout-uid"
    # Never a third backend before the baseline's pods can serve.
    assert all(BASELINE_SVC not in w or w[BASELINE_SVC] == 0 for w in weights(seen[:three]))
    assert fixture.status["weight"] == 25


def test_the_step_waits_for_the_baseline_pods_too() -> None:
    fixture = Fixture(routed(), route=route_object())
    stable, canary = started(fixture)
    baseline = f"{stable}-baseline"
    fixture.unavailable.add(baseline)
    seen: list[Call] = []
    for _ in range(4):
        seen += fixture.pass_and_settle()
    assert fixture.status.get("weight", 0) == 0
    assert "baseline 0/1" in fixture.status["message"]
    assert not any(c[0] == "weights" and c[2].get(CANARY_SVC) for c in seen)
    fixture.ready(baseline)
    until(fixture, lambda: fixture.status.get("weight") == 25)


def test_above_half_both_are_capped_at_50() -> None:
    fixture = Fixture(routed(), route=route_object())
    stable, _canary, _ = at_25(fixture)
    request(fixture, "promote")
    seen = until(fixture, lambda: fixture.status.get("currentStepIndex") == 2)
    seen += until(fixture, lambda: fixture.status.get("weight") == 80)
    # 80% needs 4 canary pods; the baseline gets as many.
    assert ("scale", fixture.rs_name(f"{stable}-baseline"), 4) in seen
    route = fixture.routes.get(NS, ROUTE) if fixture.routes else None
    assert route is not None
    refs = {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}
    assert refs == {STABLE_SVC: 0, CANARY_SVC: 50, BASELINE_SVC: 50}


@pytest.mark.parametrize("action", ["abort", "promoteFull"])
def test_the_third_backend_goes_then_the_service_then_the_pods(action: str) -> None:
    fixture = Fixture(routed(), route=route_object())
    stable, canary, _ = at_25(fixture)
    baseline_rs = fixture.rs_name(f"{stable}-baseline")
    request(fixture, action)
    wanted_stable = stable if action == "abort" else canary
    seen = until(
        fixture,
        lambda: (
            fixture.status.get("stableRevision") == wanted_stable
            and fixture.replicasets.get(NS, baseline_rs) is None
            and fixture.status.get("weight", 0) in (0, 100)
        ),
        passes=16,
    )
    dropped = position(seen, lambda c: c[0] == "weights" and BASELINE_SVC not in c[2])
    deleted = position(seen, lambda c: c[0] == "delete-service")
    scaled = position(seen, lambda c: c == ("scale", baseline_rs, 0))
    assert dropped < deleted < scaled
    assert seen[deleted][1] == BASELINE_SVC and seen[deleted][2] is not None  # uid precondition
    assert fixture.services.get(NS, BASELINE_SVC) is None
    assert any(c[0] == "delete" and c[1] == baseline_rs for c in seen)
    # Nothing comes back in the passes after.
    later = until(fixture, lambda: True) + fixture.pass_and_settle()
    assert not any(c[0] in ("create-service", "delete-service") for c in later)
    assert not any(c[0] == "create" and c[1] == baseline_rs for c in later)


def restarted(fixture: Fixture) -> None:
    """A new controller on the same cluster: nothing carried over but the caches."""
    fixture.reconciler = Reconciler(
        fixture.kube,
        fixture.reconciler.caches,
        engine=fixture.reconciler.engine,
        clock=lambda: fixture.now,
    )


def test_a_restart_neither_duplicates_nor_forgets_the_service() -> None:
    fixture = Fixture(routed(), route=route_object())
    at_25(fixture)
    restarted(fixture)
    calls = fixture.pass_and_settle()
    assert not any(c[0] in ("create-service", "delete-service", "weights") for c in calls)
    # Removed behind the controller's back (or never seen created): made again, and the
    # router keeps naming it.
    fixture.services.objects.pop((NS, BASELINE_SVC))
    restarted(fixture)
    calls = fixture.pass_and_settle()
    assert [c[:2] for c in calls if c[0] == "create-service"] == [("create-service", BASELINE_SVC)]


def test_a_service_cache_that_lags_our_create_changes_nothing() -> None:
    fixture = Fixture(routed(), route=route_object())
    started(fixture)
    seen: list[Call] = []
    while not any(c[0] == "create-service" for c in seen):
        seen += fixture.pass_and_settle()
        assert len(seen) < 200, seen
    # The cache has not listed the new Service yet: the next passes neither create it
    # again nor keep the router from naming it.
    fixture.services.objects.pop((NS, BASELINE_SVC))
    later = until(fixture, lambda: fixture.status.get("weight") == 25)
    assert not any(c[0] == "create-service" for c in later)
    assert weights(later)[-1] == {STABLE_SVC: 50, CANARY_SVC: 25, BASELINE_SVC: 25}


def test_a_delete_that_failed_is_done_by_the_next_controller() -> None:
    fixture = Fixture(routed(), route=route_object())
    at_25(fixture)
    request(fixture, "abort")
    fixture.kube.fail("delete_service", RuntimeError("apiserver went away"))
    with pytest.raises(RuntimeError):
        fixture.run()
    # The delete was sent and refused: the Service stays; the writes before it stand.
    fixture.kube.calls[:] = [c for c in fixture.kube.calls if c[0] != "delete-service"]
    fixture.settle()
    # The router no longer names it; the Service is still there.
    route = fixture.routes.get(NS, ROUTE) if fixture.routes else None
    assert route is not None
    assert BASELINE_SVC not in {r["name"] for r in route["spec"]["rules"][0]["backendRefs"]}
    assert fixture.services.get(NS, BASELINE_SVC) is not None
    restarted(fixture)
    until(fixture, lambda: fixture.services.get(NS, BASELINE_SVC) is None)


def test_a_service_of_that_name_not_ours_is_an_invalid_spec_and_stays() -> None:
    fixture = Fixture(routed(), route=route_object())
    fixture.services.put(
        {
            "metadata": {"name": BASELINE_SVC, "namespace": NS, "uid": "theirs"},
            "spec": {"selector": {"app": "other"}},
        }
    )
    _result, calls = fixture.run()
    assert [c[0] for c in calls] == ["status", "event"], calls
    fixture.settle()
    assert fixture.status["reason"] == "InvalidSpec"
    assert (
        f"Service {BASELINE_SVC} exists and is not owned by this Rollout"
        in (fixture.status["message"])
    )
    # Removed by its owner: the canary goes on, with a Service of its own.
    fixture.services.objects.pop((NS, BASELINE_SVC))
    started(fixture)
    seen = until(fixture, lambda: fixture.status.get("weight") == 25)
    assert ("create-service", BASELINE_SVC) in [c[:2] for c in seen]


def test_istio_host_level_gets_a_third_destination_and_loses_it_at_promotion() -> None:
    fixture = Fixture(routed("istio"), virtualservices=(virtualservice_object(),))
    _stable, canary, _ = at_25(fixture)

    def hosts() -> dict[str, int]:
        vs = fixture.virtualservices.get(NS, VS) if fixture.virtualservices else None
        assert vs is not None
        return {d["destination"]["host"]: d["weight"] for d in vs["spec"]["http"][0]["route"]}

    assert hosts() == {STABLE_SVC: 50, CANARY_SVC: 25, BASELINE_SVC: 25}
    # The route with the baseline's destination is still one the router accepts.
    fixture.pass_and_settle()
    assert fixture.status["reason"] != "InvalidSpec", fixture.status
    request(fixture, "promoteFull")
    until(fixture, lambda: fixture.status.get("stableRevision") == canary, passes=16)
    until(fixture, lambda: fixture.services.get(NS, BASELINE_SVC) is None)
    assert BASELINE_SVC not in hosts()


@pytest.mark.parametrize(
    ("router", "named"),
    [("nginx", "nginx cannot"), ("istio-subsets", "istio with destinationRule subsets")],
)
def test_routers_without_a_third_backend_are_refused_by_name(router: str, named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Rollout.model_validate(routed(router))
    assert "baseline needs a router that can carry a third backend" in str(refused.value)
    assert named in str(refused.value)


def test_dynamic_stable_scale_is_refused_beside_a_baseline() -> None:
    with pytest.raises(ValidationError, match="baseline and dynamicStableScale cannot"):
        Rollout.model_validate(routed(dynamicStableScale=True))


@pytest.mark.parametrize("router", [True, "istio"])
def test_routers_with_a_third_backend_are_accepted(router: bool | str) -> None:
    assert Rollout.model_validate(routed(router)).spec.strategy.canary is not None
