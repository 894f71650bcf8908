"""The web provider against hostile servers and hostile templates, over real sockets.

Each check goes to a local server of ``tests.security.servers`` through
``WebChecks.fetch``, the controller's own provider; the address policy allows
127.0.0.0/8 as the sandbox's controller does. What the user would see (the judged
message) is checked for secrets. The running controller is tested with the same hostile
inputs in ``test_web_sandbox.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.analysis.addresses import AddressPolicy, parse_networks
from controller.analysis.values import QueryFailure
from controller.analysis.web import MAX_BODY, WebChecks
from controller.analysis.webcheck import MAX_EXCERPT, WebReply, judge_reply
from controller.api.analysis import Metric
from controller.redact import REDACTED
from tests.security.servers import echo_server, tarpit

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SANDBOX = AddressPolicy(allow=parse_networks(["127.0.0.0/8"], flag="test"))
SECRET = "s3cret-Tok3n-9f8e7d"
UNICODE_SECRET = "tøken-☃-s3cret-unicode"


def metric(web: Mapping[str, Any], **extra: Any) -> Metric:
    return Metric.model_validate({"name": "probe", "provider": {"web": dict(web)}, **extra})


def secrets(data: Mapping[str, str]) -> Any:
    def read(namespace: str, name: str) -> Mapping[str, str]:
        return data

    return read


def fetch(
    checks: WebChecks, m: Metric, *, budget: float = 30.0, namespace: str = "shop"
) -> WebReply | QueryFailure:
    assert m.web is not None
    return checks.fetch(m.web, namespace=namespace, budget=budget)


def shown(m: Metric, outcome: WebReply | QueryFailure) -> str:
    """Everything a user could see of this measurement."""
    if isinstance(outcome, QueryFailure):
        return f"{outcome.query} {outcome.message}"
    assert m.web is not None
    judged = judge_reply(m, m.web, outcome, breach_since=None, now=NOW)
    return f"{judged.value} {judged.message}"


def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """No DNS-rebinding window: the name is resolved once, every address is judged, and
    the request goes to a judged address with the name in the Host header."""
    calls: list[str] = []
    with echo_server("127.0.0.2") as server:

        def resolver(host: str, port: int) -> list[str]:
            calls.append(host)
            # A rebinding server would answer differently on a second lookup.
            return ["127.0.0.2"] if len(calls) == 1 else ["169.254.169.254"]

        checks = WebChecks(secrets=secrets({}), policy=SANDBOX, resolver=resolver)
        outcome = fetch(checks, metric({"url": f"http://app.example.test:{server.port}/"}))
        assert isinstance(outcome, WebReply) and outcome.status == 200
        assert calls == ["app.example.test"]
        assert server.seen.requests[-1]["Host"] == f"app.example.test:{server.port}"

        both = WebChecks(
            secrets=secrets({}),
            policy=SANDBOX,
            resolver=lambda h, p: ["127.0.0.2", "169.254.169.254"],
        )
        refused = fetch(both, metric({"url": f"http://app.example.test:{server.port}/"}))
        assert isinstance(refused, QueryFailure) and refused.kind == "rejected"
        assert "169.254.169.254 is refused by rule link-local" in refused.message
        assert len(server.seen.requests) == 1  # nothing was sent for the refused name


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://2852039166/latest/meta-data/", "link-local"),  # 169.254.169.254 as a number
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://localhost:8080/", "loopback"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("https://kubernetes.default.svc/api", "apiserver"),
        ("http://api.payments.svc.cluster.local:8080/", "other-namespace"),
    ],
)
def test_refused_addresses_name_their_rule_and_send_nothing(url: str, rule: str) -> None:
    def resolver(host: str, port: int) -> list[str]:
        # Resolved like the system would; names that a cluster resolves get a stand-in.
        return {"localhost": ["127.0.0.1"], "metadata.google.internal": ["169.254.169.254"]}.get(
            host, ["10.96.0.1"]
        )

    checks = WebChecks(
        secrets=secrets({}), policy=AddressPolicy(), resolver=lambda h, p: resolver(h, p)
    )
    if url.startswith("http://2852039166"):
        checks = WebChecks(secrets=secrets({}), policy=AddressPolicy())  # the real resolver
    outcome = fetch(checks, metric({"url": url}))
    assert isinstance(outcome, QueryFailure) and outcome.permanent, outcome
    assert f"rule {rule}" in outcome.message and "web address policy" in outcome.message


def test_a_server_that_never_answers_costs_at_most_the_deadline() -> None:
    checks = WebChecks(secrets=secrets({}), policy=SANDBOX)
    for drip in (None, 0.2):  # silent; and one byte at a time, below any read timeout
        with tarpit("127.0.0.3", drip=drip) as server:
            began = time.monotonic()
            outcome = fetch(checks, metric({"url": f"{server.url}/", "timeout": "60s"}), budget=1.5)
            took = time.monotonic() - began
        assert isinstance(outcome, QueryFailure) and outcome.kind == "unavailable", outcome
        assert "no reply within 1.5 s" in outcome.message
        # Generous: the point is that it ends at all (without the deadline it never would).
        assert took < 30, took


def test_bodies_are_read_and_decompressed_only_up_to_the_cap() -> None:
    checks = WebChecks(secrets=secrets({}), policy=SANDBOX)
    with echo_server("127.0.0.2") as server:
        bomb = fetch(checks, metric({"url": f"{server.url}/gzip-bomb"}))
        big = fetch(checks, metric({"url": f"{server.url}/big"}))
    assert isinstance(bomb, WebReply) and isinstance(big, WebReply)
    assert 0 < len(bomb.body) <= MAX_BODY and set(bomb.body) == {"\0"}
    assert len(big.body) == MAX_BODY


def test_secret_headers_are_sent_and_never_shown() -> None:
    reader = secrets({"token": f"Bearer {SECRET}", "key": SECRET})
    headers = [
        {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "probe", "key": "token"}}},
        {"name": "X-Probe", "valueFrom": {"secretKeyRef": {"name": "probe", "key": "key"}}},
    ]
    checks = WebChecks(secrets=reader, policy=SANDBOX)
    with echo_server("127.0.0.2") as server:
        # The server echoes every header in its 401 body: the excerpt must not carry them.
        failed_m = metric({"url": f"{server.url}/status/401", "headers": headers})
        failed = fetch(checks, failed_m)
        echoed_m = metric(
            {
                "url": f"{server.url}/",
                "headers": headers,
                "jsonPath": "$.headers.X-Probe",
                "equals": "x",
            }
        )
        echoed = fetch(checks, echoed_m)
        assert server.seen.requests[0]["Authorization"] == f"Bearer {SECRET}"
        assert server.seen.requests[0]["X-Probe"] == SECRET
    failed_text = shown(failed_m, failed)
    echoed_text = shown(echoed_m, echoed)
    for text in (failed_text, echoed_text):
        assert SECRET not in text and REDACTED in text, text
    assert "-> 401" in failed_text
    excerpt = failed_text.split("(wanted 2xx): ", 1)[1]
    assert len(excerpt.removesuffix("...").encode()) <= MAX_EXCERPT


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (UNICODE_SECRET, "has characters an HTTP header cannot carry"),
        (f"{SECRET}\r\nX-Injected: 1", "is not one line"),
    ],
)
def test_header_values_that_cannot_be_sent_are_refused_without_quoting_them(
    value: str, problem: str
) -> None:
    ref = {"secretKeyRef": {"name": "probe", "key": "token"}}
    m = metric({"url": "http://127.0.0.2:9/", "headers": [{"name": "X-Token", "valueFrom": ref}]})
    outcome = fetch(WebChecks(secrets=secrets({"token": value}), policy=SANDBOX), m)
    assert isinstance(outcome, QueryFailure) and outcome.permanent
    assert (
        f"header X-Token: the value from Secret shop/probe key 'token' {problem}" in outcome.message
    )
    assert "s3cret" not in shown(m, outcome).lower()


def test_credentials_in_the_url_are_used_and_masked() -> None:
    checks = WebChecks(secrets=secrets({}), policy=SANDBOX)
    with echo_server("127.0.0.2") as server:
        url = f"http://probe:{SECRET}@127.0.0.2:{server.port}/status/500?api_key={SECRET}&x=1"
        m = metric({"url": url})
        outcome = fetch(checks, m)
        assert server.seen.requests[-1]["Authorization"].startswith("Basic ")
    assert isinstance(outcome, WebReply) and outcome.status == 500
    text = shown(m, outcome)
    assert SECRET not in text
    assert (
        f"http://probe:{REDACTED}@127.0.0.2:{server.port}/status/500?api_key={REDACTED}&x=1" in text
    )


def test_evidence_is_code_timing_and_value_and_no_body_unless_the_code_failed() -> None:
    checks = WebChecks(secrets=secrets({}), policy=SANDBOX)
    with echo_server("127.0.0.2") as server:
        ok_m = metric({"url": f"{server.url}/", "jsonPath": "$.status", "equals": "ok"})
        ok = fetch(checks, ok_m)
        not_json_m = metric(
            {"url": f"{server.url}/gzip-bomb", "jsonPath": "$.status", "equals": "ok"}
        )
        not_json = fetch(checks, not_json_m)
    assert isinstance(ok, WebReply) and ok.elapsed > 0
    judged = judge_reply(ok_m, ok_m.web, ok, breach_since=None, now=NOW)  # type: ignore[arg-type]
    assert judged.phase == "Successful" and "$.status = 'ok'" in judged.message
    assert " ms," in judged.message and "headers" not in judged.message
    text = shown(not_json_m, not_json)
    assert "body is not JSON" in text and "\0" not in text


def test_a_web_timeout_past_60_seconds_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="timeout must be more than 0s and at most 60s"):
        metric({"url": "http://h/", "timeout": "366d"})


def test_the_json_value_shown_is_bounded() -> None:
    m = metric({"url": "http://h/", "jsonPath": "$.v", "equals": "x"})
    reply = WebReply("GET", "http://h/", 200, json.dumps({"v": "y" * 10_000}))
    judged = judge_reply(m, m.web, reply, breach_since=None, now=NOW)  # type: ignore[arg-type]
    assert judged.value is not None and len(judged.value) <= 260
