"""Traffic routers: how a canary's weights, header routes and mirror routes reach the
data path, one implementation per kind (``gatewayapi``, ``istio``, ``nginx``).

The strategies decide *what* (``Plan.route_weights``, ``header_routes``,
``mirror_routes``); a router decides *how* for its kind of object and reads back what
the objects say (``base.Router``). ``router_for`` picks the one a Rollout names.
Routers read the informer caches and write through ``base.RouterWrites`` (implemented
by ``controller.kube.Kube``), so they never import the Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.api import Rollout
from controller.routers.base import (
    CANARY,
    STABLE,
    Router,
    RouterCaches,
    RouterWrites,
    TrafficTarget,
)
from controller.routers.gatewayapi import GatewayAPIRouter
from controller.routers.istio import IstioRouter
from controller.routers.nginx import NginxRouter, canary_ingress_name

__all__ = [
    "CANARY",
    "STABLE",
    "GatewayAPIRouter",
    "IstioRouter",
    "NginxRouter",
    "Router",
    "RouterCaches",
    "RouterWrites",
    "TrafficTarget",
    "canary_ingress_name",
    "router_for",
]


def router_for(
    rollout: Rollout,
    *,
    caches: RouterCaches,
    kube: RouterWrites,
    owner: Mapping[str, Any],
) -> Router | None:
    """The router of a canary with ``trafficRouting``; None for any other Rollout.

    ``owner`` is the Rollout as read from the API (objects the router creates are owned
    by it).
    """
    canary = rollout.spec.strategy.canary
    if canary is None or canary.traffic_routing is None:
        return None
    kind = canary.traffic_routing.router
    if kind == "gatewayAPI":
        return GatewayAPIRouter(rollout, caches=caches, kube=kube)
    if kind == "istio":
        return IstioRouter(rollout, caches=caches, kube=kube)
    return NginxRouter(rollout, caches=caches, kube=kube, owner=owner)
