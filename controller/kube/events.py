"""Events about a Rollout, aggregated as client-go does: one Event per distinct message.

``Kube.record_event`` names each Event after (object uid, type, reason, message), so a
repeat, even after a controller restart, finds and bumps the same Event's ``count``
instead of flooding the namespace. This module builds the name and the body and keeps
the counts it last saw (bounded), so a repeat is one PATCH, not a GET and a PATCH.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from controller.kube.kinds import Obj
from controller.limits import STATUS_MESSAGE, truncate

COMPONENT = "deployctl"
MAX_EVENT_MESSAGE = STATUS_MESSAGE.int
_EVENT_CACHE_SIZE = 4096


def event_text(message: str) -> str:
    """The message as an Event carries it: at most ``MAX_EVENT_MESSAGE`` characters, cut
    with a marker saying how much (``controller.limits``)."""
    return truncate(message, MAX_EVENT_MESSAGE)


def event_name(involved: Mapping[str, Any], *, type: str, reason: str, text: str) -> str:
    """``<object>.<digest>``: the same object, type, reason and text give the same name."""
    meta = involved.get("metadata") or {}
    digest = hashlib.sha256(
        "\x00".join([str(meta.get("uid", meta.get("name"))), type, reason, text]).encode()
    ).hexdigest()[:16]
    return f"{meta.get('name', 'object')}.{digest}"


def new_event(
    involved: Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    type: str,
    reason: str,
    text: str,
    now: str,
    host: str,
) -> Obj:
    """A core/v1 Event about ``involved`` seen once, at ``now``."""
    meta = involved.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", ""),
            "kind": involved.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": namespace,
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": text,
        "type": type,
        "source": {
            "component": COMPONENT,
            **({"host": host} if host else {}),
        },
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
    }


class EventCounts:
    """The count each recently recorded Event had (least recently used dropped first)."""

    def __init__(self, size: int = _EVENT_CACHE_SIZE) -> None:
        self._size = size
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> int | None:
        with self._lock:
            return self._counts.get(name)

    def remember(self, name: str, count: int) -> None:
        with self._lock:
            self._counts[name] = count
            self._counts.move_to_end(name)
            while len(self._counts) > self._size:
                self._counts.popitem(last=False)
