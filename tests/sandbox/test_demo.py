"""`make demo` end to end: the story it tells must be what happened.

Runs ``python -m sandbox.demo`` as a subprocess (it starts its own control plane,
Prometheus, node agent and controller) and checks its exit status, its narration and
that it stopped everything it started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.build import BinariesMissing, find_binaries

REPO_ROOT = Path(__file__).resolve().parents[2]


def _processes_named(fragment: str) -> set[int]:
    found: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fragment in cmdline:
            found.add(int(proc.name))
    return found


@pytest.mark.cluster
@pytest.mark.prometheus
def test_demo_rolls_back_the_broken_version_and_promotes_the_healthy_one() -> None:
    try:
        binaries = find_binaries()
    except BinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.demo"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "reason AnalysisFailed" in out, out[-4000:]
    assert "-> Failed" in out  # the measurement that decided it is shown
    assert "rolled back in" in out and "promoted in" in out
    assert binaries.version in out  # the release it ran on is named
    if binaries.minor >= (1, 25):  # and there, every pod met Pod Security's restricted level
        assert "enforces the restricted Pod Security level" in out
    # Its temporary directory names every process it started; none may outlive it.
    assert not _processes_named("deployctl-demo-"), "the demo left processes behind"
