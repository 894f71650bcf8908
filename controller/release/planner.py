"""The release planner: Release + member observations + now -> actions and the new status.

Pure, like ``strategies/``: no I/O, the clock passed in, tested with plain values. The
reconciler asks ``clusters_to_read`` which members to read this pass, reads them (each
with its own timeout, all at once), then calls ``plan``. One pass:

1. **begin** (first pass): every cluster Pending, every wave Pending; fail at once,
   touching nothing, if a cluster has no ClusterTarget;
2. **guard**: a spec changed after the start halts the release (create a new Release);
3. **requests**: ``promote`` ends the soak in progress, ``abort`` halts — each once;
4. **observe** every member read this pass: unreachable (backoff; past
   ``unreachableTimeout`` a cluster the release needs fails), or judged against the
   revision asked with the rule ``deployctl --wait`` uses (``rollout_outcome.judge``):
   Healthy, rolled back by the member (Failed, with its analysis evidence), held by the
   member's delivery policy (Held: the policy's reason is shown, its time does not count
   toward ``clusterTimeout``), or still progressing. A Healthy cluster that loses its
   revision (rolled back, degraded, template changed) fails: the soak is a watch;
5. **halt** on the first failure (or abort): no further cluster is started;
   ``rollbackAll`` returns every changed cluster to the revision it ran before;
6. **advance** the current wave: start Pending clusters up to ``maxParallel`` (a member
   busy with another revision waits), and once all are Healthy, soak, then go on;
7. **summarise**: the release's phase, reason and message; when to look again.

Every change to a member is recorded in status *before* it is sent (the reconciler writes
status first, then acts), so a controller killed in between re-sends it at most once and
a finished cluster is never touched again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from controller.api import reasons as r
from controller.api.duration import format_duration
from controller.api.release import Release, Wave
from controller.api.release_status import (
    FINISHED_RELEASE,
    IN_FLIGHT,
    ReleaseClusterStatus,
    ReleaseStatus,
    WaveStatus,
)
from controller.api.rollout import Rollout
from controller.api.status import parse_timestamp, timestamp
from controller.release.actions import (
    Action,
    ReleaseEvent,
    ReleasePlan,
    RollBack,
    SetTemplate,
    change_annotations,
    rollback_annotations,
)
from controller.release.change import ChangeError, apply_change
from controller.release.observe import MemberRollout, Observation, ReadFailure, template_revision
from controller.requests import parse_request
from controller.validation import problems_of

MAX_BACKOFF = 30.0
MAX_MESSAGE = 1024
# Why a cluster failed (its message then says how, and is kept through a rollback).
FAILURE_REASONS = frozenset(
    {
        r.CLUSTER_FAILED,
        r.CLUSTER_TIMED_OUT,
        r.CLUSTER_SUPERSEDED,
        r.CLUSTER_UNREACHABLE,
        r.CLUSTER_FORBIDDEN,
        r.ROLLOUT_NOT_FOUND,
        r.INVALID_CHANGE,
    }
)
# Member phases that mean "waiting for a person there" (a pause step, an approval step).
MEMBER_WAITING_REASONS = frozenset(
    {r.AWAITING_PROMOTION, r.AWAITING_APPROVAL, r.ANALYSIS_INCONCLUSIVE, r.PAUSED}
)


# --------------------------------------------------------------------------- helpers


def spec_hash(release: Release) -> str:
    """What must not change once started: the app, the change and who is in which wave."""
    spec = release.spec
    material = {
        "rollout": str(spec.rollout),
        "images": dict(sorted(spec.images.items())),
        "templatePatch": spec.template_patch,
        "waves": [[w.name, list(w.clusters)] for w in spec.waves],
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def backoff(failures: int) -> float:
    """Seconds before reading a cluster again after ``failures`` failed reads in a row."""
    return float(min(MAX_BACKOFF, 2.0 ** max(0, failures - 1)))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _since(value: str | None, now: datetime) -> float:
    return (now - parse_timestamp(value)).total_seconds() if value else 0.0


def clusters_to_read(release: Release, *, now: datetime) -> list[str]:
    """The members this pass needs to see: the current wave's, and those being watched."""
    status = release.status
    if status is None or not status.clusters:
        return list(release.spec.waves[0].clusters)
    if status.phase in ("Succeeded", "RolledBack"):
        return []
    halted = status.phase in ("Failed", "RollingBack")
    out: list[str] = []
    for cluster in status.clusters:
        if cluster.retry_at and parse_timestamp(cluster.retry_at) > now:
            continue
        if cluster.phase in (*IN_FLIGHT, "RollingBack"):
            out.append(cluster.name)
        elif cluster.phase == "Healthy" and not halted:
            out.append(cluster.name)
        elif cluster.phase == "Pending" and not halted and cluster.wave == status.current_wave:
            out.append(cluster.name)
    return out


# --------------------------------------------------------------------------- one pass


def plan(
    release: Release,
    observations: Mapping[str, Observation],
    *,
    now: datetime,
    targets: Collection[str],
) -> ReleasePlan:
    """The next step of ``release`` given what each member showed this pass."""
    return _Pass(release, observations, now=now, targets=targets).run()


@dataclass
class _Pass:
    release: Release
    observations: Mapping[str, Observation]
    now: datetime
    targets: Collection[str]
    status: ReleaseStatus = field(init=False)
    clusters: dict[str, ReleaseClusterStatus] = field(init=False)
    waves: dict[str, WaveStatus] = field(init=False)
    actions: list[Action] = field(default_factory=list)
    events: list[ReleaseEvent] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skip_soak_by: str | None = None

    def __post_init__(self) -> None:
        self.status = self.release.status or ReleaseStatus()
        self.clusters = {c.name: c for c in self.status.clusters}
        self.waves = {w.name: w for w in self.status.waves}
        self.stamp = timestamp(self.now)
        self.spec = self.release.spec

    # ------------------------------------------------------------------ table of contents

    def run(self) -> ReleasePlan:
        if not self.clusters and not self._begin():
            return self._result()
        self._handle_request()
        if self.status.phase in FINISHED_RELEASE and not self._in_flight():
            return self._result()
        self._guard_spec()
        for name in self.spec.clusters():
            self._observe(name)
        self._check_deadlines()
        self._halt_on_failure()
        if self.status.phase in (None, "Progressing", "Waiting"):
            self._advance()
            self._halt_on_failure()  # a cluster that could not even start
        self._summarise()
        return self._result()

    # ------------------------------------------------------------------ 1. begin

    def _begin(self) -> bool:
        self._set(started_at=self.stamp, spec_hash=spec_hash(self.release))
        for wave in self.spec.waves:
            self.waves[wave.name] = WaveStatus(name=wave.name)
            for name in wave.clusters:
                self.clusters[name] = ReleaseClusterStatus(name=name, wave=wave.name)
        missing = [c for c in self.spec.clusters() if c not in self.targets]
        if missing:
            message = (
                f"no ClusterTarget named {', '.join(missing)} in namespace "
                f"{self.release.metadata.namespace}; nothing was changed. Create them "
                "(docs/multicluster.md) and create the Release again"
            )
            self._set(
                phase="Failed", reason=r.CLUSTER_TARGET_MISSING, message=message,
                finished_at=self.stamp,
            )  # fmt: skip
            self._event("Warning", r.CLUSTER_TARGET_MISSING, message)
            return False
        self._set(
            phase="Progressing", reason=r.RELEASE_STARTED, current_wave=self.spec.waves[0].name
        )
        waves = " -> ".join(w.name for w in self.spec.waves)
        self._event(
            "Normal",
            r.RELEASE_STARTED,
            f"release of {self.spec.rollout} started: waves {waves}",
        )
        return True

    # ------------------------------------------------------------------ 2. guard

    def _guard_spec(self) -> None:
        if self.status.phase in FINISHED_RELEASE or self.status.phase == "RollingBack":
            return
        started = self.status.spec_hash
        if started is None or started == spec_hash(self.release):
            return
        message = (
            "the Release's rollout, change or waves were edited after it started; it is "
            "halted and no further cluster is changed. Create a new Release instead"
        )
        self._halt(r.SPEC_CHANGED, message, rollback=False)

    # ------------------------------------------------------------------ 3. requests

    def _handle_request(self) -> None:
        request = parse_request(self.release.metadata.annotations)
        if request is None or request.id == self.status.last_handled_request:
            return
        self._set(last_handled_request=request.id)
        who = request.by or "unknown"
        if self.status.phase in FINISHED_RELEASE or self.status.phase == "RollingBack":
            self._event(
                "Normal",
                r.REQUEST_IGNORED,
                f"{request.action} by {who} ignored: the release is {self.status.phase}",
            )
        elif request.action == "abort":
            self._halt(r.ABORTED, f"aborted by {who}", rollback=True)
        elif request.action in ("promote", "promoteFull"):
            self.skip_soak_by = who
        else:
            self._event(
                "Normal",
                r.REQUEST_IGNORED,
                f"{request.action} by {who} ignored: a Release takes promote and abort",
            )

    # ------------------------------------------------------------------ 4. observe

    def _observe(self, name: str) -> None:
        observation = self.observations.get(name)
        cluster = self.clusters[name]
        if observation is None:
            return
        if isinstance(observation, ReadFailure):
            self._read_failed(cluster, observation)
            return
        if cluster.unreachable_since:
            self._event(
                "Normal",
                r.CLUSTER_REACHABLE,
                f"cluster {name} answers again after "
                f"{format_duration(int(_since(cluster.unreachable_since, self.now)))}",
            )
        cluster = self._update(
            cluster,
            unreachable_since=None,
            failures=0,
            retry_at=None,
            last_error="",
            member_phase=observation.phase,
        )
        if cluster.phase in IN_FLIGHT:
            self._follow(cluster, observation)
        elif cluster.phase == "Healthy":
            self._watch(cluster, observation)
        elif cluster.phase == "RollingBack":
            self._follow_rollback(cluster, observation)

    def _read_failed(self, cluster: ReleaseClusterStatus, failure: ReadFailure) -> None:
        if failure.permanent and cluster.phase != "Pending":
            if cluster.phase in (*IN_FLIGHT, "Healthy", "RollingBack"):
                self._fail(cluster, failure.reason, failure.message)
            return
        if failure.permanent and cluster.wave == self.status.current_wave:
            self._fail(cluster, failure.reason, failure.message)
            return
        failures = cluster.failures + 1
        retry = self.now + timedelta(seconds=backoff(failures))
        if not cluster.unreachable_since:
            self._event(
                "Warning",
                r.CLUSTER_UNREACHABLE,
                f"cannot read cluster {cluster.name}: {failure.message}",
            )
        self._update(
            cluster,
            unreachable_since=cluster.unreachable_since or self.stamp,
            failures=failures,
            retry_at=timestamp(retry),
            last_error=_clip(failure.message),
        )
        self.timers.append(retry)

    def _follow(self, cluster: ReleaseClusterStatus, member: MemberRollout) -> None:
        """A cluster asked for the new revision: applied yet? promoted? rolled back? held?"""
        wanted = str(cluster.revision)
        current = member.revision
        if current != wanted:
            if current == cluster.replaced_revision and self._halted():
                self._never_changed(cluster)
            elif current == cluster.replaced_revision:
                self._send_change(cluster, member)  # recorded, not applied yet: send again
            else:
                self._fail(
                    cluster,
                    r.CLUSTER_SUPERSEDED,
                    f"the Rollout's template was changed to revision {current} by someone "
                    f"else while revision {wanted} rolled out",
                )
            return
        if not member.observed:
            self._progressing(
                cluster, r.CLUSTER_PROGRESSING, "waiting for the member's operator to see it"
            )
            return
        outcome = member.outcome(wanted)
        if outcome is not None and outcome.name == "Promoted":
            self._update(
                cluster, phase="Healthy", healthy_at=self.stamp, reason=r.CLUSTER_HEALTHY,
                message=f"Healthy on revision {wanted}",
            )  # fmt: skip
            self._event("Normal", r.CLUSTER_HEALTHY, f"cluster {cluster.name}: {outcome.message}")
        elif outcome is not None and outcome.name == "RolledBack":
            self._fail(
                cluster,
                r.CLUSTER_FAILED,
                f"rolled back revision {wanted}: {member.reason}: {member.message}",
                evidence=member,
            )
        elif outcome is not None:
            reason = r.INVALID_CHANGE if outcome.name == "InvalidSpec" else r.CLUSTER_SUPERSEDED
            self._fail(cluster, reason, outcome.message)
        elif member.held_by_policy():
            if cluster.phase != "Held":
                self._event(
                    "Normal",
                    r.CLUSTER_HELD,
                    f"cluster {cluster.name} held by its delivery policy: "
                    f"{member.reason}: {member.message}",
                )
            self._update(cluster, phase="Held", reason=member.reason, message=member.message)
        else:
            self._progressing(cluster, member.reason, member.message)

    def _progressing(self, cluster: ReleaseClusterStatus, reason: str, message: str) -> None:
        since = cluster.progressing_since
        if cluster.phase == "Held" or since is None:
            since = self.stamp  # time held by policy does not count toward the timeout
        cluster = self._update(
            cluster, phase="Progressing", progressing_since=since, reason=reason,
            message=_clip(message),
        )  # fmt: skip
        deadline = parse_timestamp(since) + timedelta(seconds=self.spec.cluster_timeout)
        if self.now >= deadline:
            self._fail(
                cluster,
                r.CLUSTER_TIMED_OUT,
                f"not Healthy on revision {cluster.revision} within clusterTimeout "
                f"{format_duration(self.spec.cluster_timeout)} ({reason}: {message})",
            )
        else:
            self.timers.append(deadline)

    def _watch(self, cluster: ReleaseClusterStatus, member: MemberRollout) -> None:
        """A Healthy cluster stays on its revision for the rest of the release."""
        wanted = cluster.revision
        if member.revision != wanted:
            self._fail(
                cluster,
                r.CLUSTER_SUPERSEDED,
                f"the Rollout's template was changed to revision {member.revision} after "
                f"revision {wanted} was Healthy",
            )
        elif (
            member.stable != wanted
            or member.phase in ("Degraded", "RolledBack")
            or member.status.get("aborted")
        ):
            self._fail(
                cluster,
                r.CLUSTER_FAILED,
                f"revision {wanted} no longer Healthy (stable {member.stable}, "
                f"{member.phase}): {member.reason}: {member.message}",
                evidence=member,
            )

    def _follow_rollback(
        self, cluster: ReleaseClusterStatus, member: MemberRollout, *, why: str = ""
    ) -> None:
        back = str(cluster.previous_revision)
        if member.revision == cluster.replaced_revision != back:
            self._never_changed(cluster)  # the change never reached it: nothing to undo
        elif member.revision == back:
            outcome = member.outcome(back)
            if outcome is not None and outcome.name == "Promoted":
                self._update(
                    cluster, phase="RolledBack", finished_at=self.stamp,
                    **self._note(cluster, f"back on revision {back}"),
                )  # fmt: skip
                self._event(
                    "Normal",
                    r.CLUSTER_ROLLED_BACK,
                    f"cluster {cluster.name} is back on revision {back}",
                )
            else:
                note = f"returning to revision {back}: {member.reason}: {member.message}"
                self._update(cluster, **self._note(cluster, note))
        elif member.revision in (cluster.revision, cluster.replaced_revision):
            self._send_rollback(cluster, member, why=why or self.status.reason)
        else:
            note = (
                f"not rolled back: the template was changed to revision {member.revision} "
                "by someone else"
            )
            self._update(cluster, phase="Failed", finished_at=self.stamp, message=note)

    def _never_changed(self, cluster: ReleaseClusterStatus) -> None:
        """Recorded as asked, but the change never reached the member before the halt."""
        self._update(
            cluster,
            phase="Pending",
            revision=None,
            previous_revision=None,
            replaced_revision=None,
            started_at=None,
            progressing_since=None,
            reason="",
            message="not changed: the release halted before the change reached it",
        )

    def _halted(self) -> bool:
        return self.status.phase in ("Failed", "RollingBack", "RolledBack")

    # ------------------------------------------------------------------ deadlines

    def _check_deadlines(self) -> None:
        """Unreachable past ``unreachableTimeout``: fatal for a cluster the release needs
        now (the current wave's, or one rolling out); clusters of finished waves are
        only reported."""
        limit = self.spec.unreachable_timeout
        for cluster in list(self.clusters.values()):
            if not cluster.unreachable_since:
                continue
            needed = cluster.phase in IN_FLIGHT or (
                cluster.wave == self.status.current_wave
                and cluster.phase in ("Pending", "Healthy")
                and self.status.phase in (None, "Progressing", "Waiting")
            )
            if not needed:
                continue
            deadline = parse_timestamp(cluster.unreachable_since) + timedelta(seconds=limit)
            if self.now >= deadline:
                self._fail(
                    cluster,
                    r.CLUSTER_UNREACHABLE,
                    f"unreachable since {cluster.unreachable_since} (unreachableTimeout "
                    f"{format_duration(limit)}): {cluster.last_error}",
                )
            else:
                self.timers.append(deadline)

    # ------------------------------------------------------------------ 5. halt

    def _fail(
        self,
        cluster: ReleaseClusterStatus,
        reason: str,
        message: str,
        *,
        evidence: MemberRollout | None = None,
    ) -> None:
        found = evidence.evidence(str(cluster.revision)) if evidence and cluster.revision else []
        self._update(
            cluster,
            phase="Failed",
            reason=reason,
            message=_clip(message),
            finished_at=self.stamp,
            evidence=found or cluster.evidence,
        )
        self.failed.append(cluster.name)

    def _halt_on_failure(self) -> None:
        failed, self.failed = self.failed, []
        if not failed:
            return
        first = self.clusters[failed[0]]
        if self.status.phase in ("Failed", "RollingBack", "RolledBack"):
            for name in failed:  # halted already: these were still rolling out
                cluster = self.clusters[name]
                self._event("Warning", cluster.reason, f"cluster {name}: {cluster.message}")
            return
        message = f"cluster {first.name}: {first.message}"
        self._halt(first.reason, message, rollback=True, evidence=first)

    def _halt(
        self,
        reason: str,
        message: str,
        *,
        rollback: bool,
        evidence: ReleaseClusterStatus | None = None,
    ) -> None:
        untouched = [c.name for c in self.clusters.values() if c.phase == "Pending"]
        wave = self.waves.get(self.status.current_wave or "")
        if wave is not None and wave.phase != "Succeeded":
            self.waves[wave.name] = wave.model_copy(
                update={"phase": "Failed", "finished_at": self.stamp}
            )
        # Changes not sent yet are not sent at all (the next pass marks those clusters
        # as never changed): a halted release touches no further cluster.
        self.actions = [a for a in self.actions if not isinstance(a, SetTemplate)]
        rolling_back = rollback and self.spec.on_failure == "rollbackAll"
        note = "release halted"
        if untouched:
            note += f"; not changed: {', '.join(untouched)}"
        if rolling_back:
            note += "; rolling back every cluster it changed (onFailure: rollbackAll)"
        facts = ""
        if evidence is not None and evidence.evidence:
            facts = " Evidence: " + "; ".join(
                f"{e.metric}={e.value} ({e.phase}) {e.message}".strip() for e in evidence.evidence
            )
        self._set(phase="Failed", reason=reason, message=_clip(f"{message}; {note}"))
        self._event("Warning", reason, _clip(f"{message}; {note}.{facts}"))
        if rolling_back:
            self._start_rollback(reason)
        else:
            self._withdraw_held(reason)

    def _note(self, cluster: ReleaseClusterStatus, message: str) -> dict[str, str]:
        """A rollback's progress as the cluster's message, unless the message is why the
        cluster failed (that stays, with its evidence)."""
        return {} if cluster.reason in FAILURE_REASONS else {"message": message}

    def _start_rollback(self, why: str) -> None:
        changed = self._changed((*IN_FLIGHT, "Healthy", "Failed"))
        if not changed:
            self._set(phase="RolledBack", finished_at=self.stamp)
            return
        self._set(phase="RollingBack")
        self._return(changed, why, "returning to revision")
        self._event(
            "Normal",
            r.ROLLING_BACK,
            f"rolling back {', '.join(c.name for c in changed)} to their previous revisions",
        )

    def _withdraw_held(self, why: str) -> None:
        """``halt`` leaves changed clusters as they are, except a change a member's policy
        still holds: it never started there, and must not start when the hold ends."""
        held = self._changed(("Held",))
        if held:
            self._return(held, why, "withdrawn, never started: returning to revision")
            self._event(
                "Normal",
                r.ROLLING_BACK,
                f"withdrawing the change held in {', '.join(c.name for c in held)}",
            )

    def _changed(self, phases: tuple[str, ...]) -> list[ReleaseClusterStatus]:
        return [
            c
            for c in self.clusters.values()
            if c.revision is not None
            and c.phase in phases
            and c.previous_revision not in (None, c.revision)
        ]

    def _return(self, clusters: list[ReleaseClusterStatus], why: str, note: str) -> None:
        for cluster in clusters:
            updated = self._update(
                cluster,
                phase="RollingBack",
                **self._note(cluster, f"{note} {cluster.previous_revision}"),
            )
            member = self.observations.get(cluster.name)
            if isinstance(member, MemberRollout):
                self._follow_rollback(updated, member, why=why)

    # ------------------------------------------------------------------ 6. advance

    def _advance(self) -> None:
        for wave in self.spec.waves:
            state = self.waves[wave.name]
            if state.phase == "Succeeded":
                continue
            self._set(current_wave=wave.name)
            if state.phase == "Pending":
                state = self._wave(wave, phase="Progressing", started_at=self.stamp)
                self._event(
                    "Normal",
                    r.WAVE_STARTED,
                    f"wave {wave.name} started: {', '.join(wave.clusters)}",
                )
            self._start_clusters(wave)
            if not self._wave_done(wave, state):
                return
        self._set(phase="Succeeded", reason=r.RELEASE_SUCCEEDED, finished_at=self.stamp)
        self._set(message=f"every cluster is Healthy on the new revision of {self.spec.rollout}")
        self._event("Normal", r.RELEASE_SUCCEEDED, self.status.message)

    def _start_clusters(self, wave: Wave) -> None:
        members = [self.clusters[name] for name in wave.clusters]
        in_flight = sum(1 for c in members if c.phase in IN_FLIGHT)
        for cluster in members:
            if cluster.phase != "Pending":
                continue
            if in_flight >= wave.parallel:
                self._update(
                    cluster,
                    reason="",
                    message=f"queued: maxParallel {wave.parallel} of wave {wave.name}",
                )
                continue
            member = self.observations.get(cluster.name)
            if not isinstance(member, MemberRollout):
                if member is None:
                    self.timers.append(self.now)  # a wave just began: read it at once
                continue
            if self._start(cluster, member, wave):
                in_flight += 1

    def _start(self, cluster: ReleaseClusterStatus, member: MemberRollout, wave: Wave) -> bool:
        try:
            template = apply_change(
                member.template, images=self.spec.images, patch=self.spec.template_patch
            )
        except ChangeError as exc:
            self._fail(cluster, r.INVALID_CHANGE, str(exc))
            return False
        problem = _invalid_rollout(member, template)
        if problem:
            self._fail(cluster, r.INVALID_CHANGE, f"the changed Rollout is invalid: {problem}")
            return False
        revision = str(template_revision(template))
        busy = member.busy_with(revision)
        if busy is not None:
            self._update(
                cluster,
                reason=r.CLUSTER_BUSY,
                message=f"revision {busy} is rolling out there ({member.phase}: "
                f"{member.reason}); waiting for it to finish",
            )
            return False
        previous = member.stable or member.revision
        started = self._update(
            cluster,
            phase="Progressing",
            revision=revision,
            replaced_revision=member.revision,
            previous_revision=previous,
            started_at=self.stamp,
            progressing_since=self.stamp,
            reason=r.CLUSTER_STARTED,
            message=f"revision {revision} asked (was {previous})",
        )
        if member.revision != revision:
            self._send_change(started, member)
        self._event(
            "Normal",
            r.CLUSTER_STARTED,
            f"cluster {cluster.name} (wave {wave.name}): revision {revision} asked, "
            f"replacing {previous}",
        )
        return True

    def _wave_done(self, wave: Wave, state: WaveStatus) -> bool:
        members = [self.clusters[name] for name in wave.clusters]
        if any(c.phase != "Healthy" or c.unreachable_since for c in members):
            return False
        if state.soak_until is None:
            last = max(parse_timestamp(str(c.healthy_at)) for c in members)
            until = last + timedelta(seconds=wave.soak)
            state = self._wave(wave, phase="Soaking", soak_until=timestamp(until))
            if wave.soak > 0:
                self._event(
                    "Normal",
                    r.WAVE_SOAKING,
                    f"wave {wave.name} is Healthy; soaking {format_duration(wave.soak)} "
                    f"until {state.soak_until}",
                )
        if self.skip_soak_by is not None and self.now < parse_timestamp(str(state.soak_until)):
            self._event(
                "Normal",
                r.SOAK_SKIPPED,
                f"soak of wave {wave.name} ended early by {self.skip_soak_by} (promote)",
            )
            state = self._wave(wave, soak_until=self.stamp)
            self.skip_soak_by = None
        until = parse_timestamp(str(state.soak_until))
        if self.now < until:
            self.timers.append(until)
            return False
        self._wave(wave, phase="Succeeded", finished_at=self.stamp)
        self._event("Normal", r.WAVE_SUCCEEDED, f"wave {wave.name} succeeded")
        return True

    # ------------------------------------------------------------------ 7. summarise

    def _summarise(self) -> None:
        if self.skip_soak_by is not None:
            self._event(
                "Normal",
                r.REQUEST_IGNORED,
                f"promote by {self.skip_soak_by} ignored: no wave is soaking "
                f"(wave {self.status.current_wave} is not Healthy yet)",
            )
        phase = self.status.phase
        if phase == "RollingBack" and not any(
            c.phase == "RollingBack" for c in self.clusters.values()
        ):
            returned = [c.name for c in self.clusters.values() if c.phase == "RolledBack"]
            self._set(phase="RolledBack", finished_at=self.stamp)
            self._event(
                "Normal",
                r.ROLLED_BACK,
                f"release rolled back: {', '.join(returned) or 'no cluster'} returned to "
                "their previous revisions",
            )
        elif phase == "Failed" and not self.status.finished_at and not self._in_flight():
            self._set(finished_at=self.stamp)
        elif phase in ("Progressing", "Waiting"):
            self._describe_progress()

    def _describe_progress(self) -> None:
        wave = next(w for w in self.spec.waves if w.name == self.status.current_wave)
        members = [self.clusters[name] for name in wave.clusters]
        for cluster in members:
            waiting = self._waiting_reason(cluster)
            if waiting is not None:
                reason, message = waiting
                self._set(phase="Waiting", reason=reason, message=_clip(message))
                return
        state = self.waves[wave.name]
        healthy = sum(1 for c in members if c.phase == "Healthy")
        if state.phase == "Soaking":
            message = f"wave {wave.name} soaking until {state.soak_until}"
            reason = r.WAVE_SOAKING
        else:
            message = f"wave {wave.name}: {healthy}/{len(members)} clusters Healthy"
            reason = r.CLUSTER_PROGRESSING
        self._set(phase="Progressing", reason=reason, message=message)

    def _waiting_reason(self, cluster: ReleaseClusterStatus) -> tuple[str, str] | None:
        wave = cluster.wave
        if cluster.unreachable_since:
            left = self.spec.unreachable_timeout - _since(cluster.unreachable_since, self.now)
            return (
                r.CLUSTER_UNREACHABLE,
                f"wave {wave} waits: cluster {cluster.name} unreachable since "
                f"{cluster.unreachable_since} (fails in {format_duration(max(0, int(left)))}): "
                f"{cluster.last_error}",
            )
        if cluster.phase == "Held":
            return (
                r.CLUSTER_HELD,
                f"wave {wave} waits: cluster {cluster.name} held by its delivery policy: "
                f"{cluster.reason}: {cluster.message}",
            )
        if cluster.phase == "Pending" and cluster.reason == r.CLUSTER_BUSY:
            return r.CLUSTER_BUSY, f"wave {wave} waits: cluster {cluster.name}: {cluster.message}"
        if (
            cluster.phase == "Progressing"
            and cluster.member_phase == "Paused"
            and cluster.reason in MEMBER_WAITING_REASONS
        ):
            return (
                r.CLUSTER_WAITING,
                f"wave {wave} waits: cluster {cluster.name}: {cluster.reason}: {cluster.message}",
            )
        return None

    # ------------------------------------------------------------------ member changes

    def _send_change(self, cluster: ReleaseClusterStatus, member: MemberRollout) -> None:
        try:
            template = apply_change(
                member.template, images=self.spec.images, patch=self.spec.template_patch
            )
        except ChangeError as exc:
            self._fail(cluster, r.INVALID_CHANGE, str(exc))
            return
        self.actions.append(
            SetTemplate(
                cluster=cluster.name,
                template=template,
                revision=str(cluster.revision),
                expected_revision=member.revision,
                annotations=change_annotations(self.release, wave=cluster.wave),
            )
        )

    def _send_rollback(
        self, cluster: ReleaseClusterStatus, member: MemberRollout, *, why: str
    ) -> None:
        self.actions.append(
            RollBack(
                cluster=cluster.name,
                revision=str(cluster.previous_revision),
                expected_revision=member.revision,
                annotations=rollback_annotations(self.release, cluster=cluster, why=why),
            )
        )

    # ------------------------------------------------------------------ plumbing

    def _in_flight(self) -> bool:
        return any(c.phase in (*IN_FLIGHT, "RollingBack") for c in self.clusters.values())

    def _set(self, **changes: Any) -> None:
        self.status = self.status.model_copy(update=changes)

    def _update(self, cluster: ReleaseClusterStatus, **changes: Any) -> ReleaseClusterStatus:
        updated = self.clusters[cluster.name].model_copy(update=changes)
        self.clusters[cluster.name] = updated
        return updated

    def _wave(self, wave: Wave, **changes: Any) -> WaveStatus:
        updated = self.waves[wave.name].model_copy(update=changes)
        self.waves[wave.name] = updated
        return updated

    def _event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(ReleaseEvent(type_, reason, _clip(message)))

    def _result(self) -> ReleasePlan:
        order = {name: i for i, name in enumerate(self.spec.clusters())}
        clusters = sorted(self.clusters.values(), key=lambda c: order.get(c.name, len(order)))
        waves = [self.waves[w.name] for w in self.spec.waves if w.name in self.waves]
        status = self.status.model_copy(
            update={
                "clusters": clusters,
                "waves": waves,
                "observed_generation": self.release.metadata.generation,
            }
        )
        active = status.phase not in FINISHED_RELEASE or any(
            c.phase in (*IN_FLIGHT, "RollingBack") for c in clusters
        )
        return ReleasePlan(
            status=status,
            actions=tuple(self.actions),
            events=tuple(self.events),
            wake_at=min(self.timers, default=None),
            active=active,
        )


def _invalid_rollout(member: MemberRollout, template: Mapping[str, Any]) -> str:
    """Why the member's Rollout with ``template`` would be refused ('' when valid)."""
    raw = {key: value for key, value in member.raw.items() if key != "status"}
    raw["spec"] = {**(raw.get("spec") or {}), "template": dict(template)}
    try:
        Rollout.model_validate(raw)
    except ValidationError as exc:
        return "; ".join(str(p) for p in problems_of(exc))[:MAX_MESSAGE]
    return ""
