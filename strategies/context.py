"""One planning pass: its inputs, the status being built, the events and the timers.

``strategies.decide`` makes a ``Context`` for every pass; the strategy modules
(``canary.py``, ``bluegreen.py``, ``rolling.py``) and the shared steps in
``common.py`` update it, and ``Context.plan()`` turns it into the frozen ``Plan`` with
the conditions and counters filled in. The draft status starts as a copy of what was
read (the timers and history it carries are the controller's memory) and every
decision is rewritten from the inputs, so the same inputs always give the same Plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.api import Rollout
from controller.api import reasons as r
from controller.api.reasons import ConditionType, set_condition
from controller.api.status import (
    MAX_HISTORY,
    AnalysisRunStatus,
    HistoryEntry,
    Phase,
    RevisionOutcome,
    RolloutStatus,
)
from controller.names import CI_ANNOTATION_PREFIX, REASON_ANNOTATION, REQUESTED_BY_ANNOTATION
from controller.times import parse_timestamp, timestamp
from strategies.managed_routes import in_force
from strategies.observed import Observed, Request, RevisionState
from strategies.plan import HeaderRoute, MirrorRoute, Plan, PlanEvent
from strategies.runkeys import RunKey

_STATUS_FIELDS = frozenset(RolloutStatus.model_fields)


@dataclass
class Context:
    rollout: Rollout
    observed: Observed
    now: datetime
    revision: str
    """The desired revision: ``template_hash(spec.template)``."""
    status: RolloutStatus
    replicas: dict[str, int] = field(default_factory=dict)
    selectors: dict[str, str] = field(default_factory=dict)
    route_weights: dict[str, int] | None = None
    events: list[PlanEvent] = field(default_factory=list)
    timers: list[float] = field(default_factory=list)

    @classmethod
    def start(
        cls, rollout: Rollout, observed: Observed, *, now: datetime, revision: str
    ) -> Context:
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        # Status times have whole seconds; planning with the same precision keeps a
        # timer read back from status exactly equal to the one just written.
        now = now.replace(microsecond=0)
        return cls(
            rollout=rollout,
            observed=observed,
            now=now,
            revision=revision,
            status=rollout.status or RolloutStatus(),
        )

    # -- reading ------------------------------------------------------------------

    @property
    def replicas_wanted(self) -> int:
        return self.rollout.spec.replicas

    @property
    def stamp(self) -> str:
        return timestamp(self.now)

    def state(self, revision: str | None) -> RevisionState:
        return self.observed.state(revision)

    def elapsed(self, since: str | None) -> float:
        """Seconds from a status timestamp to now; 0 when the timer never started."""
        if not since:
            return 0.0
        return (self.now - parse_timestamp(since)).total_seconds()

    @property
    def request(self) -> Request | None:
        """The pending manual request, unless this status already consumed it.

        While spec.paused is set only ``abort`` is acted on; other requests wait (they
        stay on the annotation) and take effect once the rollout is unpaused.
        """
        request = self.observed.request
        if request is None or request.id == self.status.last_handled_request:
            return None
        if self.rollout.spec.paused and request.action != "abort":
            return None
        return request

    def annotation(self, key: str) -> str:
        return self.rollout.metadata.annotations.get(key, "")

    # -- writing ------------------------------------------------------------------

    def update(self, **fields: Any) -> None:
        """Set status fields by their Python names (unknown names are a bug: raise)."""
        unknown = set(fields) - _STATUS_FIELDS
        if unknown:
            raise AttributeError(f"RolloutStatus has no field(s) {sorted(unknown)}")
        self.status = self.status.model_copy(update=fields)

    def set_phase(self, phase: Phase, reason: str, message: str) -> None:
        self.update(phase=phase, reason=reason, message=message)

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append(PlanEvent("Warning" if warning else "Normal", reason, message))

    def retract(self, reason: str, message: str) -> None:
        """Take back an Event recorded earlier in this pass (one the pass's outcome made
        redundant); nothing when there is none."""
        self.events = [e for e in self.events if (e.reason, e.message) != (reason, message)]

    def consume(self, request: Request, *, note: str = "") -> None:
        """Mark ``request`` handled (exactly once), saying what it did."""
        self.update(last_handled_request=request.id)
        if note:
            self.event(r.REQUEST_IGNORED, f"{request.action} request {request.id!r}: {note}")

    def wake_in(self, seconds: float) -> None:
        """Ask to be called again after ``seconds`` (the earliest timer wins)."""
        self.timers.append(max(seconds, 0.001))

    def wake_after(self, since: str | None, seconds: float) -> bool:
        """True when ``seconds`` have passed since ``since``; else set a timer for it."""
        left = seconds - self.elapsed(since)
        if left <= 0:
            return True
        self.wake_in(left)
        return False

    def later(self, seconds: float) -> str:
        return timestamp(self.now + timedelta(seconds=seconds))

    # -- analysis runs ------------------------------------------------------------

    def run(self, key: RunKey, revision: str | None = None) -> AnalysisRunStatus | None:
        revision = revision or self.status.canary_revision or self.revision
        name = str(key)
        return next(
            (x for x in self.status.analysis_runs if x.key == name and x.revision == revision),
            None,
        )

    def ensure_run(
        self, key: RunKey, *, revision: str, what: str | None = None
    ) -> AnalysisRunStatus:
        """The run ``key`` for ``revision``, started now when it does not exist yet.

        The analysis engine measures every entry in phase Running and writes its
        verdict back; starting a run is only this entry.
        """
        existing = self.run(key, revision)
        if existing is not None:
            return existing
        started = AnalysisRunStatus(key=str(key), revision=revision, started_at=self.stamp)
        self.update(analysis_runs=[*self.status.analysis_runs, started])
        self.event(
            r.ANALYSIS_STARTED,
            f"analysis {key} started for revision {revision} ({what or key.describe()})",
        )
        return started

    def drop_runs(self, keep: Callable[[AnalysisRunStatus], bool]) -> None:
        """Stop runs by dropping their entries: the engine measures only what is listed."""
        self.update(analysis_runs=[x for x in self.status.analysis_runs if keep(x)])

    def stop_running(self, key: RunKey) -> None:
        """Drop ``key`` if it is still running; a finished run stays as evidence."""
        name = str(key)
        self.drop_runs(lambda x: not (x.key == name and x.phase in ("Running", "Pending")))

    # -- history ------------------------------------------------------------------

    def history_start(self, revision: str, *, message: str) -> None:
        annotations = self.rollout.metadata.annotations
        entry = HistoryEntry(
            revision=revision,
            images={c.name: c.image for c in self.rollout.spec.pod_template.spec.containers},
            strategy=self.rollout.spec.strategy.name,
            requested_by=annotations.get(REQUESTED_BY_ANNOTATION, ""),
            reason=annotations.get(REASON_ANNOTATION, ""),
            ci={
                key.removeprefix(CI_ANNOTATION_PREFIX): value
                for key, value in sorted(annotations.items())
                if key.startswith(CI_ANNOTATION_PREFIX)
            },
            started_at=self.stamp,
            message=message,
        )
        self.update(history=[*self.status.history, entry][-MAX_HISTORY:])

    def history_finish(self, revision: str | None, outcome: RevisionOutcome, message: str) -> None:
        """Close the newest still-progressing entry of ``revision`` with ``outcome``."""
        self._history_edit(
            revision,
            lambda e: e.model_copy(
                update={"outcome": outcome, "message": message, "finished_at": self.stamp}
            ),
        )

    def history_note(self, revision: str | None, note: str) -> None:
        """Add a line (an approval, a manual request) to the revision's open entry."""
        self._history_edit(
            revision, lambda e: e.model_copy(update={"events": [*e.events, note][-20:]})
        )

    def history_note_once(self, revision: str | None, note: str) -> None:
        """Add ``note`` to the revision's newest entry, finished or not, unless it is there."""
        self._history_edit(
            revision,
            lambda e: e.model_copy(update={"events": [*e.events, note][-20:]}),
            finished_too=True,
            unless=lambda e: note in e.events,
        )

    def _history_edit(
        self,
        revision: str | None,
        edit: Callable[[HistoryEntry], HistoryEntry],
        *,
        finished_too: bool = False,
        unless: Callable[[HistoryEntry], bool] = lambda _entry: False,
    ) -> None:
        """Edit the revision's newest entry (the newest still progressing, unless
        ``finished_too``); nothing when there is none or ``unless`` holds for it."""
        history = list(self.status.history)
        for index in range(len(history) - 1, -1, -1):
            entry = history[index]
            if entry.revision == revision and (finished_too or entry.outcome == "Progressing"):
                if not unless(entry):
                    history[index] = edit(entry)
                    self.update(history=history)
                return

    # -- the result ---------------------------------------------------------------

    def plan(self) -> Plan:
        """Freeze the pass into a Plan: counters and conditions follow phase and reason."""
        if self.observed.next_available_in is not None:
            # A Ready pod passes minReadySeconds then: availability changes, look again.
            self.wake_in(self.observed.next_available_in)
        counts = [self._counts_after_plan(s) for s in self.observed.revisions.values()]
        self.update(
            observed_generation=self.rollout.metadata.generation,
            replicas=sum(current for current, _ready, _available in counts),
            selector=",".join(
                f"{key}={value}"
                for key, value in sorted(self.rollout.spec.pod_selector.match_labels.items())
            ),
            ready_replicas=sum(ready for _current, ready, _available in counts),
            available_replicas=sum(available for _current, _ready, available in counts),
            updated_replicas=self._counts_after_plan(self.state(self.revision))[0],
        )
        self._set_conditions()
        headers, mirrors = self._managed_routes()
        return Plan(
            replicas={rev: n for rev, n in sorted(self.replicas.items()) if n > 0},
            service_selectors=dict(sorted(self.selectors.items())),
            route_weights=(
                None if self.route_weights is None else dict(sorted(self.route_weights.items()))
            ),
            status=self.status,
            requeue_after=round(min(self.timers), 3) if self.timers else None,
            events=tuple(self.events),
            header_routes=headers,
            mirror_routes=mirrors,
        )

    def _counts_after_plan(self, state: RevisionState) -> tuple[int, int, int]:
        """A revision's pods (current, ready, available) as counted once this plan is
        applied: a ReplicaSet scaled down, by this plan or an earlier one, keeps at most
        its new size; the ReplicaSet controller deletes the rest (not-ready ones first),
        and deleted pods count as gone, as ``available`` already does. So the pass that
        scales a revision down writes the counts its pods' deletion leads to, and the
        passes their deletion triggers find nothing new to write. Pods are never
        counted before they exist: a scale-up shows when its pods do."""
        keep = min(state.desired, self.replicas.get(state.revision, 0))
        return (
            min(state.current, keep),
            min(state.ready, keep),
            min(state.available, keep),
        )

    def _managed_routes(self) -> tuple[tuple[HeaderRoute, ...], tuple[MirrorRoute, ...]]:
        """Header and mirror routes in force, wherever the router is written this pass
        (``strategies.managed_routes``: none once aborted or without a canary)."""
        canary = self.rollout.spec.strategy.canary
        if self.route_weights is None or canary is None:
            return (), ()
        status = self.status
        in_flight = status.canary_revision
        if in_flight == status.stable_revision:
            in_flight = None
        return in_force(
            canary,
            index=status.current_step_index or 0,
            canary=in_flight,
            aborted=bool(status.aborted),
        )

    def _set_conditions(self) -> None:
        status = self.status
        phase, reason, message = status.phase, status.reason, status.message
        conditions = list(status.conditions)
        generation = self.rollout.metadata.generation

        def put(type_: str, value: r.ConditionStatus, why: str, text: str) -> None:
            nonlocal conditions
            conditions = set_condition(
                conditions,
                type_,
                status=value,
                reason=why,
                message=text,
                now=self.now,
                generation=generation,
            )

        if phase is Phase.HEALTHY:
            put(ConditionType.PROGRESSING, "True", reason or r.HEALTHY, message)
        elif phase is Phase.PROGRESSING:
            put(ConditionType.PROGRESSING, "True", reason, message)
        elif phase is Phase.PAUSED:
            # As a paused Deployment: progress is neither happening nor failed.
            put(ConditionType.PROGRESSING, "Unknown", reason, message)
        else:
            put(ConditionType.PROGRESSING, "False", reason, message)
        paused = phase is Phase.PAUSED
        put(ConditionType.PAUSED, "True" if paused else "False", reason if paused else "", "")
        failed = phase in (Phase.DEGRADED, Phase.ROLLED_BACK)
        put(
            ConditionType.DEGRADED,
            "True" if failed else "False",
            reason if failed else "",
            message if failed else "",
        )
        available = status.available_replicas  # as counted once the plan is applied
        wanted = self.replicas_wanted
        put(
            ConditionType.AVAILABLE,
            "True" if available >= wanted else "False",
            r.HEALTHY if available >= wanted else r.WAITING_FOR_REPLICAS,
            f"{available} of {wanted} pods available",
        )
        self.update(conditions=conditions)
