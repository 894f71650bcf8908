"""The demo app without a cluster: exact error spreading, latency, metrics, env handling."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from sandbox.demo_app import LATENCY_BUCKETS, DemoApp, DemoConfig, ErrorSpreader
from tests.sandbox.workload_helpers import get
from tests.waiting import wait_until


@pytest.fixture
def make_app() -> Iterator[object]:
    apps: list[DemoApp] = []

    def start(**env: str) -> DemoApp:
        app = DemoApp(DemoConfig.from_env(env, host="127.0.0.1", port=0))
        app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


def samples(app: DemoApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = get(f"{app.url}/metrics").body.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@given(
    rate=st.fractions(min_value=0, max_value=1, max_denominator=100),
    n=st.integers(min_value=1, max_value=300),
)
def test_error_spreader_fails_exactly_floor_n_times_rate(rate: Fraction, n: int) -> None:
    spreader = ErrorSpreader(rate)
    failures = sum(spreader.next_fails() for _ in range(n))
    assert failures == int(n * rate)  # floor, since n*rate >= 0


def test_thirty_percent_errors_in_every_window_of_ten(make_app) -> None:
    app = make_app(DEMO_ERROR_RATE="0.3")
    codes = [get(f"{app.url}/").status for _ in range(60)]
    assert set(codes) == {200, 500}
    for start in range(len(codes) - 10 + 1):
        assert codes[start : start + 10].count(500) == 3, codes


def test_zero_and_full_error_rates(make_app) -> None:
    healthy, broken = make_app(), make_app(DEMO_ERROR_RATE="1")
    assert {get(f"{healthy.url}/").status for _ in range(20)} == {200}
    assert {get(f"{broken.url}/").status for _ in range(20)} == {500}


def test_errors_wait_until_the_app_has_run_for_a_while(make_app) -> None:
    # A version that breaks only later: before its time, even a rate of 1 answers 200.
    later = make_app(DEMO_ERROR_RATE="1", DEMO_ERRORS_AFTER_SECONDS="3600")
    assert {get(f"{later.url}/").status for _ in range(20)} == {200}
    assert DemoConfig.from_env({"DEMO_ERRORS_AFTER_SECONDS": "12"}).errors_after_seconds == 12


def test_latency_is_added_and_lands_in_the_histogram(make_app) -> None:
    app = make_app(DEMO_LATENCY_SECONDS="0.3")
    replies = [get(f"{app.url}/") for _ in range(3)]
    assert all(r.status == 200 and r.seconds >= 0.3 for r in replies)
    metrics = samples(app)
    bucket = "http_request_duration_seconds_bucket"
    assert metrics[(bucket, (("le", "0.25"),))] == 0
    assert metrics[(bucket, (("le", "0.5"),))] == 3
    assert metrics[("http_request_duration_seconds_count", ())] == 3
    assert metrics[("http_request_duration_seconds_sum", ())] >= 0.9


def test_metrics_exposition_counts_app_requests_only(make_app) -> None:
    app = make_app(DEMO_ERROR_RATE="0.3")
    for _ in range(10):
        get(f"{app.url}/")
    for _ in range(5):  # probes and scrapes must not dilute the error ratio
        get(f"{app.url}/healthz")
        get(f"{app.url}/metrics")
    metrics = samples(app)
    total = "http_requests_total"
    assert metrics[(total, (("code", "200"), ("method", "GET")))] == 7
    assert metrics[(total, (("code", "500"), ("method", "GET")))] == 3
    buckets = {
        float(dict(labels)["le"])
        for (name, labels) in metrics
        if name == "http_request_duration_seconds_bucket"
    }
    assert buckets == set(LATENCY_BUCKETS) | {float("inf")}
    assert min(buckets) == 0.005 and max(buckets - {float("inf")}) == 10.0


def test_two_apps_in_one_process_keep_separate_registries(make_app) -> None:
    first, second = make_app(), make_app()
    for _ in range(4):
        get(f"{first.url}/")
    key = ("http_requests_total", (("code", "200"), ("method", "GET")))
    assert samples(first)[key] == 4
    assert samples(second)[key] == 0


def test_version_and_healthz(make_app) -> None:
    app = make_app(DEMO_VERSION="v2")
    reply = get(f"{app.url}/version")
    assert reply.status == 200 and json.loads(reply.body) == {"version": "v2"}
    assert reply.headers["x-demo-version"] == "v2"
    assert get(f"{app.url}/healthz").status == 200
    assert get(f"{app.url}/nope").status == 404


@pytest.mark.parametrize(
    "env",
    [
        {"DEMO_ERROR_RATE": "1.5"},
        {"DEMO_ERROR_RATE": "-0.1"},
        {"DEMO_LATENCY_SECONDS": "-1"},
        {"DEMO_ERRORS_AFTER_SECONDS": "-1"},
    ],
)
def test_invalid_environment_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="DEMO_"):
        DemoConfig.from_env(env)


def test_environment_defaults_and_overrides() -> None:
    config = DemoConfig.from_env({"DEMO_HOST": "127.0.1.9", "DEMO_PORT": "9999"}, port=8080)
    assert (config.host, config.port, config.version) == ("127.0.1.9", 8080, "dev")
    assert config.error_rate == Fraction(0)


def test_process_reads_env_and_exits_cleanly_on_sigterm(demo_app) -> None:
    app = demo_app({"DEMO_VERSION": "v3", "DEMO_ERROR_RATE": "1"})
    assert json.loads(get(f"{app.url}/version").body) == {"version": "v3"}
    assert get(f"{app.url}/").status == 500
    os.kill(app.pid, signal.SIGTERM)

    exit_codes: list[int] = []

    def exited() -> bool:
        reaped, status = os.waitpid(app.pid, os.WNOHANG)
        if reaped == app.pid:
            exit_codes.append(os.waitstatus_to_exitcode(status))
        return bool(exit_codes)

    wait_until(exited, timeout=10, what="demo app to exit after SIGTERM")
    assert exit_codes == [0]


def test_latency_can_be_a_seeded_log_normal_distribution(make_app) -> None:
    env = {"DEMO_LATENCY_SECONDS": "0.05", "DEMO_LATENCY_SPREAD": "0.25", "DEMO_LATENCY_SEED": "7"}
    app = make_app(**env)
    assert (app.config.latency_spread, app.config.latency_seed) == (0.25, 7)
    draws = [app.latency() for _ in range(2000)]
    assert make_app(**env).latency() == draws[0]  # the seed decides the sequence
    ordered = sorted(draws)
    assert 0.047 < ordered[1000] < 0.053  # the configured median
    assert ordered[100] < 0.035 and ordered[-100] > 0.07  # a spread, not a constant
    constant = make_app(DEMO_LATENCY_SECONDS="0.05")
    assert {constant.latency() for _ in range(10)} == {0.05}


@pytest.mark.parametrize("spread", ["-0.1", "4"])
def test_a_latency_spread_out_of_range_is_refused(spread: str) -> None:
    with pytest.raises(ValueError, match="DEMO_LATENCY_SPREAD must be within 0..3"):
        DemoConfig.from_env({"DEMO_LATENCY_SPREAD": spread})
