"""The change a Release makes to a member's pod template, computed without any cluster.

``apply_change(template, images=..., patch=...)`` returns the new template: first the
``templatePatch`` (RFC 7386 merge patch, except that lists of named entries —
``containers``, ``initContainers``, ``env``, ``volumes`` — are merged by ``name`` the
way ``kubectl patch`` merges them, so a patch can set one container's env without
restating every container), then ``images`` (container name -> image). Each member keeps
what differs in its own template (replicas, env per region); only what the Release
names changes. A container the change names but the template lacks is an error.

>>> base = {"spec": {"containers": [{"name": "app", "image": "shop:1", "env": [
...     {"name": "A", "value": "1"}]}]}}
>>> new = apply_change(base, images={"app": "shop:2"},
...                    patch={"spec": {"containers": [{"name": "app", "env": [
...                        {"name": "B", "value": "2"}]}]}})
>>> new["spec"]["containers"][0]["image"], [e["name"] for e in new["spec"]["containers"][0]["env"]]
('shop:2', ['A', 'B'])
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

NAMED_LISTS = frozenset({"containers", "initContainers", "env", "volumes"})


class ChangeError(ValueError):
    """The change cannot be applied to this template (the message says why)."""


def merge(base: Any, patch: Any, *, key: str = "") -> Any:
    """``patch`` merged into ``base``: mappings recurse, ``None`` deletes a key, named
    lists merge entry by entry on ``name``, anything else replaces."""
    if isinstance(patch, Mapping):
        out: dict[str, Any] = dict(base) if isinstance(base, Mapping) else {}
        for name, value in patch.items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = merge(out.get(name), value, key=name)
        return out
    if key in NAMED_LISTS and isinstance(patch, list) and isinstance(base, list):
        return _merge_named(base, patch, key=key)
    return copy.deepcopy(patch)


def _merge_named(base: list[Any], patch: list[Any], *, key: str) -> list[Any]:
    out = [copy.deepcopy(entry) for entry in base]
    index = {e.get("name"): i for i, e in enumerate(out) if isinstance(e, Mapping)}
    for entry in patch:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise ChangeError(f"templatePatch: every entry of {key} needs a name")
        name = entry["name"]
        if name in index:
            out[index[name]] = merge(out[index[name]], entry)
        else:
            index[name] = len(out)
            out.append(copy.deepcopy(dict(entry)))
    return out


def apply_change(
    template: Mapping[str, Any], *, images: Mapping[str, str], patch: Mapping[str, Any]
) -> dict[str, Any]:
    """The new pod template; ``ChangeError`` when a named container does not exist."""
    # A deep copy: ``merge`` shares untouched parts with ``template``, which is not ours.
    new: dict[str, Any] = copy.deepcopy(merge(template, patch) if patch else dict(template))
    containers = (new.get("spec") or {}).get("containers") or []
    by_name = {c.get("name"): c for c in containers if isinstance(c, dict)}
    unknown = sorted(name for name in images if name not in by_name)
    if unknown:
        raise ChangeError(
            f"no container named {', '.join(unknown)} in the Rollout's template; "
            f"containers: {', '.join(str(n) for n in by_name) or 'none'}"
        )
    for name, image in images.items():
        by_name[name]["image"] = image
    return new
