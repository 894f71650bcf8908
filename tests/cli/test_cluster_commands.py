"""The cluster commands' input handling, through typer's runner: every mistake is caught
before any connection is made, with exit code 2 and a message naming the fix."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.commands.render import Narrator, history_rows
from controller.commands.rollout import build_strategy, parse_steps
from controller.rollout_outcome import judge

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rollout", "shop", "--image", "app"], "expected CONTAINER=IMAGE"),
        (["rollout", "shop", "--image", "=x:1"], "expected CONTAINER=IMAGE"),
        (["rollout", "shop", "--image", "a=b:1", "--strategy", "linear"], "must be one of"),
        (["rollout", "shop"], "nothing to change"),
        (["rollout", "--image", "a=b:1"], "give a Rollout NAME"),
        (["rollout", "shop", "--image", "a=b:1", "--steps", "10,wait"], "cannot read 'wait'"),
        (["rollout", "shop", "--image", "a=b:1", "--timeout", "soon"], "--timeout 'soon'"),
        (["rollout", "shop", "--image", "a=b:1", "--override-freeze", "hotfix"], "needs --reason"),
        (
            ["rollout", "shop", "--image", "a=b:1", "--override-freeze", "yolo", "--reason", "x"],
            "must be one of hotfix",
        ),
        (["rollout", "-f", "x.yaml", "--image", "a=b:1"], "cannot be combined"),
    ],
)
def test_bad_rollout_flags_exit_2_before_connecting(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_unknown_flag_is_a_usage_error() -> None:
    result = runner.invoke(app, ["promote", "shop", "--fulll"])
    assert result.exit_code == 2


def test_help_lists_the_exit_codes_and_does_not_load_the_kubernetes_client() -> None:
    code = (
        "import sys, controller.cli; "
        "assert 'kubernetes' not in sys.modules, 'kubernetes imported'; "
        "assert 'controller.api.rollout' not in sys.modules, 'models imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    result = runner.invoke(app, ["--help"])
    assert "timed out waiting" in result.output and "no controller is running" in result.output


def test_steps_are_read_as_weights_pauses_and_analyses() -> None:
    assert parse_steps("10, pause:30s,analysis:errors+latency,50,pause") == [
        {"setWeight": 10},
        {"pause": {"duration": "30s"}},
        {"analysis": {"templates": [{"name": "errors"}, {"name": "latency"}]}},
        {"setWeight": 50},
        {"pause": {}},
    ]


def test_switching_strategy_keeps_the_services_that_map_across() -> None:
    canary = {"canary": {"stableService": "web", "canaryService": "web-canary", "steps": []}}
    assert build_strategy(canary, "bluegreen", None) == {
        "blueGreen": {"activeService": "web", "previewService": "web-canary"}
    }
    assert build_strategy(canary, "rolling", None) == {"rolling": {}}
    back = build_strategy({"blueGreen": {"activeService": "web"}}, "canary", None)
    assert back["canary"]["stableService"] == "web" and back["canary"]["steps"]


def _rollout(generation: int, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {}, "status": status}


def test_judge_waits_for_the_controller_to_observe_the_change() -> None:
    stale = _rollout(3, observedGeneration=2, phase="Healthy", stableRevision="old")
    assert judge(stale, revision="new", generation=3) is None
    promoted = _rollout(3, observedGeneration=3, phase="Healthy", stableRevision="new")
    outcome = judge(promoted, revision="new", generation=3)
    assert outcome is not None and outcome.name == "Promoted" and outcome.code == 0


def test_judge_reports_rollback_supersession_and_invalid_spec() -> None:
    rolled = _rollout(
        4,
        observedGeneration=4,
        phase="Degraded",
        reason="AnalysisFailed",
        message="error-rate 0.3 > max 0.05",
        stableRevision="old",
        canaryRevision="new",
        aborted=True,
    )
    outcome = judge(rolled, revision="new", generation=4)
    assert outcome is not None and outcome.code == 1 and "0.3 > max" in outcome.message
    other = _rollout(5, observedGeneration=5, phase="Progressing", canaryRevision="newer")
    assert judge(other, revision="new", generation=4).name == "Superseded"  # type: ignore[union-attr]
    invalid = _rollout(
        5,
        observedGeneration=5,
        phase="Healthy",
        reason="InvalidSpec",
        message="spec.strategy.blueGreen: activeService and previewService must be different",
        conditions=[{"type": "InvalidSpec", "status": "True"}],
    )
    assert judge(invalid, revision="new", generation=5).code == 2  # type: ignore[union-attr]
    running = _rollout(4, observedGeneration=4, phase="Paused", canaryRevision="new")
    assert judge(running, revision="new", generation=4) is None


def test_narrator_tells_each_measurement_once() -> None:
    run = {
        "key": "step-1",
        "revision": "new",
        "metrics": [
            {
                "name": "error-rate",
                "phase": "Running",
                "measurements": [{"value": "0.3", "phase": "Failed", "at": "t1"}],
            }
        ],
    }
    rollout = _rollout(1, observedGeneration=1, phase="Progressing", analysisRuns=[run])
    narrator = Narrator("new", generation=1)
    first = narrator.lines(rollout)
    assert any("measured error-rate (step 1 analysis): 0.3 -> Failed" in line for line in first)
    assert narrator.lines(rollout) == []


def test_history_rows_number_oldest_first_with_versions_and_durations() -> None:
    rollout = _rollout(
        1,
        history=[
            {
                "revision": "a",
                "images": {"app": "shop:v1.4.2"},
                "outcome": "Promoted",
                "startedAt": "2026-11-24T10:00:00Z",
                "finishedAt": "2026-11-24T10:03:05Z",
            },
            {"revision": "b", "images": {"app": "shop:latest"}, "outcome": "Progressing"},
        ],
    )
    rows = history_rows(rollout)
    assert [(r["number"], r["version"], r["duration"]) for r in rows] == [
        (1, "1.4.2", "3m05s"),
        (2, "", ""),
    ]


HOSTILE_TEXT = "[link=https://evil.example]update[/link] [/x] [bold red]urgent"


def test_data_from_the_cluster_is_printed_as_written_never_as_markup() -> None:
    """An annotation or a message with rich markup used to restyle the output, or crash
    ``deployctl history`` (``[/x]`` closes a tag that is not open)."""
    from rich.console import Console

    from controller.commands.render import history_table, list_table, status_view

    rollout = {
        "metadata": {"name": "shop", "namespace": "t", "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": {"strategy": {"canary": {}}},
        "status": {
            "phase": "Paused",
            "reason": "FrozenUntil",
            "message": HOSTILE_TEXT,
            "history": [
                {
                    "revision": "abc",
                    "images": {"app": "shop/x:[/y]"},
                    "requestedBy": "[bold]me",
                    "reason": HOSTILE_TEXT,
                    "outcome": "Promoted",
                    "events": [HOSTILE_TEXT],
                }
            ],
        },
    }
    console = Console(record=True, width=400, color_system=None)
    console.print(history_table(history_rows(rollout)))
    console.print(status_view(rollout, []))
    console.print(list_table([rollout], all_namespaces=True))
    text = console.export_text()
    assert text.count(HOSTILE_TEXT) == 2  # the history's reason and the status message
    assert "shop/x:[/y]" in text and "[bold]me" in text
