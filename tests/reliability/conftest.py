"""Reliability tests reuse the operator integration fixtures (``cluster``,
``start_controller``); ``outage_sandbox`` gives a pinned sandbox whose controller asks a
Prometheus of the test's own (to stop and start). ``DEPLOYCTL_RELIABILITY=large`` runs
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
) -> Iterator[tuple[Pinned, PrometheusServer]]:
    prometheus = PrometheusServer(tmp_path / "prometheus", file_sd_dir=tmp_path / "sd")
    prometheus.start()
    try:
        url = prometheus.url
        with pinned_sandbox(control_plane, kube_api, tmp_path, prometheus_url=url) as box:
            yield box, prometheus
    finally:
        prometheus.stop()
