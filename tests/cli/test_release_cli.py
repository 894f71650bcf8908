"""``deployctl release``: plan without a cluster, input errors before any cluster, and the
views (waves x clusters matrix, JSON, ``--wait`` outcomes) as pure functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from controller.api.release import Release
from controller.cli import app
from controller.commands.release_view import (
    ReleaseNarrator,
    judge_release,
    plan_rows,
    status_document,
    status_view,
)
from controller.exitcodes import Exit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "release.yaml"
runner = CliRunner()


def test_plan_prints_the_waves_without_a_cluster() -> None:
    result = runner.invoke(app, ["release", "plan", "-f", str(EXAMPLE), "-o", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["rollout"] == "shop/checkout" and document["onFailure"] == "rollbackAll"
    assert [(w["name"], w["clusters"], w["maxParallel"], w["soak"]) for w in document["waves"]] == [
        ("staging", ["staging"], 1, "10m"),
        ("canary", ["prod-eu-1"], 1, "30m"),
        ("eu", ["prod-eu-2", "prod-eu-3"], 1, "0s"),
    ]
    assert document["waves"][1]["startsWhen"] == "staging Healthy and soaked"
    table = runner.invoke(app, ["release", "plan", "-f", str(EXAMPLE)])
    assert table.exit_code == 0
    for word in ("staging", "prod-eu-1", "prod-eu-2, prod-eu-3", "30m", "rollbackAll"):
        assert word in table.stdout


BAD = """
apiVersion: deployctl.io/v1alpha1
kind: Release
metadata: {name: r}
spec:
  rollout: {namespace: shop, name: checkout}
  waves:
    - {name: a, clusters: [x]}
    - {name: b, clusters: [x], soak: soon}
"""


def test_plan_and_create_report_every_problem_before_any_cluster(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    plan = runner.invoke(app, ["release", "plan", "-f", str(path)])
    assert plan.exit_code == Exit.USAGE
    assert "spec.waves[1].soak: invalid duration 'soon'" in plan.stderr
    create = runner.invoke(
        app, ["release", "create", "-f", str(path), "--kubeconfig", str(tmp_path / "none")]
    )
    assert create.exit_code == Exit.USAGE and "invalid duration" in create.stderr
    path.write_text(BAD.replace("soak: soon", "soak: 1m"))
    both = runner.invoke(app, ["release", "plan", "-f", str(path)])
    assert "cluster 'x' is in waves 'a' and 'b'" in both.stderr
    assert "give images and/or templatePatch" in both.stderr
    image = runner.invoke(app, ["release", "create", "-f", str(EXAMPLE), "--image", "nope"])
    assert image.exit_code == Exit.USAGE and "CONTAINER=IMAGE" in image.stderr


def test_rollout_apply_refuses_a_release_file() -> None:
    result = runner.invoke(
        app, ["rollout", "-f", str(EXAMPLE), "--kubeconfig", "/nonexistent/kubeconfig"]
    )
    assert result.exit_code != 0


def sample(phase: str = "Progressing", **extra: Any) -> dict[str, Any]:
    release = Release.model_validate(
        {**_load_example(), "metadata": {"name": "rel", "namespace": "r", "generation": 2}}
    )
    return {
        "metadata": {"name": "rel", "namespace": "r", "generation": 2},
        "spec": release.spec.to_dict(),
        "status": {
            "phase": phase,
            "reason": "ClusterHeld",
            "message": "wave canary waits: cluster prod-eu-1 held by its delivery policy",
            "observedGeneration": 2,
            "currentWave": "canary",
            "startedAt": "2026-03-01T12:00:00Z",
            "waves": [
                {"name": "staging", "phase": "Succeeded"},
                {"name": "canary", "phase": "Progressing"},
            ],
            "clusters": [
                {"name": "staging", "wave": "staging", "phase": "Healthy", "revision": "r2",
                 "previousRevision": "r1"},
                {"name": "prod-eu-1", "wave": "canary", "phase": "Held", "reason": "FrozenUntil",
                 "message": "frozen until Monday", "revision": "r2", "previousRevision": "r1"},
                {"name": "prod-eu-2", "wave": "eu"},
                {"name": "prod-eu-3", "wave": "eu"},
            ],
            **extra,
        },
    }  # fmt: skip


def _load_example() -> dict[str, Any]:
    import yaml

    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d["kind"] == "Release"]
    return dict(docs[0])


def test_the_status_matrix_shows_waves_by_clusters_and_why_it_waits() -> None:
    console = Console(width=160, record=True, color_system=None)
    console.print(status_view(sample("Waiting")))
    text = console.export_text()
    assert "release r/rel of shop/checkout: Waiting (ClusterHeld)" in text
    lines: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            lines.setdefault(line.split()[0], line)  # the matrix comes before the details
    assert "staging Healthy" in lines["staging"] and "Succeeded" in lines["staging"]
    assert "prod-eu-1 Held" in lines["canary"]
    assert "prod-eu-2 Pending" in lines["eu"] and "prod-eu-3 Pending" in lines["eu"]
    assert "FrozenUntil: frozen until Monday" in text and "r1 -> r2" in text


def test_the_json_status_has_every_wave_and_cluster() -> None:
    document = status_document(sample())
    assert [w["name"] for w in document["waves"]] == ["staging", "canary", "eu"]
    assert document["waves"][2]["phase"] == "Pending"
    assert [c["name"] for c in document["waves"][2]["clusters"]] == ["prod-eu-2", "prod-eu-3"]


@pytest.mark.parametrize(
    ("phase", "reason", "expected"),
    [
        ("Succeeded", "ReleaseSucceeded", Exit.OK),
        ("Failed", "ClusterFailed", Exit.ROLLED_BACK),
        ("RolledBack", "ClusterFailed", Exit.ROLLED_BACK),
        ("Failed", "InvalidSpec", Exit.USAGE),
        ("RollingBack", "ClusterFailed", None),
        ("Waiting", "ClusterHeld", None),
    ],
)
def test_wait_outcomes_use_the_usual_exit_codes(
    phase: str, reason: str, expected: Exit | None
) -> None:
    outcome = judge_release(sample(phase, reason=reason))
    assert (outcome.code if outcome else None) == expected
    stale = sample(phase, reason=reason, observedGeneration=1)
    assert judge_release(stale) is None  # the controller has not seen this spec yet


def test_progress_lines_say_each_change_once() -> None:
    narrator = ReleaseNarrator()
    first = narrator.lines(sample("Waiting"))
    assert "wave staging: Succeeded" in first
    assert "cluster prod-eu-1: Held (FrozenUntil: frozen until Monday)" in first
    assert narrator.lines(sample("Waiting")) == []


def test_plan_rows_follow_the_waves() -> None:
    release = Release.model_validate(_load_example())
    assert [row["name"] for row in plan_rows(release)] == ["staging", "canary", "eu"]
