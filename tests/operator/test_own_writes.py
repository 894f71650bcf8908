"""Reading our own writes over a stale cache (``controller.own_writes``), and the order in
which one pass moves traffic (``Reconciler._route_traffic``): fast, no cluster.

The reconciler is exercised through its own seams: dict-backed caches and a recording
double of our ``Kube`` adapter, asserting the calls it makes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.analysis.run import AnalysisEngine
from controller.api import Rollout
from controller.api.status import RolloutStatus
from controller.own_writes import UNSEEN_CREATION_SECONDS, OwnWrites
from controller.reconciler import Caches, Reconciler
from strategies import Plan


def rs(name: str, *, generation: int, replicas: int, uid: str = "u1", rollout: str = "shop"):
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "uid": uid,
            "generation": generation,
            "labels": {"deployctl.io/rollout": rollout},
        },
        "spec": {"replicas": replicas},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_newer_write_replaces_the_stale_cached_copy_until_the_cache_catches_up() -> None:
    own = OwnWrites()
    own.remember(rs("a", generation=5, replicas=2))
    labels = {"deployctl.io/rollout": "shop"}
    view = own.view("ns", [rs("a", generation=4, replicas=6)], labels=labels)
    assert [x["spec"]["replicas"] for x in view] == [2]
    caught_up = rs("a", generation=5, replicas=2)
    assert own.view("ns", [caught_up], labels=labels) == [caught_up]
    # Once caught up the write is dropped: a later change by someone else shows as is.
    later = rs("a", generation=6, replicas=9)
    assert own.view("ns", [later], labels=labels) == [later]


def test_a_recreated_replicaset_is_not_mistaken_for_ours() -> None:
    own = OwnWrites()
    own.remember(rs("a", generation=5, replicas=2, uid="old"))
    fresh = rs("a", generation=1, replicas=3, uid="new")
    assert own.view("ns", [fresh], labels={}) == [fresh]


def test_a_creation_shows_before_the_cache_lists_it_but_not_forever() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    created = rs("b", generation=1, replicas=1)
    own.remember(created, created=True)
    own.remember(rs("c", generation=1, replicas=1, rollout="other"), created=True)
    assert own.view("ns", [], labels={"deployctl.io/rollout": "shop"}) == [created]
    clock.now += UNSEEN_CREATION_SECONDS
    assert own.view("ns", [], labels={"deployctl.io/rollout": "shop"}) == []


def test_an_update_of_something_the_cache_no_longer_has_is_dropped() -> None:
    own = OwnWrites()
    own.remember(rs("a", generation=3, replicas=2))
    assert own.view("ns", [], labels={}) == []


# -- the order of traffic writes ----------------------------------------------------------


class DictCache:
    def __init__(self, *objs: dict[str, Any]) -> None:
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objs.get((str(namespace), name))

    def list(self, namespace: str | None = None, *, labels: Any = None) -> list[dict[str, Any]]:
        return [o for (ns, _), o in self.objs.items() if namespace in (None, ns)]


class RecordingKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def patch_service_selector(self, namespace: str, name: str, selector: Any) -> None:
        self.calls.append(("service", name))

    def set_httproute_weights(self, namespace: str, name: str, weights: Any, **_: Any) -> None:
        self.calls.append(("route", dict(weights)))


def service(name: str, revision: str) -> dict[str, Any]:
    selector = {"app": "shop", "deployctl.io/revision": revision}
    return {"metadata": {"namespace": "ns", "name": name}, "spec": {"selector": selector}}


def route(stable: int, canary: int) -> dict[str, Any]:
    refs = [{"name": "shop", "weight": stable}, {"name": "shop-canary", "weight": canary}]
    return {
        "metadata": {"namespace": "ns", "name": "shop"},
        "spec": {"rules": [{"backendRefs": refs}]},
    }


ROLLOUT = Rollout.model_validate(
    {
        "metadata": {"name": "shop", "namespace": "ns"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "app", "image": "shop:2"}]},
            },
            "strategy": {
                "canary": {
                    "stableService": "shop",
                    "canaryService": "shop-canary",
                    "trafficRouting": {"gatewayAPI": {"httpRoute": "shop"}},
                }
            },
        },
    }
)


def traffic_calls(
    services: list[dict[str, Any]], current: dict[str, Any], plan: Plan
) -> list[tuple[str, Any]]:
    kube = RecordingKube()
    empty = DictCache()
    caches = Caches(
        rollouts=empty,
        templates=empty,
        replicasets=empty,
        pods=empty,
        services=DictCache(*services),
        routes=DictCache(current),
    )
    reconciler = Reconciler(
        kube,  # type: ignore[arg-type]
        caches,
        engine=AnalysisEngine(measurer=None),  # type: ignore[arg-type]
        clock=lambda: datetime.now(UTC),
    )
    reconciler._route_traffic(ROLLOUT, plan)
    return kube.calls


def plan(selectors: dict[str, str], weights: dict[str, int], *, stable: str, canary: str | None):
    status = RolloutStatus(stable_revision=stable, canary_revision=canary)
    return Plan(
        replicas={},
        service_selectors=selectors,
        route_weights=weights,
        status=status,
        requeue_after=None,
    )


def test_a_service_losing_its_weight_changes_selector_only_after_the_route() -> None:
    """A newer canary: the canary Service would select pods that do not exist yet, so
    the route takes its weight away first."""
    calls = traffic_calls(
        [service("shop", "v1"), service("shop-canary", "v2")],
        route(70, 30),
        plan({"shop": "v1", "shop-canary": "v3"}, {"v1": 100, "v3": 0}, stable="v1", canary="v3"),
    )
    assert calls == [("route", {"shop": 100, "shop-canary": 0}), ("service", "shop-canary")]


def test_a_service_gaining_weight_changes_selector_before_the_route() -> None:
    """Promotion with a shrunk stable: the stable Service selects the new stable (all its
    pods Ready) before the route sends everything to it."""
    calls = traffic_calls(
        [service("shop", "v1"), service("shop-canary", "v2")],
        route(0, 100),
        plan({"shop": "v2", "shop-canary": "v2"}, {"v2": 100}, stable="v2", canary=None),
    )
    assert calls == [("service", "shop"), ("route", {"shop": 100, "shop-canary": 0})]
