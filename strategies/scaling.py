"""Moving ReplicaSets toward their sizes within maxSurge / maxUnavailable: pure arithmetic.

Used by ``rolling.py`` (``rolling_update``), by ``canary.py`` for a canary by replica
share (``converge``) and by ``preview.py``. A ReplicaSet is seen as ``Pods``: what it was
asked for (``desired``), its available pods and its pods not terminating, counted as
``controller.observe`` counts them (the Deployment controller's rules).

The two promises, as the Deployment controller keeps them:

* **surge**: the pods that exist or are about to (``footprint``, summed over the
  ReplicaSets) stay at or below ``replicas + surge``; growth happens only in that room;
* **unavailable**: the available pods that will stay (``counted``) stay at or above
  ``replicas - unavailable``; a scale-down spends only what is above that floor, and
  unavailable pods go first, for free.

Rounding is Kubernetes': a percentage maxSurge rounds up, a percentage maxUnavailable
rounds down, and when both come to 0 maxUnavailable becomes 1 so something can move.

``converge`` moves any number of ReplicaSets toward a target each, in an order of
importance: the most important grows first and shrinks last. Worked example, a canary by
replica share going from 10% to 50% of 10 replicas (targets canary 5, stable 5), maxSurge
25% (= 3), maxUnavailable 25% (= 2), pods available one pass after they are asked for:

====  ==============  ==============  =============================================
pass  canary (avail)  stable (avail)  why
====  ==============  ==============  =============================================
1     1 -> 4 (1)      9 -> 7 (9)      room 13 - 10 = 3; 10 available may lose 2
2     4 -> 5 (4)      7 -> 5 (7)      room 13 - 11 = 2, 1 wanted; 11 available: 3
3     5 (5)           5 (5)           at the targets: 50% of the pods
====  ==============  ==============  =============================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def resolve(value: int | str, total: int, *, round_up: bool) -> int:
    """An int-or-percent against ``total``, rounded the Kubernetes way.

    >>> resolve("25%", 10, round_up=True), resolve("25%", 10, round_up=False)
    (3, 2)
    >>> resolve(3, 10, round_up=True), resolve("1%", 10, round_up=True)
    (3, 1)
    """
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    return (percent * total + 99) // 100 if round_up else (percent * total) // 100


def surge_and_unavailable(
    max_surge: int | str, max_unavailable: int | str, *, replicas: int
) -> tuple[int, int]:
    """(surge, unavailable) in pods; never both 0.

    >>> surge_and_unavailable("25%", "25%", replicas=10)
    (3, 2)
    >>> surge_and_unavailable("0%", "10%", replicas=5)
    (0, 1)
    """
    surge = resolve(max_surge, replicas, round_up=True)
    unavailable = resolve(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass(frozen=True)
class Pods:
    """A ReplicaSet as the arithmetic sees it: desired pods (its spec), available pods
    and pods not terminating (``current``), as ``controller.observe`` counts them."""

    desired: int
    available: int
    current: int = 0

    @property
    def counted(self) -> int:
        """Available pods that will stay: never more than ``desired`` (a shrinking
        ReplicaSet's extra pods are going away, whatever their state)."""
        return min(self.desired, self.available)

    @property
    def footprint(self) -> int:
        """Pods it has or is about to have: its extra pods are still there until deleted."""
        return max(self.desired, self.current)


class Budget:
    """What one pass may spend: pods it may add (surge room) and available pods it may
    remove (above ``replicas - unavailable``)."""

    def __init__(
        self, *, replicas: int, surge: int, unavailable: int, pods: Sequence[Pods], synced: bool
    ) -> None:
        self.room = replicas + surge - sum(p.footprint for p in pods)
        self.spare = sum(p.counted for p in pods) - (replicas - unavailable)
        self.synced = synced

    def grow(self, wanted: int) -> int:
        """Pods to add (up to ``wanted``) from the surge room."""
        add = max(0, min(wanted, self.room))
        self.room -= add
        return add

    def shrink(self, pods: Pods, wanted: int) -> int:
        """Pods to remove (up to ``wanted``): unavailable ones free, the rest from the
        spare availability. None at all while a ReplicaSet controller has not acted on
        what we asked last (``synced`` False): the pods in view may not be the ones
        that will stay."""
        if not self.synced:
            return 0
        free = max(0, pods.desired - pods.counted)
        take = max(0, min(pods.desired, wanted, free + max(self.spare, 0)))
        self.spare -= max(0, take - free)
        return take


def converge(
    *,
    replicas: int,
    surge: int,
    unavailable: int,
    targets: Mapping[str, int],
    pods: Mapping[str, Pods],
    order: Sequence[str],
    synced: bool = True,
) -> dict[str, int]:
    """One pass: each ReplicaSet's new desired count, moving toward ``targets`` (a
    ReplicaSet without a target goes toward 0) within the surge room and the spare
    availability. ``order`` is by importance: the first grows first and shrinks last;
    ReplicaSets it does not name are the least important.

    >>> converge(replicas=10, surge=3, unavailable=2, targets={"c": 5, "s": 5},
    ...          pods={"c": Pods(1, 1, 1), "s": Pods(9, 9, 9)}, order=["s", "c"])
    {'s': 7, 'c': 4}

    An abort: stable grows back first; the canary's pods go as the budget allows.

    >>> converge(replicas=10, surge=3, unavailable=0, targets={"s": 10},
    ...          pods={"c": Pods(5, 5, 5), "s": Pods(5, 5, 5)}, order=["s", "c"])
    {'s': 8, 'c': 5}

    Resized from 10 to 20 at 10%: both grow to their share of 20 (the room a larger
    size makes is at least what it adds), and neither passes its target.

    >>> converge(replicas=20, surge=5, unavailable=5, targets={"s": 18, "c": 2},
    ...          pods={"c": Pods(1, 1, 1), "s": Pods(9, 9, 9)}, order=["s", "c"])
    {'s': 18, 'c': 2}
    """
    names = [*order, *sorted(n for n in pods if n not in order)]
    state = {name: pods.get(name, Pods(0, 0)) for name in names}
    budget = Budget(
        replicas=replicas,
        surge=surge,
        unavailable=unavailable,
        pods=list(state.values()),
        synced=synced,
    )
    out = {name: p.desired for name, p in state.items()}
    for name in names:
        wanted = targets.get(name, 0) - state[name].desired
        if wanted > 0:
            out[name] += budget.grow(wanted)
    for name in reversed(names):
        excess = state[name].desired - targets.get(name, 0)
        if excess > 0:
            out[name] -= budget.shrink(state[name], excess)
    return {name: n for name, n in out.items() if name in pods or name in targets}
