"""``deployctl rollout --wait``: the exit code is the outcome (0 promoted, 1 rolled back).

This is how CI uses deployctl, so it runs the installed console script as a subprocess
with the documented flags, against the kind cluster's kubeconfig.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.kind import demo_image
from e2e.scenarios import APP, canary_strategy, prepare, rollout, wait_phase
from tests.integration.harness import Cluster


def deployctl(
    *args: str, kubeconfig: Path, timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("deployctl")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "controller.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        check=False,
    )


def rollout_wait(
    cluster: Cluster, kubeconfig: Path, version: str
) -> subprocess.CompletedProcess[str]:
    return deployctl(
        "rollout",
        APP,
        "--namespace",
        cluster.namespace,
        "--image",
        f"app={demo_image(version)}",
        "--wait",
        "--timeout",
        "5m",
        "-o",
        "json",
        kubeconfig=kubeconfig,
    )


@pytest.fixture
def healthy_v1(cluster: Cluster) -> Cluster:
    strategy = canary_strategy()
    prepare(cluster, strategy=strategy)
    cluster.apply_rollout(rollout("v1", strategy=strategy))
    wait_phase(cluster, "Healthy")
    return cluster


def test_rollout_wait_exits_0_when_promoted(healthy_v1: Cluster, kubeconfig: Path) -> None:
    done = rollout_wait(healthy_v1, kubeconfig, "v2")
    assert done.returncode == 0, done.stderr[-3000:]
    json.loads(done.stdout)  # -o json: the outcome is machine-readable
    assert healthy_v1.status(APP)["phase"] == "Healthy"


def test_rollout_wait_exits_1_when_rolled_back(healthy_v1: Cluster, kubeconfig: Path) -> None:
    done = rollout_wait(healthy_v1, kubeconfig, "broken")
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    json.loads(done.stdout)
    assert healthy_v1.status(APP)["phase"] == "Degraded"
