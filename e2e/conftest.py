"""pytest setup for the e2e scenarios: they run only against the kind cluster of ``make e2e``.

``e2e.run`` sets ``E2E_KUBECONFIG`` after creating the cluster and installing deployctl;
without it every test here is skipped with one reason. ``make test`` never collects
this directory (``testpaths = ["tests"]``); ``tests/manifests/`` imports these modules
so that they keep type-checking and importing.

Each test gets its own namespace with a random name (deleted afterwards), like kr8s's
real-cluster tests, so scenarios cannot see each other's objects.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from e2e.kind import api_client, core_api
from tests.integration.harness import Cluster

KUBECONFIG_ENV = "E2E_KUBECONFIG"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the kind cluster that `make e2e` creates")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = None
    if not os.environ.get(KUBECONFIG_ENV):
        skip = pytest.mark.skip(reason=f"no kind cluster (${KUBECONFIG_ENV} unset): run `make e2e`")
    for item in items:
        item.add_marker(pytest.mark.e2e)
        if skip is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    return Path(os.environ[KUBECONFIG_ENV])


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    client = api_client(kubeconfig)
    yield client
    client.close()


@pytest.fixture
def cluster(api: k8s.ApiClient) -> Iterator[Cluster]:
    name = f"e2e-{secrets.token_hex(4)}"
    core = core_api(api)
    core.create_namespace({"metadata": {"name": name, "labels": {"deployctl.io/e2e": "true"}}})
    try:
        yield Cluster(api, name)
    finally:
        core.delete_namespace(name)
