"""Replica and traffic arithmetic for canaries: pure functions, no state.

Called by ``canary.py`` and ``preview.py``. Three ways to send a share of traffic to a
canary:

* **by replica share** (no ``trafficRouting``; the default, ``stableScale: share``): a
  Service selecting the application's pods sends each revision its share of the pods,
  so ``setWeight: w`` means ``round(w x replicas / 100)`` canary pods and the rest
  stable, the rollout keeping ``replicas`` pods in all (``share_targets``). While the
  weight is strictly between 0 and 100 each side keeps at least one pod (one replica:
  one pod each, the only split one replica has). The pods move toward those counts
  within maxSurge / maxUnavailable (``scaling.converge``), so the stable never drops
  below its share of the weight being set, nor the rollout below
  ``replicas - maxUnavailable`` available pods.
* **by replica share with ``stableScale: full``**: the stable keeps all ``replicas``
  pods and the canary gets ``ceil(w x replicas / 100)`` more on top; its share of the
  traffic is then ``canary / (replicas + canary)``, less than ``w`` (status says so).
* **by HTTPRoute weights** (``trafficRouting.gatewayAPI``): the route sends exactly
  ``weight`` percent to the canary Service, so the canary needs only enough pods to
  carry that share, with a floor of one pod so that it can be analysed before it
  takes traffic. With ``dynamicStableScale`` the stable revision shrinks to the share
  it still carries.

Worked examples (replicas = 10):

=======  ===============  ======  ======  ===================================
weight   mode             canary  stable  canary's share of the traffic
=======  ===============  ======  ======  ===================================
10       share            1       9       10%
33       share            3       7       30% (3.3 rounds to 3)
5        share            1       9       10% (at least one pod)
95       share            9       1       90% (stable keeps one pod)
80       full             8       10      44% (8 of 18 pods)
0        routed           1       10      0%: a dark canary, analysed first
5        routed           1       10      5% (ceil(0.5))
50       routed, dynamic  5       5       50%
90       routed, dynamic  9       1       90% (ceil(1.0))
=======  ===============  ======  ======  ===================================
"""

from __future__ import annotations


def share(weight: int, replicas: int) -> int:
    """``ceil(weight x replicas / 100)`` in integers, so 0.1 pod is a whole pod.

    >>> share(10, 10), share(33, 10), share(1, 3), share(0, 5), share(100, 7)
    (1, 4, 1, 0, 7)
    """
    return (weight * replicas + 99) // 100


def share_targets(weight: int, replicas: int) -> tuple[int, int]:
    """(canary, stable) pods for ``weight`` percent of the traffic by replica share.

    The canary gets ``w x replicas / 100`` rounded (a half pod goes to the stable),
    so every weight is within half a pod of its share; at least one pod each while the
    weight is strictly between 0 and 100, which keeps it within one pod.

    >>> share_targets(10, 10), share_targets(33, 10), share_targets(80, 5)
    ((1, 9), (3, 7), (4, 1))
    >>> share_targets(5, 10), share_targets(95, 10), share_targets(50, 3)
    ((1, 9), (9, 1), (1, 2))
    >>> share_targets(10, 20), share_targets(0, 4), share_targets(100, 4), share_targets(30, 1)
    ((2, 18), (0, 4), (4, 0), (1, 1))
    """
    if replicas <= 0:
        return 0, 0
    if weight <= 0:
        return 0, replicas
    if weight >= 100:
        return replicas, 0
    if replicas == 1:
        return 1, 1
    canary = min(max((weight * replicas + 49) // 100, 1), replicas - 1)
    return canary, replicas - canary


def canary_replicas(weight: int, replicas: int, *, routed: bool) -> int:
    """Pods the canary needs to carry ``weight`` percent of the traffic beside a stable
    at full size (routed, or by replica share with ``stableScale: full``).

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
    """Pods the stable revision keeps while a routed canary carries ``weight`` percent.

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


def route_weights(
    *, stable: str, canary: str | None, weight: int, baseline: str | None = None
) -> dict[str, int]:
    """HTTPRoute backendRef weights, summing to 100.

    With ``baseline`` (the revision of baseline pods ready to serve) the baseline gets
    what the canary gets and the stable the rest; above 50 both are capped at 50, so
    the two are always judged under the same share (``controller.routers.base``).

    >>> route_weights(stable="a", canary="b", weight=20)
    {'a': 80, 'b': 20}
    >>> route_weights(stable="a", canary=None, weight=20)
    {'a': 100}
    >>> route_weights(stable="a", canary="b", weight=20, baseline="a-baseline")
    {'a': 60, 'b': 20, 'a-baseline': 20}
    >>> route_weights(stable="a", canary="b", weight=80, baseline="a-baseline")
    {'a': 0, 'b': 50, 'a-baseline': 50}
    """
    if canary is None or canary == stable:
        return {stable: 100}
    weight = min(max(weight, 0), 100)
    if baseline is None or weight == 0:
        return {stable: 100 - weight, canary: weight}
    share = min(weight, 50)
    return {stable: 100 - 2 * share, canary: share, baseline: share}


def replica_share_percent(canary: int, others: int) -> int:
    """The share of traffic a canary gets by replica count: its pods over all the pods
    serving, in percent, rounded to the nearest (a half up).

    >>> replica_share_percent(1, 9), replica_share_percent(8, 10), replica_share_percent(1, 2)
    (10, 44, 33)
    >>> replica_share_percent(2, 1), replica_share_percent(5, 5), replica_share_percent(0, 0)
    (67, 50, 0)
    """
    total = canary + others
    return (200 * canary + total) // (2 * total) if total else 0
