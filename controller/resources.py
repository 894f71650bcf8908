"""The Kubernetes objects a Rollout owns, built as plain bodies (no I/O).

The reconciler asks here what a revision's ReplicaSet should look like (the part of a
Service's selector it writes is ``controller.tenancy``'s); ``controller.kube`` sends them
(and sets the Rollout as the controlling owner, so the garbage collector removes them
with it). Every object is labelled with the rollout and the revision.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from controller.api import Rollout
from controller.api.revision import replicaset_name
from controller.names import (
    BASELINE_ROLE,
    IMAGES_ANNOTATION,
    REVISION_LABEL,
    ROLE_LABEL,
    ROLLOUT_LABEL,
    TEMPLATE_ANNOTATION,
)

MANAGED_BY = {"app.kubernetes.io/managed-by": "deployctl"}


def saved_template(replicaset: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template a revision's ReplicaSet was made from.

    ``deployctl undo`` and a release's rollback restore exactly this, so the Rollout gets
    the same revision hash back, not a look-alike with the apiserver's defaults in it.
    """
    annotations = (replicaset.get("metadata") or {}).get("annotations") or {}
    saved = annotations.get(TEMPLATE_ANNOTATION)
    if saved:
        template: dict[str, Any] = json.loads(saved)
        return template
    # Older ReplicaSets: their template minus the labels the controller added.
    template = copy.deepcopy(dict(replicaset["spec"]["template"]))
    labels = template.get("metadata", {}).get("labels", {})
    for key in (ROLLOUT_LABEL, REVISION_LABEL):
        labels.pop(key, None)
    return template


def revision_labels(rollout: Rollout, revision: str) -> dict[str, str]:
    return {ROLLOUT_LABEL: str(rollout.metadata.name), REVISION_LABEL: revision}


def replicaset_body(rollout: Rollout, *, revision: str, replicas: int) -> dict[str, Any]:
    """The ReplicaSet for ``revision`` of ``rollout``, from the spec's pod template."""
    template = copy.deepcopy(rollout.spec.pod_template.to_dict())
    labels = {
        **template.get("metadata", {}).get("labels", {}),
        **revision_labels(rollout, revision),
    }
    template.setdefault("metadata", {})["labels"] = labels
    selector = {**rollout.spec.pod_selector.match_labels, **revision_labels(rollout, revision)}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": replicaset_name(str(rollout.metadata.name), revision),
            "namespace": rollout.metadata.namespace,
            "labels": {**labels, **MANAGED_BY},
            "annotations": {
                IMAGES_ANNOTATION: _images(template),
                # The template exactly as the Rollout had it (before our labels), so that
                # `deployctl undo` restores the same revision hash, not a look-alike.
                TEMPLATE_ANNOTATION: json.dumps(
                    rollout.spec.pod_template.to_dict(), sort_keys=True, separators=(",", ":")
                ),
            },
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": rollout.spec.min_ready_seconds,
            "selector": {"matchLabels": selector},
            "template": template,
        },
    }


def baseline_body(
    rollout: Rollout, stable_replicaset: Mapping[str, Any], *, revision: str, replicas: int
) -> dict[str, Any]:
    """The baseline's ReplicaSet: the stable ReplicaSet's pod template (so exactly the
    stable revision), under its own revision label value ``revision`` and
    ``deployctl.io/role: baseline`` (``strategies.baseline``)."""
    # The stable's template as the Rollout had it (its labels without ours), so the
    # baseline differs from the stable revision only in the labels set here.
    template = saved_template(stable_replicaset)
    labels = {
        **(template.get("metadata") or {}).get("labels", {}),
        **revision_labels(rollout, revision),
        ROLE_LABEL: BASELINE_ROLE,
    }
    template.setdefault("metadata", {})["labels"] = labels
    selector = {**rollout.spec.pod_selector.match_labels, **revision_labels(rollout, revision)}
    annotations = (stable_replicaset.get("metadata") or {}).get("annotations") or {}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": replicaset_name(str(rollout.metadata.name), revision),
            "namespace": rollout.metadata.namespace,
            "labels": {**labels, **MANAGED_BY},
            "annotations": {
                k: v
                for k, v in annotations.items()
                if k in (IMAGES_ANNOTATION, TEMPLATE_ANNOTATION)
            },
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": rollout.spec.min_ready_seconds,
            "selector": {"matchLabels": selector},
            "template": template,
        },
    }


_PORT_KEYS = ("name", "protocol", "appProtocol", "port", "targetPort")


def baseline_service_body(
    rollout: Rollout, stable_service: Mapping[str, Any], *, name: str, revision: str
) -> dict[str, Any]:
    """The Service in front of a canary's baseline pods, for a router's third backend:
    the stable Service's ports and selector, with the baseline's revision in place of
    the stable's (its ports without node ports, so it never takes one from the node)."""
    spec = stable_service.get("spec") or {}
    selector = {**(spec.get("selector") or {}), REVISION_LABEL: revision}
    ports = [
        {key: copy.deepcopy(port[key]) for key in _PORT_KEYS if key in port}
        for port in spec.get("ports") or []
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "labels": {
                ROLLOUT_LABEL: str(rollout.metadata.name),
                ROLE_LABEL: BASELINE_ROLE,
                **MANAGED_BY,
            },
        },
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }


def _images(template: Mapping[str, Any]) -> str:
    containers = template.get("spec", {}).get("containers", [])
    return ",".join(f"{c['name']}={c['image']}" for c in containers)


def images_of(replicaset: Mapping[str, Any]) -> dict[str, str]:
    """Container name -> image, from a ReplicaSet we created."""
    containers = replicaset.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return {str(c["name"]): str(c["image"]) for c in containers or []}
