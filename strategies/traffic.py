"""Replica and traffic arithmetic for canaries: pure functions, no state.

Called by ``canary.py`` and ``preview.py``. Two ways to send a share of traffic to a
canary:

* **by replica share** (no ``trafficRouting``): the Services select both revisions'
  pods, so the canary's share of requests is its share of pods. The stable revision
  stays fully scaled (users were promised ``replicas`` stable pods); the canary gets
  ``ceil(weight x replicas / 100)`` more pods on top.
* **by HTTPRoute weights** (``trafficRouting.gatewayAPI``): the route sends exactly
  ``weight`` percent to the canary Service, so the canary needs only enough pods to
  carry that share, with a floor of one pod so that it can be analysed before it
  takes traffic. With ``dynamicStableScale`` the stable revision shrinks to the share
  it still carries.

Worked examples (replicas = 10):

=======  =============  ======  ============  ======================
weight   routed         canary  stable        note
=======  =============  ======  ============  ======================
0        no             0       10            no canary pods yet
10       no             1       10            1 of 11 pods ~ 9%
33       no             4       10            ceil(3.3)
0        yes            1       10            dark canary, 0% traffic
5        yes            1       10            ceil(0.5)
50       yes, dynamic   5       5             stable carries 50%
90       yes, dynamic   9       1             ceil(1.0)
=======  =============  ======  ============  ======================
"""

from __future__ import annotations


def share(weight: int, replicas: int) -> int:
    """``ceil(weight x replicas / 100)`` in integers, so 0.1 pod is a whole pod.

    >>> share(10, 10), share(33, 10), share(1, 3), share(0, 5), share(100, 7)
    (1, 4, 1, 0, 7)
    """
    return (weight * replicas + 99) // 100


def canary_replicas(weight: int, replicas: int, *, routed: bool) -> int:
    """Pods the canary needs to carry ``weight`` percent of the traffic.

    >>> canary_replicas(10, 10, routed=False), canary_replicas(0, 10, routed=False)
    (1, 0)
    >>> canary_replicas(0, 10, routed=True), canary_replicas(25, 10, routed=True)
    (1, 3)
    """
    if replicas == 0:
        return 0
    if routed:
        # A routed canary is analysed before it takes traffic, so it always has a pod.
        return max(1, share(weight, replicas))
    return share(weight, replicas)


def stable_replicas(weight: int, replicas: int, *, dynamic: bool) -> int:
    """Pods the stable revision keeps while the canary carries ``weight`` percent.

    ``weight`` must be the traffic the canary carries *now* (status.weight), not the
    weight it is heading for: stable shrinks only after traffic has left it.

    >>> stable_replicas(50, 10, dynamic=False), stable_replicas(50, 10, dynamic=True)
    (10, 5)
    >>> stable_replicas(95, 10, dynamic=True), stable_replicas(100, 10, dynamic=True)
    (1, 0)
    """
    if not dynamic:
        return replicas
    return share(100 - weight, replicas)


def route_weights(*, stable: str, canary: str | None, weight: int) -> dict[str, int]:
    """HTTPRoute backendRef weights, summing to 100.

    >>> route_weights(stable="a", canary="b", weight=20)
    {'a': 80, 'b': 20}
    >>> route_weights(stable="a", canary=None, weight=20)
    {'a': 100}
    """
    if canary is None or canary == stable:
        return {stable: 100}
    weight = min(max(weight, 0), 100)
    return {stable: 100 - weight, canary: weight}


def replica_share_percent(canary: int, stable: int) -> int:
    """The traffic share a canary gets by replica count alone, rounded down.

    >>> replica_share_percent(1, 10), replica_share_percent(5, 5), replica_share_percent(0, 0)
    (9, 50, 0)
    """
    total = canary + stable
    return (100 * canary) // total if total else 0
