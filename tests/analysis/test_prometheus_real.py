"""The analysis engine against a real Prometheus scraping real demo-app processes.

Every test gets its own revision label, so tests sharing the session Prometheus never
see each other's series. Waiting is polling a condition with a deadline, never a sleep.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.analysis.prometheus import PrometheusMeasurer, QueryRejected, query
from controller.analysis.run import AnalysisEngine, start_run
from controller.analysis.templating import QueryContext, escape_string, render
from controller.api.analysis import AnalysisTemplate
from controller.api.rollout import AnalysisRef
from controller.api.status import AnalysisRunStatus
from controller.cli import app
from sandbox.prometheus import PrometheusServer
from tests.analysis.helpers import template
from tests.waiting import wait_until

pytestmark = pytest.mark.prometheus

NAMESPACE = "t-analysis"
REF = AnalysisRef.model_validate({"templates": [{"name": "http-health"}]})


class Load:
    """Background requests against demo apps until the test ends."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, url: str) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    with urllib.request.urlopen(f"{url}/", timeout=5) as reply:
                        reply.read()
                except OSError:
                    pass  # 500s raise HTTPError (an OSError): they are the point

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


@pytest.fixture
def load() -> Iterator[Load]:
    traffic = Load()
    yield traffic
    traffic.stop()


def revision() -> str:
    return uuid.uuid4().hex[:10]


def labels(rev: str, **extra: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "revision": rev, **extra}


def context(rev: str) -> QueryContext:
    return QueryContext(canary_hash=rev, rollout_name="shop", rollout_namespace=NAMESPACE)


def preset_template(**metric: Any) -> AnalysisTemplate:
    return template(
        {"name": "check", "interval": "1s", "count": 3, "for": "0s", **metric},
    )


def drive(
    engine: AnalysisEngine,
    templ: AnalysisTemplate,
    ctx: QueryContext,
    *,
    run: AnalysisRunStatus | None = None,
    deadline: float = 20.0,
) -> AnalysisRunStatus:
    """Advance with the wall clock until the run is decided (polling, with a deadline)."""
    run = run or start_run(key="step-1", revision="x", metrics=[], now=datetime.now(UTC))
    end = time.monotonic() + deadline
    while run.phase == "Running":
        assert time.monotonic() < end, f"analysis still running after {deadline}s: {run}"
        run = engine.advance(
            run, templates={"http-health": templ}, ref=REF, context=ctx, now=datetime.now(UTC)
        )
        time.sleep(0.1)  # poll interval of the loop above, not a synchronisation
    return run


def wait_for_data(prometheus: PrometheusServer, templ: AnalysisTemplate, ctx: QueryContext) -> None:
    from controller.analysis.presets import metric_query

    prometheus.wait_for_series(render(metric_query(templ.spec.metrics[0]), ctx), deadline=30)


def test_healthy_revision_passes(prometheus, demo_app, load) -> None:
    rev = revision()
    load.start(demo_app(labels=labels(rev)).url)
    templ = preset_template(errorRate={"window": "5s"})
    wait_for_data(prometheus, templ, context(rev))
    run = drive(AnalysisEngine(PrometheusMeasurer(prometheus.url)), templ, context(rev))
    assert run.phase == "Successful", run
    assert [m.phase for m in run.metrics[0].measurements] == ["Successful"] * 3
    assert "<= max 0.05" in run.metrics[0].measurements[-1].message


def test_thirty_percent_errors_fail(prometheus, demo_app, load) -> None:
    rev = revision()
    load.start(demo_app({"DEMO_ERROR_RATE": "0.3"}, labels=labels(rev)).url)
    templ = preset_template(errorRate={"window": "5s"})
    wait_for_data(prometheus, templ, context(rev))
    run = drive(AnalysisEngine(PrometheusMeasurer(prometheus.url)), templ, context(rev))
    assert run.phase == "Failed"
    measurement = run.metrics[0].measurements[-1]
    assert float(measurement.value or "nan") == pytest.approx(0.3, abs=0.1)
    assert measurement.message.startswith("check 0.") and "> max 0.05" in measurement.message


def test_latency_above_threshold_fails(prometheus, demo_app, load) -> None:
    rev = revision()
    load.start(demo_app({"DEMO_LATENCY_SECONDS": "0.3"}, labels=labels(rev)).url)
    templ = preset_template(latency={"max": "100ms", "window": "5s"})
    wait_for_data(prometheus, templ, context(rev))
    run = drive(AnalysisEngine(PrometheusMeasurer(prometheus.url)), templ, context(rev))
    assert run.phase == "Failed"
    assert "> max 0.1" in run.message


def test_no_traffic_is_inconclusive(prometheus, demo_app) -> None:
    rev = revision()
    demo_app(labels=labels(rev))
    prometheus.wait_for_series(f'up{{revision="{rev}"}} == 1', deadline=30)
    templ = preset_template(errorRate={"window": "5s"})
    run = drive(AnalysisEngine(PrometheusMeasurer(prometheus.url)), templ, context(rev))
    assert run.phase == "Inconclusive"
    assert "no data" in run.message


def test_prometheus_stopped_mid_analysis_is_error_then_inconclusive(
    tmp_path: Path, file_sd_dir: Path, demo_app, load
) -> None:
    rev = revision()
    load.start(demo_app(labels=labels(rev)).url)
    templ = template(
        {
            "name": "check",
            "interval": "1s",
            "inconclusiveLimit": 1,
            "errorRate": {"window": "5s"},
            "for": "0s",
        }
    )
    ctx = context(rev)
    engine = AnalysisEngine(PrometheusMeasurer("http://unused"), retry_budget=1.0)
    with PrometheusServer(tmp_path / "own", file_sd_dir=file_sd_dir) as own:
        engine = AnalysisEngine(PrometheusMeasurer(own.url), retry_budget=1.0)
        wait_for_data(own, templ, ctx)
        run = start_run(key="bg", revision=rev, metrics=[], now=datetime.now(UTC))
        run = engine.advance(
            run, templates={"http-health": templ}, ref=REF, context=ctx, now=datetime.now(UTC)
        )
        assert [m.phase for m in run.metrics[0].measurements] == ["Successful"]
    seen: list[str] = []
    end = time.monotonic() + 20
    while run.phase == "Running":
        assert time.monotonic() < end
        run = engine.advance(
            run, templates={"http-health": templ}, ref=REF, context=ctx, now=datetime.now(UTC)
        )
        seen.append(run.phase)
        time.sleep(0.1)  # poll interval, see drive()
    phases = [m.phase for m in run.metrics[0].measurements]
    assert phases == ["Successful", "Error", "Error"]
    assert run.phase == "Inconclusive" and "Successful" not in seen
    assert "unavailable" in run.message and "attempt" in run.message


def test_malformed_query_is_rejected_once_with_prometheus_message(prometheus) -> None:
    bad = "sum(rate(http_requests_total[1m]"
    started = time.monotonic()
    with pytest.raises(QueryRejected) as info:
        query(prometheus.url, bad, timeout=5, budget=10)
    assert time.monotonic() - started < 2, "a rejected query must not be retried"
    assert info.value.status_code == 400 and info.value.query == bad
    assert "parse error" in info.value.reason
    assert bad in str(info.value)

    templ = template(
        {
            "name": "check",
            "interval": "1s",
            "threshold": {"max": 1},
            "provider": {"prometheus": {"query": bad}},
        }
    )
    run = drive(AnalysisEngine(PrometheusMeasurer(prometheus.url)), templ, context("x"))
    assert run.phase == "Error"
    assert "rejected the query (400)" in run.message and "parse error" in run.message
    assert bad in run.message


def test_injected_value_selects_what_the_intended_matcher_selects(prometheus, demo_app) -> None:
    tricky = 'checkout"} or vector(42) or up{service="x'
    demo_app(labels=labels(revision(), service=tricky))
    intended = f"sum(up{{service={json.dumps(tricky)}}})"
    (expected,) = prometheus.wait_for_series(intended, deadline=30)
    ctx = context("x").with_args({"service": tricky})
    rendered = render('sum(up{service="{{args.service}}"})', ctx)
    got = query(prometheus.url, rendered, timeout=5).samples
    assert [s.value for s in got] == [expected.value] == [1.0]
    # What naive substitution would have asked: a different query with a different answer.
    naive = f'sum(up{{service="{tricky}"}})'
    assert [s.value for s in query(prometheus.url, naive, timeout=5).samples] == [42.0]
    assert rendered == f'sum(up{{service="{escape_string(tricky)}"}})'


def test_backtest_finds_when_it_would_have_failed(prometheus, demo_app, load, tmp_path) -> None:
    rev = revision()
    selector = f'namespace="{NAMESPACE}",revision="{rev}"'
    load.start(demo_app(labels=labels(rev)).url)
    ratio = (
        f'sum(rate(http_requests_total{{{selector},code=~"5.."}}[5s]))'
        f" / sum(rate(http_requests_total{{{selector}}}[5s]))"
    )
    prometheus.wait_for_series(ratio, deadline=30)
    # Let a few healthy seconds of history accumulate.
    healthy_since = time.time()
    wait_until(
        lambda: time.time() - healthy_since > 4 or None, timeout=10, interval=0.2, what="history"
    )
    broke_at = time.time()
    load.start(demo_app({"DEMO_ERROR_RATE": "0.5"}, labels=labels(rev)).url)
    wait_until(
        lambda: any(s.value > 0.05 for s in prometheus.query(ratio)) or None,
        timeout=30,
        interval=0.25,
        what="the error ratio to rise",
    )
    detected_at = time.time()
    # The breach must then hold longer than the template's `for` (2s) in the history.
    wait_until(
        lambda: time.time() - detected_at > 4 or None, timeout=10, interval=0.2, what="history"
    )
    file = tmp_path / "template.yaml"
    file.write_text(
        json.dumps(
            template(
                {"name": "error-rate", "interval": "1s", "errorRate": {"window": "5s"}, "for": "2s"}
            ).to_dict()
        )
    )
    since = f"{int(time.time() - healthy_since) + 8}s"
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            "-f",
            str(file),
            "--since",
            since,
            "--step",
            "1s",
            "--prometheus-url",
            prometheus.url,
            "--canary-hash",
            rev,
            "--namespace",
            NAMESPACE,
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 1, result.output
    (report,) = json.loads(result.stdout)
    (metric,) = report["metrics"]
    assert metric["outcome"] == "Failed"
    failed = next(e for e in metric["events"] if e["phase"] == "Failed")
    at = datetime.strptime(failed["at"], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert broke_at - 1 <= at <= detected_at + 3, (broke_at, at, detected_at, metric)
    assert "> max 0.05 for 2s" in failed["message"]
