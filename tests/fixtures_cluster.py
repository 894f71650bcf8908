"""Pytest plugin: the control-plane half of the sandbox (registered in ``tests/conftest.py``).

Fixtures:

- ``control_plane`` (session): a real etcd + kube-apiserver + kube-controller-manager
  (``sandbox.controlplane.ControlPlane``) started once per test run, with every CRD in
  ``manifests/crds/*.yaml`` installed. Fails (never skips) with "run `make cluster`" when
  the binaries are not built.
- ``kube_api`` (session): an admin ``kubernetes.client.ApiClient`` for it.
- ``namespace``: a fresh namespace per test, deleted afterwards.
- ``fault_proxy``: a started ``sandbox.faultproxy.FaultProxy`` in front of the apiserver,
  with no faults switched on; stopped after the test.

Every test depending on ``control_plane`` (directly or through another fixture) is marked
``cluster`` automatically, so ``-m "not cluster"`` runs without a control plane.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from sandbox.build import BinariesMissing, find_binaries
from sandbox.controlplane import ControlPlane, ControlPlaneError
from sandbox.faultproxy import FaultProxy

CRD_DIR = Path(__file__).resolve().parent.parent / "manifests" / "crds"

# The client's watch module carries no annotations; one Any-typed alias keeps the call
# sites strictly typed everywhere else.
Watch: Any = k8s_watch.Watch


def name_of(obj: Any) -> str:
    """``obj.metadata.name`` of a typed model, whose metadata is Optional in the stubs."""
    return str(obj.metadata.name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # fixturenames is the transitive closure, so fixtures built on control_plane
    # (kube_api, namespace, a node agent ...) mark their tests too.
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    try:
        binaries = find_binaries()
    except BinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    plane = ControlPlane(binaries=binaries)
    try:
        plane.start()
    except ControlPlaneError as exc:
        pytest.fail(f"the sandbox control plane did not start: {exc}", pytrace=False)
    try:
        crds = sorted(CRD_DIR.glob("*.yaml"))
        if crds:
            try:
                plane.install_crds(crds)
            except ControlPlaneError as exc:
                pytest.fail(f"installing manifests/crds failed: {exc}", pytrace=False)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube_api(control_plane: ControlPlane) -> Iterator[k8s.ApiClient]:
    with control_plane.api_client() as api:
        yield api


@pytest.fixture
def namespace(control_plane: ControlPlane, kube_api: k8s.ApiClient) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"deployctl.io/test": "true"}))
    )
    try:
        yield name
    finally:
        # After Ctrl-C the control plane may already be gone; nothing left to delete then.
        if control_plane.running:
            try:
                core.delete_namespace(name)
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture
def fault_proxy(control_plane: ControlPlane) -> Iterator[FaultProxy]:
    proxy = FaultProxy(
        upstream=control_plane.server, ca_file=control_plane.ca_file, token=control_plane.token
    )
    with proxy:
        yield proxy
