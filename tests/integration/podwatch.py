"""Watch what users would feel: every change to the pods, Services and HTTPRoutes of a
namespace, replayed in the order the cluster made them.

A ``Recorder`` lists, then watches, each kind straight from the apiserver (not through the
controller's eyes, nor through ReplicaSet status) and keeps every change. ``replay`` puts
them in etcd order (resourceVersions of one etcd are one global sequence) and yields the
namespace as it was after each one, so an invariant is checked on every state the
cluster went through, not on samples of it: a dip shorter than any polling interval is
still seen.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

REVISION = "deployctl.io/revision"
ROLLOUT = "deployctl.io/rollout"
GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes")


@dataclass(frozen=True)
class Change:
    rv: int
    kind: str  # pod, service, route
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]


def is_ready(pod: dict[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def is_terminating(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


@dataclass
class View:
    """The namespace after one change."""

    rv: int = 0
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    selectors: dict[str, dict[str, str]] = field(default_factory=dict)
    routes: dict[str, dict[str, int]] = field(default_factory=dict)

    def _pods(self, rollout: str, revision: str | None) -> Iterator[dict[str, Any]]:
        for pod in self.pods.values():
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if labels.get(ROLLOUT) == rollout and revision in (None, labels.get(REVISION)):
                yield pod

    def serving(self, rollout: str, revision: str | None = None) -> int:
        """Pods that could be serving: Ready and not terminating."""
        return sum(
            1 for p in self._pods(rollout, revision) if is_ready(p) and not is_terminating(p)
        )

    def existing(self, rollout: str) -> int:
        """Pods not terminating, Ready or not."""
        return sum(1 for p in self._pods(rollout, None) if not is_terminating(p))

    def existing_revision(self, rollout: str, revision: str) -> int:
        """Pods of one revision not terminating, Ready or not."""
        return sum(1 for p in self._pods(rollout, revision) if not is_terminating(p))

    def selected(self, service: str) -> str | None:
        return self.selectors.get(service, {}).get(REVISION)

    def weights(self, route: str) -> dict[str, int]:
        return self.routes.get(route, {})

    def apply(self, change: Change) -> None:
        self.rv = change.rv
        meta = change.obj.get("metadata") or {}
        name = str(meta.get("name"))
        if change.kind == "pod":
            if change.type == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = change.obj
        elif change.kind == "service":
            if change.type == "DELETED":
                self.selectors.pop(name, None)
            else:
                self.selectors[name] = dict((change.obj.get("spec") or {}).get("selector") or {})
        elif change.type == "DELETED":
            self.routes.pop(name, None)
        else:
            weights: dict[str, int] = {}
            for rule in (change.obj.get("spec") or {}).get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    weights[str(ref.get("name"))] = int(ref.get("weight", 1))
            self.routes[name] = weights


class Recorder:
    """Records every change of pods, Services and HTTPRoutes in ``namespace``."""

    def __init__(self, api: k8s.ApiClient, namespace: str, *, routes: bool = False) -> None:
        self.namespace = namespace
        self.core: Any = k8s.CoreV1Api(api)
        self.custom: Any = k8s.CustomObjectsApi(api)
        self.kinds: dict[str, Callable[..., Any]] = {
            "pod": lambda **kw: self.core.list_namespaced_pod(namespace, **kw),
            "service": lambda **kw: self.core.list_namespaced_service(namespace, **kw),
        }
        if routes:
            self.kinds["route"] = lambda **kw: self.custom.list_namespaced_custom_object(
                *GATEWAY[:2], namespace, GATEWAY[2], **kw
            )
        self.changes: list[Change] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}
        self.errors: list[str] = []
        self.listed_at = 0
        """The newest of the first listings' resourceVersions: the state they show."""

    def start(self) -> Recorder:
        for kind, lister in self.kinds.items():
            listing = json.loads(lister(_preload_content=False).data)
            for item in listing.get("items") or []:
                self._add(kind, "ADDED", item)
            version = str(listing["metadata"]["resourceVersion"])
            self.listed_at = max(self.listed_at, int(version))
            thread = threading.Thread(target=self._watch, args=(kind, lister, version), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for response in list(self._responses.values()):
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _add(self, kind: str, type_: str, obj: dict[str, Any]) -> None:
        rv = int((obj.get("metadata") or {}).get("resourceVersion") or 0)
        with self._lock:
            self.changes.append(Change(rv, kind, type_, obj))

    def _watch(self, kind: str, lister: Callable[..., Any], version: str) -> None:
        while not self._stop.is_set():
            try:
                # One watch for the whole test: re-opened from the last resourceVersion
                # seen, a watch on a quiet kind is refused with 410 once etcd has
                # compacted past it (every 10 s here; tests run with the watch cache
                # off, so no bookmarks move that version on). The read timeout outlasts
                # the watch: a quiet namespace sends nothing for minutes, and stop() ends
                # the stream.
                response = lister(
                    watch=True,
                    resource_version=version,
                    timeout_seconds=3600,
                    allow_watch_bookmarks=True,
                    _preload_content=False,
                    _request_timeout=(5, 3700),
                )
                self._responses[kind] = response
                buffer = b""
                for chunk in response.stream(amt=None, decode_content=True):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        if event["type"] == "ERROR":
                            self.errors.append(f"{kind} watch: {obj}")
                            return
                        version = str(obj.get("metadata", {}).get("resourceVersion", version))
                        if event["type"] != "BOOKMARK":
                            self._add(kind, event["type"], obj)
            except Exception as exc:  # noqa: BLE001 - ended by stop(), or to be resumed
                if self._stop.is_set():
                    return
                self.errors.append(f"{kind} watch: {exc!r}")

    def replay(self) -> Iterator[View]:
        """The namespace as first listed, then after each recorded change, in the order
        the cluster made them. The same ``View`` object is yielded each time, updated."""
        with self._lock:
            changes = sorted(self.changes, key=lambda c: c.rv)
        view = View()
        for change in changes:
            if change.rv <= self.listed_at:
                view.apply(change)  # the listings: one state, not a sequence of them
        view.rv = self.listed_at
        yield view
        for change in changes:
            if change.rv > self.listed_at:
                view.apply(change)
                yield view

    def caught_up(self) -> bool:
        """Whether the recording ends with the namespace as it is now (nothing missed)."""
        last: dict[tuple[str, str], str | None] = {}
        with self._lock:
            for change in sorted(self.changes, key=lambda c: c.rv):
                key = (change.kind, str(change.obj["metadata"]["name"]))
                deleted = change.type == "DELETED"
                last[key] = None if deleted else str(change.obj["metadata"]["resourceVersion"])
        recorded = {key: rv for key, rv in last.items() if rv is not None}
        now: dict[tuple[str, str], str | None] = {}
        for kind, lister in self.kinds.items():
            for obj in json.loads(lister(_preload_content=False).data).get("items") or []:
                now[(kind, str(obj["metadata"]["name"]))] = str(obj["metadata"]["resourceVersion"])
        return recorded == now
