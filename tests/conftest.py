"""Shared pytest fixtures.

The fixtures that start real parts live in their own plugin modules:
``tests.fixtures_cluster`` (etcd + kube-apiserver + kube-controller-manager, a namespace
per test, the fault proxy) and ``tests.fixtures_workloads`` (node agent, demo-app
processes, real Prometheus, traffic generator).

``COMPAT_FILES`` are marked ``compat``: what CI (``.ci/run``) also runs against the oldest
supported Kubernetes (``make test KUBERNETES=1.20 PYTEST_ARGS="-m compat"``), the parts
where releases differ: the sandbox itself, the Kubernetes adapter (status writes, events,
Jobs), informers and 410 re-lists, leader election's Leases, the installed RBAC, CRD
validation, hooks, and one scenario per strategy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_cluster", "tests.fixtures_workloads"]

TESTS = Path(__file__).resolve().parent
COMPAT_FILES = frozenset(
    {
        "sandbox/test_controlplane.py",
        "sandbox/test_node_agent.py",
        "operator/test_kube.py",
        "operator/test_informer.py",
        "operator/test_leader.py",
        "integration/test_canary.py",
        "integration/test_bluegreen_rolling.py",
        "integration/test_installed_rbac.py",
        "integration/test_crd_validation.py",
        "integration/test_release_workflow.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if path.is_relative_to(TESTS) and path.relative_to(TESTS).as_posix() in COMPAT_FILES:
            item.add_marker(pytest.mark.compat)
