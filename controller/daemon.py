"""A Rollout that delivers a DaemonSet (``spec.workloadRef: {kind: DaemonSet}``): pure rules.

No I/O: the reconciler reads the DaemonSet, its pods, its ControllerRevisions and the
Nodes from informer caches, calls these functions, and applies the returned
``DaemonSetWrite`` through ``KubeWrites``. The arithmetic is ``strategies.daemonset``'s;
this module maps it onto the Rollout, as ``controller.stateful`` does for a StatefulSet
(whose helpers it shares: the template, the per-revision pod counts, pods by owner):

- ``resolve``: the Rollout with the DaemonSet's template and selector, ``replicas`` its
  Node count and ``stableScale: full`` (a DaemonSet keeps one pod per Node whatever the
  step, so ``setWeight: w`` wants ``ceil(w x nodes / 100)`` canary pods).
- ``revision_of``: the revision under delivery is the hash of the DaemonSet's newest
  ControllerRevision (its new pods' ``controller-revision-hash``), once the DaemonSet
  controller has seen the current template. After a rollback has put the stable template
  back, the newest names the stable revision again, yet the Rollout still refuses the
  failed one.
- ``move``: the update strategy, template and pod deletions the pass asks for. While a
  canary or a rollback is in flight the DaemonSet is ``OnDelete`` (the user's own
  strategy kept in an annotation, put back once every Node runs the stable revision).
  Every value is computed from what is observed (and the Nodes a rollback has replaced,
  kept in status), so a controller killed mid-step computes the same move again: no pod
  is replaced twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.api import Rollout, RolloutStatus
from controller.api.rollout import LabelSelector
from controller.api.status import DaemonSetStatus
from controller.stateful import CONTROLLER_REVISION_LABEL, owned_by, pod_ready, synced
from controller.validation import Problem
from controller.workload import pod_template_of
from strategies.daemonset import (
    NodeInfo,
    NodePod,
    PodDeletion,
    canary_nodes,
    replace_move,
    rollback_move,
)

Obj = Mapping[str, Any]

STRATEGY_ANNOTATION = "deployctl.io/update-strategy"
"""The DaemonSet's own ``updateStrategy`` (JSON) while deployctl holds it at OnDelete."""
ON_DELETE = {"type": "OnDelete"}
DEFAULT_MAX_UNAVAILABLE = 1


def max_unavailable(rollout: Rollout) -> int | str:
    """The canary's ``maxUnavailable`` if given; 1 otherwise (one Node at a time)."""
    canary = rollout.spec.strategy.canary
    if canary is None or "max_unavailable" not in canary.model_fields_set:
        return DEFAULT_MAX_UNAVAILABLE
    return canary.max_unavailable


def resolve(
    rollout: Rollout, daemonset: Obj | None, nodes: int
) -> tuple[Rollout | None, list[Problem]]:
    """``rollout`` with the DaemonSet's template, selector and Node count; or the problems."""
    found, problems = pod_template_of(rollout, "DaemonSet", daemonset)
    if found is None or daemonset is None:
        return None, problems
    template, match_labels = found
    strategy_spec = rollout.spec.strategy
    canary = strategy_spec.canary
    if canary is not None:
        strategy_spec = strategy_spec.model_copy(
            update={"canary": canary.model_copy(update={"stable_scale": "full"})}
        )
    update: dict[str, Any] = {
        "template": template,
        "selector": LabelSelector(match_labels=match_labels),
        "replicas": nodes,
        "strategy": strategy_spec,
    }
    return rollout.model_copy(update={"spec": rollout.spec.model_copy(update=update)}), []


def node_count(daemonset: Obj | None, pods: Iterable[Obj]) -> int:
    """The DaemonSet's Nodes: as many as its controller wants pods on
    (``desiredNumberScheduled``), or have one; a pod being replaced still counts."""
    desired = int(((daemonset or {}).get("status") or {}).get("desiredNumberScheduled", 0) or 0)
    return max(desired, len(node_pods(pods)))


def newest_revision(daemonset: Obj, revisions: Iterable[Obj]) -> str | None:
    """The ``controller-revision-hash`` of the DaemonSet's newest ControllerRevision."""
    owned = owned_by(daemonset, revisions)
    if not owned:
        return None
    newest = max(owned, key=lambda r: int(r.get("revision", 0) or 0))
    value = ((newest.get("metadata") or {}).get("labels") or {}).get(CONTROLLER_REVISION_LABEL)
    return str(value) if value else None


def revision_of(
    daemonset: Obj, revisions: Iterable[Obj], status: RolloutStatus | None
) -> str | None:
    """The revision the Rollout delivers; None until the DaemonSet controller has seen
    the DaemonSet's current template (and stored its ControllerRevision)."""
    newest = newest_revision(daemonset, revisions)
    if newest is None or not synced(daemonset):
        return None
    if (
        status is not None
        and status.aborted
        and status.canary_revision
        and newest == status.stable_revision
    ):
        return status.canary_revision  # the rollback wrote the stable template back
    return newest


def node_of(pod: Obj) -> str | None:
    """The Node a DaemonSet pod is for: where it is bound, or (not bound yet) the Node
    its required node affinity names, as the DaemonSet controller writes it."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return None


def node_pods(pods: Iterable[Obj], known: Iterable[str] = ()) -> dict[str, NodePod | None]:
    """Each Node's pod (the live one over a terminating one); ``known`` Nodes without
    a pod now (being replaced) map to None."""
    found: dict[str, NodePod | None] = dict.fromkeys(known)
    for pod in pods:
        node = node_of(pod)
        if node is None:
            continue
        meta = pod.get("metadata") or {}
        seen = NodePod(
            name=str(meta.get("name")),
            uid=str(meta.get("uid")),
            revision=str((meta.get("labels") or {}).get(CONTROLLER_REVISION_LABEL, "")),
            ready=pod_ready(pod),
            terminating=bool(meta.get("deletionTimestamp")),
        )
        current = found.get(node)
        if current is None or (current.terminating and not seen.terminating):
            found[node] = seen
    return found


def node_infos(names: Iterable[str], nodes: Mapping[str, Obj]) -> list[NodeInfo]:
    """The Nodes ``names`` with their labels (none when the Node is not cached)."""
    return [
        NodeInfo(name, dict(((nodes.get(name) or {}).get("metadata") or {}).get("labels") or {}))
        for name in names
    ]


def strategy_of(daemonset: Obj) -> dict[str, Any]:
    return dict((daemonset.get("spec") or {}).get("updateStrategy") or {"type": "RollingUpdate"})


def users_strategy(daemonset: Obj) -> dict[str, Any] | None:
    """The user's own ``updateStrategy`` kept while deployctl holds it; None if not held."""
    kept = ((daemonset.get("metadata") or {}).get("annotations") or {}).get(STRATEGY_ANNOTATION)
    if not kept:
        return None
    value = json.loads(kept)
    return dict(value) if isinstance(value, dict) else None


def runs_its_template(daemonset: Obj) -> bool:
    """Whether the DaemonSet controller counts every scheduled pod on the DaemonSet's
    current template (``updatedNumberScheduled``, in its status for this generation).

    Handing the strategy back waits for it: a new template written with OnDelete (by
    ``rollout --image``) can be in the DaemonSet read before its ControllerRevision is in
    the revisions read, so the revision still looks stable and every pod on it; the
    user's RollingUpdate would then roll the new template out itself, unasked."""
    status = daemonset.get("status") or {}
    desired = int(status.get("desiredNumberScheduled", 0) or 0)
    return synced(daemonset) and int(status.get("updatedNumberScheduled", 0) or 0) >= desired


@dataclass(frozen=True)
class DaemonSetWrite:
    """What the pass writes: the update strategy (OnDelete to hold, the user's to hand
    back), on a rollback's first write the stable template, and pod deletions."""

    hold: bool = False
    """Switch to OnDelete, keeping the user's strategy in ``STRATEGY_ANNOTATION``."""
    hand_back: dict[str, Any] | None = None
    """Restore this (the user's) strategy and drop the annotation."""
    template_of: str | None = None
    """Put the template of the ControllerRevision with this hash (the stable one) back."""
    deletions: tuple[PodDeletion, ...] = ()
    status: DaemonSetStatus | None = None


def move(
    daemonset: Obj,
    revisions: Iterable[Obj],
    pods: Iterable[Obj],
    nodes: Mapping[str, Obj],
    status: RolloutStatus,
    *,
    canary_pods: int,
    max_unavailable: int | str,
    canary_node_selector: Mapping[str, str] | None,
) -> DaemonSetWrite:
    """The write for this pass, from the plan's ``status`` and its canary pod count.

    * aborted: hold, the stable template back, then ``rollback_move`` replaces the pods
      of the Nodes not on the stable revision, within ``max_unavailable``; hand back;
    * a canary in flight: hold, then the first ``canary_pods`` Nodes in order
      (``canaryNodeSelector`` first) get their pods replaced within ``max_unavailable``;
    * nothing in flight (promoted): replace what is left off the stable revision, then
      hand the user's strategy back.
    """
    name = str((daemonset.get("metadata") or {}).get("name"))
    revisions = list(revisions)
    newest = newest_revision(daemonset, revisions) or ""
    before = status.daemon_set
    known: set[str] = set()
    if before is not None:
        # A Node whose pod is gone and not yet recreated is still one of the DaemonSet's:
        # forgetting it would shrink the Node count and shift the canary order.
        known = {n for names in before.nodes.values() for n in names}
        known |= set(before.replacing) | set(before.waiting_for) | set(before.rolling_back)
        known &= set(nodes or known)
    observed = node_pods(pods, known)
    # Fewer Nodes seen than the DaemonSet controller schedules on: a pod is gone and not
    # recreated yet on a Node nothing here remembers (a restart lost the status that
    # named it). Deleting or handing back now could count without it: wait to see it.
    desired = int((daemonset.get("status") or {}).get("desiredNumberScheduled", 0) or 0)
    incomplete = len(observed) < desired
    held = users_strategy(daemonset) is not None
    on_delete = strategy_of(daemonset).get("type") == "OnDelete"
    stable, canary = status.stable_revision, status.canary_revision
    by_revision: dict[str, list[str]] = {}
    for node, pod in sorted(observed.items()):
        if pod is not None:
            by_revision.setdefault(pod.revision, []).append(node)

    def write(
        moving: str,
        waiting: tuple[str, ...] = (),
        deletions: tuple[PodDeletion, ...] = (),
        *,
        template: str | None = None,
        rolling_back: tuple[str, ...] = (),
        hand_back: bool = False,
    ) -> DaemonSetWrite:
        state = DaemonSetStatus(
            name=name,
            nodes=by_revision,
            moving=moving,
            waiting_for=list(waiting),
            rolling_back=list(rolling_back),
            replacing=sorted(n for n, pod in observed.items() if pod is None),
        )
        if moving != "AtRest" and not held and not on_delete:
            # Take the strategy first, alone: nothing is deleted until OnDelete is in place.
            return DaemonSetWrite(hold=True, status=state)
        settled = hand_back and held and not incomplete and runs_its_template(daemonset)
        back = users_strategy(daemonset) if settled else None
        if incomplete:
            deletions = ()
        return DaemonSetWrite(
            template_of=template, deletions=deletions, hand_back=back, status=state
        )

    if stable is None or not synced(daemonset):
        return write("AtRest")
    if status.aborted and canary and canary != stable:
        rolled = tuple(before.rolling_back) if before is not None else ()
        if newest != stable:
            return write("RollingBack", template=stable, rolling_back=rolled)
        back = rollback_move(observed, stable, max_unavailable, rolling_back=rolled)
        # A refused pod that is not Ready serves nothing: replacing it costs no
        # availability, and the budget alone would wait on it for ever.
        broken = tuple(
            PodDeletion(node=node, pod=pod.name, uid=pod.uid)
            for node, pod in sorted(observed.items())
            if pod is not None and pod.revision != stable and not pod.ready and not pod.terminating
        )
        deletions = back.deletions + tuple(d for d in broken if d not in back.deletions)
        replaced = tuple(sorted(set(rolled) | {d.node for d in deletions}))
        if back.done:
            return write("AtRest", hand_back=True)
        return write("RollingBack", back.waiting_for, deletions, rolling_back=replaced)
    if canary and canary != stable:
        if newest != canary:
            return write("Canary")  # the controller has not taken the template in yet
        order = node_infos(sorted(observed), nodes)
        targets = canary_nodes(order, 100, canary_node_selector)[:canary_pods]
        step = replace_move(targets, observed, canary, max_unavailable)
        return write("Canary", step.waiting_for, step.deletions)
    if newest != stable:
        return write("AtRest")
    left = replace_move(sorted(observed), observed, stable, max_unavailable)
    if left.done:
        return write("AtRest", hand_back=True)
    return write("Promoting", left.waiting_for, left.deletions)
