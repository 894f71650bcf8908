"""The real ``deployctl controller`` process as the benchmark sees it: its /metrics, its
CPU time and peak RSS from /proc, and a progress line while the benchmark waits on it.

CPU is the process's own user + system time (``/proc/PID/stat``), so it counts what the
controller spent, not how long it waited for a loaded machine; wall times are reported
beside the load average for the same reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def load_average() -> float:
    """The one-minute load average (the machine is shared; figures are read beside it)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


class Progress:
    """A progress line at most every ``every`` seconds, for long waits."""

    def __init__(self, what: str, *, every: float = 15.0) -> None:
        self.what = what
        self.every = every
        self._last = time.monotonic()
        self._started = self._last

    def tick(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            say(f"{self.what}: {text} ({now - self._started:.0f} s, load {load_average():.1f})")


class Controller:
    """The real ``deployctl controller`` process, its /metrics and its /proc figures."""

    def __init__(
        self,
        kubeconfig: Path,
        prometheus_url: str,
        log: Path,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.cli",
                "controller",
                "--kubeconfig",
                str(kubeconfig),
                "--prometheus-url",
                prometheus_url,
                "--probe-address",
                "127.0.0.1:0",
                "--log-format",
                "json",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        self.url = wait_until(self._probe_url, timeout=60, what="the controller's probe URL")

    @property
    def pid(self) -> int:
        return self.process.pid

    def _probe_url(self) -> str | None:
        for line in self.log.read_text(errors="replace").splitlines():
            if "serving /metrics" in line and line.startswith("{"):
                return str(json.loads(line)["url"])
        return None

    def metrics(self) -> dict[str, list[Any]]:
        text = urllib.request.urlopen(f"{self.url}/metrics", timeout=30).read().decode()
        return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}

    def api_requests(self, *, by_code: bool = False) -> dict[str, float]:
        """Requests by "verb resource" (and " code" with ``by_code``) since start, from
        deployctl_api_requests_total."""
        out: dict[str, float] = {}
        for sample in self.metrics().get("deployctl_api_requests", []):
            if sample.name.endswith("_total"):
                verb = f"{sample.labels['verb']} {sample.labels['resource']}"
                if by_code:
                    verb += f" {sample.labels.get('code', '')}"
                out[verb] = out.get(verb, 0.0) + sample.value
        return out

    def counter(self, family: str, **labels: str) -> float:
        """The sum of a counter family's ``_total`` samples matching ``labels``."""
        return sum(
            float(s.value)
            for s in self.metrics().get(family, [])
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def reconcile_quantiles(self) -> tuple[float, float, int]:
        return self.histogram_quantiles("deployctl_reconcile_duration_seconds")

    def histogram_quantiles(self, family: str) -> tuple[float, float, int]:
        """p50 and p99 (bucket upper bounds) and the count of a histogram since start."""
        buckets = [
            (float(s.labels["le"]), s.value)
            for s in self.metrics().get(family, [])
            if s.name.endswith("_bucket")
        ]
        buckets.sort()
        total = buckets[-1][1] if buckets else 0

        def quantile(q: float) -> float:
            for bound, count in buckets:
                if count >= q * total:
                    return bound
            return float("inf")

        return quantile(0.5), quantile(0.99), int(total)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_mib(self) -> float:
        return self._status_kib("VmRSS:") / 1024

    def peak_rss_mib(self) -> float:
        return self._status_kib("VmHWM:") / 1024

    def _status_kib(self, field: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
