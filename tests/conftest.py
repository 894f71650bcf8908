"""Shared pytest fixtures.

The fixtures that start real parts live in their own plugin modules:
``tests.fixtures_cluster`` (etcd + kube-apiserver + kube-controller-manager, a namespace
per test, the fault proxy) and ``tests.fixtures_workloads`` (node agent, demo-app
processes, real Prometheus, traffic generator).
"""

pytest_plugins = ["tests.fixtures_cluster", "tests.fixtures_workloads"]
