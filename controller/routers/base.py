"""What every traffic router shares: the target a plan sets, the seams it reads and
writes through, and the ``Router`` shape.

A router is one implementation per kind of data path (``gatewayapi``, ``istio``,
``nginx``). The reconciler builds one per pass for a canary with ``trafficRouting``
(``controller.routers.router_for``) and asks it three things:

- ``problems()``: the objects it needs are missing or not shaped as it needs them; the
  reconciler reports these as InvalidSpec and touches nothing;
- ``weights()``: the stable and canary weights the objects carry now (read back from
  the informer caches), for the strategy's snapshot;
- ``apply(target)``: make the objects say what ``target`` says (weights, header routes,
  mirror routes). Nothing is written when they already do.

Routers never import the Kubernetes client: they read cached objects and write through
``RouterWrites``, which ``controller.kube.Kube`` implements.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from controller.cache import Cache
from controller.cache import RouterWrites as RouterWrites  # re-exported for the routers
from strategies.plan import HeaderRoute, MirrorRoute

STABLE, CANARY, BASELINE = "stable", "canary", "baseline"


@dataclass(frozen=True)
class TrafficTarget:
    """Where traffic should go after this pass."""

    stable: str
    """The stable revision's hash."""
    canary: str | None
    """The canary revision's hash, or None when there is none in flight."""
    canary_weight: int
    """Percent of the weighted traffic on the canary (0 without a canary)."""
    header_routes: tuple[HeaderRoute, ...] = ()
    mirror_routes: tuple[MirrorRoute, ...] = ()
    baseline: bool = False
    """Baseline pods (fresh pods of the stable revision) run beside the canary and get
    the canary's share through their own Service (``baseline_split``)."""


@dataclass(frozen=True)
class RouterCaches:
    """The informer caches of the router objects; None where the CRD is not installed
    (or the controller may not list it)."""

    httproutes: Cache | None = None
    virtualservices: Cache | None = None
    destinationrules: Cache | None = None
    ingresses: Cache | None = None


class Router(Protocol):
    def problems(self) -> list[Any]:
        """``controller.validation.Problem``s: what is missing or misshapen."""
        ...

    def weights(self) -> dict[str, int] | None:
        """``{"stable": w, "canary": w}`` as the objects carry them now; None when they
        cannot be read (the objects are missing)."""
        ...

    def apply(self, target: TrafficTarget) -> None: ...


def canary_weight_of(target: TrafficTarget) -> int:
    """The canary's weight, 0 when there is no canary, clamped to 0..100."""
    if target.canary is None or target.canary == target.stable:
        return 0
    return min(max(target.canary_weight, 0), 100)


def baseline_service_of(stable_service: str) -> str:
    """The name of the Service that selects a Rollout's baseline pods."""
    return f"{stable_service}-baseline"


def baseline_split(target: TrafficTarget) -> dict[str, int]:
    """Percent of the weighted traffic per backend, summing to 100.

    Without baseline pods: stable 100 - w, canary w. With them the baseline gets what
    the canary gets, so the two are judged under the same share of traffic, and the
    stable keeps the rest: 100 - 2w. A weight above 50 cannot be given to both; each is
    then capped at 50 (stable 0) rather than scaled down, so the canary never gets less
    than the weight it had at 50 and the two shares stay equal.

    >>> baseline_split(TrafficTarget("s", "c", 30, baseline=True))
    {'stable': 40, 'canary': 30, 'baseline': 30}
    >>> baseline_split(TrafficTarget("s", "c", 80, baseline=True))
    {'stable': 0, 'canary': 50, 'baseline': 50}
    >>> baseline_split(TrafficTarget("s", "c", 30))
    {'stable': 70, 'canary': 30, 'baseline': 0}
    """
    weight = canary_weight_of(target)
    if not target.baseline or weight == 0:
        return {STABLE: 100 - weight, CANARY: weight, BASELINE: 0}
    share = min(weight, 50)
    return {STABLE: 100 - 2 * share, CANARY: share, BASELINE: share}


def without_defaults(value: Any, defaults: Iterable[tuple[str, Any]]) -> Any:
    """``value`` with every ``key: default`` pair removed at any depth, so an object the
    apiserver filled with its schema's defaults compares equal to the one we wrote.

    >>> without_defaults({"a": [{"weight": 1, "name": "x"}]}, [("weight", 1)])
    {'a': [{'name': 'x'}]}
    """
    pairs = list(defaults)
    if isinstance(value, Mapping):
        return {
            k: without_defaults(v, pairs)
            for k, v in value.items()
            if not any(k == key and v == default for key, default in pairs)
        }
    if isinstance(value, list):
        return [without_defaults(v, pairs) for v in value]
    return copy.deepcopy(value)
