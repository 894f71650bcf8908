"""`deployctl validate` and `deployctl plan`, through typer's runner: no cluster needed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from controller.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

BAD = """
apiVersion: deployctl.io/v1alpha1
kind: Rollout
metadata: {name: checkout}
spec:
  selector: {matchLabels: {app: checkout}}
  template: {metadata: {labels: {app: checkout}}, spec: {containers: [{name: app, image: x}]}}
  strategy:
    canary:
      steps: [{setWeight: 150}, {pause: {duration: soon}}]
---
apiVersion: deployctl.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec: {metrics: []}
"""


def test_validate_accepts_every_example() -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        result = runner.invoke(app, ["validate", "-f", str(path)])
        assert result.exit_code == 0, result.output
        assert "valid" in result.output


def test_validate_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = runner.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 1
    assert "steps[0].setWeight: must be <= 100 (got 150)" in result.stderr
    assert "steps[1].pause.duration: invalid duration 'soon'" in result.stderr
    assert "spec.metrics: list should have at least 1 item" in result.stderr
    assert "3 problem(s) in 2 document(s)" in result.stderr


def test_validate_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "-f", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_unknown_flag_is_a_usage_error() -> None:
    result = runner.invoke(app, ["validate", "--frobnicate"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_plan_prints_replicas_and_weights_per_step_as_json() -> None:
    result = runner.invoke(app, ["plan", "-f", str(ROOT / "examples/canary.yaml"), "-o", "json"])
    assert result.exit_code == 0, result.output
    plans = json.loads(result.stdout)
    assert plans[0]["rollout"] == "checkout" and plans[0]["strategy"] == "canary"
    steps = plans[0]["steps"]
    assert len(steps) >= 5
    text = json.dumps(steps)
    assert "10" in text and "50" in text


def test_plan_table_names_the_rollout() -> None:
    result = runner.invoke(app, ["plan", "-f", str(ROOT / "examples/bluegreen.yaml")])
    assert result.exit_code == 0, result.output
    assert "payments" in result.stdout


def test_plan_refuses_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = runner.invoke(app, ["plan", "-f", str(path)])
    assert result.exit_code == 2
    assert "setWeight" in result.stderr
