"""The committed CRDs are exactly what the models generate, and they are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controller.crdgen import expected_files

CRD_DIR = Path(__file__).resolve().parents[2] / "manifests" / "crds"


def test_committed_crds_match_the_models() -> None:
    expected = expected_files()
    for name, content in expected.items():
        path = CRD_DIR / name
        assert path.exists(), f"{path} is missing: run `make crds`"
        assert path.read_text() == content, f"{path} is out of date: run `make crds`"


def _walk(node: Any, path: str = "") -> list[str]:
    """Places where the schema is not structural (untyped nodes, refs, nullable unions)."""
    bad: list[str] = []
    if not isinstance(node, dict):
        return bad
    if "$ref" in node or "anyOf" in node or "oneOf" in node or "allOf" in node:
        bad.append(path or "<root>")
    if not (
        "type" in node
        or node.get("x-kubernetes-int-or-string")
        or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        bad.append(path or "<root>")
    for name, child in node.get("properties", {}).items():
        bad += _walk(child, f"{path}.{name}")
    if "items" in node:
        bad += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        bad += _walk(node["additionalProperties"], f"{path}{{}}")
    return bad


def test_schemas_are_structural_with_status_subresource_and_columns() -> None:
    for content in expected_files().values():
        crd = yaml.safe_load(content)
        version = crd["spec"]["versions"][0]
        assert _walk(version["schema"]["openAPIV3Schema"]) == []
        assert crd["spec"]["names"]["shortNames"]
    rollout = yaml.safe_load(expected_files()["rollouts.deployctl.io.yaml"])
    version = rollout["spec"]["versions"][0]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Weight", "Step", "Stable", "Canary", "Age"} <= columns
    strategy = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["strategy"]
    assert set(strategy["properties"]) == {"canary", "blueGreen", "rolling"}


def test_committed_reference_doc_matches_the_models() -> None:
    from controller.docgen import render

    path = CRD_DIR.parents[1] / "docs" / "reference.md"
    assert path.read_text() == render(), "docs/reference.md is out of date: run `make crds`"
