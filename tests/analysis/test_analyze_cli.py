"""`deployctl analyze` input errors and an unreachable Prometheus (no Prometheus needed)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from controller.cli import app
from sandbox.prometheus import free_port
from tests.analysis.helpers import template

runner = CliRunner()

TEMPLATE = template(
    {"name": "error-rate", "errorRate": {}},
    args=[{"name": "service"}],
)


def test_validation_errors_name_the_field_and_exit_2(tmp_path) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(
        "apiVersion: deployctl.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\n"
        "spec: {metrics: [{name: m, interval: soon, errorRate: {}}]}\n"
    )
    result = runner.invoke(app, ["analyze", "-f", str(file)])
    assert result.exit_code == 2
    assert "spec.metrics[0].interval" in result.stderr
    assert "Traceback" not in result.output


def test_bad_yaml_and_bad_arg_exit_2(tmp_path) -> None:
    file = tmp_path / "t.yaml"
    file.write_text("kind: [unclosed\n")
    assert runner.invoke(app, ["analyze", "-f", str(file)]).exit_code == 2
    file.write_text(json.dumps(TEMPLATE.to_dict()))
    result = runner.invoke(app, ["analyze", "-f", str(file), "--arg", "service"])
    assert result.exit_code == 2 and "NAME=VALUE" in result.stderr
    result = runner.invoke(app, ["analyze", "-f", str(file), "--canary-hash", "abc"])
    assert result.exit_code == 2 and "needs argument 'service'" in result.stderr


def test_missing_canary_hash_says_which_option(tmp_path) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(json.dumps(TEMPLATE.to_dict()))
    result = runner.invoke(app, ["analyze", "-f", str(file), "--arg", "service=x"])
    assert result.exit_code == 2
    assert "{{rollout.namespace}}" in result.stderr and "--namespace" in result.stderr


def test_unreachable_prometheus_exits_4_without_leaking_credentials(tmp_path) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(json.dumps(TEMPLATE.to_dict()))
    url = f"http://admin:s3cret@127.0.0.1:{free_port()}"
    result = runner.invoke(
        app,
        [
            "analyze",
            "-f",
            str(file),
            "--arg",
            "service=x",
            "--canary-hash",
            "abc",
            "--namespace",
            "shop",
            "--prometheus-url",
            url,
            "--timeout",
            "1",
        ],
    )
    assert result.exit_code == 4, result.output
    assert "unavailable" in result.stderr and "cannot connect" in result.stderr
    assert "s3cret" not in result.output and "admin:***@" in result.stderr
