"""The node agent: the sandbox's stand-in for the kubelet (the role kwok plays upstream).

The sandbox runs a real kube-apiserver and kube-controller-manager but no kubelet, so
nothing would ever bind, start, report or finish deleting a pod. This agent does that for
one Node, or several (``nodes=N``: Nodes ``<node_name>-0`` .. ``-<N-1>``, spread over
``zones`` zones): it registers each Node and renews its Lease, binds every pending pod to
one of its Nodes that the pod's nodeSelector and required node affinity allow
(``sandbox.placement``: a DaemonSet's pod goes to the Node it names),
reports bound pods Running (and Ready, unless told otherwise) after ``ready_delay`` (plus
up to ``ready_jitter``), with the conditions, container statuses, restart counts and pod
IP a kubelet writes, and finishes graceful deletions (after ``termination_delay``, during
which the pod stays Terminating as it does while a kubelet stops its containers). The
pod's first container decides how it behaves, so a test or a Rollout says "v2 crashes"
exactly as in real life:

- env ``SANDBOX_BEHAVIOUR=crash`` or an image tag ending in ``-crash``: crash-loop
  (Running but not ready, then CrashLoopBackOff, restartCount growing);
- env ``SANDBOX_BEHAVIOUR=never-ready`` or a tag ending in ``-never-ready``: Running, never Ready;
- an image named ``sandbox/shell`` (any tag): a Job-style pod; the agent runs the
  container's ``command`` + ``args`` as a local process with the container's env, reports
  the pod Running, then Succeeded or Failed with the process's exit code, and, as the
  kubelet does for ``terminationMessagePolicy: FallbackToLogsOnError``, the tail of the
  process's output as the terminated container's message. The real Job controller (in
  kube-controller-manager) turns that into the Job's outcome.
- anything else: Running and Ready.

StatefulSet and DaemonSet pods are pods like any other: the real StatefulSet and
DaemonSet controllers create them (stable names ``<set>-<ordinal>``, ``spec.hostname`` and
``spec.subdomain``; one pod per Node), the agent binds and runs them. A process gets the
pod's hostname as ``HOSTNAME`` (no DNS is modelled: ``<hostname>.<subdomain>`` resolves
nowhere), and no volumes are mounted (a volumeClaimTemplate's PVC would stay Pending).

With ``run_processes=True`` every healthy pod is a real ``sandbox.demo_app`` process on
its own loopback IP (127.1.x.y, the pod IP) port 8080, with the container's env, and the
agent writes one Prometheus file_sd JSON per pod (labels namespace, pod, app, revision, and
role for a baseline's pods), so the real Prometheus sees per-revision series (plus
``controller_revision_hash`` for StatefulSet and DaemonSet pods, whose revision is that
label). As with Prometheus's Kubernetes discovery, which lists a pod once it has an IP,
the target is written when the pod's process starts, before it serves or is Ready:
Prometheus hands new targets to its scrapers in batches (about every 5 s), and that wait
overlaps the pod's start instead of following it. A target's presence therefore does not
mean the pod serves (its ``up`` is 0 until it does).

Each pod's stages and the status reported for them are ``sandbox.pod_lifecycle``; this
module runs that state machine: the Node and its Lease, the pod watch, one worker thread
with its timers, the API writes, the processes and the scrape targets.

Used by ``tests.fixtures_workloads`` (the session ``node_agent`` fixture), by the demo, and
standalone: ``python -m sandbox.node_agent --kubeconfig KUBECONFIG [--run-processes]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import itertools
import json
import logging
import os
import queue
import random
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kubernetes import client, config
from kubernetes.client import ApiException

from controller.names import REVISION_LABEL, ROLE_LABEL
from controller.times import micro_timestamp, timestamp
from sandbox.demo_app import DEFAULT_PORT, die_with_parent, port_is_free, spawn_demo_app
from sandbox.placement import pick_node
from sandbox.pod_lifecycle import (
    JSON,
    Behaviour,
    PodHost,
    PodState,
    PodView,
    Stage,
    advance,
    behaviour_of,
    status_patch,
)

log = logging.getLogger(__name__)

NODE_LEASE_NAMESPACE = "kube-node-lease"
MERGE_PATCH = "application/merge-patch+json"
HOST_IP = "127.0.0.1"
ZONE_LABEL = "topology.kubernetes.io/zone"
# Every Node of one agent carries this label with the agent's node_name, so a test's
# DaemonSet can select exactly its own agent's Nodes (Nodes outlive their agent).
AGENT_LABEL = "sandbox.deployctl.io/agent"

PodKey = tuple[str, str]  # (namespace, name)
CONTROLLER_REVISION_LABEL = "controller-revision-hash"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LoopbackIPs:
    """Hands out 127.<block>.x.y addresses, one per pod, and takes them back on delete.

    Round-robin rather than lowest-free, so a deleted pod's address is not reused at once
    (Prometheus and the traffic generator may still hold it for a moment).
    """

    def __init__(
        self,
        *,
        block: int = 1,
        port: int = DEFAULT_PORT,
        probe: bool = False,
        start: int | None = None,
    ) -> None:
        self._block = block
        self._port = port
        self._probe = probe
        self._in_use: set[str] = set()
        # A random start: several agents (pytest workers, the demo, a benchmark) share
        # 127.<block>/16, and two starting at .1 would race for the same addresses.
        self._cursor = random.randrange(256 * 254) if start is None else start
        self._lock = threading.Lock()

    def _address(self, index: int) -> str:
        # 254 hosts per /24, skipping .0 and .255 to keep every address unremarkable.
        return f"127.{self._block}.{index // 254}.{index % 254 + 1}"

    def allocate(self) -> str:
        with self._lock:
            for _ in range(256 * 254):
                address = self._address(self._cursor)
                self._cursor = (self._cursor + 1) % (256 * 254)
                if address in self._in_use:
                    continue
                # Another test run may hold the port on this address; skip it then.
                if self._probe and not port_is_free(address, self._port):
                    continue
                self._in_use.add(address)
                return address
        raise RuntimeError(f"no free loopback address left in 127.{self._block}.0.0/16")

    def release(self, address: str) -> None:
        with self._lock:
            self._in_use.discard(address)


@dataclass(frozen=True, order=True)
class _Timer:
    due: float
    seq: int
    key: PodKey = field(compare=False)
    token: int = field(compare=False)


class _WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def node_names(node_name: str, nodes: int) -> tuple[str, ...]:
    """The Nodes an agent plays: ``node_name`` alone, or ``node_name-0`` .. ``-<nodes-1>``."""
    if nodes < 1:
        raise ValueError(f"nodes must be at least 1, not {nodes}")
    if nodes == 1:
        return (node_name,)
    return tuple(f"{node_name}-{index}" for index in range(nodes))


def zone_name(index: int, zones: int) -> str:
    """The zone of the agent's ``index``-th Node: ``zone-a``, ``zone-b``... round-robin."""
    number = index % zones
    letters = ""
    while True:
        letters = chr(ord("a") + number % 26) + letters
        number = number // 26 - 1
        if number < 0:
            return f"zone-{letters}"


class NodeAgent:
    """Plays the kubelet for one or more Nodes; threads for the watch, the Leases and the pods."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        node_name: str = "sandbox-node",
        ready_delay: float = 0.2,
        ready_jitter: float = 0.0,
        termination_delay: float = 0.0,
        run_processes: bool = False,
        file_sd_dir: Path | str | None = None,
        crash_interval: float = 1.5,
        lease_interval: float = 10.0,
        ip_block: int = 1,
        app_port: int = DEFAULT_PORT,
        process_start_timeout: float = 20.0,
        log_dir: Path | str | None = None,
        bind_unscheduled: bool = True,
        nodes: int = 1,
        zones: int = 1,
    ) -> None:
        self.api_client = api_client
        # Typed as Any on purpose: with _preload_content=False (needed for pods/binding and
        # to keep plain-dict bodies and replies) the calls return the raw urllib3 response,
        # which the generated signatures do not express.
        self.core: Any = client.CoreV1Api(api_client)
        self.coordination: Any = client.CoordinationV1Api(api_client)
        self.node_name = node_name
        if zones < 1:
            raise ValueError(f"zones must be at least 1, not {zones}")
        self.node_names = node_names(node_name, nodes)
        self.node_labels: dict[str, dict[str, str]] = {
            name: {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "sandbox",
                ZONE_LABEL: zone_name(index, zones),
                AGENT_LABEL: node_name,
            }
            for index, name in enumerate(self.node_names)
        }
        self._bind_turn = itertools.count()
        self.ready_delay = ready_delay
        # A pod is Ready ready_delay + U(0, ready_jitter) s after it is bound, and a
        # deleted pod stays Terminating for termination_delay s (a kubelet stopping its
        # containers gracefully): slower nodes for availability tests.
        self.ready_jitter = ready_jitter
        self.termination_delay = termination_delay
        self.run_processes = run_processes
        self.file_sd_dir = Path(file_sd_dir) if file_sd_dir is not None else None
        self.crash_interval = crash_interval
        self.lease_interval = lease_interval
        self.app_port = app_port
        self.process_start_timeout = process_start_timeout
        self.log_dir = Path(log_dir) if log_dir is not None else None
        # With several agents, only one should bind; the others take pods whose
        # spec.nodeName already names them.
        self.bind_unscheduled = bind_unscheduled
        self._ips = LoopbackIPs(block=ip_block, port=app_port, probe=run_processes)
        self._lock = threading.Lock()  # guards _pods (read by other threads via pods())
        self._pods: dict[PodKey, PodState] = {}
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch_response: Any = None
        self._node_uids: dict[str, str] = {}
        self._synced = threading.Event()
        self._host = PodHost(
            report=self._report,
            schedule=self._schedule,
            serving=self._write_file_sd,
            healthy=self._process_healthy,
            crash_interval=crash_interval,
            process_start_timeout=process_start_timeout,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> NodeAgent:
        if self._threads:
            return self
        if self.file_sd_dir is not None:
            self.file_sd_dir.mkdir(parents=True, exist_ok=True)
        for name in self.node_names:
            self._register_node(name)
            self._renew_lease(name)
        for target, name in (
            (self._work_loop, "worker"),
            (self._watch_loop, "watch"),
            (self._lease_loop, "lease"),
        ):
            thread = threading.Thread(
                target=target, name=f"node-agent-{self.node_name}-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def wait_synced(self, timeout: float = 30.0) -> bool:
        """Whether the first pod list has been handed to the worker within ``timeout``."""
        return self._synced.wait(timeout)

    def stop(self) -> None:
        """Stop every thread and every process this agent started; the Node stays."""
        self._stop.set()
        response = self._watch_response
        if response is not None:
            # Unblocks the watch thread's read at once instead of waiting for a timeout.
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001 - best effort, the connection may be gone
                pass
        self._events.put(("stop", None))
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads = []
        # The worker stops its processes on the way out; this covers a worker that died.
        with self._lock:
            states = list(self._pods.values())
            self._pods.clear()
        for state in states:
            self._release(state)

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pods(self) -> list[PodView]:
        with self._lock:
            return [state.view() for state in self._pods.values()]

    # -- node and lease ----------------------------------------------------------------

    def _node_status(self, node_name: str) -> JSON:
        now = timestamp(utcnow())

        def condition(kind: str, status: str, reason: str, message: str) -> JSON:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        resources = {"cpu": "64", "memory": "256Gi", "pods": "5000", "ephemeral-storage": "1Ti"}
        return {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                condition("Ready", "True", "KubeletReady", "sandbox node agent is posting ready"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "sandbox",
                "systemUUID": "sandbox",
                "bootID": "sandbox",
                "kernelVersion": os.uname().release,
                "osImage": "deployctl sandbox",
                "containerRuntimeVersion": "sandbox://1.0",
                "kubeletVersion": "v1.20.2-sandbox",
                "kubeProxyVersion": "v1.20.2-sandbox",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _register_node(self, node_name: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node_name, "labels": self.node_labels[node_name]},
            "spec": {},
            "status": self._node_status(node_name),
        }
        try:
            self.core.create_node(body, _preload_content=False)
        except ApiException as error:
            if error.status != 409:
                raise
        # Also for a Node left by an earlier run: fresh heartbeats lift its taints.
        response = self.core.patch_node_status(
            node_name,
            {"status": self._node_status(node_name)},
            _content_type=MERGE_PATCH,
            _preload_content=False,
        )
        self._node_uids[node_name] = json.loads(response.data)["metadata"]["uid"]

    def _renew_lease(self, node_name: str) -> None:
        now = micro_timestamp(utcnow())
        spec = {"holderIdentity": node_name, "leaseDurationSeconds": 40, "renewTime": now}
        try:
            self.coordination.patch_namespaced_lease(
                node_name,
                NODE_LEASE_NAMESPACE,
                {"spec": spec},
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
            return
        except ApiException as error:
            if error.status != 404:
                raise
        metadata: JSON = {"name": node_name, "namespace": NODE_LEASE_NAMESPACE}
        node_uid = self._node_uids.get(node_name)
        if node_uid is not None:
            # As the kubelet does: the Lease goes with its Node.
            metadata["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}
            ]
        self.coordination.create_namespaced_lease(
            NODE_LEASE_NAMESPACE,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": metadata,
                "spec": spec,
            },
            _preload_content=False,
        )

    def _lease_loop(self) -> None:
        while not self._stop.wait(self.lease_interval):
            for name in self.node_names:
                try:
                    self._renew_lease(name)
                except Exception:  # noqa: BLE001 - a missed renewal is retried next period
                    log.exception("node %s: lease renewal failed", name)

    # -- watch -------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        resource_version: str | None = None
        backoff = 0.2
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                for event_type, pod in self._watch(resource_version):
                    resource_version = pod["metadata"].get("resourceVersion", resource_version)
                    if event_type in ("ADDED", "MODIFIED", "DELETED"):
                        self._events.put((event_type, pod))
                backoff = 0.2
            except _WatchExpired:
                log.info("node %s: watch expired (410), listing again", self.node_name)
                resource_version = None
            except Exception:  # noqa: BLE001 - reconnect with backoff, never die
                if self._stop.is_set():
                    return
                log.warning("node %s: pod watch failed, retrying", self.node_name, exc_info=True)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                # After a long failure the version may be gone; a re-list is always safe.
                if backoff >= 5.0:
                    resource_version = None

    def _relist(self) -> str:
        response = self.core.list_pod_for_all_namespaces(
            _preload_content=False, _request_timeout=(5, 30)
        )
        listing = json.loads(response.data)
        self._events.put(("SYNC", listing["items"]))
        self._synced.set()
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> Iterator[tuple[str, JSON]]:
        response = self.core.list_pod_for_all_namespaces(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=60,
            _preload_content=False,
            # The server ends the watch after 60 s; the read timeout only catches a dead link.
            _request_timeout=(5, 90),
        )
        self._watch_response = response
        try:
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=True):
                if self._stop.is_set():
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        status = event.get("object", {})
                        if status.get("code") == 410:
                            raise _WatchExpired()
                        raise RuntimeError(f"watch error: {status}")
                    yield event["type"], event["object"]
        finally:
            self._watch_response = None
            response.release_conn()

    # -- pod work (worker thread only) -------------------------------------------------

    def _work_loop(self) -> None:
        try:
            while True:
                # Timers first on every turn, so a busy event stream cannot starve them.
                self._run_due_timers()
                timeout = None
                if self._timers:
                    timeout = max(0.0, self._timers[0].due - time.monotonic())
                try:
                    kind, payload = self._events.get(timeout=timeout)
                except queue.Empty:
                    continue
                if kind == "stop" or self._stop.is_set():
                    return
                if kind == "SYNC":
                    self._sync(payload)
                elif kind == "DELETED":
                    self._guard(payload, self._on_deleted)
                else:
                    self._guard(payload, self._on_pod)
        finally:
            # Children die with the thread that forked them (PDEATHSIG), so stop them here.
            with self._lock:
                states = list(self._pods.values())
                self._pods.clear()
            for state in states:
                self._release(state)

    def _guard(self, pod: JSON, handler: Any) -> None:
        try:
            handler(pod)
        except Exception:  # noqa: BLE001 - one bad pod must not stop the node
            meta = pod.get("metadata", {})
            log.exception(
                "node %s: pod %s/%s", self.node_name, meta.get("namespace"), meta.get("name")
            )

    def _sync(self, pods: list[JSON]) -> None:
        seen = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods}
        with self._lock:
            gone = [s for k, s in self._pods.items() if k not in seen]
        for state in gone:
            self._forget(state)
        for pod in pods:
            self._guard(pod, self._on_pod)

    def _on_pod(self, pod: JSON) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        key: PodKey = (meta["namespace"], meta["name"])
        node = spec.get("nodeName")
        if meta.get("deletionTimestamp"):
            if node in self.node_labels:
                self._terminate(pod)
            return
        if not node:
            if self.bind_unscheduled:
                self._bind(pod)
            return
        if node not in self.node_labels:
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        with self._lock:
            state = self._pods.get(key)
        if state is not None and state.uid != meta["uid"]:
            self._forget(state)  # same name, new pod (e.g. recreated): start afresh
            state = None
        if state is None:
            self._admit(pod)

    def _bind(self, pod: JSON) -> None:
        target = pick_node(
            pod, [(n, self.node_labels[n]) for n in self.node_names], next(self._bind_turn)
        )
        if target is None:
            return  # none of this agent's Nodes fits (another agent's, or nobody's)
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": target},
        }
        try:
            # The client binds, then fails to parse the reply: take the raw response.
            self.core.create_namespaced_pod_binding(name, namespace, body, _preload_content=False)
        except ApiException as error:
            if error.status not in (404, 409):  # gone, or bound meanwhile
                raise

    def _admit(self, pod: JSON) -> None:
        meta = pod["metadata"]
        state = PodState(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            ip=self._ips.allocate(),
            behaviour=behaviour_of(pod),
            containers=list(pod["spec"].get("containers") or []),
            labels=dict(meta.get("labels") or {}),
            bound_at=utcnow(),
            node_name=str(pod["spec"]["nodeName"]),
            hostname=str(pod["spec"].get("hostname") or meta["name"]),
        )
        with self._lock:
            self._pods[(state.namespace, state.name)] = state
        if state.behaviour is Behaviour.SHELL:
            self._spawn_shell(state)
        elif self.run_processes and state.behaviour is not Behaviour.CRASH:
            log_file = self._log_file(state)
            try:
                state.process = spawn_demo_app(
                    state.ip, self.app_port, env=self._process_env(state), log=log_file
                )
            finally:
                if log_file is not None:
                    log_file.close()  # the child holds its own descriptor
            # Discoverable as soon as it has an address, as Prometheus's Kubernetes
            # discovery lists a pod: its target batching overlaps the pod's start.
            self._write_file_sd(state)
        self._schedule(state, self.ready_delay + random.uniform(0.0, self.ready_jitter))

    def _spawn_shell(self, state: PodState) -> None:
        """Run a shell pod's command; a command that cannot start fails like exit 127."""
        first = state.containers[0] if state.containers else {}
        argv = [str(a) for a in (first.get("command") or []) + (first.get("args") or [])]
        env = dict(os.environ)
        env.update(self._process_env(state))
        output_dir = self.log_dir or Path(tempfile.gettempdir()) / f"sandbox-node-{os.getpid()}"
        output_dir.mkdir(parents=True, exist_ok=True)
        state.output = output_dir / f"{state.namespace}_{state.name}.out"
        with state.output.open("wb") as sink:
            if not argv:
                sink.write(b"sandbox/shell: the container has no command\n")
                state.exit_code = 128
                return
            try:
                state.process = subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
            except OSError as error:
                sink.write(f"sandbox/shell: cannot start {argv[0]!r}: {error}\n".encode())
                state.exit_code = 127

    def _process_env(self, state: PodState) -> dict[str, str]:
        first = state.containers[0] if state.containers else {}
        image = str(first.get("image", ""))
        env = {
            "POD_NAME": state.name,
            "POD_NAMESPACE": state.namespace,
            "POD_IP": state.ip,
            "HOSTNAME": state.hostname or state.name,
            "NODE_NAME": state.node_name,
            # The image tag is the natural version; DEMO_VERSION in the env overrides it.
            "DEMO_VERSION": image.rsplit(":", 1)[1] if ":" in image else image or "dev",
        }
        for var in first.get("env") or []:
            if "value" in var:  # valueFrom (secrets, fieldRefs) has no meaning here
                env[str(var["name"])] = str(var["value"])
        return env

    def _log_file(self, state: PodState) -> IO[bytes] | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return (self.log_dir / f"{state.namespace}_{state.name}.log").open("ab")

    def _schedule(self, state: PodState, delay: float) -> None:
        state.token += 1
        heapq.heappush(
            self._timers,
            _Timer(
                time.monotonic() + delay,
                next(self._seq),
                (state.namespace, state.name),
                state.token,
            ),
        )

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0].due <= now:
            timer = heapq.heappop(self._timers)
            with self._lock:
                state = self._pods.get(timer.key)
            if state is None or state.token != timer.token:
                continue
            # A failed status write must leave the record as it was, so the retry
            # reports the same transition instead of skipping (or repeating) it.
            if state.stage is Stage.TERMINATING:
                meta = {"namespace": state.namespace, "name": state.name, "uid": state.uid}
                self._guard({"metadata": meta}, self._finish_deletion)
                continue
            before = state.checkpoint()
            try:
                advance(state, utcnow(), self._host)
            except ApiException as error:
                state.restore(before)
                if error.status == 404:
                    continue  # deleted meanwhile; the DELETED event cleans up
                log.warning("node %s: pod %s/%s: %s", self.node_name, *timer.key, error.reason)
                self._schedule(state, 0.5)
            except Exception:  # noqa: BLE001 - retry later rather than lose the pod
                state.restore(before)
                log.exception("node %s: pod %s/%s", self.node_name, *timer.key)
                self._schedule(state, 0.5)

    def _process_healthy(self, state: PodState) -> bool:
        assert state.process is not None
        if state.process.poll() is not None:
            return False
        try:
            url = f"http://{state.ip}:{self.app_port}/healthz"
            with urllib.request.urlopen(url, timeout=0.5) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _report(self, state: PodState, ready: bool) -> None:
        now = utcnow()
        state.set_ready(ready, now)
        self.core.patch_namespaced_pod_status(
            state.name,
            state.namespace,
            status_patch(state, node_name=state.node_name, host_ip=HOST_IP, now=now),
            _content_type=MERGE_PATCH,
            _preload_content=False,
        )

    def _terminate(self, pod: JSON) -> None:
        """A deleted pod: gone at once, or after termination_delay (still Terminating)."""
        meta = pod["metadata"]
        with self._lock:
            state = self._pods.get((meta["namespace"], meta["name"]))
        if self.termination_delay <= 0 or state is None or state.uid != meta["uid"]:
            self._finish_deletion(pod)
            return
        if state.stage is not Stage.TERMINATING:
            state.stage = Stage.TERMINATING
            self._schedule(state, self.termination_delay)

    def _finish_deletion(self, pod: JSON) -> None:
        meta = pod["metadata"]
        with self._lock:
            state = self._pods.get((meta["namespace"], meta["name"]))
        if state is not None and state.uid == meta["uid"]:
            self._forget(state)
        try:
            self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
                _preload_content=False,
            )
        except ApiException as error:
            if error.status not in (404, 409):  # already gone, or a namesake
                raise

    def _on_deleted(self, pod: JSON) -> None:
        meta = pod["metadata"]
        with self._lock:
            state = self._pods.get((meta["namespace"], meta["name"]))
        if state is not None and state.uid == meta["uid"]:
            self._forget(state)

    def _forget(self, state: PodState) -> None:
        with self._lock:
            if self._pods.get((state.namespace, state.name)) is state:
                del self._pods[(state.namespace, state.name)]
        state.token += 1  # cancels pending timers
        self._release(state)

    def _release(self, state: PodState) -> None:
        """Stop the pod's process, drop its scrape target and give back its address."""
        self._remove_file_sd(state)
        if state.output is not None:
            state.output.unlink(missing_ok=True)
        process, state.process = state.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._ips.release(state.ip)

    # -- Prometheus file_sd ------------------------------------------------------------

    def _file_sd_path(self, state: PodState) -> Path | None:
        if self.file_sd_dir is None or not self.run_processes:
            return None
        return self.file_sd_dir / f"{state.namespace}_{state.name}.json"

    def _write_file_sd(self, state: PodState) -> None:
        path = self._file_sd_path(state)
        if path is None or state.process is None:
            return
        labels = {
            "namespace": state.namespace,
            "pod": state.name,
            "app": state.labels.get("app", ""),
            "revision": state.labels.get(REVISION_LABEL, ""),
            # Empty (so left out) except on a baseline's pods.
            "role": state.labels.get(ROLE_LABEL, ""),
            # StatefulSet and DaemonSet pods: their revision, as their controller names it.
            "controller_revision_hash": state.labels.get(CONTROLLER_REVISION_LABEL, ""),
        }
        write_file_sd(path, [f"{state.ip}:{self.app_port}"], labels)

    def _remove_file_sd(self, state: PodState) -> None:
        path = self._file_sd_path(state)
        if path is not None:
            path.unlink(missing_ok=True)


def write_file_sd(path: Path, targets: list[str], labels: Mapping[str, str]) -> None:
    """Write one Prometheus file_sd JSON atomically (Prometheus may read at any moment)."""
    # Empty label values mean "no label" to Prometheus; leave them out to say so plainly.
    entry = {"targets": targets, "labels": {k: v for k, v in labels.items() if v}}
    # The temporary name must not match the *.json glob Prometheus watches.
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps([entry]))
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.node_agent", description=__doc__)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), required=False)
    parser.add_argument("--node-name", default="sandbox-node")
    parser.add_argument("--ready-delay", type=float, default=0.2)
    parser.add_argument("--ready-jitter", type=float, default=0.0)
    parser.add_argument("--termination-delay", type=float, default=0.0)
    parser.add_argument("--run-processes", action="store_true")
    parser.add_argument("--file-sd-dir", type=Path)
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("--nodes", type=int, default=1, help="how many Nodes to play")
    parser.add_argument("--zones", type=int, default=1, help="zones the Nodes are spread over")
    args = parser.parse_args(argv)
    if not args.kubeconfig:
        parser.error("--kubeconfig (or $KUBECONFIG) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # The kubernetes package leaves this helper unannotated.
    api_client = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    agent = NodeAgent(
        api_client,
        node_name=args.node_name,
        ready_delay=args.ready_delay,
        ready_jitter=args.ready_jitter,
        termination_delay=args.termination_delay,
        run_processes=args.run_processes,
        file_sd_dir=args.file_sd_dir,
        log_dir=args.log_dir,
        nodes=args.nodes,
        zones=args.zones,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    agent.start()
    log.info("nodes %s registered; serving pods (Ctrl-C to stop)", ", ".join(agent.node_names))
    done.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
