"""Which of the node agent's Nodes a pending pod may be bound to: the scheduler's filters.

No kube-scheduler runs in the sandbox; the node agent binds pending pods itself. With one
Node any pod would do, but an agent playing several Nodes must place pods as the
scheduler would, or the real DaemonSet controller's pods (one per Node, each pinned by a
required node affinity on ``metadata.name``) would land on the wrong Node. This module
decides, for one pod and the agent's Nodes, which Nodes fit:

- ``spec.nodeSelector``: every label must match;
- ``spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution``: one of
  the terms must match; a term's ``matchExpressions`` (``In``, ``NotIn``, ``Exists``,
  ``DoesNotExist``, ``Gt``, ``Lt``) test the Node's labels and its ``matchFields`` the
  field ``metadata.name`` (the only field the scheduler supports there).

Taints, resources, ports and pod (anti-)affinity are not modelled: the agent's Nodes have
no taints and more capacity than a test uses. Pure functions, no API calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

JSON = dict[str, Any]


def _matches(requirement: Mapping[str, Any], value: str | None) -> bool:
    operator = requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            number, bound = int(value), int(values[0])
        except ValueError:
            return False
        return number > bound if operator == "Gt" else number < bound
    return False  # an unknown operator matches nothing, as the scheduler rejects it


def _term_matches(term: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no objects (the API's rule)
    for requirement in expressions:
        if not _matches(requirement, labels.get(str(requirement.get("key")))):
            return False
    for requirement in fields:
        if requirement.get("key") != "metadata.name" or not _matches(requirement, name):
            return False
    return True


def node_fits(pod: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    """Whether ``pod`` may be bound to the Node ``name`` with ``labels``."""
    spec = pod.get("spec") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is None:
        return True
    return any(_term_matches(term, name, labels) for term in terms)


def pick_node(
    pod: Mapping[str, Any], nodes: Sequence[tuple[str, Mapping[str, str]]], turn: int
) -> str | None:
    """The Node to bind ``pod`` to, or None when none of ``nodes`` fits.

    Among the Nodes that fit, the ``turn``-th in rotation: the agent passes a counter, so
    pods with no placement constraint spread over its Nodes as the scheduler's spreading
    would spread them.
    """
    fitting = [name for name, labels in nodes if node_fits(pod, name, labels)]
    if not fitting:
        return None
    return fitting[turn % len(fitting)]
