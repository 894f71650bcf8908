"""Messages that do not mislead: patterns in words, ``null`` as YAML says it, the real
cause first, a hint for each renamed Argo field, and no Rollout without a name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from controller.api import AnalysisTemplate, Rollout
from controller.api.policy import DeliveryPolicy
from controller.cli import app
from controller.validation import PATTERN_WORDS, parse_document


def patterns(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["pattern"]} if isinstance(schema.get("pattern"), str) else set()
        return found.union(*(patterns(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(patterns(v) for v in schema))
    return set()


def test_every_pattern_of_the_models_is_explained_in_words() -> None:
    used = set()
    for model in (Rollout, AnalysisTemplate, DeliveryPolicy):
        used |= patterns(model.model_json_schema(by_alias=True))
    assert used and not used - set(PATTERN_WORDS), used - set(PATTERN_WORDS)


ROLLOUT = """
apiVersion: deployctl.io/v1alpha1
kind: Rollout
metadata: {name: checkout}
spec:
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec: {containers: [{name: app, image: shop/checkout:1}]}
  strategy:
    canary:
      stableService: checkout-stable
      canaryService: checkout-canary
      steps: [{setWeight: 20}]
"""


def problems(edit: Any) -> list[str]:
    document = yaml.safe_load(ROLLOUT)
    edit(document)
    return [f"{p.path}: {p.message}" for p in parse_document(document).problems]


def test_a_pattern_is_said_in_words_and_null_is_null() -> None:
    def bad_service(d: dict[str, Any]) -> None:
        d["spec"]["strategy"]["canary"]["stableService"] = "Checkout_Stable"

    assert problems(bad_service) == [
        "spec.strategy.canary.stableService: must be a DNS label: lowercase letters, digits and "
        "'-', starting and ending with a letter or digit (at most 63 characters) "
        '(got "Checkout_Stable")'
    ]

    def null_replicas(d: dict[str, Any]) -> None:
        d["spec"]["replicas"] = None

    [message] = problems(null_replicas)
    assert message.endswith("(got null)") and "None" not in message


def test_an_unsupported_router_is_named_and_nothing_else_is_said_of_the_routing() -> None:
    def alb(d: dict[str, Any]) -> None:
        d["spec"]["strategy"]["canary"]["trafficRouting"] = {
            "alb": {"ingress": "checkout", "servicePort": 80}
        }

    # The real cause only: not "trafficRouting takes exactly one of gatewayAPI, istio, nginx".
    assert problems(alb) == [
        "spec.strategy.canary.trafficRouting.alb: not supported by deployctl (Argo Rollouts "
        "feature: AWS ALB traffic routing); needs an AWS load balancer controller; not "
        "testable on our sandbox yet; see docs/argo.md"
    ]


def test_a_renamed_field_gets_its_new_name_and_no_second_complaint() -> None:
    def template_name(d: dict[str, Any]) -> None:
        d["spec"]["strategy"]["canary"]["steps"].append(
            {"analysis": {"templates": [{"templateName": "success-rate"}]}}
        )

    assert problems(template_name) == [
        "spec.strategy.canary.steps[1].analysis.templates[0].templateName: Argo Rollouts' "
        "templateName is called name in deployctl (renamed: templateName -> name); "
        "`deployctl convert` rewrites Argo manifests"
    ]


def test_an_unknown_field_that_argo_does_not_have_is_still_a_spelling_question() -> None:
    def typo(d: dict[str, Any]) -> None:
        d["spec"]["strategy"]["canary"]["steps"][0] = {"setWieght": 20}

    assert (
        "spec.strategy.canary.steps[0].setWieght: unknown field; check the spelling"
        in (problems(typo)[0])
    )


def test_a_rollout_without_a_name_neither_validates_nor_plans(tmp_path: Path) -> None:
    def unnamed(d: dict[str, Any]) -> None:
        d["metadata"] = {}

    [message] = problems(unnamed)
    assert message.startswith("metadata.name: required: every Rollout needs a name")
    document = yaml.safe_load(ROLLOUT)
    document["metadata"] = {}
    path = tmp_path / "unnamed.yaml"
    path.write_text(yaml.safe_dump(document))
    runner = CliRunner()
    validated = runner.invoke(app, ["validate", "-f", str(path)])
    assert validated.exit_code == 1 and "metadata.name: required" in validated.output
    planned = runner.invoke(app, ["plan", "-f", str(path)])
    assert planned.exit_code == 2 and "metadata.name: required" in planned.output
    assert "rollout (" not in planned.output
