"""Grouped preset queries against the real Prometheus scraping real demo-app processes:
each revision's part of a grouped answer is what its own query gives, label values with
regex metacharacters select only themselves, and an engine measuring many runs at once
sends one query per moment (counted by a reverse proxy in front of Prometheus).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from controller.analysis.batch import Batches, BatchKey
from controller.analysis.presets import (
    GroupedQuery,
    error_rate_query,
    grouped_query,
    metric_query,
)
from controller.analysis.prometheus import PrometheusMeasurer, query
from controller.analysis.run import AnalysisEngine, start_run
from controller.analysis.templating import QueryContext, render
from controller.analysis.values import QueryOutcome, QueryResult
from controller.api.analysis import ErrorRatePreset
from controller.api.rollout import AnalysisRef
from controller.api.status import AnalysisRunStatus
from tests.analysis.helpers import metric, template
from tests.analysis.test_prometheus_real import Load, load  # noqa: F401  (fixture)
from tests.counting_proxy import CountingProxy

pytestmark = pytest.mark.prometheus

REF = AnalysisRef.model_validate({"templates": [{"name": "http-health"}]})
PRESET = ErrorRatePreset(window=5)


@pytest.fixture
def counting(prometheus: Any) -> Iterator[CountingProxy]:
    proxy = CountingProxy(prometheus.url, classify=kind_of)
    yield proxy
    proxy.close()


def kind_of(promql: str) -> str:
    """A grouped preset query, or another (a no-data record's traffic query)."""
    return "grouped" if "by (namespace, revision)" in promql else "other"


def revision() -> str:
    return uuid.uuid4().hex[:10]


def context(namespace: str, rev: str) -> QueryContext:
    return QueryContext(canary_hash=rev, rollout_name="shop", rollout_namespace=namespace)


def own_query(namespace: str, rev: str) -> str:
    return render(error_rate_query(PRESET), context(namespace, rev))


def test_each_revision_gets_what_its_own_query_gives(prometheus, demo_app, load) -> None:  # noqa: F811
    good, bad, dotted = revision(), revision(), revision()
    # "t.batch" as a regex would also match "tXbatch", which serves 100% errors under the
    # same revision: escaping keeps it out of the grouped answer.
    apps = [
        ("t-batch", good, {}),
        ("t-batch", bad, {"DEMO_ERROR_RATE": "0.3"}),
        ("t.batch", dotted, {}),
        ("tXbatch", dotted, {"DEMO_ERROR_RATE": "1"}),
    ]
    for namespace, rev, env in apps:
        load.start(demo_app(env, labels={"namespace": namespace, "revision": rev}).url)
    for namespace, rev, _ in apps:
        prometheus.wait_for_series(own_query(namespace, rev), deadline=60)

    at = datetime.now(UTC)
    scopes = [("t-batch", good), ("t-batch", bad), ("t.batch", dotted), ("t-batch", "absent")]
    key = BatchKey(grouped_query_of(PRESET), None, 10.0)
    batches = Batches()
    for scope in scopes:
        batches.expect(key, scope, due=at)
    sent: list[str] = []

    def send(text: str) -> QueryOutcome:
        sent.append(text)
        return query(prometheus.url, text, timeout=10, at=at)

    grouped = {scope: batches.measure(key, scope, now=at, send=send) for scope in scopes}
    assert len(sent) == 1
    whole = query(prometheus.url, sent[0], timeout=10, at=at)
    assert sorted((s.labels["namespace"], s.labels["revision"]) for s in whole.samples) == sorted(
        [("t-batch", good), ("t-batch", bad), ("t.batch", dotted)]
    )
    for namespace, rev in scopes:
        alone = query(prometheus.url, own_query(namespace, rev), timeout=10, at=at)
        mine = grouped[(namespace, rev)]
        assert isinstance(mine, QueryResult)
        assert [s.value for s in mine.samples] == [s.value for s in alone.samples]
    values = {scope: [s.value for s in o.samples] for scope, o in grouped.items()}  # type: ignore[union-attr]
    assert values[("t-batch", "absent")] == []
    assert values[("t-batch", bad)][0] > 0.05 >= values[("t-batch", good)][0]
    assert values[("t.batch", dotted)][0] <= 0.05


def grouped_query_of(preset: ErrorRatePreset) -> GroupedQuery:
    grouped = grouped_query(metric(provider=None, threshold=None, errorRate={"window": "5s"}))
    assert grouped == GroupedQuery(preset)
    return grouped


def test_an_engine_measuring_many_runs_sends_one_query_per_moment(
    prometheus,
    demo_app,
    load,  # noqa: F811
    counting: CountingProxy,
) -> None:
    namespace = "t-batch-engine"
    healthy = [revision() for _ in range(3)]
    bad, silent = revision(), revision()
    for rev in healthy:
        load.start(demo_app(labels={"namespace": namespace, "revision": rev}).url)
    load.start(
        demo_app({"DEMO_ERROR_RATE": "0.3"}, labels={"namespace": namespace, "revision": bad}).url
    )
    demo_app(labels={"namespace": namespace, "revision": silent})  # serves no requests
    templ = template(
        {
            "name": "errors",
            "interval": "1s",
            "count": 3,
            "for": "0s",
            "inconclusiveLimit": 0,
            "errorRate": {"window": "5s"},
        }
    )
    for rev in [*healthy, bad]:
        prometheus.wait_for_series(
            render(metric_query(templ.spec.metrics[0]), context(namespace, rev)), deadline=60
        )

    engine = AnalysisEngine(PrometheusMeasurer(counting.url), batches=Batches())
    revisions = [*healthy, bad, silent]
    started = datetime.now(UTC)
    runs: dict[str, AnalysisRunStatus] = {
        rev: start_run(key="step-1", revision=rev, metrics=[], now=started) for rev in revisions
    }
    templates = {"http-health": templ}

    def register(now: datetime) -> None:
        # As the operator's passes do: the pass that starts a run, and every pass after
        # it, registers the run's next measurement (on the batch grid) before it is due.
        for rev, run in runs.items():
            ctx = context(namespace, rev)
            bound = engine.bind(templates, REF, revision=rev, context=ctx)
            engine.expect(run, bound, context=ctx, now=now)

    register(started)
    moments = 0
    end = time.monotonic() + 60
    while any(run.phase == "Running" for run in runs.values()):
        assert time.monotonic() < end, f"runs still going after 60 s: {runs}"
        now = datetime.now(UTC)
        before = counting.kinds["grouped"]
        for rev, run in runs.items():
            runs[rev] = engine.advance(
                run, templates=templates, ref=REF, context=context(namespace, rev), now=now
            )
        register(now)
        moments += counting.kinds["grouped"] > before
        # One grouped query at most per moment, whatever the number of runs.
        assert counting.kinds["grouped"] - before <= 1, counting.seen[-4:]
        time.sleep(0.2)  # the polling interval of this loop, not a synchronisation

    assert {rev: run.phase for rev, run in runs.items()} == {
        **{rev: "Successful" for rev in healthy},
        bad: "Failed",
        silent: "Inconclusive",
    }
    assert counting.kinds["grouped"] == moments
    # Without batching every run would have asked at least once per measurement: here
    # the five runs, measured on one grid, share each query.
    measured = sum(len(run.metrics[0].measurements) for run in runs.values())
    assert counting.kinds["grouped"] * 2 <= measured


def test_a_grouped_query_for_a_thousand_revisions_passes_a_proxy_with_a_url_limit(
    prometheus,
    demo_app,
    load,  # noqa: F811
) -> None:
    """A grouped query naming 1,000 revisions (about 40 KB) goes as a form POST, so a
    proxy refusing request lines over 8 KiB (nginx's default buffers) lets it through,
    and the answer is the one Prometheus gives; a short query stays a GET."""
    namespace, served = "t-batch-post", revision()
    load.start(demo_app(labels={"namespace": namespace, "revision": served}).url)
    prometheus.wait_for_series(own_query(namespace, served), deadline=60)
    grouped = grouped_query_of(PRESET)
    revisions = [served, *(revision() for _ in range(999))]
    promql = grouped.query([namespace], revisions)
    assert len(promql) > 8192 * 3

    proxy = CountingProxy(prometheus.url, max_request_line=8192)
    try:
        at = datetime.now(UTC)
        outcome = query(proxy.url, promql, timeout=10, at=at)
        assert proxy.refused == 0
        ((method, size),) = [(seen.method, seen.size) for seen in proxy.seen]
        assert method == "POST" and size > 8192
        direct = query(prometheus.url, promql, timeout=10, at=at)
        assert outcome.samples == direct.samples
        assert [(s.labels["namespace"], s.labels["revision"]) for s in outcome.samples] == [
            (namespace, served)
        ]

        query(proxy.url, own_query(namespace, served), timeout=10)
        assert proxy.seen[-1].method == "GET"
        # The limit is real: the same grouped query as a GET is refused.
        long_get = urllib.request.Request(
            f"{proxy.url}/api/v1/query?{urlencode({'query': promql})}"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(long_get, timeout=10)
        refused.value.close()  # the error holds the response
        assert refused.value.code == 414 and proxy.refused == 1
    finally:
        proxy.close()
