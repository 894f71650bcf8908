"""CLI start: ``deployctl --help`` and ``deployctl status`` as whole processes, 10 times
each; with a kubectl, ``kubectl get`` of the same Rollout in turn with ``status`` (A B A
B...), so both meet the same load and the ratio holds on a busy machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.bench.process import say
from tests.bench.stats import Spread

RUNS = 10


def _timed(args: list[str], env: dict[str, str]) -> float:
    began = time.monotonic()
    subprocess.run(args, env=env, capture_output=True, check=False)
    return time.monotonic() - began


def bench_cli(
    kubeconfig: Path, ns: str, name: str, kubectl: Path | None = None
) -> dict[str, Spread]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    deployctl = str(Path(sys.executable).parent / "deployctl")
    status = f"deployctl status {name}"
    commands = {
        "deployctl --help": [deployctl, "--help"],
        status: [deployctl, "status", name, "-n", ns, "-o", "json"],
    }
    if kubectl is not None:
        commands[f"kubectl get rollouts.deployctl.io {name}"] = [
            str(kubectl),
            "get",
            "rollouts.deployctl.io",
            name,
            "-n",
            ns,
            "-o",
            "json",
        ]
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(RUNS):
        for label, args in commands.items():  # in turn: the same load for each
            times[label].append(_timed(args, env))
    out = {label: Spread.of(values) for label, values in times.items()}
    for label, spread in out.items():
        say(f"{label}: {spread.text()}")
    return out
