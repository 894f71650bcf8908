"""CLI start: ``deployctl --help`` and ``deployctl status`` as whole processes, 10 times each."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.bench.process import say
from tests.bench.stats import Spread


def bench_cli(kubeconfig: Path, ns: str, name: str) -> dict[str, Spread]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    deployctl = str(Path(sys.executable).parent / "deployctl")
    out: dict[str, Spread] = {}
    for label, args in (
        ("deployctl --help", [deployctl, "--help"]),
        (f"deployctl status {name}", [deployctl, "status", name, "-n", ns, "-o", "json"]),
    ):
        times = []
        for _ in range(10):
            began = time.monotonic()
            subprocess.run(args, env=env, capture_output=True, check=False)
            times.append(time.monotonic() - began)
        out[label] = Spread.of(times)
        say(f"{label}: {out[label].text()}")
    return out
