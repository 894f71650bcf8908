"""`make demo` end to end: the story it tells must be what happened.

Runs ``python -m sandbox.demo --dashboard`` (what ``make demo DASHBOARD=1`` runs) as a
subprocess (it starts its own control plane, Prometheus, node agent, controller and the
dashboard) and checks its exit status, its narration, that the dashboard address it
prints serves the demo's Rollout while the story runs, and that it stopped everything it
started.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import urllib.request
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
        find_binaries()
    except BinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.demo", "--dashboard", f"127.0.0.1:{port}"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    pages: list[str] = []
    assert process.stdout is not None

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"dashboard: (http://\S+)", line)
            if found and not pages:
                # Fetched while the story runs: the address works, not merely printed.
                try:
                    with urllib.request.urlopen(found.group(1), timeout=30) as reply:
                        pages.append(reply.read().decode())
                except OSError as exc:
                    pages.append(f"fetching {found.group(1)} failed: {exc}")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        returncode = process.wait(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(30)
        process.stdout.close()
    out = "".join(lines)
    assert returncode == 0, out[-4000:]
    assert f"dashboard: http://127.0.0.1:{port}/rollouts/demo/shop" in out
    assert pages and 'data-page="rollout"' in pages[0] and "demo/" in pages[0], pages[:1]
    assert "reason AnalysisFailed" in out, out[-4000:]
    assert "-> Failed" in out  # the measurement that decided it is shown
    assert "rolled back in" in out and "promoted in" in out
    # Its temporary directory names every process it started; none may outlive it.
    assert not _processes_named("deployctl-demo-"), "the demo left processes behind"
