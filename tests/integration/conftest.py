"""Fixtures for operator integration tests: a Cluster helper, a controller factory, and
the CLI as CI runs it with its controller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import CiCli, Cluster, ControllerProcess, running_controller


@pytest.fixture
def cluster(kube_api: Any, namespace: str, node_agent: Any) -> Cluster:
    return Cluster(kube_api, namespace)


@pytest.fixture
def start_controller(
    control_plane: Any, prometheus: Any, tmp_path: Path
) -> Iterator[Callable[..., ControllerProcess]]:
    with ExitStack() as stack:

        def start(
            args: list[str] | None = None,
            kubeconfig: str | None = None,
            prometheus_url: str | None = None,
        ) -> ControllerProcess:
            return stack.enter_context(
                running_controller(
                    kubeconfig=kubeconfig or str(control_plane.kubeconfig),
                    prometheus_url=prometheus_url or prometheus.url,
                    log_dir=tmp_path,
                    args=args,
                )
            )

        yield start


@pytest.fixture
def ci_cli(
    cluster: Cluster, control_plane: Any, start_controller: Callable[..., ControllerProcess]
) -> Callable[..., CiCli]:
    """``ci_cli(lease, **env)``: ``deployctl`` as CI runs it against this test's
    namespace, and the controller it drives on ``lease`` (``CiCli``)."""

    def make(lease: str, **extra_env: str) -> CiCli:
        return CiCli(cluster, control_plane.kubeconfig, lease, start_controller, extra_env)

    return make
