"""Where the controller's CPU goes: py-spy samples of the real process, summarised.

py-spy (a sampling profiler from PyPI) reads the interpreter's stacks from outside the
process: no code of ours runs per sample and, with ``--nonblocking``, the process is
never paused, so the CPU figures of a profiled run stay the controller's own. cProfile
or yappi would instrument every call inside the process and inflate exactly the
small, frequent calls (model validation, deep copies, logging) we look for.

Only the thread holding the GIL is sampled (``--gil``): the Python work of the process,
not threads blocked on a socket or a lock. Each sample is put in one cost: the innermost
frame that names a cost wins (JSON rendered for a log line is logging, a deep copy made
for the reconciler is a copy), so the costs add up to the whole.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# A frame is "[Class.]function (file:line)"; this matches its function part.
_FN = r"^(?:[\w<>]+\.)*"

# (cost, pattern on "function (file:line)" frames), checked innermost frame first.
COSTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("logging (structlog, stdlib handlers)", r"structlog/|/logging/|\(.*logging\.py"),
        ("Prometheus /metrics and counters", r"prometheus_client/"),
        ("status diff and write", rf"{_FN}(_write_status|merge_patch|to_wire) "),
        (
            "Rollout and template parsing (pydantic)",
            rf"{_FN}(_parse|_templates|model_validate|parsed) ",
        ),
        ("strategy plan (strategies/)", r"/strategies/"),
        ("analysis (measure, judge)", r"/controller/analysis/"),
        ("informer: copies of cached objects", r"copy\.py"),
        ("informer: cache scans (list, keys)", rf"{_FN}(list|keys|_matches|get) \(.*informer\.py"),
        (
            "informer: watch events and lists (HTTP read, JSON decode)",
            rf"{_FN}(_watch_once|_relist) ",
        ),
        ("API writes (HTTP, TLS, JSON)", rf"{_FN}(_request|record_event|_send) "),
        ("work queue and event handlers", rf"/controller/queue\.py|{_FN}_enqueue"),
        ("snapshot for the strategy (observe)", rf"{_FN}(observe|_observe|revision_states) "),
        ("template hash", rf"{_FN}template_hash "),
        ("phase gauge", rf"{_FN}_update_phase_gauge "),
    )
)


@dataclass(frozen=True)
class Summary:
    """Samples per cost (and per innermost function), from one recording."""

    samples: int
    by_cost: tuple[tuple[str, int], ...]
    by_function: tuple[tuple[str, int], ...]

    def top(self, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` largest costs with their share of all samples."""
        return [(name, count / self.samples) for name, count in self.by_cost[:n]]

    def top_functions(self, n: int = 5) -> list[tuple[str, float]]:
        return [(name, count / self.samples) for name, count in self.by_function[:n]]


def cost_of(frames: list[str]) -> str:
    """The cost a sample's stack (outermost first) belongs to."""
    for frame in reversed(frames):
        for name, pattern in COSTS:
            if pattern.search(frame):
                return name
    ours = [f for f in frames if "/controller/" in f or "/strategies/" in f]
    return f"other: {_function(ours[-1])}" if ours else "other: interpreter and threads"


def _function(frame: str) -> str:
    match = re.match(r"(\S+) \((.*?):\d+\)", frame)
    if not match:
        return frame
    path = match.group(2)
    for root in ("/controller/", "/strategies/", "site-packages/", "/lib/python3"):
        if root in path:
            path = path.split(root, 1)[1]
            break
    return f"{match.group(1)} ({path})"


def summarise(raw: str) -> Summary:
    """Summarise py-spy's ``--format raw`` output (collapsed stacks and counts)."""
    costs: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # py-spy puts the thread name first when asked to; frames start with "name (".
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        total += count
        costs[cost_of(frames)] += count
        leaves[_function(frames[-1])] += count
    return Summary(
        samples=total,
        by_cost=tuple(costs.most_common()),
        by_function=tuple(leaves.most_common()),
    )


def py_spy() -> str | None:
    """The py-spy binary next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Recording:
    """``py-spy record`` attached to ``pid`` until ``stop()``; does nothing without py-spy."""

    def __init__(self, pid: int, output: Path, *, rate: int = 67) -> None:
        self.output = output
        binary = py_spy()
        self._process: subprocess.Popen[bytes] | None = None
        if binary is None:
            return
        self._process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--nonblocking",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> Summary | None:
        """Stop recording (py-spy writes its file on SIGINT) and summarise it."""
        if self._process is None:
            return None
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        if not self.output.exists():
            return None
        return summarise(self.output.read_text(errors="replace"))
