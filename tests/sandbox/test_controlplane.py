"""Tests of the sandbox control plane (sandbox.controlplane) through the official client.

Run by ``make test``; they need ``make cluster`` to have built the binaries and fail, not
skip, otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from sandbox import build
from sandbox.build import BinariesMissing, find_binaries
from sandbox.controlplane import ControlPlane, sweep_stale_workdirs
from tests.fixtures_cluster import Watch, name_of
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.sandbox-test.deployctl.io"},
    "spec": {
        "group": "sandbox-test.deployctl.io",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {"replicas": {"type": "integer", "minimum": 0}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for a reaper counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def all_dead(pids: Iterable[int]) -> Callable[[], bool]:
    return lambda: not any(alive(pid) for pid in pids)


def test_find_binaries_without_a_build_says_run_make_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_CACHE", str(tmp_path))
    # On the default release `make cluster`; on another, `make cluster KUBERNETES=1.20`.
    with pytest.raises(BinariesMissing, match=r"run `make cluster( KUBERNETES=[0-9.]+)?`"):
        find_binaries()


def test_a_truncated_binary_is_not_a_cache_hit(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_CACHE", str(tmp_path))
    bin_dir = tmp_path / "kubernetes-1.20.2-1" / "bin"
    bin_dir.mkdir(parents=True)
    for name in build.COMPONENTS:
        (bin_dir / name).write_bytes(b"#!")
        (bin_dir / name).chmod(0o755)
    manifest = {
        "debian_version": "1.20.2-1",
        "kubernetes_version": "v1.20.2",
        "go_version": "go1.19",
        "built_at": "2026-01-01T00:00:00+00:00",
        "build_seconds": 1.0,
        "binary_sizes": {name: 100 for name in build.COMPONENTS},  # the copy was cut short
    }
    (bin_dir.parent / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BinariesMissing):
        find_binaries()


def test_build_without_root_names_the_missing_packages(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEPLOYCTL_CACHE", str(tmp_path))
    monkeypatch.setattr(build, "_is_root", lambda: False)
    monkeypatch.setattr(build, "_missing_packages", lambda _wanted: ["etcd-server", "golang-go"])
    monkeypatch.setattr(
        build, "_os_release", lambda: {"ID": "debian", "VERSION_CODENAME": "bookworm"}
    )
    assert build.main(["--kubernetes", "1.20"]) == 1
    err = capsys.readouterr().err
    assert "missing Debian packages: etcd-server, golang-go" in err
    assert "apt-get install -y etcd-server golang-go" in err


def test_build_elsewhere_than_debian_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEPLOYCTL_CACHE", str(tmp_path))
    monkeypatch.setattr(build, "_os_release", lambda: {"ID": "fedora", "PRETTY_NAME": "Fedora"})
    assert build.main([]) == 1
    assert "needs Debian" in capsys.readouterr().err


def test_apiserver_serves_and_creates_a_namespace(control_plane, kube_api, namespace):
    core = k8s.CoreV1Api(kube_api)
    status = core.read_namespace(namespace).status
    assert status is not None and status.phase == "Active"
    version = k8s.VersionApi(kube_api).get_code()
    assert version.git_version == control_plane.kubernetes_version
    # The release the run asked for ($DEPLOYCTL_KUBERNETES, `make test KUBERNETES=...`).
    wanted = build.selected_release().minor
    assert version.git_version.startswith(f"v{wanted}.")
    assert control_plane.server.startswith("https://127.0.0.1:")


def test_kubeconfig_has_a_sandbox_context(control_plane):
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    assert config["current-context"] == "sandbox"
    loader: Any = k8s_config.new_client_from_config  # unannotated in the client
    with loader(str(control_plane.kubeconfig), context="sandbox") as api:
        names = {name_of(ns) for ns in k8s.CoreV1Api(api).list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_rbac_is_enforced_for_users_without_groups(control_plane):
    with control_plane.api_client("alice") as api:
        with pytest.raises(k8s.ApiException) as denied:
            k8s.CoreV1Api(api).list_namespace()
    assert denied.value.status == 403


def test_service_account_tokens_come_from_the_token_request_api(control_plane, kube_api):
    core = k8s.CoreV1Api(kube_api)
    account = core.read_namespaced_service_account("default", "default")
    if control_plane.minor >= (1, 24):
        # A current cluster creates no token Secrets: TokenRequest is the only way.
        assert not account.secrets
    else:
        # 1.20 rejects pods until this Secret exists; start() waits for it.
        assert account.secrets
    request = {"spec": {"expirationSeconds": 600}}  # audiences: the apiserver's own
    untyped: Any = core  # plain dict bodies: the typed models want every field
    token = untyped.create_namespaced_service_account_token("default", "default", request)
    authentication: Any = k8s.AuthenticationV1Api(kube_api)
    review = authentication.create_token_review({"spec": {"token": token.status.token}})
    assert review.status.authenticated
    assert review.status.user.username == "system:serviceaccount:default:default"


def test_custom_resource_violating_its_schema_gets_422(
    control_plane, kube_api, namespace, tmp_path
):
    crd_file = tmp_path / "widgets.yaml"
    crd_file.write_text(yaml.safe_dump(WIDGET_CRD))
    assert control_plane.install_crds([crd_file]) == ["widgets.sandbox-test.deployctl.io"]
    custom = k8s.CustomObjectsApi(kube_api)
    args = ("sandbox-test.deployctl.io", "v1", namespace, "widgets")
    good = {"apiVersion": "sandbox-test.deployctl.io/v1", "kind": "Widget"}
    custom.create_namespaced_custom_object(
        *args, {**good, "metadata": {"name": "ok"}, "spec": {"replicas": 2}}
    )
    with pytest.raises(k8s.ApiException) as rejected:
        custom.create_namespaced_custom_object(
            *args, {**good, "metadata": {"name": "bad"}, "spec": {"replicas": "three"}}
        )
    assert rejected.value.status == 422
    status = json.loads(rejected.value.body or "{}")
    assert status["reason"] == "Invalid"
    assert "spec.replicas" in status["message"]


def test_project_crds_are_installed(kube_api):
    wanted = {
        yaml.safe_load(path.read_text())["metadata"]["name"]
        for path in (REPO / "manifests" / "crds").glob("*.yaml")
    }
    served = {
        name_of(crd)
        for crd in k8s.ApiextensionsV1Api(kube_api).list_custom_resource_definition().items
    }
    assert wanted <= served


@pytest.mark.slow
def test_watch_from_a_compacted_resource_version_gets_410(kube_api, namespace):
    # Watch cache off + 10 s compaction: an old resourceVersion really expires, which is
    # what informers must survive. Compaction runs every interval, so allow a few.
    core = k8s.CoreV1Api(kube_api)
    created = core.create_namespaced_config_map(
        namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="old"), data={"n": "0"})
    )
    assert created.metadata is not None
    old_version = created.metadata.resource_version
    for n in range(1, 4):
        core.patch_namespaced_config_map("old", namespace, {"data": {"n": str(n)}})

    def expired() -> bool:
        try:
            for _event in Watch().stream(
                core.list_namespaced_config_map,
                namespace,
                resource_version=old_version,
                timeout_seconds=1,
            ):
                pass
        except k8s.ApiException as exc:
            assert exc.status == 410
            assert "Expired" in str(exc.reason)
            return True
        return False

    wait_until(expired, timeout=45, what="the apiserver to compact and answer 410 Expired")


@pytest.mark.cluster
def test_stop_terminates_exactly_its_processes(tmp_path):
    plane = ControlPlane(tmp_path / "cp")
    plane.start()
    pids = plane.pids()
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(alive(pid) for pid in pids.values())
    plane.stop()
    assert not plane.running
    wait_until(all_dead(pids.values()), timeout=1, what="the stopped components to exit")
    # Nothing killed beyond what it started: this test process is still here.
    assert alive(os.getpid())


CHILD = textwrap.dedent(
    """
    import json, threading
    from sandbox.controlplane import ControlPlane
    plane = ControlPlane().start()
    print(json.dumps({"pids": plane.pids(), "workdir": str(plane.workdir)}), flush=True)
    threading.Event().wait()
    """
)


@dataclass(frozen=True)
class Child:
    """A separate Python process owning a started ControlPlane."""

    process: subprocess.Popen[str]
    pids: dict[str, int]
    workdir: Path


@pytest.fixture
def child_control_plane(tmp_path) -> Iterator[Child]:
    stderr_path = tmp_path / "child.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdout is not None
    with process, process.stdout:
        line = process.stdout.readline()  # blocks until the child's control plane is ready
        if not line:
            process.wait()
            pytest.fail(f"child did not start a control plane:\n{stderr_path.read_text()}")
        report = json.loads(line)
        try:
            yield Child(process=process, pids=report["pids"], workdir=Path(report["workdir"]))
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.cluster
def test_killed_owner_leaves_no_process_behind(child_control_plane):
    pids = child_control_plane.pids
    assert all(alive(pid) for pid in pids.values())
    child_control_plane.process.kill()  # SIGKILL: no atexit, no handler; PDEATHSIG must act
    child_control_plane.process.wait()
    wait_until(all_dead(pids.values()), timeout=10, what=f"components {pids} to die")
    # The data it could not delete is swept by the next control plane's start.
    assert child_control_plane.workdir in sweep_stale_workdirs()


@pytest.mark.cluster
def test_sigterm_stops_the_control_plane_and_cleans_up(child_control_plane):
    pids = child_control_plane.pids
    child_control_plane.process.send_signal(signal.SIGTERM)
    assert child_control_plane.process.wait(timeout=30) == -signal.SIGTERM
    wait_until(all_dead(pids.values()), timeout=10, what=f"components {pids} to die")
    assert not child_control_plane.workdir.exists()


def test_a_port_taken_before_the_apiserver_binds_it_starts_again_on_new_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from sandbox import controlplane

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    real = controlplane.free_port
    calls = iter(range(1000))

    def racy() -> int:
        # The third port of the first attempt (the apiserver's) is already someone's.
        return port if next(calls) == 2 else real()

    monkeypatch.setattr(controlplane, "free_port", racy)
    try:
        with ControlPlane(binaries=find_binaries()) as plane:
            assert f":{port}" not in plane.server
            version = k8s.VersionApi(plane.api_client()).get_code()
            assert version.git_version
    finally:
        taken.close()
