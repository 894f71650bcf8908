"""The models round-trip every example and reject bad specs with messages that explain."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.api import AnalysisTemplate, Rollout
from controller.api.common import ApiModel
from controller.api.duration import format_duration, parse_duration
from controller.api.revision import template_hash
from controller.validation import MODELS, load_documents, validate_documents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_there_are_examples_to_check() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_round_trips(path: Path) -> None:
    for raw in yaml.safe_load_all(path.read_text()):
        model_type = MODELS[raw["kind"]]
        model = model_type.model_validate(raw)
        assert isinstance(model, ApiModel)
        again = model_type.model_validate(model.to_dict())
        assert isinstance(again, ApiModel)
        assert again == model
        assert again.to_dict() == model.to_dict()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1h", 3600), ("1h30m", 5400), ("250ms", 0.25), (45, 45), ("0", 0)],
)
def test_durations_accept_kubernetes_style_strings(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["2x", "-5s", "", "1m-", "m", "400d", True, None])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_template_hash_ignores_key_order_and_changes_with_the_image() -> None:
    rollout = Rollout.model_validate(yaml.safe_load(_rollout_yaml()))
    reordered = Rollout.model_validate({**rollout.to_dict(), "spec": {**rollout.to_dict()["spec"]}})
    assert template_hash(rollout.spec.pod_template) == template_hash(reordered.spec.pod_template)
    other = yaml.safe_load(_rollout_yaml().replace("checkout:1", "checkout:2"))
    assert template_hash(Rollout.model_validate(other).spec.pod_template) != template_hash(
        rollout.spec.pod_template
    )


def _rollout_yaml(strategy: str = "canary: {steps: [{setWeight: 10}]}") -> str:
    return f"""
apiVersion: deployctl.io/v1alpha1
kind: Rollout
metadata: {{name: checkout}}
spec:
  replicas: 10
  selector: {{matchLabels: {{app: checkout}}}}
  template:
    metadata: {{labels: {{app: checkout}}}}
    spec: {{containers: [{{name: app, image: "shop/checkout:1"}}]}}
  strategy:
    {strategy}
"""


def problems(text: str) -> list[str]:
    return [str(p) for p in validate_documents(load_documents(text), check_references=False)]


REJECTIONS = [
    (
        "weight above 100",
        "canary: {steps: [{setWeight: 150}]}",
        "spec.strategy.canary.steps[0].setWeight: must be <= 100 (got 150)",
    ),
    (
        "negative weight",
        "canary: {steps: [{setWeight: -1}]}",
        "spec.strategy.canary.steps[0].setWeight: must be >= 0 (got -1)",
    ),
    (
        "decreasing weights",
        "canary: {steps: [{setWeight: 50}, {setWeight: 20}]}",
        "steps[1].setWeight 20 is lower than the earlier weight 50",
    ),
    (
        "two strategies",
        "canary: {}\n    rolling: {}",
        "spec.strategy: strategy takes exactly one of canary, blueGreen, rolling "
        "(found canary and rolling)",
    ),
    (
        "no strategy",
        "{}",
        "strategy takes exactly one of canary, blueGreen, rolling (found none)",
    ),
    (
        "unknown strategy",
        "linear: {}",
        "spec.strategy: unknown strategy 'linear'; allowed: canary, blueGreen, rolling",
    ),
    (
        "negative pause",
        "canary: {steps: [{pause: {duration: -5s}}]}",
        "spec.strategy.canary.steps[0].pause.duration: duration '-5s' must not be negative",
    ),
    (
        "bad duration string",
        "canary: {steps: [{pause: {duration: 2x}}]}",
        "spec.strategy.canary.steps[0].pause.duration: invalid duration '2x'; use digits "
        "with units ms, s, m, h, d",
    ),
    (
        "missing active service",
        "blueGreen: {previewService: preview}",
        "spec.strategy.blueGreen.activeService: required field is missing",
    ),
    (
        "traffic routing without services",
        "canary: {trafficRouting: {gatewayAPI: {httpRoute: r}}}",
        "trafficRouting needs stableService and canaryService",
    ),
    (
        "step with two actions",
        "canary: {steps: [{setWeight: 10, pause: {}}]}",
        "a step takes exactly one of setWeight, pause, analysis, approval, setHeaderRoute, "
        "setMirrorRoute (found setWeight, pause)",
    ),
    (
        "misspelt field",
        "canary: {steps: [{setWieght: 10}]}",
        "spec.strategy.canary.steps[0].setWieght: unknown field",
    ),
    (
        "percent out of range",
        "rolling: {maxSurge: 150%}",
        "spec.strategy.rolling.maxSurge",
    ),
    (
        "nothing can move",
        "rolling: {maxSurge: 0, maxUnavailable: 0}",
        "maxSurge and maxUnavailable cannot both be 0",
    ),
]


@pytest.mark.parametrize(
    ("strategy", "expected"), [(s, e) for _, s, e in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_each_rejection_names_the_field_and_what_is_allowed(strategy: str, expected: str) -> None:
    found = problems(_rollout_yaml(strategy))
    assert any(expected in p for p in found), found


def test_too_many_replicas_and_steps_are_refused() -> None:
    text = _rollout_yaml("canary: {steps: [" + ", ".join(["{setWeight: 1}"] * 101) + "]}")
    assert any("at most 100" in p for p in problems(text))
    huge = _rollout_yaml().replace("replicas: 10", "replicas: 99999999999")
    assert any("spec.replicas: must be <= 10000" in p for p in problems(huge))


def test_selector_must_match_template_labels() -> None:
    text = _rollout_yaml().replace("matchLabels: {app: checkout}", "matchLabels: {app: other}")
    assert any(
        "selector.matchLabels must match template.metadata.labels; not matched: app=other" in p
        for p in problems(text)
    )


def test_unknown_template_in_an_analysis_step_is_named_with_the_known_ones() -> None:
    text = (
        _rollout_yaml("canary: {steps: [{analysis: {templates: [{name: http-healht}]}}]}")
        + """---
apiVersion: deployctl.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: http-health}
spec:
  metrics: [{name: e, errorRate: {max: 0.05}}]
"""
    )
    found = [str(p) for p in validate_documents(load_documents(text))]
    assert found == [
        "Rollout/checkout: spec.strategy.canary.steps[0].analysis.templates[0].name: "
        "unknown AnalysisTemplate 'http-healht'; known: http-health"
    ]


ANALYSIS_REJECTIONS = [
    ("metrics: []", "spec.metrics: list should have at least 1 item"),
    (
        "metrics: [{name: e, threshold: {max: 1}}]",
        "set exactly one of provider, errorRate, latency",
    ),
    (
        "metrics: [{name: e, threshold: {min: 2, max: 1}, provider: {prometheus: {query: up}}}]",
        "min (2.0) must not be greater than max (1.0)",
    ),
    (
        "metrics: [{name: e, provider: {prometheus: {query: up}}}]",
        "a prometheus metric needs a threshold",
    ),
    (
        "metrics: [{name: e, errorRate: {max: 1.5}}]",
        "spec.metrics[0].errorRate.max: must be <= 1.0 (got 1.5)",
    ),
    (
        "metrics: [{name: e, errorRate: {}}, {name: e, latency: {}}]",
        "metric names must be unique; repeated: e",
    ),
    (
        "metrics: [{name: e, threshold: {maxRatio: 2}, provider: {prometheus: {query: up}}}]",
        "maxIncrease/maxRatio need relativeTo: stable",
    ),
    (
        "metrics: [{name: e, interval: 1y, errorRate: {}}]",
        "spec.metrics[0].interval: invalid duration '1y'",
    ),
]


@pytest.mark.parametrize(("metrics", "expected"), ANALYSIS_REJECTIONS)
def test_analysis_template_rejections(metrics: str, expected: str) -> None:
    text = f"""
apiVersion: deployctl.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: t}}
spec:
  {metrics}
"""
    found = problems(text)
    assert any(expected in p for p in found), found


def test_presets_default_to_the_usual_alerting_rules() -> None:
    template = AnalysisTemplate.model_validate(
        {
            "apiVersion": "deployctl.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "t"},
            "spec": {"metrics": [{"name": "e", "errorRate": {}}, {"name": "l", "latency": {}}]},
        }
    )
    errors, latency = template.spec.metrics
    assert errors.error_rate is not None and errors.error_rate.max == 0.05
    assert errors.effective_for == 120
    assert latency.latency is not None
    assert (latency.latency.quantile, latency.latency.max, latency.effective_for) == (0.9, 2, 300)


def test_wrong_kind_and_api_version_are_named() -> None:
    assert problems("apiVersion: v1\nkind: Rollout\nmetadata: {name: x}\nspec: {}") == [
        "Rollout/x: apiVersion: must be deployctl.io/v1alpha1 (got 'v1')"
    ]
    assert "unknown kind 'Deployment'" in problems("apiVersion: apps/v1\nkind: Deployment")[0]


def test_invalid_yaml_reports_line_and_column() -> None:
    found = problems("kind: Rollout\nspec: [unclosed\n")
    assert len(found) == 1 and found[0].startswith("invalid YAML: line 3")


def test_a_template_that_exists_but_is_invalid_is_named_with_its_problem() -> None:
    from controller.api import Rollout
    from controller.validation import reference_problems

    doc = load_documents(_rollout_yaml("canary: {steps: [{analysis: {templates: [{name: t}]}}]}"))
    rollout = doc[0].model
    assert isinstance(rollout, Rollout)
    found = reference_problems(
        rollout, templates=["other"], invalid={"t": "spec.metrics[0]: set exactly one provider"}
    )
    assert [p.message for p in found] == [
        "AnalysisTemplate 't' is invalid: spec.metrics[0]: set exactly one provider"
    ]
