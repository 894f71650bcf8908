"""A Rollout that delivers a Deployment's pod template (``spec.workloadRef``): pure rules.

Two jobs, no I/O (the reconciler reads the Deployment from its informer cache and
writes its scale through ``KubeWrites``):

- ``resolve``: the Rollout as the strategies need it, with the Deployment's pod template
  and selector in ``spec.template`` / ``spec.selector`` (and, when the Rollout does not
  set ``replicas``, the Deployment's size when it was taken over). The revision is the
  hash of that template, so a change of the Deployment's template is a new revision,
  delivered by the Rollout's strategy like any other.
- ``take_over``: what the Deployment's own replicas should be now, and where the
  take-over stands (``status.workload``), from what the pods of the Rollout give:

  - ``onsuccess``: 0 once the Rollout is Healthy with its stable revision fully
    available; before, the Deployment keeps all its pods;
  - ``progressively``: the Deployment's size at take-over minus the Rollout's available
    pods, never growing back: a Deployment pod goes only once a Rollout pod serves in its
    place;
  - ``never``: the Deployment is left alone;
  - hand-back (the ``deployctl.io/hand-back`` annotation): the Deployment is scaled back
    up to its size at take-over (never down: an HPA on it may already have sized it),
    and the Rollout's pods are scaled to 0 only once the Deployment has them all
    available again.

The Deployment controller never fights the Rollout: at 0 replicas an edit of the
Deployment's template makes it create an empty ReplicaSet and nothing else, while the
Rollout sees a new revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from controller.api import Phase, Rollout
from controller.api.rollout import LabelSelector, PodTemplateSpec
from controller.api.status import WorkloadStatus
from controller.validation import Problem, problems_of

Obj = dict[str, Any]

# Where the take-over stands (``status.workload.phase``).
TAKING_OVER = "TakingOver"
TAKEN_OVER = "TakenOver"
LEFT_ALONE = "LeftAlone"
HANDING_BACK = "HandingBack"
HANDED_BACK = "HandedBack"


def resolve(
    rollout: Rollout, deployment: Mapping[str, Any] | None
) -> tuple[Rollout | None, list[Problem]]:
    """``rollout`` with the Deployment's pod template and selector; or the problems."""
    ref = rollout.spec.workload_ref
    assert ref is not None
    found, problems = pod_template_of(rollout, "Deployment", deployment)
    if found is None:
        return None, problems
    template, match_labels = found
    spec = (deployment or {}).get("spec") or {}
    if rollout.spec.selector is not None and rollout.spec.selector.match_labels != match_labels:
        return None, [
            Problem(
                "spec.selector",
                f"must be left out or equal Deployment {ref.name!r}'s selector "
                + ", ".join(f"{k}={v}" for k, v in sorted(match_labels.items())),
            )
        ]
    update: dict[str, Any] = {
        "template": template,
        "selector": LabelSelector(match_labels=match_labels),
    }
    if "replicas" not in rollout.spec.model_fields_set:
        known = rollout.status.workload if rollout.status is not None else None
        update["replicas"] = (
            known.replicas if known is not None else int(spec.get("replicas", 1) or 0)
        )
    return rollout.model_copy(update={"spec": rollout.spec.model_copy(update=update)}), []


def pod_template_of(
    rollout: Rollout, kind: str, workload: Mapping[str, Any] | None
) -> tuple[tuple[PodTemplateSpec, dict[str, str]] | None, list[Problem]]:
    """The pod template and ``matchLabels`` of the ``kind`` that ``rollout``'s
    workloadRef names (a Deployment, a StatefulSet); or why it cannot be delivered:
    missing, selecting its pods by expressions, or with a template we cannot read."""
    ref = rollout.spec.workload_ref
    assert ref is not None
    where = "spec.workloadRef"
    if workload is None:
        return None, [
            Problem(
                f"{where}.name",
                f"{kind} {ref.name!r} not found in namespace "
                f"{rollout.metadata.namespace!r}; create it, or correct the name",
            )
        ]
    spec = workload.get("spec") or {}
    selector = spec.get("selector") or {}
    if selector.get("matchExpressions"):
        return None, [
            Problem(
                where,
                f"{kind} {ref.name!r} selects its pods with matchExpressions; a Rollout "
                "takes a matchLabels selector only",
            )
        ]
    try:
        template = PodTemplateSpec.model_validate(spec.get("template") or {})
    except ValidationError as exc:
        return None, [
            Problem(f"{where} ({kind} {ref.name!r}) template.{p.path}", p.message)
            for p in problems_of(exc)
        ]
    return (template, dict(selector.get("matchLabels") or {})), []


@dataclass(frozen=True)
class TakeOver:
    """What the pass does about the Deployment."""

    status: WorkloadStatus
    deployment_replicas: int | None = None
    """The Deployment's new ``spec.replicas``; None: leave it as it is."""
    scale_rollout_to_zero: bool = False
    """Hand-back: the Deployment is fully available again; the Rollout's pods may go."""
    events: list[tuple[str, str, str]] = field(default_factory=list)


def deployment_available(deployment: Mapping[str, Any], replicas: int) -> bool:
    """The Deployment controller has acted on its current spec and has ``replicas``
    up-to-date pods available."""
    meta, status = deployment.get("metadata") or {}, deployment.get("status") or {}
    spec_replicas = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    return (
        int(status.get("observedGeneration", 0) or 0) >= int(meta.get("generation", 0) or 0)
        and spec_replicas >= replicas
        and int(status.get("updatedReplicas", 0) or 0) >= replicas
        and int(status.get("availableReplicas", 0) or 0) >= replicas
    )


def take_over(
    rollout: Rollout,
    deployment: Mapping[str, Any],
    *,
    phase: Phase | None,
    stable_available: int,
    available: int,
    hand_back: bool,
) -> TakeOver:
    """The Deployment's scale for this pass (see the module docstring).

    ``phase`` is the Rollout's phase after this pass's plan; ``stable_available`` the
    available pods of its stable revision, ``available`` of all its revisions.
    """
    ref = rollout.spec.workload_ref
    assert ref is not None
    name = str(ref.name)
    current = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    known = rollout.status.workload if rollout.status is not None else None
    # The size to give back: the Deployment's when first seen (it is 0 after take-over).
    size = known.replicas if known is not None and known.deployment == name else current
    state = WorkloadStatus(deployment=name, replicas=size, phase=TAKING_OVER)
    previous = known.phase if known is not None else None

    def moved(to: str, reason: str, message: str) -> list[tuple[str, str, str]]:
        return [] if previous == to else [("Normal", reason, message)]

    if hand_back:
        if previous == HANDED_BACK or (
            previous == HANDING_BACK and deployment_available(deployment, size)
        ):
            done = state.model_copy(update={"phase": HANDED_BACK})
            events = moved(
                HANDED_BACK,
                "HandedBack",
                f"Deployment {name} has {size} available pods again; the Rollout's pods go",
            )
            return TakeOver(done, scale_rollout_to_zero=True, events=events)
        handing = state.model_copy(update={"phase": HANDING_BACK})
        events = moved(
            HANDING_BACK,
            "HandingBack",
            f"scaling Deployment {name} back to {size}; the Rollout's pods stay until "
            "they are all available",
        )
        # Only ever up to the size at take-over: an HPA left on the Deployment resumes as
        # soon as it is above 0 again and may size it past that; scaling it back down
        # would fight the HPA until the hand-back is over.
        return TakeOver(
            handing, deployment_replicas=size if current < size else None, events=events
        )
    if ref.scale_down == "never":
        return TakeOver(state.model_copy(update={"phase": LEFT_ALONE}))
    if ref.scale_down == "onsuccess":
        healthy = phase == Phase.HEALTHY and stable_available >= rollout.spec.replicas
        if not healthy:
            # Before the first success the Deployment keeps serving; after it, a later
            # revision failing never brings the Deployment back (the stable serves).
            if previous == TAKEN_OVER:
                target = 0 if current > 0 else None
                return TakeOver(state.model_copy(update={"phase": TAKEN_OVER}), target)
            return TakeOver(state)
        events = moved(
            TAKEN_OVER,
            "TakenOver",
            f"the Rollout's {stable_available} pods are available; Deployment {name} scaled to 0",
        )
        target = 0 if current > 0 else None
        return TakeOver(state.model_copy(update={"phase": TAKEN_OVER}), target, events=events)
    # progressively: one Deployment pod less for each Rollout pod available.
    wanted = min(current, max(0, size - available))
    if wanted == 0:
        events = moved(
            TAKEN_OVER,
            "TakenOver",
            f"the Rollout's {available} pods are available; Deployment {name} scaled to 0",
        )
        return TakeOver(
            state.model_copy(update={"phase": TAKEN_OVER}),
            0 if current > 0 else None,
            events=events,
        )
    return TakeOver(state, wanted if wanted != current else None)
