"""``{{args.*}}`` everywhere a check has text, each escaped for where it lands (URL parts,
JSON bodies, header values, Job specs), arguments from ``valueFrom`` (the revisions, the
Rollout, a Secret that is never shown), and count/interval/limits given as arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller.analysis.arguments import MASK, hide
from controller.analysis.run import AnalysisEngine, next_due, resolve, start_run
from controller.analysis.templating import (
    QueryContext,
    TemplateError,
    field_value,
    render_body,
    render_header,
    render_job,
    render_url,
)
from controller.analysis.values import QueryResult, Sample
from controller.analysis.webcheck import WebReply, lookup
from controller.api.analysis import AnalysisTemplate, Metric, WebProvider
from controller.api.rollout import AnalysisRef
from tests.analysis.helpers import T0, at

ROLLOUT = {
    "metadata": {"name": "checkout", "namespace": "shop", "labels": {"team": "payments"}},
    "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/app:1.2"}]}}},
}
CONTEXT = QueryContext(
    canary_hash="c4n4ry",
    stable_hash="st4bl3",
    rollout_name="checkout",
    rollout_namespace="shop",
    rollout_fields=lambda: ROLLOUT,
)


def ctx(**args: str) -> QueryContext:
    return CONTEXT.with_args(args)


@pytest.mark.parametrize(
    ("url", "args", "expected"),
    [
        (
            "http://{{args.host}}:8080/health?rev={{canary.hash}}",
            {"host": "checkout.shop.svc"},
            "http://checkout.shop.svc:8080/health?rev=c4n4ry",
        ),
        # After the host a value is one component: '/', '&', '#' and spaces are encoded.
        (
            "https://api.example.com/v1/{{args.path}}?q={{args.q}}",
            {"path": "a/../b", "q": "x&admin=1#frag y"},
            "https://api.example.com/v1/a%2F..%2Fb?q=x%26admin%3D1%23frag%20y",
        ),
        ("{{args.url}}", {"url": "https://kubernetes.default.svc/version"}, None),
        # Argo Rollouts' spelling: the base URL is an argument, the rest is after the host.
        (
            "{{ args.api-url }}?service={{ args.service }}",
            {"api-url": "http://metrics.shop.svc/api", "service": "a&b=c"},
            "http://metrics.shop.svc/api?service=a%26b%3Dc",
        ),
    ],
)
def test_urls_encode_each_value_for_its_part(url: str, args: dict[str, str], expected: Any) -> None:
    assert render_url(url, ctx(**args)) == (expected or args["url"])


@pytest.mark.parametrize(
    ("url", "args", "problem"),
    [
        ("http://{{args.host}}/x", {"host": "evil.com/path@"}, "used in the URL's host"),
        ("{{args.url}}", {"url": "file:///etc/passwd"}, "must be an http:// or https:// URL"),
        ("{{args.base}}/x", {"base": "gopher://x"}, "must be an http:// or https:// URL"),
        ("http://x/{{args.nope}}", {}, "unknown placeholder {{args.nope}}"),
    ],
)
def test_urls_refuse_values_that_would_change_where_the_request_goes(
    url: str, args: dict[str, str], problem: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        render_url(url, ctx(**args))
    assert problem in str(caught.value)


def test_json_bodies_escape_inside_strings_and_take_only_json_tokens_outside() -> None:
    body = '{"service": "{{args.service}}", "limit": {{args.limit}}, "rev": "{{canary.hash}}"}'
    hostile = 'x", "admin": true, "y": "'
    rendered = render_body(body, ctx(service=hostile, limit="5"))
    assert json.loads(rendered) == {"service": hostile, "limit": 5, "rev": "c4n4ry"}
    with pytest.raises(TemplateError, match="outside a JSON string"):
        render_body(body, ctx(service="s", limit='5, "admin": true'))
    # A body that is not JSON takes values as they are.
    assert render_body("rev={{canary.hash}}", CONTEXT) == "rev=c4n4ry"


def test_header_values_never_get_a_line_break() -> None:
    assert render_header("Bearer {{args.t}}", ctx(t="abc"), header="Authorization") == "Bearer abc"
    with pytest.raises(TemplateError, match="line break"):
        render_header("{{args.t}}", ctx(t="abc\r\nX-Admin: 1"), header="X-Token")


def test_job_specs_get_values_as_plain_strings_in_every_string() -> None:
    spec = {
        "template": {
            "metadata": {"labels": {"rev": "{{canary.hash}}"}},
            "spec": {
                "containers": [
                    {
                        "name": "smoke",
                        "image": "curl:{{args.tag}}",
                        "args": ["--url", "http://{{args.host}}/ok", "--name=$(NAME) {{args.x}}"],
                    }
                ]
            },
        },
        "backoffLimit": 0,
    }
    rendered = render_job(spec, ctx(tag="8.1", host="checkout", x="a b; rm -rf /"))
    container = rendered["template"]["spec"]["containers"][0]
    assert container["image"] == "curl:8.1"
    assert container["args"] == ["--url", "http://checkout/ok", "--name=$(NAME) a b; rm -rf /"]
    assert rendered["template"]["metadata"]["labels"] == {"rev": "c4n4ry"}
    assert rendered["backoffLimit"] == 0


def test_field_refs_read_the_rollout() -> None:
    assert field_value(ROLLOUT, "metadata.labels['team']") == "payments"
    assert field_value(ROLLOUT, "spec.template.spec.containers[0].image") == "shop/app:1.2"
    with pytest.raises(TemplateError, match="has no 'owner' at metadata.labels"):
        field_value(ROLLOUT, "metadata.labels['owner']")


def test_argo_json_paths_in_braces_are_followed() -> None:
    assert lookup({"data": {"ok": True}}, "{$.data.ok}") is True
    with pytest.raises(ValueError, match="wildcards and filters"):
        WebProvider.model_validate(
            {"url": "http://x/", "jsonPath": "{$.items[*].ok}", "equals": "1"}
        )


def template(spec: dict[str, Any]) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate(
        {
            "apiVersion": "deployctl.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "checks"},
            "spec": spec,
        }
    )


def test_count_interval_and_limits_may_be_arguments() -> None:
    checks = template(
        {
            "args": [{"name": "count", "value": "3"}, {"name": "every"}, {"name": "failures"}],
            "metrics": [
                {
                    "name": "errors",
                    "count": "{{args.count}}",
                    "interval": "{{ args.every }}",
                    "failureLimit": "{{args.failures}}",
                    "threshold": {"max": 0.05},
                    "provider": {"prometheus": {"query": "vector(0)"}},
                }
            ],
        }
    )
    ref = AnalysisRef.model_validate(
        {
            "templates": [{"name": "checks"}],
            "args": [{"name": "every", "value": "15s"}, {"name": "failures", "value": "2"}],
        }
    )
    [bound] = resolve({"checks": checks}, ref, CONTEXT)
    metric = bound.metric
    assert (metric.count, metric.interval_seconds, metric.failure_limit_value) == (3, 15.0, 2)
    assert checks.to_dict()["spec"]["metrics"][0]["count"] == "{{args.count}}"
    wrong = AnalysisRef.model_validate(
        {
            "templates": [{"name": "checks"}],
            "args": [{"name": "every", "value": "soon"}, {"name": "failures", "value": "2"}],
        }
    )
    with pytest.raises(TemplateError, match="interval: invalid duration 'soon'"):
        resolve({"checks": checks}, wrong, CONTEXT)


def test_an_undeclared_placeholder_is_refused_when_validated() -> None:
    with pytest.raises(
        ValueError, match=r"unknown placeholder \{\{args.servcie\}\}; declared args: service"
    ):
        template(
            {
                "args": [{"name": "service"}],
                "metrics": [
                    {
                        "name": "probe",
                        "provider": {"web": {"url": "http://{{args.servcie}}/health"}},
                    }
                ],
            }
        )
    with pytest.raises(ValueError, match="whole number from 0 to 10000"):
        Metric.model_validate(
            {"name": "m", "count": "three", "provider": {"web": {"url": "http://x/"}}}
        )


@dataclass
class RecordingWeb:
    """Our WebRunner seam: remembers what it was asked to fetch."""

    asked: list[WebProvider] = field(default_factory=list)

    def fetch(self, web: WebProvider, *, namespace: str, budget: float) -> Any:
        self.asked.append(web)
        return WebReply(method=web.method, url=str(web.url), status=200, body='{"ok": true}')


@dataclass
class RecordingMeasurer:
    queries: list[str] = field(default_factory=list)

    def measure(self, promql: str, *, address: Any, timeout: float, budget: float) -> Any:
        self.queries.append(promql)
        return QueryResult(query=promql, samples=(Sample({}, 0.2),))


def test_value_from_fills_args_and_a_secret_never_reaches_status() -> None:
    checks = template(
        {
            "args": [
                {"name": "token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
                {
                    "name": "team",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}},
                },
                {"name": "baseline"},
            ],
            "metrics": [
                {
                    "name": "probe",
                    "provider": {
                        "web": {
                            "url": "https://checks.example.com/{{args.team}}?token={{args.token}}&vs={{args.baseline}}",
                            "headers": [{"name": "X-Token", "value": "{{args.token}}"}],
                            "jsonPath": "{$.ok}",
                            "equals": "true",
                        }
                    },
                },
                {
                    "name": "errors",
                    "threshold": {"max": 0.1},
                    "provider": {"prometheus": {"query": 'e{token="{{args.token}}"}'}},
                },
            ],
        }
    )
    ref = AnalysisRef.model_validate(
        {
            "templates": [{"name": "checks"}],
            "args": [{"name": "baseline", "valueFrom": {"podTemplateHashValue": "Stable"}}],
        }
    )
    read: list[tuple[str, str]] = []

    def secrets(namespace: str, name: str) -> dict[str, str]:
        read.append((namespace, name))
        return {"token": "s3cr3t-t0ken\n"}

    web, measurer = RecordingWeb(), RecordingMeasurer()
    engine = AnalysisEngine(measurer, web=web, secrets=secrets)
    run = engine.advance(
        start_run(key="k", revision="c4n4ry", metrics=[], now=T0),
        templates={"checks": checks},
        ref=ref,
        context=CONTEXT,
        now=at(0),
    )
    [asked] = web.asked
    assert asked.url == "https://checks.example.com/payments?token=s3cr3t-t0ken&vs=st4bl3"
    assert asked.headers[0].value == "s3cr3t-t0ken"
    assert measurer.queries == ['e{token="s3cr3t-t0ken"}']
    assert read == [("shop", "api")] * 2  # read when measuring, once per check
    written = run.model_dump_json()
    assert "s3cr3t" not in written and MASK in written
    # Scheduling the next measurement reads no Secret.
    bound = engine.bind({"checks": checks}, ref, revision="c4n4ry", context=CONTEXT)
    next_due(run, [b.metric for b in bound], now=at(1))
    assert len(read) == 2


def test_a_rollout_cannot_pass_a_secret_and_hide_masks_every_occurrence() -> None:
    with pytest.raises(ValueError, match="a Rollout's args cannot read Secrets"):
        AnalysisRef.model_validate(
            {
                "templates": [{"name": "x"}],
                "args": [{"name": "t", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            }
        )
    assert hide("a=tok b=tok", ["tok"]) == f"a={MASK} b={MASK}"
