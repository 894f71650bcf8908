"""The pod state machine the node agent plays for each pod, as a kubelet would.

A pod bound to the sandbox's node starts in ``STARTING``; its first container's
``Behaviour`` decides what follows (``behaviour_of``):

    NORMAL       STARTING -> RUNNING (Ready once its demo-app process answers, if any)
    NEVER_READY  STARTING -> RUNNING (never Ready)
    CRASH        STARTING -> CRASH_RUNNING <-> CRASH_WAITING (CrashLoopBackOff), each
                 turn after ``crash_interval``, restartCount + 1 per crash
    SHELL        STARTING -> RUNNING -> TERMINATED (Succeeded or Failed by exit code)

and any of them, once deleted, ``TERMINATING`` until the agent finishes the deletion
(after its ``termination_delay``; the status stays as last reported, as while a kubelet
stops the containers).

``advance`` makes one transition of a ``PodState`` at ``now``; what it needs done
outside the record (write the status, look again later, publish a scrape target, probe
the process) it asks of a ``PodHost``, which ``sandbox.node_agent.NodeAgent`` supplies.
``status_patch`` is the pod status a kubelet would report for a state. Nothing here
talks to the API server.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.times import timestamp

log = logging.getLogger(__name__)

JSON = dict[str, Any]

BEHAVIOUR_ENV = "SANDBOX_BEHAVIOUR"
SHELL_IMAGE = "sandbox/shell"
# How often a shell pod's process is checked for exit (the worker's timer, not a sleep).
SHELL_POLL_INTERVAL = 0.1
# What the kubelet keeps of a failed container's log for its termination message.
TERMINATION_LOG_LINES = 80
TERMINATION_LOG_BYTES = 2048


class Behaviour(enum.Enum):
    NORMAL = "normal"
    CRASH = "crash"
    NEVER_READY = "never-ready"
    SHELL = "shell"


def behaviour_of(pod: Mapping[str, Any]) -> Behaviour:
    """How the pod's first container behaves: env ``SANDBOX_BEHAVIOUR`` first, then image tag."""
    containers = pod.get("spec", {}).get("containers") or [{}]
    first = containers[0]
    for var in first.get("env") or []:
        if var.get("name") == BEHAVIOUR_ENV:
            try:
                return Behaviour(var.get("value", ""))
            except ValueError:
                log.warning("unknown %s=%r, treating as normal", BEHAVIOUR_ENV, var.get("value"))
                return Behaviour.NORMAL
    image = str(first.get("image", ""))
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    repository = image[: -len(tag) - 1] if tag else image
    if repository == SHELL_IMAGE or repository.endswith("/" + SHELL_IMAGE):
        return Behaviour.SHELL
    if tag.endswith("-crash"):
        return Behaviour.CRASH
    if tag.endswith("-never-ready"):
        return Behaviour.NEVER_READY
    return Behaviour.NORMAL


class Stage(enum.Enum):
    STARTING = "starting"  # bound, not reported yet
    RUNNING = "running"  # reported Running (ready or not)
    CRASH_RUNNING = "crash-running"  # a crash-looping container between restarts
    CRASH_WAITING = "crash-waiting"  # CrashLoopBackOff
    TERMINATED = "terminated"  # a shell pod's process exited; the pod is Succeeded/Failed
    TERMINATING = "terminating"  # deleted; the agent finishes it after termination_delay


@dataclass
class PodState:
    """The agent's own record of one pod; mutable, owned by the worker thread."""

    namespace: str
    name: str
    uid: str
    ip: str
    behaviour: Behaviour
    containers: list[JSON]
    labels: dict[str, str]
    bound_at: dt.datetime
    stage: Stage = Stage.STARTING
    restart_count: int = 0
    started_at: dt.datetime | None = None
    last_finished_at: dt.datetime | None = None
    ready: bool = False
    ready_changed_at: dt.datetime | None = None
    process: subprocess.Popen[bytes] | None = None
    token: int = 0  # bumps on each reschedule, so stale timer entries are ignored
    checks: int = 0
    exit_code: int | None = None
    termination_message: str = ""
    output: Path | None = None  # a shell pod's combined stdout and stderr
    node_name: str = ""  # the agent's Node the pod is bound to (an agent may play several)
    hostname: str = ""  # spec.hostname, else the pod's name (what a kubelet sets)

    def checkpoint(self) -> tuple[Any, ...]:
        """The fields a transition changes (see ``restore``)."""
        return (
            self.stage,
            self.restart_count,
            self.started_at,
            self.last_finished_at,
            self.ready,
            self.ready_changed_at,
            self.exit_code,
            self.termination_message,
        )

    def restore(self, saved: tuple[Any, ...]) -> None:
        (
            self.stage,
            self.restart_count,
            self.started_at,
            self.last_finished_at,
            self.ready,
            self.ready_changed_at,
            self.exit_code,
            self.termination_message,
        ) = saved

    def set_ready(self, ready: bool, now: dt.datetime) -> None:
        """Ready or not from ``now`` (the Ready condition's transition time moves only on
        a change, or when first reported)."""
        if ready != self.ready or self.ready_changed_at is None:
            self.ready_changed_at = now
        self.ready = ready

    def view(self) -> PodView:
        return PodView(
            namespace=self.namespace,
            name=self.name,
            ip=self.ip,
            behaviour=self.behaviour,
            ready=self.ready,
            restart_count=self.restart_count,
            pid=self.process.pid if self.process is not None else None,
        )


@dataclass(frozen=True)
class PodView:
    """What the agent reports about a pod; a snapshot for tests and logs."""

    namespace: str
    name: str
    ip: str
    behaviour: Behaviour
    ready: bool
    restart_count: int
    pid: int | None


@dataclass(frozen=True)
class PodHost:
    """What a transition asks of the node agent running the pod."""

    report: Callable[[PodState, bool], None]
    """Write the pod's status, Ready or not (``status_patch``); may raise."""
    schedule: Callable[[PodState, float], None]
    """Look at the pod again after this many seconds."""
    serving: Callable[[PodState], None]
    """The pod runs and serves: publish it (its Prometheus scrape target; the agent
    already published it when the process started, so this only re-asserts it)."""
    healthy: Callable[[PodState], bool]
    """Whether the pod's demo-app process answers its health check."""
    crash_interval: float
    process_start_timeout: float


def advance(state: PodState, now: dt.datetime, host: PodHost) -> None:
    """The pod's next transition at ``now`` (see the module docstring)."""
    if state.behaviour is Behaviour.SHELL:
        _advance_shell(state, now, host)
        return
    if state.stage is Stage.STARTING:
        if state.behaviour is Behaviour.CRASH:
            state.stage, state.started_at = Stage.CRASH_RUNNING, now
            host.report(state, False)
            host.schedule(state, host.crash_interval)
            return
        ready = state.behaviour is Behaviour.NORMAL
        if ready and state.process is not None and not host.healthy(state):
            state.checks += 1
            if state.checks * 0.1 < host.process_start_timeout:
                host.schedule(state, 0.1)
                return
            log.warning("pod %s/%s: demo app never became healthy", state.namespace, state.name)
            ready = False
        state.stage, state.started_at = Stage.RUNNING, now
        host.report(state, ready)
        host.serving(state)
    elif state.stage is Stage.CRASH_RUNNING:
        state.stage, state.last_finished_at = Stage.CRASH_WAITING, now
        state.restart_count += 1
        host.report(state, False)
        host.schedule(state, host.crash_interval)
    elif state.stage is Stage.CRASH_WAITING:
        state.stage, state.started_at = Stage.CRASH_RUNNING, now
        host.report(state, False)
        host.schedule(state, host.crash_interval)


def _advance_shell(state: PodState, now: dt.datetime, host: PodHost) -> None:
    if state.stage is Stage.STARTING:
        state.stage, state.started_at = Stage.RUNNING, now
        host.report(state, True)
    if state.stage is Stage.RUNNING:
        if not shell_finished(state):
            host.schedule(state, SHELL_POLL_INTERVAL)
            return
        state.stage, state.last_finished_at = Stage.TERMINATED, now
        host.report(state, False)


def output_tail(state: PodState) -> str:
    """The end of a shell pod's output, as the kubelet keeps it for a termination message."""
    if state.output is None or not state.output.exists():
        return ""
    data = state.output.read_bytes()[-TERMINATION_LOG_BYTES:]
    lines = data.decode("utf-8", "replace").splitlines()[-TERMINATION_LOG_LINES:]
    return "\n".join(lines)


def shell_finished(state: PodState) -> bool:
    """Whether the shell pod's process has ended; if so, record how."""
    if state.exit_code is None:
        assert state.process is not None
        code = state.process.poll()
        if code is None:
            return False
        state.exit_code = code
    first = state.containers[0] if state.containers else {}
    policy = first.get("terminationMessagePolicy", "File")
    if state.exit_code != 0 and policy == "FallbackToLogsOnError":
        state.termination_message = output_tail(state)
    return True


def status_patch(state: PodState, *, node_name: str, host_ip: str, now: dt.datetime) -> JSON:
    """The status a kubelet would report for ``state`` (a merge patch of the pod)."""
    ready = "True" if state.ready else "False"
    bound = timestamp(state.bound_at)
    changed = timestamp(state.ready_changed_at or state.bound_at)
    started = timestamp(state.started_at or state.bound_at)

    def condition(kind: str, status: str, since: str) -> JSON:
        entry: JSON = {"type": kind, "status": status, "lastTransitionTime": since}
        if status == "False":
            entry["reason"] = "ContainersNotReady"
        return entry

    if state.stage is Stage.TERMINATED:
        code = state.exit_code if state.exit_code is not None else 1
        terminated: JSON = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": timestamp(state.last_finished_at or now),
        }
        if state.termination_message:
            terminated["message"] = state.termination_message
        current: JSON = {"terminated": terminated}
    elif state.stage is Stage.CRASH_WAITING:
        current = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off restarting failed container (sandbox {node_name})",
            }
        }
    else:
        current = {"running": {"startedAt": started}}
    last: JSON = {}
    if state.last_finished_at is not None and state.stage is not Stage.TERMINATED:
        last = {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": started,
                "finishedAt": timestamp(state.last_finished_at),
            }
        }
    statuses = [
        {
            "name": container.get("name", f"c{index}"),
            "image": container.get("image", ""),
            "imageID": f"sandbox://{container.get('image', '')}",
            "containerID": f"sandbox://{state.uid}/{index}",
            "ready": state.ready,
            "started": state.stage not in (Stage.CRASH_WAITING, Stage.TERMINATED),
            "restartCount": state.restart_count,
            "state": current,
            "lastState": last,
        }
        for index, container in enumerate(state.containers)
    ]
    phase = "Running"
    if state.stage is Stage.TERMINATED:
        phase = "Succeeded" if state.exit_code == 0 else "Failed"
    return {
        # As the kubelet does: the uid makes the patch fail on a recreated namesake.
        "metadata": {"uid": state.uid},
        "status": {
            "phase": phase,
            "hostIP": host_ip,
            "podIP": state.ip,
            "podIPs": [{"ip": state.ip}],
            "startTime": bound,
            "conditions": [
                condition("Initialized", "True", bound),
                condition("Ready", ready, changed),
                condition("ContainersReady", ready, changed),
                condition("PodScheduled", "True", bound),
            ],
            "containerStatuses": statuses,
        },
    }
