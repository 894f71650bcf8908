"""Reliability tests reuse the operator integration fixtures (``cluster``,
``start_controller``); ``outage_sandbox`` gives a pinned sandbox and Prometheus servers of
the test's own (to stop and start). ``DEPLOYCTL_RELIABILITY=large`` runs
the large setting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.prometheus import PrometheusServer
from tests.integration.conftest import cluster, start_controller  # noqa: F401
from tests.integration.pinned import Pinned, pinned_sandbox

LARGE = os.environ.get("DEPLOYCTL_RELIABILITY", "").lower() == "large"


@pytest.fixture
def outage_sandbox(
    control_plane: Any, kube_api: Any, tmp_path: Path
) -> Iterator[tuple[Pinned, PrometheusServer, PrometheusServer]]:
    """A pinned sandbox and two Prometheus servers of the test's own (to stop and start):
    the controller's default, and another that templates name by address."""
    servers = [
        PrometheusServer(tmp_path / name, file_sd_dir=tmp_path / "sd") for name in ("p1", "p2")
    ]
    try:
        for server in servers:
            server.start()
        url = servers[0].url
        with pinned_sandbox(control_plane, kube_api, tmp_path, prometheus_url=url) as box:
            yield box, servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
