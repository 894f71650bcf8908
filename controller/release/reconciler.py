"""One pass for one Release: read, ask the planner, write status, act, tell.

Called by the release controller's workers with a ``namespace/name`` key. In order:

1. read the Release from the cache; a deleted one needs nothing;
2. parse it; an invalid spec is reported (status and an Event) and nothing is touched;
3. read the members the planner wants this pass — all at once, each with its own
   timeout (``members.py``), so one unreachable cluster never stops the others;
4. ask the planner (pure) for the new status, the member changes and the Events;
5. write status first (conditional on the resourceVersion read): a change is recorded
   as asked before it is sent, so a controller killed in between resends it at most;
6. send the changes to the members, record the Events;
7. return when to look again: the poll interval while members need watching (member
   clusters are polled, not watched: a partition costs a failed read, not a stream to
   re-establish), or the planner's next timer.

Errors writing to the management cluster propagate (the worker requeues with backoff);
errors of member clusters never do: they are observations the planner judges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from pydantic import ValidationError

from controller.api import reasons as r
from controller.api.release import ClusterTarget, Release
from controller.api.release_status import ReleaseStatus
from controller.cache import Cache, Obj
from controller.kube import Kube, merge_patch
from controller.release.members import MemberClients
from controller.release.planner import clusters_to_read, plan
from controller.validation import problems_of

log = structlog.stdlib.get_logger(__name__)

# After a member change failed to be sent, look again soon (the plan resends it).
RETRY_CHANGE = 2.0
MIN_REQUEUE = 0.1


@dataclass(frozen=True)
class Outcome:
    requeue_after: float | None = None


class ReleaseReconciler:
    def __init__(
        self,
        kube: Kube,
        *,
        releases: Cache,
        targets: Cache,
        members: MemberClients,
        clock: Callable[[], datetime],
        poll_interval: float = 10.0,
    ) -> None:
        self.kube = kube
        self.releases = releases
        self.targets = targets
        self.members = members
        self.clock = clock
        self.poll_interval = poll_interval

    def reconcile(self, key: str) -> Outcome:
        namespace, _, name = key.partition("/")
        raw = self.releases.get(namespace, name)
        if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
            return Outcome()
        bound = log.bind(namespace=namespace, release=name)
        try:
            release = Release.model_validate(raw)
        except ValidationError as exc:
            self._invalid(raw, "; ".join(str(p) for p in problems_of(exc)))
            return Outcome()
        now = self.clock()
        targets = self._targets(namespace)
        wanted = clusters_to_read(release, now=now)
        observations = (
            self.members.read_all(
                namespace,
                {c: targets.get(c) for c in wanted},
                release.spec.rollout,
                release=name,
            )
            if wanted
            else {}
        )
        result = plan(release, observations, now=now, targets=targets.keys())
        self._write_status(raw, release.status, result.status)
        failed_changes = []
        if result.actions:
            for outcome in self.members.act(
                namespace, targets, release.spec.rollout, result.actions
            ):
                if outcome.error is None:
                    bound.info(
                        "member changed",
                        cluster=outcome.cluster,
                        action=type(outcome.action).__name__,
                        revision=outcome.action.revision,
                    )
                else:
                    failed_changes.append(outcome)
        for event in result.events:
            self.kube.record_event(raw, reason=event.reason, message=event.message, type=event.type)
            bound.info(event.message, reason=event.reason, event_type=event.type)
        for outcome in failed_changes:
            message = f"could not change cluster {outcome.cluster} yet: {outcome.error}"
            bound.warning(message, cluster=outcome.cluster)
            self.kube.record_event(
                raw, reason=r.CLUSTER_CHANGE_FAILED, message=message, type="Warning"
            )
        requeue = self._requeue(result.active, result.wake_at, now, retry=bool(failed_changes))
        return Outcome(requeue_after=requeue)

    # ------------------------------------------------------------------ helpers

    def _targets(self, namespace: str) -> dict[str, ClusterTarget]:
        found: dict[str, ClusterTarget] = {}
        for raw in self.targets.list(namespace):
            try:
                target = ClusterTarget.model_validate(raw)
            except ValidationError as exc:
                meta = raw.get("metadata") or {}
                log.warning(
                    "ignoring an invalid ClusterTarget",
                    target=f"{meta.get('namespace')}/{meta.get('name')}",
                    problems="; ".join(str(p) for p in problems_of(exc)),
                )
                continue
            found[str(target.metadata.name)] = target
        self.members.forget(namespace, set(found))
        return found

    def _invalid(self, raw: Obj, problems: str) -> None:
        before = _status(raw)
        message = f"invalid Release, nothing was changed: {problems}"[:1024]
        generation = (raw.get("metadata") or {}).get("generation")
        after = before.model_copy(
            update={
                "phase": "Failed",
                "reason": r.INVALID_SPEC,
                "message": message,
                "observed_generation": generation,
            }
        )
        if self._write_status(raw, before, after):
            self.kube.record_event(raw, reason=r.INVALID_SPEC, message=message, type="Warning")

    def _write_status(self, raw: Obj, before: ReleaseStatus | None, after: ReleaseStatus) -> bool:
        old = (raw.get("status") or {}) if before is not None else {}
        patch = merge_patch(old, after.to_wire())
        if not patch:
            return False
        meta = raw["metadata"]
        self.kube.patch_release_status(
            meta["namespace"], meta["name"], patch, resource_version=meta["resourceVersion"]
        )
        return True

    def _requeue(
        self, active: bool, wake_at: datetime | None, now: datetime, *, retry: bool
    ) -> float | None:
        delays = []
        if active:
            delays.append(self.poll_interval)
        if wake_at is not None:
            delays.append(max(MIN_REQUEUE, (wake_at - now).total_seconds()))
        if retry:
            delays.append(RETRY_CHANGE)
        return min(delays) if delays else None


def _status(raw: Obj) -> ReleaseStatus:
    try:
        return ReleaseStatus.model_validate(raw.get("status") or {})
    except ValidationError:
        return ReleaseStatus()
