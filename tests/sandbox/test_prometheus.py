"""Real Prometheus scraping a real demo app found through file_sd; PromQL sees its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.prometheus import PrometheusNotInstalled, PrometheusServer
from tests.sandbox.workload_helpers import get
from tests.waiting import wait_until


def test_rate_query_sees_thirty_percent_errors(prometheus, demo_app) -> None:
    app = demo_app(
        {"DEMO_ERROR_RATE": "0.3"},
        labels={"namespace": "t-prom", "app": "shop", "revision": "abc123"},
    )
    selector = 'app="shop",revision="abc123",namespace="t-prom"'
    # Discovery first, so the counters start from a scraped zero and rate() sees them all.
    prometheus.wait_for_series(f"up{{{selector}}} == 1", deadline=30)
    for _ in range(200):
        get(f"{app.url}/")
    ratio_query = (
        f'sum(rate(http_requests_total{{{selector},code=~"5.."}}[30s]))'
        f" / sum(rate(http_requests_total{{{selector}}}[30s]))"
    )

    def ratio_settled() -> float | None:
        # Wait until a scrape after the last request has landed (the total reads 200).
        total = prometheus.query(f"sum(http_requests_total{{{selector}}})")
        if not total or total[0].value != 200:
            return None
        (sample,) = prometheus.wait_for_series(ratio_query, deadline=10)
        return float(sample.value)

    ratio = wait_until(ratio_settled, timeout=30, interval=0.25, what="200 requests scraped")
    assert ratio == pytest.approx(0.3, abs=0.01)


def test_targets_carry_the_file_sd_labels(prometheus, demo_app) -> None:
    app = demo_app(labels={"namespace": "t-prom", "pod": "shop-1", "revision": "r1"})
    (sample,) = prometheus.wait_for_series(f'up{{instance="{app.target}"}}', deadline=30)
    assert sample.value == 1
    assert {"namespace": "t-prom", "pod": "shop-1", "revision": "r1"}.items() <= (
        sample.labels.items()
    )


@pytest.mark.prometheus
def test_static_targets_and_clean_stop(tmp_path: Path, demo_app) -> None:
    app = demo_app()
    with PrometheusServer(tmp_path / "p", static_targets=[app.target]) as server:
        config = json.loads((tmp_path / "p" / "prometheus.yml").read_text())
        assert config["global"]["scrape_interval"] == "1s"
        assert server.wait_for_series(f'up{{job="static",instance="{app.target}"}} == 1')
        assert get(f"{server.url}/-/ready").status == 200
    assert not server.running


def test_missing_binary_names_the_package(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("sandbox.prometheus.shutil.which", lambda name: None)
    monkeypatch.setattr("sandbox.prometheus.Path.exists", lambda self: False)
    with pytest.raises(PrometheusNotInstalled, match="apt-get install -y prometheus"):
        PrometheusServer(tmp_path).start()
