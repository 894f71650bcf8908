"""Which strategies make sense for which kind of workload, and the message when not.

A Rollout that points at a StatefulSet or a DaemonSet (``spec.workloadRef``) is moved by
that workload's own controller: a StatefulSet by its partition, a DaemonSet by pod
deletions under ``OnDelete`` (docs/stateful-workloads.md). Blue-green needs a second,
complete copy of the workload running beside the first and a switch of traffic between
the two; neither kind can have one. ``strategy_problem`` says so in words a person can
act on; the Rollout model's validator and ``deployctl validate`` report it at
``spec.strategy.blueGreen``. Pure: no imports beyond the standard library.
"""

from __future__ import annotations

STATEFULSET = "StatefulSet"
DAEMONSET = "DaemonSet"
STRATEGY_PATH = "spec.strategy.blueGreen"

_BLUE_GREEN_MESSAGES = {
    STATEFULSET: (
        "blue-green has no meaning for a StatefulSet: its pods are one ordered set with "
        "stable names, network identities and volumes, so a second full copy (green) "
        "cannot run beside the first (blue) and take over its identity; use "
        "spec.strategy.canary, which moves the highest ordinals first through the "
        "StatefulSet's updateStrategy.rollingUpdate.partition"
    ),
    DAEMONSET: (
        "blue-green has no meaning for a DaemonSet: it runs exactly one pod per Node, so a "
        "second full copy (green) cannot run beside the first (blue); use "
        "spec.strategy.canary, which moves the new revision Node by Node "
        "(canaryNodeSelector chooses the first ones)"
    ),
}


def strategy_problem(kind: str, strategy: str) -> str | None:
    """Why ``strategy`` (``canary``, ``blueGreen``, ``rolling``) cannot deliver a workload
    of ``kind``, or None when it can.

    >>> strategy_problem("StatefulSet", "blueGreen").startswith(
    ...     "blue-green has no meaning for a StatefulSet: ")
    True
    >>> strategy_problem("StatefulSet", "canary") is None
    True
    >>> strategy_problem("Deployment", "blueGreen") is None
    True
    """
    if strategy == "blueGreen":
        return _BLUE_GREEN_MESSAGES.get(kind)
    return None
