"""Generate the CustomResourceDefinitions in ``manifests/crds/`` from the pydantic models.

The models are the single source of truth: ``make crds`` runs
``python -m controller.crdgen manifests/crds``, and a test fails when the committed YAML
and the models disagree. Pydantic's JSON Schema is turned into a *structural* OpenAPI v3
schema as the apiserver requires: references inlined, every node typed, optional fields
given as plain properties (no ``anyOf`` with null), open structures marked
``x-kubernetes-preserve-unknown-fields`` and durations ``x-kubernetes-int-or-string``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from controller.api import API_GROUP, API_VERSION, AnalysisTemplate, Rollout
from controller.api.common import CEL_KEY
from controller.api.policy import DeliveryPolicy
from controller.api.release import ClusterTarget, Release
from controller.api.release_status import ReleaseStatus
from controller.api.status import RolloutStatus

# Keys of JSON Schema that a structural schema may keep as they are.
_KEEP = {
    "type",
    "description",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "format",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    # CEL rules the models declare (controller.api.common.cel): the apiserver enforces
    # the cross-field checks at admission; older apiservers drop the key.
    CEL_KEY,
}


@dataclass(frozen=True)
class CrdSpec:
    """What differs between our CRDs: names, the model, columns."""

    model: type[BaseModel]
    kind: str
    plural: str
    short_names: tuple[str, ...]
    printer_columns: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    status_model: type[BaseModel] | None = None
    # The scale subresource (kubectl scale, an HorizontalPodAutoscaler): its JSON paths.
    scale: dict[str, str] | None = None
    categories: tuple[str, ...] = ("deployctl",)


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Translate one pydantic JSON Schema node into a structural OpenAPI v3 node."""
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            extra = {k: v for k, v in node.items() if k not in ("anyOf", "default", "title")}
            return _structural({**options[0], **extra}, defs)
        types = {o.get("type") for o in options}
        if types == {"integer", "string"} or any(
            o.get("x-kubernetes-int-or-string") for o in options
        ):
            out: dict[str, Any] = {"x-kubernetes-int-or-string": True}
            if "description" in node:
                out["description"] = node["description"]
            return out
        raise ValueError(f"cannot express a union of {types} structurally")
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
    # JSON Schema 2020 writes exclusive bounds as numbers; OpenAPI v3.0 as flags.
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(node.get(flag), int | float) and not isinstance(node.get(flag), bool):
            node = {**node, bound: node[flag], flag: True}
    out = {k: v for k, v in node.items() if k in _KEEP}
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties", {})
        if props:
            out["properties"] = {name: _structural(sub, defs) for name, sub in props.items()}
        required = node.get("required")
        if required:
            out["required"] = list(required)
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            out["additionalProperties"] = _structural(additional, defs)
        elif additional is True or (not props and additional is None):
            out["x-kubernetes-preserve-unknown-fields"] = True
        if node.get("additionalProperties") is not False and props and additional is not None:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _structural(node.get("items", {}), defs)
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        # Any-typed values (e.g. dict[str, Any] entries) are kept as they come.
        out = {"x-kubernetes-preserve-unknown-fields": True}
    if out.get("type") == "number" and "format" not in out:
        out["format"] = "double"
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _structural(schema, defs)


def _model_schema(spec: CrdSpec) -> dict[str, Any]:
    schema = openapi_schema(spec.model)
    props = schema["properties"]
    # metadata is the apiserver's business; a structural schema may only describe it lightly.
    props["metadata"] = {"type": "object"}
    # apiVersion/kind carry no constraints at this level: the apiserver sets them.
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    if spec.status_model is not None:
        status = openapi_schema(spec.status_model)
        status["x-kubernetes-preserve-unknown-fields"] = True
        props["status"] = status
    required = [r for r in schema.get("required", []) if r in ("spec",)]
    # An empty list is dropped by the apiserver; kept here it would read as a change of
    # the (atomic) versions list to every server-side apply after the first.
    schema.pop("required", None)
    if required:
        schema["required"] = required
    schema.pop("x-kubernetes-preserve-unknown-fields", None)
    return schema


def crd(spec: CrdSpec) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": API_VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": _model_schema(spec)},
    }
    if spec.status_model is not None:
        version["subresources"] = {"status": {}}
        if spec.scale is not None:
            version["subresources"]["scale"] = dict(spec.scale)
    if spec.printer_columns:
        version["additionalPrinterColumns"] = list(spec.printer_columns)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{spec.plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": spec.kind,
                "listKind": f"{spec.kind}List",
                "plural": spec.plural,
                "singular": spec.kind.lower(),
                "shortNames": list(spec.short_names),
                "categories": list(spec.categories),
            },
            "versions": [version],
        },
    }


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def crd_specs() -> list[CrdSpec]:
    """Every CRD deployctl ships; other resources append themselves here."""
    return [
        CrdSpec(
            model=Rollout,
            kind="Rollout",
            plural="rollouts",
            short_names=("ro", "dro"),
            status_model=RolloutStatus,
            scale={
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
            printer_columns=(
                _column("Desired", ".spec.replicas", "integer"),
                _column("Phase", ".status.phase"),
                _column("Weight", ".status.weight", "integer"),
                _column("Step", ".status.currentStepIndex", "integer"),
                _column("Stable", ".status.stableRevision"),
                _column("Canary", ".status.canaryRevision"),
                _column("Reason", ".status.reason", priority=1),
                _column("Age", ".metadata.creationTimestamp", "date"),
            ),
        ),
        CrdSpec(
            model=AnalysisTemplate,
            kind="AnalysisTemplate",
            plural="analysistemplates",
            short_names=("at",),
            printer_columns=(_column("Age", ".metadata.creationTimestamp", "date"),),
        ),
        CrdSpec(
            model=DeliveryPolicy,
            kind="DeliveryPolicy",
            plural="deliverypolicies",
            short_names=("dp",),
            printer_columns=(_column("Age", ".metadata.creationTimestamp", "date"),),
        ),
        CrdSpec(
            model=Release,
            kind="Release",
            plural="releases",
            short_names=("rel",),
            status_model=ReleaseStatus,
            printer_columns=(
                _column("Rollout", ".spec.rollout.name"),
                _column("Phase", ".status.phase"),
                _column("Wave", ".status.currentWave"),
                _column("Reason", ".status.reason"),
                _column("Message", ".status.message", priority=1),
                _column("Age", ".metadata.creationTimestamp", "date"),
            ),
        ),
        CrdSpec(
            model=ClusterTarget,
            kind="ClusterTarget",
            plural="clustertargets",
            short_names=("ct",),
            printer_columns=(
                _column("Secret", ".spec.kubeconfigSecretRef.name"),
                _column("Context", ".spec.context"),
                _column("Age", ".metadata.creationTimestamp", "date"),
            ),
        ),
    ]


def render(spec: CrdSpec) -> str:
    header = "# Generated from controller/api by `make crds`; do not edit by hand.\n"
    return header + yaml.safe_dump(crd(spec), sort_keys=False, width=100)


def expected_files() -> dict[str, str]:
    """File name -> content, as ``make crds`` writes them."""
    return {f"{spec.plural}.{API_GROUP}.yaml": render(spec) for spec in crd_specs()}


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0] if argv else "manifests/crds")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in expected_files().items():
        (out_dir / name).write_text(content)
        print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
