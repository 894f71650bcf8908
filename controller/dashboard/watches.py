"""The dashboard's view of the cluster: one list+watch per kind, shared by every open page.

``Watches`` owns (or borrows from the operator) an ``Informer`` for Rollouts, their
ReplicaSets and check Jobs (by the ``deployctl.io/rollout`` label), AnalysisTemplates and
the Events about Rollouts (by field selector). Pages read snapshots from these caches;
nothing is fetched per page view or per browser tab.

Live pages subscribe to *topics*: ``list`` (any Rollout changed) and ``rollout/<ns>/<name>``
(that Rollout, its ReplicaSets, Jobs, Events or its namespace's templates changed). A
``Subscription`` holds only the set of topics that changed since its reader last looked,
so a slow or stalled browser costs a set of at most two strings, never a queue of
events: memory does not grow with the number of updates, however long a page stays
open. The number of subscriptions is capped; ``close()`` (or ``Watches.stop()``)
releases one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from controller.cache import Cache
from controller.informer import DELETED, Informer
from controller.kube import ANALYSIS_TEMPLATES, EVENTS, JOBS, REPLICASETS, ROLLOUTS, Kube
from controller.names import ROLLOUT_LABEL

Obj = dict[str, Any]
LIST_TOPIC = "list"
EVENTS_ABOUT_ROLLOUTS = "involvedObject.kind=Rollout"
DEFAULT_MAX_SUBSCRIPTIONS = 64


def rollout_topic(namespace: str, name: str) -> str:
    return f"rollout/{namespace}/{name}"


class TooManySubscribers(Exception):
    """More live pages are open than the dashboard serves at once."""


class Closed(Exception):
    """The subscription (or the whole dashboard) was closed."""


class Subscription:
    """What one live page waits on: the topics that changed since it last looked."""

    def __init__(self, topics: frozenset[str], release: Callable[[Subscription], None]) -> None:
        self.topics = topics
        self._release = release
        self._changed: set[str] = set()
        self._closed = False
        self._condition = threading.Condition()

    def notify(self, topic: str) -> None:
        with self._condition:
            self._changed.add(topic)
            self._condition.notify()

    def wait(self, timeout: float) -> set[str]:
        """The topics changed since the last call (empty after ``timeout`` seconds);
        raises ``Closed`` once closed."""
        with self._condition:
            if not self._changed and not self._closed:
                self._condition.wait(timeout)
            if self._closed:
                raise Closed()
            changed, self._changed = self._changed, set()
            return changed

    def close(self) -> None:
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._changed.clear()
            self._condition.notify_all()
        self._release(self)

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass(frozen=True)
class Borrowed:
    """Informers the operator already runs; the dashboard adds handlers, never starts them."""

    rollouts: Informer
    replicasets: Informer
    jobs: Informer
    templates: Informer


class Watches:
    """Shared caches of what the dashboard shows, and change notifications by topic."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str | None,
        borrowed: Borrowed | None = None,
        max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
    ) -> None:
        self.namespace = namespace
        self.max_subscriptions = max_subscriptions
        own: list[Informer] = []
        if borrowed is None:
            borrowed = Borrowed(
                rollouts=Informer(kube, ROLLOUTS, namespace=namespace),
                replicasets=Informer(
                    kube, REPLICASETS, namespace=namespace, label_selector=ROLLOUT_LABEL
                ),
                jobs=Informer(kube, JOBS, namespace=namespace, label_selector=ROLLOUT_LABEL),
                templates=Informer(kube, ANALYSIS_TEMPLATES, namespace=namespace),
            )
            own += [borrowed.rollouts, borrowed.replicasets, borrowed.jobs, borrowed.templates]
        self._rollouts = borrowed.rollouts
        self._replicasets = borrowed.replicasets
        self._jobs = borrowed.jobs
        self._templates = borrowed.templates
        # Only Events about Rollouts: a namespace's pod and node events never reach us.
        self._events = Informer(
            kube, EVENTS, namespace=namespace, field_selector=EVENTS_ABOUT_ROLLOUTS
        )
        own.append(self._events)
        self._own = tuple(own)
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._count = 0
        self._stopped = False
        self._rollouts.add_handler(self._on_rollout)
        for owned in (self._replicasets, self._jobs):
            owned.add_handler(self._on_owned)
        self._templates.add_handler(self._on_template)
        self._events.add_handler(self._on_event)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Watches:
        for informer in self._own:
            informer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            everyone = {s for subs in self._subscribers.values() for s in subs}
        for subscription in everyone:
            subscription.close()
        for informer in self._own:
            informer.stop()

    def synced(self) -> bool:
        return all(i.has_synced() for i in self.informers)

    def wait_for_sync(self, timeout: float) -> bool:
        return all(i.wait_for_sync(timeout) for i in self.informers)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self._rollouts, self._replicasets, self._jobs, self._templates, self._events)

    # ------------------------------------------------------------------ reading

    @property
    def rollouts(self) -> Cache:
        return self._rollouts

    def rollout(self, namespace: str, name: str) -> Obj | None:
        return self._rollouts.get(namespace, name)

    def replicasets_of(self, namespace: str, name: str) -> list[Obj]:
        return self._replicasets.list(namespace, labels={ROLLOUT_LABEL: name})

    def jobs_of(self, namespace: str, name: str) -> list[Obj]:
        return self._jobs.list(namespace, labels={ROLLOUT_LABEL: name})

    def templates_in(self, namespace: str) -> list[Obj]:
        return self._templates.list(namespace)

    def events_of(self, namespace: str, name: str) -> list[Obj]:
        return [
            e
            for e in self._events.list(namespace)
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    def namespaces(self) -> list[str]:
        """Namespaces that have Rollouts, for the list page's filter."""
        return sorted({key.partition("/")[0] for key in self._rollouts.keys()})

    # ------------------------------------------------------------------ subscribing

    def subscribe(self, topics: Iterable[str]) -> Subscription:
        wanted = frozenset(topics)
        with self._lock:
            if self._stopped:
                raise Closed()
            if self._count >= self.max_subscriptions:
                raise TooManySubscribers(
                    f"{self._count} live pages are open; close one (at most "
                    f"{self.max_subscriptions})"
                )
            subscription = Subscription(wanted, self._release)
            for topic in wanted:
                self._subscribers.setdefault(topic, set()).add(subscription)
            self._count += 1
        return subscription

    @property
    def subscription_count(self) -> int:
        with self._lock:
            return self._count

    def _release(self, subscription: Subscription) -> None:
        with self._lock:
            found = False
            for topic in subscription.topics:
                subs = self._subscribers.get(topic)
                if subs is not None and subscription in subs:
                    found = True
                    subs.discard(subscription)
                    if not subs:
                        del self._subscribers[topic]
            if found:
                self._count -= 1

    def _publish(self, *topics: str) -> None:
        with self._lock:
            targets = [(t, list(self._subscribers.get(t, ()))) for t in topics]
        for topic, subscriptions in targets:
            for subscription in subscriptions:
                subscription.notify(topic)

    # ------------------------------------------------------------------ handlers

    def _on_rollout(self, _type: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        self._publish(LIST_TOPIC, rollout_topic(str(meta.get("namespace")), str(meta.get("name"))))

    def _on_owned(self, _type: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(ROLLOUT_LABEL)
        if owner:
            self._publish(rollout_topic(str(meta.get("namespace")), str(owner)))

    def _on_template(self, _type: str, obj: Obj) -> None:
        namespace = str((obj.get("metadata") or {}).get("namespace"))
        self._publish(*(f"rollout/{key}" for key in self._rollouts.keys(namespace)))

    def _on_event(self, event_type: str, obj: Obj) -> None:
        if event_type == DELETED:
            return  # an Event expiring changes nothing worth a redraw
        involved = obj.get("involvedObject") or {}
        namespace = involved.get("namespace") or (obj.get("metadata") or {}).get("namespace")
        if involved.get("name"):
            self._publish(rollout_topic(str(namespace), str(involved["name"])))
