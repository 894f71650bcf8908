"""List+watch one kind into a local cache and tell the controller what changed.

The controller starts one ``Informer`` per kind it reads (Rollouts, AnalysisTemplates,
its ReplicaSets and Services by label, HTTPRoutes when used). The reconciler reads from
the caches (``get``/``list``) instead of GETting per pass; ``on_event`` handlers only
turn an event into a queue key (level-triggered: what changed does not matter, the
reconcile re-reads the current state).

The loop, as client-go's reflector does it:

1. list (paginated) → replace the cache, remember the list's resourceVersion, emit
   ADDED / MODIFIED / DELETED for what differs from the previous cache (the first list
   emits ADDED for everything; later lists emit synthetic deletes for vanished keys);
2. watch from the last seen resourceVersion (bookmarks keep it fresh on quiet kinds);
3. a stream the server or the network ends → watch again from the last resourceVersion,
   no list; an error → reconnect after a capped exponential backoff with jitter;
4. ``Gone`` (410: the resourceVersion was compacted) → back to 1.

Cache objects are never handed out: ``get``/``list`` and ``on_event`` receive deep
copies, so a caller mutating what it got cannot corrupt the cache or another reader.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog

from controller.kube import Gone, KindRef, KubeError, Listing, Obj, WatchStream, object_key
from controller.metrics import INFORMER_RELISTS, INFORMER_WATCH_RESTARTS

log = structlog.stdlib.get_logger(__name__)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
_SHORT_STREAM = 1.0  # seconds; see _watch_once
# Periodic resync: every cached object is offered to the handler again.
SYNC = "SYNC"

EventHandler = Callable[[str, Obj], None]


class ListWatcher(Protocol):
    """What an informer needs of ``controller.kube.Kube``."""

    def list_objects(
        self,
        kind: KindRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> Listing: ...

    def watch_objects(
        self,
        kind: KindRef,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> WatchStream: ...


class Backoff:
    """Capped exponential backoff with jitter: initial, 2x, 4x … max, each ±jitter."""

    def __init__(self, *, initial: float = 0.2, maximum: float = 30.0, jitter: float = 0.2):
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._failures = 0

    def next(self) -> float:
        delay = min(self.initial * 2.0 ** min(self._failures, 30), self.maximum)
        self._failures += 1
        return delay * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._failures = 0


class Informer:
    """A list+watch cache of one kind (optionally one namespace / label selector)."""

    def __init__(
        self,
        kube: ListWatcher,
        kind_ref: KindRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        on_event: EventHandler | None = None,
        resync: float | None = None,
        watch_timeout: int = 300,
        backoff: Backoff | None = None,
    ) -> None:
        self.kube = kube
        self.kind = kind_ref
        self.namespace = namespace
        self.label_selector = label_selector
        # Only sent when set, so list/watch doubles without the argument keep working.
        self._fields: dict[str, str] = {"field_selector": field_selector} if field_selector else {}
        self._handlers: list[EventHandler] = [on_event] if on_event is not None else []
        self.resync = resync
        self.watch_timeout = watch_timeout
        self._backoff = backoff or Backoff()
        self._lock = threading.RLock()
        self._cache: dict[str, Obj] = {}
        self._resource_version = ""
        self._synced = threading.Event()
        self._stopped = threading.Event()
        self._stream: WatchStream | None = None
        self._threads: list[threading.Thread] = []
        self._log = log.bind(resource=kind_ref.resource, namespace=namespace or "*")

    # ------------------------------------------------------------------ reading

    def get(self, namespace: str | None, name: str) -> Obj | None:
        """A deep copy of the cached object, or None."""
        key = f"{namespace}/{name}" if namespace else name
        with self._lock:
            obj = self._cache.get(key)
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        """Deep copies of the cached objects of one namespace (all if None) whose labels
        include ``labels``, sorted by key. Filtering happens before copying: with
        thousands of cached objects a reconcile copies only its own few."""
        with self._lock:
            return [
                copy.deepcopy(obj)
                for key, obj in sorted(
                    (k, o) for k, o in self._cache.items() if _matches(o, namespace, labels)
                )
            ]

    def keys(
        self, namespace: str | None = None, *, where: Callable[[Obj], bool] | None = None
    ) -> tuple[str, ...]:
        """Keys of the cached objects (of one namespace; for which ``where`` holds), no
        copies: for event handlers that only need to know what to enqueue."""
        with self._lock:
            return tuple(
                sorted(
                    key
                    for key, obj in self._cache.items()
                    if _matches(obj, namespace, None) and (where is None or where(obj))
                )
            )

    @property
    def resource_version(self) -> str:
        """The last resourceVersion seen (list, event or bookmark)."""
        with self._lock:
            return self._resource_version

    def has_synced(self) -> bool:
        """True once the first list is in the cache (stays True across re-lists)."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def add_handler(self, handler: EventHandler) -> None:
        """Add a handler before ``start()``; it sees every event from the first list on."""
        with self._lock:
            self._handlers.append(handler)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Informer:
        if self._threads:
            return self
        name = f"informer-{self.kind.plural}"
        self._threads.append(threading.Thread(target=self.run, name=name, daemon=True))
        if self.resync:
            self._threads.append(
                threading.Thread(target=self._resync_loop, name=f"{name}-resync", daemon=True)
            )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and join the threads (closes an open stream at once)."""
        self._stopped.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def alive(self) -> bool:
        """For /healthz: the watch thread runs (or has not been started)."""
        return all(t.is_alive() for t in self._threads) or self._stopped.is_set()

    def run(self) -> None:
        """The reflector loop; returns after ``stop()``."""
        need_list = True
        while not self._stopped.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                self._watch_once()
            except Gone:
                INFORMER_WATCH_RESTARTS.labels(resource=self.kind.plural, cause="gone").inc()
                self._log.info("resourceVersion expired (410 Gone), listing again")
                need_list = True
            except KubeError as exc:
                INFORMER_WATCH_RESTARTS.labels(resource=self.kind.plural, cause="error").inc()
                delay = self._backoff.next()
                self._log.warning(
                    "list/watch failed, retrying", error=str(exc), delay=round(delay, 2)
                )
                self._stopped.wait(delay)

    # ------------------------------------------------------------------ internals

    def _relist(self) -> None:
        INFORMER_RELISTS.labels(resource=self.kind.plural).inc()
        listing = self.kube.list_objects(
            self.kind, self.namespace, self.label_selector, **self._fields
        )
        fresh = {object_key(item): item for item in listing.items}
        events: list[tuple[str, Obj]] = []
        with self._lock:
            old = self._cache
            for key, obj in old.items():
                if key not in fresh:
                    # Deleted while we were not watching: the watch never said so.
                    events.append((DELETED, obj))
            for key, obj in fresh.items():
                before = old.get(key)
                if before is None:
                    events.append((ADDED, obj))
                elif _rv(before) != _rv(obj):
                    events.append((MODIFIED, obj))
            self._cache = fresh
            self._resource_version = listing.resource_version
        self._backoff.reset()
        self._log.debug("listed", count=len(fresh), resource_version=listing.resource_version)
        for event_type, obj in events:
            self._emit(event_type, obj)
        # Synced means the handlers have seen the first list too (client-go's HasSynced):
        # a controller starting its workers then finds every key already queued.
        self._synced.set()

    def _watch_once(self) -> None:
        stream = self.kube.watch_objects(
            self.kind,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            **self._fields,
            timeout_seconds=self.watch_timeout,
        )
        with self._lock:
            self._stream = stream
        if self._stopped.is_set():  # stop() ran between open and publish
            stream.close()
        opened = time.monotonic()
        received = 0
        try:
            for event_type, obj in stream:
                self._apply(event_type, obj)
                received += 1
                self._backoff.reset()
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        if self._stopped.is_set():
            return
        INFORMER_WATCH_RESTARTS.labels(resource=self.kind.plural, cause="ended").inc()
        if received == 0 and time.monotonic() - opened < _SHORT_STREAM:
            # Streams that end at once, over and over (a flapping proxy), would turn this
            # loop into a request storm: back off as for an error.
            self._stopped.wait(self._backoff.next())

    def _apply(self, event_type: str, obj: Obj) -> None:
        version = _rv(obj)
        if event_type == "BOOKMARK":
            with self._lock:
                if version:
                    self._resource_version = version
            return
        key = object_key(obj)
        with self._lock:
            if event_type == DELETED:
                self._cache.pop(key, None)
            else:
                self._cache[key] = obj
            if version:
                self._resource_version = version
        self._emit(event_type, obj)

    def _emit(self, event_type: str, obj: Obj) -> None:
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            try:
                handler(event_type, copy.deepcopy(obj))
            except Exception:
                # A handler bug must not kill the watch of every other object.
                self._log.exception("event handler failed", key=object_key(obj))

    def _resync_loop(self) -> None:
        assert self.resync is not None
        while not self._stopped.wait(self.resync):
            if not self.has_synced():
                continue
            with self._lock:
                objects = list(self._cache.values())
            for obj in objects:
                self._emit(SYNC, obj)


def _rv(obj: Obj) -> str:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return str(meta.get("resourceVersion", ""))


def _matches(obj: Obj, namespace: str | None, labels: Mapping[str, str] | None) -> bool:
    meta = obj.get("metadata") or {}
    if namespace is not None and meta.get("namespace") != namespace:
        return False
    if labels:
        have = meta.get("labels") or {}
        return all(have.get(k) == v for k, v in labels.items())
    return True
