"""Rollouts and AnalysisTemplates parsed once per version, not once per pass.

A Rollout is looked at many times in one version: each ReplicaSet and pod event of a
rollout in flight runs a pass over the same Rollout object, and every pass of every
Rollout in a namespace reads the namespace's templates. Validating the same document
with pydantic (about a millisecond for a Rollout) and hashing its pod template each
time was the largest cost of a pass. The reconciler asks this cache instead: an object's
uid and resourceVersion name one exact document, so the model (or the problems that make
it invalid) and the revision computed from it last time are the answer again. Models
are frozen, so a shared one cannot be changed by a pass.

Bounded: the latest version of at most ``limit`` objects per kind, least recently used
dropped first; with more Rollouts than that in flight at once a pass only parses again,
as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from controller.api import AnalysisTemplate, Rollout
from controller.api.revision import template_hash
from controller.validation import Problem, problems_of

DEFAULT_LIMIT = 2048

T = TypeVar("T")
M = TypeVar("M")
Parse = tuple[M | None, tuple[Problem, ...]]


class _Versions(Generic[T]):
    """uid -> (resourceVersion, a value computed from that version): the latest version
    of each object only, least recently used first out."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._values: OrderedDict[str, tuple[str, T]] = OrderedDict()

    def get(self, raw: Mapping[str, Any], compute: Callable[[], T]) -> T:
        meta = raw.get("metadata") or {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not uid or not version:
            return compute()  # not from the API server: nothing names this document
        key, version = str(uid), str(version)
        with self._lock:
            known = self._values.get(key)
            if known is not None and known[0] == version:
                self._values.move_to_end(key)
                return known[1]
        value = compute()
        self._store(key, version, value)
        return value

    def put(self, raw: Mapping[str, Any], value: T) -> None:
        """Record ``value`` for ``raw``'s version without computing it."""
        meta = raw.get("metadata") or {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if uid and version:
            self._store(str(uid), str(version), value)

    def _store(self, key: str, version: str, value: T) -> None:
        with self._lock:
            self._values[key] = (version, value)
            self._values.move_to_end(key)
            while len(self._values) > self._limit:
                self._values.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


def _validate(model: Callable[[Mapping[str, Any]], M], raw: Mapping[str, Any]) -> Parse[M]:
    try:
        return model(raw), ()
    except ValidationError as exc:
        # The kind names Argo Rollouts' fields in the messages (controller.argo).
        return None, tuple(problems_of(exc, kind=str(raw.get("kind") or "")))


class ParsedObjects:
    """The parse caches of one reconciler: Rollouts, their revisions, AnalysisTemplates."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.rollouts: _Versions[Parse[Rollout]] = _Versions(limit)
        self.revisions: _Versions[str] = _Versions(limit)
        self.templates: _Versions[Parse[AnalysisTemplate]] = _Versions(limit)

    def rollout(self, raw: Mapping[str, Any]) -> Parse[Rollout]:
        """The Rollout model of ``raw``, or None and the problems that make it invalid."""
        return self.rollouts.get(raw, lambda: _validate(Rollout.model_validate, raw))

    def revision(self, raw: Mapping[str, Any], rollout: Rollout) -> str:
        """``template_hash`` of the pod template of ``rollout`` (parsed from ``raw``)."""
        return self.revisions.get(raw, lambda: template_hash(rollout.spec.pod_template))

    def remember(self, written: Mapping[str, Any], rollout: Rollout, *, revision: str) -> None:
        """``written`` (a Rollout as our status write returned it) is ``rollout``: the
        model a pass already holds with the status it wrote, so the version that write
        made is never parsed again."""
        version = (written.get("metadata") or {}).get("resourceVersion")
        if not version:
            return
        meta = rollout.metadata.model_copy(update={"resource_version": str(version)})
        known = rollout.model_copy(update={"metadata": meta})
        self.rollouts.put(written, (known, ()))
        self.revisions.put(written, revision)

    def template(self, raw: Mapping[str, Any]) -> Parse[AnalysisTemplate]:
        return self.templates.get(raw, lambda: _validate(AnalysisTemplate.model_validate, raw))
