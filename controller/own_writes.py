"""Read your own writes: the ReplicaSets this controller wrote, until its cache shows them.

The reconciler plans from informer caches, which lag the API server. Most staleness is
harmless (a pass on old data repeats the last decision), but one kind is not: a pass
that runs on a fresh Rollout (its own status write already seen) with a ReplicaSet
cache that has not yet seen the scale it wrote a moment ago plans on a spec that no
longer exists, e.g. scaling an old revision up while the new one, in truth still full,
is scaled down. Kubernetes controllers keep "expectations" for this; we keep the
objects our writes returned and lay them over the cache until the cache has caught up
(its copy has at least the generation our write produced).

Used by ``controller.reconciler``: ``remember`` after each create/scale, ``view`` when
listing a rollout's ReplicaSets, ``forget`` after a delete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Obj = dict[str, Any]

# A ReplicaSet we created but the cache has not listed yet is shown for this long at
# most (a cache that lags more than this is a broken watch, not a race).
UNSEEN_CREATION_SECONDS = 30.0


def _generation(obj: Obj) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class OwnWrites:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # (namespace, name) -> (the object as written, when, created by us and not yet
        # listed by the cache)
        self._written: dict[tuple[str, str], tuple[Obj, float, bool]] = {}

    def remember(self, written: Obj, *, created: bool = False) -> None:
        """Keep the object a create (``created``) or a scale returned."""
        meta = written.get("metadata") if isinstance(written, dict) else None
        if not meta or not meta.get("name"):
            return
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        with self._lock:
            earlier = self._written.get(key)
            unseen = created or (earlier is not None and earlier[2])
            self._written[key] = (written, self._clock(), unseen)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._written.pop((namespace, name), None)

    def view(
        self, namespace: str, cached: Iterable[Obj], *, labels: Mapping[str, str]
    ) -> list[Obj]:
        """``cached`` with our newer writes in place of stale copies, plus what we created
        that the cache has not listed yet (matching ``labels``)."""
        out: list[Obj] = []
        seen: set[str] = set()
        now = self._clock()
        with self._lock:
            for obj in cached:
                name = str((obj.get("metadata") or {}).get("name", ""))
                seen.add(name)
                entry = self._written.get((namespace, name))
                if entry is None:
                    out.append(obj)
                elif _uid(entry[0]) == _uid(obj) and _generation(obj) < _generation(entry[0]):
                    self._written[(namespace, name)] = (entry[0], entry[1], False)
                    out.append(entry[0])
                else:
                    del self._written[(namespace, name)]  # the cache has caught up
                    out.append(obj)
            for (ns, name), (obj, at, unseen) in list(self._written.items()):
                if ns != namespace or name in seen:
                    continue
                if not unseen or now - at >= UNSEEN_CREATION_SECONDS:
                    del self._written[(ns, name)]  # deleted meanwhile, or never to be seen
                    continue
                obj_labels = (obj.get("metadata") or {}).get("labels") or {}
                if all(obj_labels.get(k) == v for k, v in labels.items()):
                    out.append(obj)
        return out
