"""The operator's dashboard Component: the RBAC it adds is exactly what its code reads
beyond the operator's own permissions, and an install with it renders."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.manifests.rbac_from_code import kinds, operator_needs

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "manifests" / "dashboard"
WATCHES = ROOT / "controller" / "dashboard" / "watches.py"


def dashboard_reads() -> set[tuple[str, str, str]]:
    """list+watch of every kind ``controller/dashboard/watches.py`` builds an Informer of
    (the in-cluster dashboard makes no other API call: it offers no actions)."""
    known = kinds()
    needs: set[tuple[str, str, str]] = set()
    for node in ast.walk(ast.parse(WATCHES.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Informer":
            kind = node.args[1]
            assert isinstance(kind, ast.Name) and kind.id in known
            group, plural = known[kind.id]
            needs |= {(group, plural, "list"), (group, plural, "watch")}
    return needs


def granted(path: Path, kind: str) -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc["kind"] == kind:
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        out |= {(group, resource, verb) for verb in rule["verbs"]}
    return out


def test_the_component_grants_exactly_what_the_dashboard_reads_beyond_the_operator() -> None:
    extra = dashboard_reads() - operator_needs()
    assert extra == {("", "events", "list"), ("", "events", "watch")}
    assert granted(COMPONENT / "rbac.yaml", "ClusterRole") == extra


def test_an_install_with_the_component_renders_the_flag_port_and_service(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: kustomize rendering not checked")
    overlay = tmp_path / "install"
    overlay.mkdir()
    # kustomize takes relative roots only.
    base = os.path.relpath(ROOT / "manifests", overlay)
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{base}]\ncomponents: [{base}/dashboard]\n"
    )
    done = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(done.stdout) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--dashboard-address=0.0.0.0:3100" in container["args"]
    assert {"name": "http-dashboard", "containerPort": 3100, "protocol": "TCP"} in container[
        "ports"
    ]
    (service,) = [
        d for d in docs if d["kind"] == "Service" and "dashboard" in d["metadata"]["name"]
    ]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["targetPort"] == "http-dashboard"
