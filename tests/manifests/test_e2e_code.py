"""The e2e suite cannot rot silently: every module imports, and the skip path works here.

``make test`` never runs the kind scenarios (``testpaths = ["tests"]``), but it imports
every ``e2e`` module (so a renamed helper or a broken import fails here, and mypy/ruff
cover them through ``make lint``), and checks that ``make e2e`` without Docker or kind
prints exactly one line and exits 0.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
from pathlib import Path

import pytest

import e2e
from e2e import kind

ROOT = Path(__file__).resolve().parents[2]


def e2e_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(e2e.__path__, prefix="e2e."))


def test_every_e2e_module_imports() -> None:
    names = e2e_modules()
    assert {"e2e.run", "e2e.demo_kind", "e2e.kind", "e2e.scenarios", "e2e.conftest"} <= set(names)
    assert sum(n.split(".")[-1].startswith("test_") for n in names) >= 4
    for name in names:
        importlib.import_module(name)


def test_scenarios_cover_the_issue() -> None:
    tests = {
        name
        for module in e2e_modules()
        if module.split(".")[-1].startswith("test_")
        for name in vars(importlib.import_module(module))
        if name.startswith("test_")
    }
    for fragment in ("canary_promoted", "rolled_back", "bluegreen", "deleted_mid_rollout"):
        assert any(fragment in t for t in tests), fragment
    assert any("exits_0" in t for t in tests) and any("exits_1" in t for t in tests)


def test_missing_prerequisites_names_each_missing_tool() -> None:
    def nothing(_tool: str) -> str | None:
        return None

    assert kind.missing_prerequisites(which=nothing) == (
        "the docker CLI and `kind` on PATH and `kubectl` on PATH"
    )


@pytest.mark.parametrize("target", ["e2e", "demo CLUSTER=kind"])
def test_make_target_skips_with_one_line_without_docker_or_kind(target: str) -> None:
    if kind.missing_prerequisites() is None:
        pytest.skip("Docker and kind are here: `make e2e` would really run")
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", *target.split()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and "skipped: needs" in lines[0], done.stdout
