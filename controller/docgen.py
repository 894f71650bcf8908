"""Write ``docs/reference.md``: every field of the deployctl.io resources, from the models.

Run by ``make crds`` next to the CRD generator, so the reference can never drift from
what the apiserver and the controller accept; a test compares the committed file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from controller.api import AnalysisTemplate, Rollout
from controller.api.policy import DeliveryPolicy
from controller.api.release import ClusterTarget, Release
from controller.api.release_status import ReleaseStatus
from controller.api.status import RolloutStatus
from controller.crdgen import openapi_schema

INTRO = """# Reference: deployctl.io/v1alpha1

Generated from `controller/api/` by `make crds`; do not edit by hand. Durations are
seconds or strings such as `30s`, `2m`, `1h30m`. Unknown fields in a spec are rejected.
"""


def _type(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = str(node.get("type", "any"))
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object" and "additionalProperties" in node:
        return f"map of {_type(node['additionalProperties'])}"
    return kind


def _limits(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    for key, word in (("minimum", ">="), ("maximum", "<="), ("minItems", "items >=")):
        if key in node:
            parts.append(f"{word} {node[key]}")
    if "maxItems" in node:
        parts.append(f"items <= {node['maxItems']}")
    return "; ".join(parts)


def _rows(node: dict[str, Any], prefix: str) -> list[str]:
    rows: list[str] = []
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        description = str(child.get("description", "")).replace("\n", " ")
        mark = " (required)" if name in required else ""
        rows.append(f"| `{path}`{mark} | {_type(child)} | {_limits(child)} | {description} |")
        target = child.get("items", child) if child.get("type") == "array" else child
        if target.get("properties"):
            rows += _rows(target, path + ("[]" if child.get("type") == "array" else ""))
    return rows


def _section(title: str, model: type[BaseModel], root: str) -> str:
    schema = openapi_schema(model)
    node = schema["properties"][root] if root else schema
    header = "| field | type | allowed | description |\n| --- | --- | --- | --- |"
    return f"## {title}\n\n{header}\n" + "\n".join(_rows(node, root)) + "\n"


def render() -> str:
    return "\n".join(
        [
            INTRO,
            _section("Rollout spec", Rollout, "spec"),
            _section("Rollout status", RolloutStatus, ""),
            _section("AnalysisTemplate spec", AnalysisTemplate, "spec"),
            _section("DeliveryPolicy spec", DeliveryPolicy, "spec"),
            _section("Release spec", Release, "spec"),
            _section("Release status", ReleaseStatus, ""),
            _section("ClusterTarget spec", ClusterTarget, "spec"),
        ]
    )


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/reference.md")
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
