"""Gateway API HTTPRoutes: reading and setting the weights of their backendRefs.

A canary with ``trafficRouting.gatewayAPI`` splits traffic by the weights of the
stable and canary Services' backendRefs. ``controller.observe`` reads them
(``backend_weights``) into the strategy's snapshot; ``Kube.set_httproute_weights`` sends
the rules ``reweighted`` returns. Pure functions of the route as read from the API.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def backend_weights(route: Mapping[str, Any]) -> dict[str, int]:
    """Service name -> backendRef weight as the route has them now (default weight 1)."""
    out: dict[str, int] = {}
    for rule in route.get("spec", {}).get("rules", []):
        for backend in rule.get("backendRefs", []):
            out[str(backend.get("name"))] = int(backend.get("weight", 1))
    return out


def reweighted(route: Mapping[str, Any], weights: Mapping[str, int]) -> list[Any] | None:
    """The route's rules with every backendRef named in ``weights`` (Service name →
    weight) set to it; None when they already match (nothing to write).

    All rules are returned, because a merge patch replaces a list whole.
    """
    rules = copy.deepcopy(route.get("spec", {}).get("rules") or [])
    changed = False
    for rule in rules:
        for ref in rule.get("backendRefs") or []:
            wanted = weights.get(ref.get("name", ""))
            if wanted is not None and ref.get("weight", 1) != wanted:
                ref["weight"] = wanted
                changed = True
    return rules if changed else None
