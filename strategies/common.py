"""Reconcile steps every strategy shares: first deploy, spec.paused, the settled state,
a new revision, abort, the progress deadline and the release hooks. (What an analysis
verdict does is ``judge.py``'s one rule.)

Called by ``canary.py``, ``bluegreen.py`` and ``rolling.py``. Each ``reconcile_*``
function returns True when the pass is finished (the Context holds the whole plan) and
False when the strategy should go on to its next step.

**spec.paused and timers.** When ``spec.paused`` is first seen, ``status.pausedAt`` is
stamped. While paused nothing advances and the world is held as observed (only an
``abort`` request is acted on; other requests wait). When the pause is lifted,
``currentStepStartedAt`` and ``revisionStartedAt`` move forward by the paused span, so
a timed pause step, an auto-promotion delay or the progress deadline counts only
unpaused time: a ``pause: 2m`` step paused after 30 s still waits 90 s after resuming.
Scale-down deadlines (``scaleDownAt``) are not moved: they concern a revision that is
no longer part of the rollout.
"""

from __future__ import annotations

from datetime import timedelta

from controller.api import reasons as r
from controller.api.status import AnalysisRunStatus, Phase, RevisionOutcome
from controller.times import parse_timestamp, timestamp
from strategies.context import Context
from strategies.judge import FAILED, run_evidence
from strategies.runkeys import (
    HOOK_ON_ABORT,
    HOOK_POST_PROMOTION,
    HOOK_PRE_ROLLOUT,
    RunKey,
    hooks_of,
)


def services(ctx: Context) -> list[str]:
    """Every Service the strategy names, in spec order."""
    return ctx.rollout.spec.strategy.service_names


def _others(ctx: Context) -> list[str]:
    """Revisions other than the desired one that still have (or want) pods."""
    return sorted(
        rev
        for rev, s in ctx.observed.revisions.items()
        if rev != ctx.revision and (s.desired or s.current or s.available)
    )


def reconcile_first_deploy(ctx: Context) -> bool:
    """No stable revision yet: the first deploy goes straight to 100%, no analysis.

    When status was lost but older ReplicaSets exist, the one with the most available
    pods is adopted as stable and the desired revision is rolled out from it.
    """
    if ctx.status.stable_revision is not None:
        return False
    others = _others(ctx)
    if others:
        adopted = max(others, key=lambda rev: (ctx.state(rev).available, rev))
        ctx.update(stable_revision=adopted)
        ctx.event(r.NEW_REVISION, f"adopted revision {adopted} as stable (no status found)")
        return False
    message = f"first deploy of revision {ctx.revision}: straight to 100%, no analysis"
    ctx.update(
        stable_revision=ctx.revision,
        canary_revision=None,
        weight=100,
        revision_started_at=ctx.stamp,
        current_step_index=None,
        current_step_started_at=None,
        phase=Phase.PROGRESSING,
        reason=r.FIRST_DEPLOY,
        message=message,
    )
    ctx.history_start(ctx.revision, message=message)
    ctx.history_finish(ctx.revision, "Promoted", message)
    ctx.event(r.FIRST_DEPLOY, message)
    return reconcile_stable(ctx)


def reconcile_pause_clock(ctx: Context) -> bool:
    """Stamp when spec.paused began; on resume, move step timers by the paused span."""
    paused_at = ctx.status.paused_at
    if ctx.rollout.spec.paused:
        if paused_at is None:
            ctx.update(paused_at=ctx.stamp)
            ctx.event(r.PAUSED, "spec.paused set: holding replicas, Services and weights")
        return False
    if paused_at is None:
        return False
    span = timedelta(seconds=max(ctx.elapsed(paused_at), 0.0))

    def shifted(stamp: str | None) -> str | None:
        return None if stamp is None else timestamp(parse_timestamp(stamp) + span)

    ctx.update(
        paused_at=None,
        current_step_started_at=shifted(ctx.status.current_step_started_at),
        revision_started_at=shifted(ctx.status.revision_started_at),
    )
    ctx.event(r.RESUMED, f"spec.paused unset after {int(span.total_seconds())}s; resuming")
    return False


def reconcile_spec_paused(ctx: Context) -> bool:
    """spec.paused on a rollout in flight: hold still. ReplicaSets keep their size;
    Services and the route are left as they are (not rewritten from a cache that may
    not yet show the last pass's changes)."""
    if not ctx.rollout.spec.paused or ctx.revision == ctx.status.stable_revision:
        return False
    if ctx.status.aborted and ctx.revision == ctx.status.canary_revision:
        # An aborted rollout is already at rest on stable; it keeps showing Degraded.
        return False
    request = ctx.request
    if request is not None and request.action == "abort":
        return False
    ctx.replicas.update(
        {rev: s.desired for rev, s in ctx.observed.revisions.items() if s.desired > 0}
    )
    ctx.set_phase(Phase.PAUSED, r.PAUSED, "spec.paused is set: nothing advances until unset")
    return True


def reconcile_stable(ctx: Context) -> bool:
    """The desired revision is the stable one: everything on it, old revisions scaled down.

    Also where a rollout lands when its template is reverted to the stable revision
    mid-rollout: the half-done canary is superseded and scaled to zero.
    """
    stable = ctx.status.stable_revision
    if stable is None or ctx.revision != stable:
        return False
    request = ctx.request
    if request is not None:
        # Consumed now, so that it cannot act on a later rollout by surprise.
        ctx.consume(request, note=f"nothing in progress: revision {stable} is stable")
    leftover = ctx.status.canary_revision
    if leftover is not None and leftover != stable:
        message = f"revision {leftover} superseded: the template is back to stable {stable}"
        ctx.history_finish(leftover, "Superseded", message)
        ctx.event(r.SUPERSEDED, message)
    if leftover is not None or ctx.status.aborted:
        ctx.drop_runs(lambda run: run.revision == stable)
        ctx.update(canary_revision=None, aborted=False, aborted_at=None)
    ctx.update(weight=100, approved_by=None)
    ctx.replicas[stable] = ctx.replicas_wanted
    keep_previous(ctx)
    for service in services(ctx):
        ctx.selectors[service] = stable
    if ctx.rollout.spec.strategy.canary and ctx.rollout.spec.strategy.canary.traffic_routing:
        ctx.route_weights = {stable: 100}
    available = ctx.state(stable).available
    wanted = ctx.replicas_wanted
    if ctx.rollout.spec.paused:
        ctx.set_phase(Phase.PAUSED, r.PAUSED, "spec.paused is set")
    elif available >= wanted:
        ctx.set_phase(
            Phase.HEALTHY, r.HEALTHY, f"revision {stable}: {available}/{wanted} available"
        )
    elif ctx.status.reason in (r.FIRST_DEPLOY, r.PROGRESS_DEADLINE_EXCEEDED):
        deadline = ctx.rollout.spec.progress_deadline_seconds
        if ctx.wake_after(ctx.status.revision_started_at, deadline):
            ctx.set_phase(
                Phase.DEGRADED,
                r.PROGRESS_DEADLINE_EXCEEDED,
                f"first deploy of {stable}: {available}/{wanted} pods available after "
                f"{deadline}s; there is no earlier revision to roll back to",
            )
        else:
            ctx.set_phase(
                Phase.PROGRESSING,
                r.FIRST_DEPLOY,
                f"revision {stable}: {available}/{wanted} available",
            )
    else:
        ctx.set_phase(
            Phase.PROGRESSING,
            r.WAITING_FOR_REPLICAS,
            f"revision {stable}: {available}/{wanted} pods available",
        )
    return True


def keep_previous(ctx: Context) -> None:
    """Keep the revision replaced by the last promotion up until its scale-down time, and
    beyond it while the stable revision is not fully available (it is the capacity
    users would otherwise lose)."""
    previous, due = ctx.status.previous_revision, ctx.status.scale_down_at
    if previous is None or previous in (ctx.status.stable_revision, ctx.status.canary_revision):
        return
    if due is not None and ctx.elapsed(due) < 0:
        ctx.replicas[previous] = ctx.replicas_wanted
        ctx.wake_in(-ctx.elapsed(due))
        return
    stable = ctx.state(ctx.status.stable_revision)
    if ctx.state(previous).desired > 0 and stable.available < ctx.replicas_wanted:
        ctx.replicas[previous] = ctx.state(previous).desired
        return
    ctx.update(previous_revision=None, scale_down_at=None)
    if ctx.state(previous).desired > 0:
        ctx.event(r.SCALED_DOWN, f"revision {previous} scaled down after the scale-down delay")


def start_new_revision(ctx: Context) -> bool:
    """A desired revision not seen before: start its rollout from step 0 (True if so).

    A half-done rollout of another revision is superseded (its history entry says so
    and its analysis runs stop); the stable revision is untouched.
    """
    status = ctx.status
    if ctx.revision in (status.stable_revision, status.canary_revision):
        return False
    previous = status.canary_revision
    if previous is not None and previous != status.stable_revision:
        message = f"revision {previous} superseded by {ctx.revision} before promotion"
        ctx.history_finish(previous, "Superseded", message)
        ctx.event(r.SUPERSEDED, message)
    ctx.history_start(ctx.revision, message=f"rolling out {ctx.revision}")
    restart(ctx)
    ctx.event(
        r.NEW_REVISION,
        f"new revision {ctx.revision} ({ctx.rollout.spec.strategy.name}); "
        f"stable stays {status.stable_revision}",
    )
    return True


def restart(ctx: Context) -> None:
    """Reset the per-rollout state: from step 0, no runs, no abort (new revision, retry)."""
    ctx.drop_runs(lambda _run: False)
    ctx.update(
        canary_revision=ctx.revision,
        current_step_index=0,
        current_step_started_at=ctx.stamp,
        revision_started_at=ctx.stamp,
        weight=0,
        aborted=False,
        aborted_at=None,
        approved_by=None,
        promoted_at=None,
        phase=Phase.PROGRESSING,
        reason=r.NEW_REVISION,
        message=f"rolling out revision {ctx.revision}",
    )


def retry(ctx: Context, *, by: str) -> None:
    """After an abort: a new history entry, and the rollout starts again from step 0."""
    ctx.history_start(ctx.revision, message=f"retry of {ctx.revision} requested by {by or '?'}")
    restart(ctx)
    ctx.event(r.RETRIED, f"retry of revision {ctx.revision} requested by {by or 'unknown'}")


def abort(ctx: Context, *, reason: str, message: str, outcome: RevisionOutcome) -> None:
    """Fail the rollout: Degraded with ``reason``; the strategy then restores stable."""
    ctx.update(
        aborted=True,
        aborted_at=ctx.stamp,
        phase=Phase.DEGRADED,
        reason=reason,
        message=message,
    )
    # Running runs stop; finished ones stay as the evidence of why.
    ctx.drop_runs(lambda run: run.phase not in ("Running", "Pending"))
    ctx.history_finish(ctx.status.canary_revision, outcome, message)
    ctx.event(reason, message, warning=True)


def deadline_passed(ctx: Context, *, since: str | None) -> bool:
    """True when ``progressDeadlineSeconds`` has passed since ``since`` (else a timer)."""
    return ctx.wake_after(since, ctx.rollout.spec.progress_deadline_seconds)


# -- hooks: the release workflow's Jobs (spec.hooks) --------------------------------------


def _hook_names(ctx: Context, key: RunKey) -> list[str]:
    return [h.name for h in hooks_of(ctx.rollout, key)]


def hold_on_stable(ctx: Context) -> None:
    """Everything on the stable revision, as before the new one appeared."""
    stable = ctx.status.stable_revision or ctx.revision
    ctx.replicas[stable] = ctx.replicas_wanted
    keep_previous(ctx)
    for service in services(ctx):
        ctx.selectors[service] = stable
    canary = ctx.rollout.spec.strategy.canary
    if canary is not None and canary.traffic_routing is not None:
        ctx.route_weights = {stable: 100}


def reconcile_pre_rollout(ctx: Context) -> bool:
    """preRollout hooks (migrations) run before the new revision gets a single pod.

    Until they succeed the world stays on stable; a failure aborts with the Job's
    evidence, and the strategy's aborted step keeps the new revision at 0 pods.
    """
    names = _hook_names(ctx, HOOK_PRE_ROLLOUT)
    status = ctx.status
    if not names or status.aborted or status.canary_revision != ctx.revision:
        return False
    if ctx.revision == status.stable_revision:
        return False
    run = ctx.ensure_run(HOOK_PRE_ROLLOUT, revision=ctx.revision)
    if run.phase == "Successful":
        return False
    if run.phase in (*FAILED, "Inconclusive"):
        abort(
            ctx,
            reason=r.PRE_ROLLOUT_HOOK_FAILED,
            message=f"preRollout hook failed: {run_evidence(run)}; revision {ctx.revision} "
            f"never started, {status.stable_revision} untouched",
            outcome="Aborted",
        )
        return False
    hold_on_stable(ctx)
    ctx.set_phase(
        Phase.PROGRESSING,
        r.HOOK_RUNNING,
        f"preRollout hook(s) {', '.join(names)} running; revision {ctx.revision} starts "
        "when they succeed",
    )
    return True


def post_promotion_hooks(ctx: Context) -> AnalysisRunStatus | None:
    """The postPromotion hooks' run for the new revision (started now); None without hooks."""
    if not _hook_names(ctx, HOOK_POST_PROMOTION):
        return None
    return ctx.ensure_run(HOOK_POST_PROMOTION, revision=ctx.revision)


def hook_failure(run: AnalysisRunStatus) -> str | None:
    """The evidence when a hook run failed (a Job failed or could not run), else None."""
    if run.phase in (*FAILED, "Inconclusive"):
        return f"postPromotion hook failed: {run_evidence(run)}"
    return None


def post_promotion_gate(ctx: Context, *, rollback: str, waiting: str) -> str:
    """The postPromotion hooks' say for canary and rolling: "passed" (none, or all
    succeeded), "failed" (aborted with the evidence; ``rollback`` says where traffic
    goes) or "running" (phase set to ``waiting``)."""
    hooks = post_promotion_hooks(ctx)
    if hooks is None or hooks.phase == "Successful":
        return "passed"
    failure = hook_failure(hooks)
    if failure is not None:
        abort(
            ctx,
            reason=r.POST_PROMOTION_HOOK_FAILED,
            message=f"{failure}; {rollback}",
            outcome="RolledBack",
        )
        return "failed"
    ctx.set_phase(Phase.PROGRESSING, r.HOOK_RUNNING, waiting)
    return "running"


def reconcile_on_abort(ctx: Context) -> bool:
    """onAbort hooks run once for each abort; their outcome goes in history."""
    names = _hook_names(ctx, HOOK_ON_ABORT)
    revision = ctx.status.canary_revision
    if not names or not ctx.status.aborted or revision is None:
        return False
    run = ctx.ensure_run(HOOK_ON_ABORT, revision=revision)
    if run.phase in ("Running", "Pending"):
        return False
    verdict = "succeeded" if run.phase == "Successful" else f"failed: {run_evidence(run)}"
    ctx.history_note_once(revision, f"onAbort hook(s) {', '.join(names)} {verdict}")
    return False
