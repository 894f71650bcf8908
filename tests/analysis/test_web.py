"""HTTP checks (the web provider) against a real demo-app process and real Secrets.

``WebChecks.fetch`` sends over the network to a demo app started for the test;
``judge_reply`` is judged on what came back. Header Secrets are read from the sandbox's
kube-apiserver through ``Kube.read_secret``, the controller's own reader.

The demo apps listen on 127.0.0.1, which the address policy refuses by default
(loopback): these checks carry the explicit allowance ``LOOPBACK`` that the sandbox's
controller gets with ``--web-allow-cidrs 127.0.0.0/8``. The policy itself is tested in
``tests/security/``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s

from controller.analysis.addresses import AddressPolicy, parse_networks
from controller.analysis.values import QueryFailure
from controller.analysis.web import WebChecks
from controller.analysis.webcheck import PathError, WebReply, judge_reply, lookup
from controller.api.analysis import Metric
from controller.kube import Kube

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LOOPBACK = AddressPolicy(allow=parse_networks(["127.0.0.0/8"], flag="test"))


def web_metric(web: dict[str, Any], **extra: Any) -> Metric:
    return Metric.model_validate({"name": "probe", "provider": {"web": web}, **extra})


def no_secrets(namespace: str, name: str) -> dict[str, str]:
    raise AssertionError(f"no Secret should be read, asked for {namespace}/{name}")


def check(metric: Metric, checks: WebChecks, *, namespace: str = "shop") -> Any:
    assert metric.web is not None
    reply = checks.fetch(metric.web, namespace=namespace, budget=5)
    if isinstance(reply, QueryFailure):
        return reply
    return judge_reply(metric, metric.web, reply, breach_since=None, now=NOW)


def test_lookup_walks_keys_and_indexes_and_names_what_is_missing() -> None:
    doc = {"checks": [{"ok": True}, {"latency_ms": 12.5}], "status": "ok"}
    assert lookup(doc, "$.status") == "ok"
    assert lookup(doc, "checks[1].latency_ms") == 12.5
    with pytest.raises(PathError, match=r"no \[5\] at \$.checks"):
        lookup(doc, "$.checks[5].ok")
    with pytest.raises(PathError, match="no 'db' at"):
        lookup(doc, "$.db.ok")


@pytest.mark.parametrize(
    ("status", "body", "extra", "verdict"),
    [
        (200, "", {}, "Successful"),
        (204, "", {}, "Successful"),
        (503, "upstream down", {}, "Failed"),
        (200, "", {"successCodes": [204]}, "Failed"),
        (200, '{"status": "ok"}', {"jsonPath": "$.status", "equals": "ok"}, "Successful"),
        (200, '{"status": "degraded"}', {"jsonPath": "$.status", "equals": "ok"}, "Failed"),
        (200, '{"ready": true}', {"jsonPath": "ready", "equals": "true"}, "Successful"),
        (200, "<html>", {"jsonPath": "$.status", "equals": "ok"}, "Inconclusive"),
        (200, "{}", {"jsonPath": "$.status", "equals": "ok"}, "Inconclusive"),
    ],
)
def test_reply_is_judged_on_status_code_then_json_value(status, body, extra, verdict) -> None:
    metric = web_metric({"url": "http://checkout.shop.svc:8080/healthz", **extra})
    assert metric.web is not None
    reply = WebReply(method="GET", url="http://x/healthz", status=status, body=body)
    judged = judge_reply(metric, metric.web, reply, breach_since=None, now=NOW)
    assert judged.phase == verdict, judged.message
    if verdict == "Failed" and status >= 300:
        assert f"-> {status} in 0 ms" in judged.message and body in judged.message


def test_a_json_number_is_judged_against_the_threshold() -> None:
    metric = web_metric(
        {"url": "http://x/stats", "jsonPath": "$.queue.depth"}, threshold={"max": 100}
    )
    assert metric.web is not None
    for depth, verdict in ((12, "Successful"), (250, "Failed"), ("many", "Inconclusive")):
        reply = WebReply("GET", "http://x/stats", 200, f'{{"queue": {{"depth": "{depth}"}}}}')
        if isinstance(depth, int):
            reply = WebReply("GET", "http://x/stats", 200, f'{{"queue": {{"depth": {depth}}}}}')
        assert judge_reply(metric, metric.web, reply, breach_since=None, now=NOW).phase == verdict


@pytest.mark.parametrize(
    ("depth", "verdict"),
    [
        ("12", "Successful"),
        ('"12"', "Successful"),
        ("true", "Inconclusive"),
        ("[1]", "Inconclusive"),
    ],
)
def test_only_a_number_or_a_numeric_string_meets_a_threshold(depth: str, verdict: str) -> None:
    metric = web_metric(
        {"url": "http://x/stats", "jsonPath": "$.queue.depth"}, threshold={"max": 100}
    )
    assert metric.web is not None
    reply = WebReply("GET", "http://x/stats", 200, f'{{"queue": {{"depth": {depth}}}}}')
    judged = judge_reply(metric, metric.web, reply, breach_since=None, now=NOW)
    assert judged.phase == verdict, judged.message
    if verdict == "Inconclusive":
        assert judged.message.endswith("is not a number")


@pytest.mark.parametrize(
    ("web", "extra", "problem"),
    [
        ({}, {}, "exactly one of url, service"),
        ({"url": "http://a/", "service": "b"}, {}, "exactly one of url, service"),
        ({"url": "http://a/", "port": 8080}, {}, "port and path go with service"),
        ({"service": "b", "body": "{}"}, {}, "a body needs method: POST"),
        ({"service": "b", "equals": "ok"}, {}, "equals needs jsonPath"),
        ({"service": "b", "jsonPath": "$.x"}, {}, "jsonPath needs equals or a threshold"),
        ({"service": "b"}, {"threshold": {"max": 1}}, "a threshold needs jsonPath"),
        ({"service": "b", "headers": [{"name": "X-A"}]}, {}, "exactly one of value, valueFrom"),
        ({"service": "b", "headers": [{"name": "X", "value": "a\r\nB: c"}]}, {}, "one line"),
    ],
)
def test_bad_web_checks_are_refused_with_the_reason(web, extra, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        web_metric(web, **extra)


def test_checks_against_a_real_app_pass_and_fail_on_status_and_json(demo_app) -> None:
    healthy = demo_app({"DEMO_VERSION": "v2"})
    broken = demo_app({"DEMO_ERROR_RATE": "1"})
    checks = WebChecks(secrets=no_secrets, policy=LOOPBACK)

    passed = check(web_metric({"url": f"{healthy.url}/"}), checks)
    assert passed.phase == "Successful" and f"GET {healthy.url}/ -> 200" in passed.message

    failed = check(web_metric({"url": f"{broken.url}/", "successCodes": [200]}), checks)
    assert failed.phase == "Failed"
    assert re.search(r"-> 500 in \d+ ms \(wanted 200\): injected error", failed.message)

    version = {"url": f"{healthy.url}/version", "jsonPath": "$.version"}
    assert check(web_metric({**version, "equals": "v2"}), checks).phase == "Successful"
    wrong = check(web_metric({**version, "equals": "v3"}), checks)
    assert wrong.phase == "Failed" and "'v2' (want 'v3')" in wrong.message


def test_no_reply_is_retried_then_reported_unavailable() -> None:
    with socket.socket() as listener:  # a port that refuses: bound, never listening
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        metric = web_metric({"url": f"http://127.0.0.1:{port}/healthz", "timeout": "1s"})
        outcome = check(metric, WebChecks(secrets=no_secrets, policy=LOOPBACK))
    assert isinstance(outcome, QueryFailure)
    assert outcome.kind == "unavailable" and "no reply (ConnectionRefusedError)" in outcome.message


@pytest.fixture
def kube(control_plane: Any) -> Iterator[Kube]:
    adapter = Kube(control_plane.api_client())
    yield adapter
    adapter.close()


def test_header_from_a_secret_is_sent_and_missing_ones_are_named(
    demo_app, kube, kube_api, namespace
) -> None:
    core: Any = k8s.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "probe-token"}, "stringData": {"token": "Bearer s3cret\n"}},
    )
    app = demo_app()
    checks = WebChecks(secrets=kube.read_secret, policy=LOOPBACK)
    from_secret = {"secretKeyRef": {"name": "probe-token", "key": "token"}}
    good = web_metric(
        {
            "url": f"{app.url}/healthz",
            "headers": [{"name": "Authorization", "valueFrom": from_secret}],
        }
    )
    assert good.web is not None
    assert checks.headers(good.web, namespace) == {"Authorization": "Bearer s3cret"}
    judged = check(good, checks, namespace=namespace)
    assert judged.phase == "Successful"
    assert "s3cret" not in judged.message

    for ref, problem in (
        ({"name": "nope", "key": "token"}, f"no Secret {namespace}/nope"),
        ({"name": "probe-token", "key": "other"}, "has no key 'other'"),
    ):
        metric = web_metric(
            {
                "url": f"{app.url}/healthz",
                "headers": [{"name": "Authorization", "valueFrom": {"secretKeyRef": ref}}],
            }
        )
        outcome = check(metric, checks, namespace=namespace)
        assert isinstance(outcome, QueryFailure) and problem in outcome.message
        assert outcome.permanent
