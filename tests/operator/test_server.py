"""The probe and metrics endpoints answer as documented."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from controller.server import HealthServer


@pytest.fixture
def server() -> Iterator[HealthServer]:
    with HealthServer("127.0.0.1", 0) as running:
        yield running


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_healthz_and_readyz_follow_their_checks(server: HealthServer) -> None:
    synced = {"value": False}
    server.add_liveness_check("workers", lambda: True)
    server.add_readiness_check("informers", lambda: synced["value"])
    assert fetch(server.url + "/healthz") == (200, "ok\n")
    code, body = fetch(server.url + "/readyz")
    assert code == 503
    assert "[-]informers failed" in body
    synced["value"] = True
    assert fetch(server.url + "/readyz") == (200, "ok\n")
    code, body = fetch(server.url + "/readyz?verbose")
    assert code == 200 and "[+]informers ok" in body


def test_a_raising_check_fails_instead_of_crashing(server: HealthServer) -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    server.add_liveness_check("broken", broken)
    code, body = fetch(server.url + "/healthz")
    assert code == 503 and "[-]broken failed" in body


def test_metrics_and_unknown_paths(server: HealthServer) -> None:
    from controller.metrics import API_REQUESTS

    API_REQUESTS.labels(verb="get", resource="rollouts", code="200").inc()
    code, body = fetch(server.url + "/metrics")
    assert code == 200
    assert 'deployctl_api_requests_total{code="200",resource="rollouts",verb="get"}' in body
    assert "deployctl_workqueue_depth" in body or "# HELP deployctl_workqueue_depth" in body
    assert fetch(server.url + "/nope")[0] == 404
