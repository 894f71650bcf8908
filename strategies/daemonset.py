"""A DaemonSet canary in numbers: which Nodes, how many at a time, which pods to delete.

A DaemonSet is delivered with its ``updateStrategy`` switched to ``OnDelete`` while
deployctl owns the update: the real DaemonSet controller then creates a pod on the new
template only where a pod is gone, so deleting the pods of chosen Nodes is the canary.
Everything here is pure; the reconciler observes the pods per Node (``NodePod``) and
applies the returned ``DaemonSetMove`` by deleting each listed pod with a precondition on
its UID (``Kube.delete_pod``).

* ``setWeight: w`` (percent) puts the new revision on ``ceil(w x nodes / 100)`` Nodes
  (``canary_nodes``): the Nodes matching ``canaryNodeSelector`` first, then the others,
  each group by name. The order is deterministic and does not depend on the weight, so a
  higher weight's Nodes always include a lower one's: a step never swaps a canary Node
  back.
* At most ``maxUnavailable`` pods are unavailable at a time, counting every Node of the
  DaemonSet (a pod missing, not Ready or terminating, whoever caused it): a step deletes
  only within what is left of that budget (``replace_move``).
* A rollback puts the previous template back and replaces the pods of the Nodes that
  are not on the stable revision, within the same budget (``rollback_move``); the Nodes
  never updated are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from strategies.scaling import resolve


@dataclass(frozen=True)
class NodeInfo:
    """One Node the DaemonSet runs on: its name and labels."""

    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class NodePod:
    """The DaemonSet's pod on one Node as observed (``controller-revision-hash``)."""

    name: str
    uid: str
    revision: str
    ready: bool
    terminating: bool = False

    @property
    def available(self) -> bool:
        return self.ready and not self.terminating


@dataclass(frozen=True)
class PodDeletion:
    """Delete ``pod`` on ``node``, only if its UID is still ``uid``."""

    node: str
    pod: str
    uid: str


@dataclass(frozen=True)
class DaemonSetMove:
    """What to do this pass: the deletions (possibly none) and whether the move is done.

    ``done`` means every target Node has an available pod on the wanted revision (the
    step may advance); ``waiting_for`` lists the target Nodes not there yet, in order.
    """

    deletions: tuple[PodDeletion, ...]
    done: bool
    waiting_for: tuple[str, ...] = ()


def selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` carry every key and value of ``selector`` (None: no selector)."""
    return selector is not None and all(labels.get(k) == v for k, v in selector.items())


def node_order(
    nodes: Sequence[NodeInfo], canary_node_selector: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The order Nodes receive a new revision: selector matches first, then by name.

    >>> nodes = [NodeInfo("n1", {"zone": "a"}), NodeInfo("n2", {"zone": "b"}), NodeInfo("n0", {})]
    >>> node_order(nodes, {"zone": "b"})
    ('n2', 'n0', 'n1')
    """
    return tuple(
        node.name
        for node in sorted(
            nodes,
            key=lambda node: (not selector_matches(canary_node_selector, node.labels), node.name),
        )
    )


def canary_node_count(node_count: int, weight: int) -> int:
    """``ceil(w x nodes / 100)``: any weight above 0 reaches at least one Node.

    >>> canary_node_count(10, 20), canary_node_count(10, 1), canary_node_count(10, 0)
    (2, 1, 0)
    """
    if node_count < 0 or not 0 <= weight <= 100:
        raise ValueError(f"node count {node_count} and weight {weight} out of range")
    return -(-weight * node_count // 100)


def canary_nodes(
    nodes: Sequence[NodeInfo], weight: int, canary_node_selector: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The Nodes on the new revision at ``weight``: the first ``ceil(w x nodes)`` in order."""
    return node_order(nodes, canary_node_selector)[: canary_node_count(len(nodes), weight)]


def unavailable_budget(max_unavailable: int | str, node_count: int) -> int:
    """``maxUnavailable`` in pods: a percentage of the Nodes rounds up, as the DaemonSet
    controller rounds it, and the budget is at least 1 so the rollout can move.

    >>> unavailable_budget("25%", 10), unavailable_budget(0, 10), unavailable_budget(3, 10)
    (3, 1, 3)
    """
    return max(1, resolve(max_unavailable, node_count, round_up=True))


def replace_move(
    targets: Sequence[str],
    pods: Mapping[str, NodePod | None],
    revision: str,
    max_unavailable: int | str,
) -> DaemonSetMove:
    """Delete the old pods of ``targets`` (in order) within the unavailability budget.

    ``pods`` maps every Node of the DaemonSet to its pod (None: none yet; the DaemonSet
    controller is creating one, on the current template). A pod created but not bound
    yet belongs to the Node its required node affinity names, not to no Node: the
    caller maps it so, or leaves that Node None meanwhile. A target whose pod is on
    ``revision`` needs nothing; one whose old pod is terminating or missing is already
    being replaced and uses the budget. Only available pods on another revision are
    deleted, at most as many as the budget has left after every Node's unavailable pod.
    """
    unavailable = sum(1 for pod in pods.values() if pod is None or not pod.available)
    room = unavailable_budget(max_unavailable, len(pods)) - unavailable
    deletions: list[PodDeletion] = []
    waiting: list[str] = []
    for node in targets:
        pod = pods.get(node)
        if pod is not None and pod.revision == revision and pod.available:
            continue
        waiting.append(node)
        if pod is None or not pod.available or pod.revision == revision:
            continue  # being replaced, or new and not Ready yet: wait for it
        if room > 0:
            deletions.append(PodDeletion(node=node, pod=pod.name, uid=pod.uid))
            room -= 1
    return DaemonSetMove(deletions=tuple(deletions), done=not waiting, waiting_for=tuple(waiting))


def canary_move(
    nodes: Sequence[NodeInfo],
    pods: Mapping[str, NodePod | None],
    weight: int,
    revision: str,
    max_unavailable: int | str,
    canary_node_selector: Mapping[str, str] | None = None,
) -> DaemonSetMove:
    """One pass of a ``setWeight`` step: the canary Nodes' pods onto ``revision``."""
    targets = canary_nodes(nodes, weight, canary_node_selector)
    return replace_move(targets, pods, revision, max_unavailable)


def updated_nodes(pods: Mapping[str, NodePod | None], stable: str) -> tuple[str, ...]:
    """The Nodes whose pod is on another revision than ``stable``, by name."""
    return tuple(sorted(n for n, p in pods.items() if p is not None and p.revision != stable))


def rollback_move(
    pods: Mapping[str, NodePod | None],
    stable: str,
    max_unavailable: int | str,
    *,
    rolling_back: Sequence[str] = (),
) -> DaemonSetMove:
    """One pass of a rollback, once the previous template is back on the DaemonSet.

    The Nodes replaced are those whose pod is not on ``stable`` now, plus
    ``rolling_back``: the Nodes already replaced by earlier passes of this rollback
    (kept in status), whose new pods must be Ready before it is done. A Node never
    updated is never touched.
    """
    targets = sorted(set(updated_nodes(pods, stable)) | set(rolling_back))
    return replace_move(targets, pods, stable, max_unavailable)
