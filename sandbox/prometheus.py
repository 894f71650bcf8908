"""A real Prometheus server for the sandbox: Debian's ``/usr/bin/prometheus`` on loopback.

Started by ``tests.fixtures_workloads`` (the session ``prometheus`` fixture) and by the
demo. It scrapes every target written as file_sd JSON into ``file_sd_dir`` (the node
agent writes one file per running pod, the ``demo_app`` fixture one per process), plus
optional static targets, every ``scrape_interval``. Nothing here imitates the PromQL API:
the analysis code and the tests query the real one at ``PrometheusServer.url``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sandbox.demo_app import die_with_parent

INSTALL_HINT = "install it with `apt-get install -y prometheus` (Debian/Ubuntu package)"


class PrometheusNotInstalled(RuntimeError):
    """The ``prometheus`` binary is missing; the message says how to get it."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant-query result."""

    labels: dict[str, str]
    value: float


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the usual bind-to-0 trick; racy but fine here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_prometheus() -> str:
    path = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if path is None:
        raise PrometheusNotInstalled(f"the `prometheus` binary is not on PATH: {INSTALL_HINT}")
    return path


class PrometheusServer:
    """One Prometheus process with its own config and throw-away TSDB under ``workdir``."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        port: int | None = None,
        scrape_interval: str = "1s",
        file_sd_dir: Path | str | None = None,
        static_targets: Sequence[str] = (),
        binary: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port if port is not None else free_port()
        self.scrape_interval = scrape_interval
        self.file_sd_dir = Path(file_sd_dir) if file_sd_dir is not None else self.workdir / "sd"
        self.static_targets = tuple(static_targets)
        self.binary = binary
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        """The prometheus.yml content (written as JSON, which is valid YAML)."""
        scrape_configs: list[dict[str, Any]] = [
            {
                "job_name": "sandbox",
                "file_sd_configs": [
                    # inotify picks up new files at once; the refresh is the fallback.
                    {"files": [str(self.file_sd_dir / "*.json")], "refresh_interval": "1s"}
                ],
            }
        ]
        if self.static_targets:
            scrape_configs.append(
                {"job_name": "static", "static_configs": [{"targets": list(self.static_targets)}]}
            )
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                # The timeout may not exceed the interval; at 1 s a loopback scrape is ~ms.
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": scrape_configs,
        }

    def start(self) -> PrometheusServer:
        if self._process is not None:
            return self
        binary = self.binary or find_prometheus()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.file_sd_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(json.dumps(self.config(), indent=2))
        tsdb = tempfile.mkdtemp(prefix="tsdb-", dir=self.workdir)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tsdb}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            preexec_fn=die_with_parent,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self._process.returncode} during start-up; "
                    f"its log ({self.log_path}):\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"prometheus not ready after {self.start_timeout}s; log:\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def query(self, promql: str) -> list[Sample]:
        """An instant query; vectors and scalars come back as samples."""
        params = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as reply:
            body = json.load(reply)
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        data = body["data"]
        if data["resultType"] == "vector":
            return [
                Sample(labels=dict(item["metric"]), value=float(item["value"][1]))
                for item in data["result"]
            ]
        if data["resultType"] == "scalar":
            return [Sample(labels={}, value=float(data["result"][1]))]
        raise RuntimeError(f"query {promql!r}: unsupported result type {data['resultType']}")

    def active_targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets?state=active", timeout=10) as r:
            targets: list[dict[str, Any]] = json.load(r)["data"]["activeTargets"]
        return targets

    def wait_for_series(
        self, query: str, deadline: float = 30.0, *, poll_interval: float = 0.25
    ) -> list[Sample]:
        """Poll ``query`` until it returns a non-empty, non-NaN result; ``deadline`` in seconds."""
        return wait_for_series(self, query, deadline, poll_interval=poll_interval)


def wait_for_series(
    prometheus: PrometheusServer,
    query: str,
    deadline: float = 30.0,
    *,
    poll_interval: float = 0.25,
) -> list[Sample]:
    """Poll until ``query`` has data. Tests use this instead of sleeping for scrapes.

    NaN samples (a ratio over no traffic yet) count as no data, as in our analysis.
    """
    end = time.monotonic() + deadline
    last: list[Sample] = []
    while True:
        last = prometheus.query(query)
        if last and all(sample.value == sample.value for sample in last):
            return last
        if time.monotonic() > end:
            raise TimeoutError(f"no series for {query!r} after {deadline}s (last: {last})")
        time.sleep(poll_interval)
