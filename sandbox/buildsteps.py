"""What every control-plane build step shares: numbered progress lines, logged commands.

``sandbox.build`` (the command and the cache) and the two ways of building a release,
``sandbox.build_debian`` (v1.20 from Debian's source package) and ``sandbox.build_gomod``
(current releases from Go modules), report through one ``Progress`` and run their tools
through ``run_logged``, so a failure always reads the same way: which step, the last lines
of its log, and where the whole log is.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

LOG_TAIL_LINES = 25
# A long step prints a heartbeat so a ten-minute build never looks hung.
HEARTBEAT_SECONDS = 30.0


class BuildError(Exception):
    """A build step failed; the message is what the user sees."""


class Progress:
    """Numbered step lines with elapsed times, and the total at the end."""

    def __init__(self, total_steps: int, out: TextIO) -> None:
        self._total_steps = total_steps
        self._index = 0
        self._out = out
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self._index += 1
        self.say(f"==> [{self._index}/{self._total_steps}] {title}")
        began = time.monotonic()
        yield
        elapsed = time.monotonic() - began
        self.timings[title] = round(elapsed, 1)
        self.say(f"    done in {elapsed:.1f} s")


def tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def run_logged(
    step: str,
    cmd: Sequence[str],
    *,
    log: Path,
    progress: Progress,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``cmd`` with its output appended to ``log``; raise BuildError on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(cmd)}\n")
        sink.flush()
        try:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise BuildError(f"step '{step}' could not start {cmd[0]}: {exc}") from exc
        while True:
            try:
                code = proc.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                last = tail(log, 1).strip()[:90]
                progress.say(f"    ... {time.monotonic() - began:.0f} s: {last}")
    if code != 0:
        raise BuildError(
            f"step '{step}' failed: {cmd[0]} exited with {code}.\n"
            f"Last lines of its log:\n{tail(log)}\n"
            f"Full log: {log}"
        )


def is_root() -> bool:
    return os.geteuid() == 0


def command_output(cmd: Sequence[str], *, env: Mapping[str, str] | None = None) -> str:
    """stdout of a short command, stripped; "" when it cannot run or fails."""
    try:
        result = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            check=False,
            env=dict(env) if env is not None else None,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""
