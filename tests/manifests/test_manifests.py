"""Static checks of manifests/, e2e/manifests/, the Dockerfile and the examples' Services.

Every YAML parses and every object has what the apiserver requires; kustomizations name
files that exist (and ``kubectl kustomize`` renders them, where kubectl is installed);
the operator Deployment has its probes, resources and locked-down securityContext; the
image is built the way the manifests expect it (non-root numeric user, entry points).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.crdgen import expected_files
from controller.kube import HTTPROUTES

ROOT = Path(__file__).resolve().parents[2]
YAML_DIRS = [ROOT / "manifests", ROOT / "e2e" / "manifests", ROOT / "examples" / "services"]
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def yaml_files() -> list[Path]:
    found = [p for d in YAML_DIRS for p in d.rglob("*") if p.is_file()]
    return sorted(
        p for p in found if p.suffix in (".yaml", ".yml") or p.name in KUSTOMIZATION_NAMES
    )


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kustomizations() -> list[Path]:
    return [p for p in yaml_files() if p.name in KUSTOMIZATION_NAMES]


def objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in yaml_files() if p.name not in KUSTOMIZATION_NAMES for d in documents(p)]


def operator_deployment() -> dict[str, Any]:
    (deployment,) = documents(ROOT / "manifests" / "operator" / "deployment.yaml")
    return deployment


def test_there_are_manifests() -> None:
    assert len(objects()) >= 15
    assert len(kustomizations()) >= 4


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_document_parses_and_has_the_required_fields(path: Path) -> None:
    for doc in documents(path):
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion/kind missing"
        if doc["kind"] in ("Kustomization", "Component"):
            continue
        meta = doc.get("metadata") or {}
        assert NAME.match(str(meta.get("name", ""))), f"{path}: bad metadata.name {meta}"
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, f"{path}: {doc['kind']} is cluster-scoped"
        else:
            assert meta.get("namespace"), f"{path}: {doc['kind']} {meta['name']} needs a namespace"


@pytest.mark.parametrize("path", kustomizations(), ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomization_resources_exist(path: Path) -> None:
    (kustomization,) = documents(path)
    assert kustomization["kind"] in ("Kustomization", "Component")
    for resource in kustomization.get("resources", []):
        target = (path.parent / resource).resolve()
        assert target.exists(), f"{path}: resource {resource} does not exist"
        if target.is_dir():
            assert any((target / n).exists() for n in KUSTOMIZATION_NAMES), (
                f"{path}: {resource} is a directory without a kustomization"
            )


def test_crd_kustomization_lists_what_make_crds_writes() -> None:
    (kustomization,) = documents(ROOT / "manifests" / "crds" / "Kustomization")
    assert sorted(kustomization["resources"]) == sorted(expected_files())


def render(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: kustomize rendering not checked")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def kinds_of(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def test_cluster_install_renders_everything() -> None:
    docs = render(ROOT / "manifests")
    assert kinds_of(docs) == {
        ("Namespace", "deployctl-system"),
        ("CustomResourceDefinition", "rollouts.deployctl.io"),
        ("CustomResourceDefinition", "analysistemplates.deployctl.io"),
        ("CustomResourceDefinition", "deliverypolicies.deployctl.io"),
        ("CustomResourceDefinition", "releases.deployctl.io"),
        ("CustomResourceDefinition", "clustertargets.deployctl.io"),
        ("ServiceAccount", "deployctl-controller"),
        ("ClusterRole", "deployctl-controller"),
        ("ClusterRoleBinding", "deployctl-controller"),
        ("Role", "deployctl-leader-election"),
        ("RoleBinding", "deployctl-leader-election"),
        ("Deployment", "deployctl-controller"),
        ("Service", "deployctl-controller-metrics"),
        ("ValidatingAdmissionPolicy", "deployctl.io-identity"),
        ("ValidatingAdmissionPolicyBinding", "deployctl.io-identity"),
        ("ValidatingAdmissionPolicy", "deployctl.io-approval-rules"),
        ("ValidatingAdmissionPolicyBinding", "deployctl.io-approval-rules"),
        ("ValidatingAdmissionPolicyBinding", "deployctl.io-approval-rules-cluster"),
        ("ClusterRole", "deployctl-admission-reader"),
        ("ClusterRoleBinding", "deployctl-admission-reader"),
    }
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--namespace") for a in args), "cluster install watches all"


def test_namespaced_install_runs_in_its_own_namespace_and_watches_another() -> None:
    docs = render(ROOT / "manifests" / "namespaced")
    # The only cluster-wide grant: reading the admission policy's own objects by name.
    cluster_rbac = {k for k in kinds_of(docs) if k[0] in ("ClusterRole", "ClusterRoleBinding")}
    assert cluster_rbac == {
        ("ClusterRole", "deployctl-admission-reader"),
        ("ClusterRoleBinding", "deployctl-admission-reader"),
    }
    assert ("Role", "deployctl-controller") in kinds_of(docs)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    own = deployment["metadata"]["namespace"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    watched = env["DEPLOYCTL_WATCH_NAMESPACE"]["value"]
    assert watched != own, "the operator must not live among the Rollouts it serves"
    assert env["POD_SERVICE_ACCOUNT"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "spec.serviceAccountName"
    )
    (role,) = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "deployctl-controller"
    ]
    assert role["metadata"]["namespace"] == watched
    (binding,) = [
        d
        for d in docs
        if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "deployctl-controller"
    ]
    assert binding["metadata"]["namespace"] == watched
    assert binding["subjects"][0]["namespace"] == own
    # Secrets: read in its own namespace only, and only the one holding webhook URLs.
    (leader,) = [
        d
        for d in docs
        if d["metadata"]["name"] == "deployctl-leader-election" and d["kind"] == "Role"
    ]
    assert leader["metadata"]["namespace"] == own
    (secrets,) = [r for r in leader["rules"] if "secrets" in r["resources"]]
    assert secrets["resourceNames"] == ["deployctl-webhooks"] and secrets["verbs"] == ["get"]


def test_e2e_prometheus_renders() -> None:
    docs = render(ROOT / "e2e" / "manifests")
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    scrape = yaml.safe_load(config["data"]["prometheus.yml"])["scrape_configs"][0]
    targets = {r.get("target_label") for r in scrape["relabel_configs"]}
    assert {"namespace", "revision"} <= targets
    assert any(
        "__meta_kubernetes_pod_label_deployctl_io_revision" in r.get("source_labels", [])
        for r in scrape["relabel_configs"]
    )
    # The operator's default Prometheus URL is this Service.
    services = {
        (d["metadata"]["name"], d["metadata"].get("namespace"))
        for d in docs
        if d["kind"] == "Service"
    }
    assert ("prometheus", "monitoring") in services


def test_operator_deployment_is_locked_down() -> None:
    deployment = operator_deployment()
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "deployctl-controller"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert isinstance(ctx["runAsUser"], int) and ctx["runAsUser"] > 0
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert {"cpu", "memory"} <= resources["limits"].keys()
    # A read-only root needs somewhere writable for tempfile: /tmp, an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_operator_deployment_uses_flags_the_controller_has() -> None:
    container = operator_deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "controller"
    assert "--leader-elect" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["DEPLOYCTL_PROMETHEUS_URL"]["value"].startswith("http")
    from controller.cli import load_command

    controller = load_command("controller")
    options = {opt for param in controller.params for opt in param.opts + param.secondary_opts}
    for arg in container["args"][1:]:
        assert arg.split("=")[0] in options, f"deployctl controller has no {arg}"
    envvars = {param.envvar for param in controller.params if param.envvar}
    assert {"POD_NAME", "POD_NAMESPACE", "DEPLOYCTL_PROMETHEUS_URL"} <= envvars
    port = container["ports"][0]["containerPort"]
    assert f"--probe-address=0.0.0.0:{port}" in container["args"]


def test_image_tag_is_the_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    image = operator_deployment()["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/deployctl/deployctl:{version}"


def test_dockerfile_builds_a_slim_non_root_image() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    stages = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(stages) == 2 and stages[0].endswith(" AS builder"), stages
    # The base pinned by digest; the packages from the lock, hashes checked.
    assert re.search(
        r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}$", text, re.M
    )
    assert "pip install --require-hashes -r requirements/runtime.lock" in text
    assert "pip install --no-deps ." in text
    final = text[text.rindex("\nFROM ") :]
    assert "COPY --from=builder /opt/deployctl /opt/deployctl" in final
    # Nothing is installed in the final stage: no compilers, no package manager runs.
    assert not re.search(r"\b(apt-get|apt|pip|gcc|build-essential)\b", final.replace("PIP_", ""))
    user = re.search(r"^USER (\d+):(\d+)$", final, re.M)
    assert user and int(user.group(1)) > 0, "USER must be numeric and non-root"
    deployment_user = operator_deployment()["spec"]["template"]["spec"]["securityContext"]
    assert int(user.group(1)) == deployment_user["runAsUser"]
    assert "PYTHONDONTWRITEBYTECODE=1" in final
    assert 'ENTRYPOINT ["deployctl"]' in final and 'CMD ["controller"]' in final


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = (ROOT / ".dockerignore").read_text().split()
    assert patterns[patterns.index("*") :][:1] == ["*"], "ignore everything, then allow-list"
    for allowed in ("!controller/", "!strategies/", "!sandbox/", "!pyproject.toml"):
        assert allowed in patterns


def test_the_demo_entry_point_is_in_the_wheel() -> None:
    """The demo app runs from the operator image: sandbox/ must be packaged."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "sandbox*" in find["packages"]["find"]["include"]


def test_example_services_match_the_rollouts() -> None:
    """Every Service (and HTTPRoute) an example Rollout names is in examples/services/."""
    provided: set[tuple[str, str]] = set()
    for path in (ROOT / "examples" / "services").glob("*.yaml"):
        provided |= {(d["kind"], d["metadata"]["name"]) for d in documents(path)}
    for path in (ROOT / "examples").glob("*.yaml"):
        for doc in documents(path):
            if doc["kind"] != "Rollout":
                continue
            for strategy in doc["spec"]["strategy"].values():
                for key in ("stableService", "canaryService", "activeService", "previewService"):
                    if key in strategy:
                        assert ("Service", strategy[key]) in provided, (path, strategy[key])
                route = (strategy.get("trafficRouting") or {}).get("gatewayAPI")
                if route:
                    assert (HTTPROUTES.kind, route["httpRoute"]) in provided, path
