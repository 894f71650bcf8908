"""Command-line habits people expect: ``--version``, a help that starts fast because it
loads no command, colour only on a terminal (and never under ``NO_COLOR``), no wrapping
when the output is not a terminal, and why an analysis waits."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import COMMANDS, app, load_command
from controller.commands.console import console
from controller.commands.render import no_data, status_document, status_view
from controller.version import client_version

runner = CliRunner()


def test_version_flag_and_client_version_need_no_cluster() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"deployctl {client_version()}\n"
    assert client_version() != "unknown"
    result = runner.invoke(app, ["version", "--client"])
    assert result.exit_code == 0 and result.output.startswith(
        f"client: deployctl {client_version()}"
    )
    assert "controller" not in result.output


def test_every_command_listed_in_help_is_its_docstrings_first_line() -> None:
    for name, (_module, _function, short) in COMMANDS.items():
        command = load_command(name)
        assert command.get_short_help_str(limit=500) == short, name
    result = runner.invoke(app, ["--help"])
    assert all(name in result.output for name in COMMANDS)
    assert "--install-completion" in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["statsu", "x"])
    assert result.exit_code == 2 and "No such command 'statsu'" in result.output


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_load_no_command_module(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from controller.cli import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('kubernetes', 'rich', 'pydantic', 'structlog', 'yaml',"
        " 'controller.commands.view', 'controller.commands.common') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


DOC_ROLLOUT = {
    "metadata": {"namespace": "shop", "name": "checkout"},
    "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {}}]}}},
    "status": {
        "phase": "Progressing",
        "reason": "AnalysisRunning",
        "message": "step 2: analysis http-health running " + "with a long explanation " * 8,
        "currentStepIndex": 1,
        "canaryRevision": "c4n4ry",
        "stableRevision": "st4bl3",
        "analysisRuns": [
            {
                "key": "step-1",
                "revision": "c4n4ry",
                "startedAt": "2026-12-04T12:00:00Z",
                "metrics": [
                    {
                        "name": "error-rate",
                        "inconclusive": 4,
                        "successful": 1,
                        "measurements": [
                            {"phase": "Successful", "value": "0.01", "at": "2026-12-04T12:00:00Z"},
                            *(
                                {
                                    "phase": "Inconclusive",
                                    "value": "NaN",
                                    "at": f"2026-12-04T12:00:{10 * i:02d}Z",
                                    "message": "error-rate NaN: no data (no traffic?); revision "
                                    "c4n4ry served 0 requests in the last 1m",
                                }
                                for i in range(1, 5)
                            ),
                        ],
                    }
                ],
            }
        ],
    },
}
NOW = datetime(2026, 12, 4, 12, 0, 50, tzinfo=UTC)


def test_no_data_says_since_when_how_many_and_why() -> None:
    metric = DOC_ROLLOUT["status"]["analysisRuns"][0]["metrics"][0]  # type: ignore[index]
    assert no_data(metric, now=NOW) == {
        "since": "2026-12-04T12:00:10Z",
        "seconds": 40,
        "measurements": 4,
        "atLeast": False,
        "reason": "error-rate NaN: no data (no traffic?); revision c4n4ry served 0 requests "
        "in the last 1m",
    }
    [entry] = status_document(DOC_ROLLOUT, [], now=NOW)["measurements"]
    assert entry["phase"] == "Running" and entry["noData"]["measurements"] == 4
    finished = {**metric, "phase": "Successful"}
    assert no_data(finished, now=NOW) is None


def _render(stream: io.TextIOBase | object) -> None:
    console(stream).print(status_view(DOC_ROLLOUT, [], now=NOW))  # type: ignore[arg-type]


def test_without_a_terminal_no_colour_and_no_wrapping(monkeypatch: pytest.MonkeyPatch) -> None:
    for asked in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(asked, raising=False)
    out = io.StringIO()
    _render(out)
    text = out.getvalue()
    assert "\x1b[" not in text
    [message] = [line for line in text.splitlines() if line.startswith("Message")]
    assert message.rstrip().endswith("with a long explanation")
    assert len(message) > 200
    [waiting] = [line for line in text.splitlines() if line.startswith("waiting:")]
    assert waiting == (
        "waiting: error-rate (step-1): no data for 40s (since 2026-12-04T12:00:10Z, 4 "
        "measurements in a row): error-rate NaN: no data (no traffic?); revision c4n4ry served "
        "0 requests in the last 1m"
    )


def _on_a_terminal(monkeypatch: pytest.MonkeyPatch, no_color: str | None) -> str:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w", closefd=True) as terminal:
        assert terminal.isatty()
        _render(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks).decode()


def test_a_terminal_gets_colour_and_its_width_unless_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coloured = _on_a_terminal(monkeypatch, None)
    assert "\x1b[" in coloured
    visible = re.sub(r"\x1b\[[0-9;]*m", "", coloured).replace("\r", "")
    assert max(len(line) for line in visible.splitlines()) <= 100  # the terminal's width
    plain = _on_a_terminal(monkeypatch, "1")
    assert "\x1b[" not in plain and "Progressing" in plain


def test_shell_completion_completes_commands_and_their_options() -> None:
    def complete(words: str, index: int) -> list[str]:
        env = {
            **os.environ,
            "COMP_WORDS": words,
            "COMP_CWORD": str(index),
            "_DEPLOYCTL_COMPLETE": "complete_bash",
        }
        done = subprocess.run(
            [str(Path(sys.executable).parent / "deployctl")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.split()

    # The installed command: completion is keyed off the program's name.
    assert "convert" in complete("deployctl con", 1)
    assert complete("deployctl status --out", 2) == ["--output"]


def test_a_pipe_that_asks_to_be_a_terminal_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    out = io.StringIO()
    console(out).print("[red]x[/]")
    assert "\x1b[" in out.getvalue()
