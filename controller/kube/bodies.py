"""What the adapter sends besides the objects callers build: merge patches, owner
references, delete options. Pure functions of plain dicts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from controller.kube.kinds import ROLLOUTS, KindRef, Obj

MERGE_PATCH = "application/merge-patch+json"


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Obj:
    """The RFC 7386 JSON merge patch turning ``old`` into ``new``.

    Removed keys become ``None`` (delete), nested dicts recurse, lists and scalars are
    replaced whole. An empty result means "nothing to write".
    """
    patch: Obj = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = copy.deepcopy(value)
    return patch


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    """A controller ownerReference to ``owner`` (a Rollout as read from the API).

    ``blockOwnerDeletion`` makes foreground deletion of the Rollout wait for its
    ReplicaSets; it needs RBAC ``update`` on ``rollouts/finalizers``.
    """
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", ROLLOUTS.api_version),
        "kind": owner.get("kind", ROLLOUTS.kind),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(
    kind: KindRef, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
) -> Obj:
    """A copy of ``body`` to create in ``namespace``, controlled by ``owner`` (so the
    garbage collector removes it with the Rollout)."""
    obj = copy.deepcopy(dict(body))
    obj.setdefault("apiVersion", kind.api_version)
    obj.setdefault("kind", kind.kind)
    meta = obj.setdefault("metadata", {})
    meta["namespace"] = namespace
    meta["ownerReferences"] = [owner_reference(owner)]
    return obj


def delete_options(*, uid: str | None, propagation: str = "Background") -> Obj:
    """DeleteOptions; ``uid`` is a precondition, so a same-named successor is never hit."""
    options: Obj = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": propagation,
    }
    if uid is not None:
        options["preconditions"] = {"uid": uid}
    return options
