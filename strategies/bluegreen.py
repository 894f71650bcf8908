"""The blue-green strategy: bring the new revision up beside the old one, check it,
switch the active Service at once, check again, and keep the old one up for a while.

Called by ``strategies.decide`` for Rollouts with ``strategy.blueGreen``. The stages,
kept in ``status.currentStepIndex`` with ``currentStepStartedAt`` marking when the
stage began:

====  ==================  ==========================================================
0     preview             new revision scaled to previewReplicaCount (or replicas)
                          behind previewService; active stays on the old revision
1     pre-promotion       prePromotionAnalysis runs; promotion waits for it and for
                          autoPromotionSeconds (counted from this stage's start: the
                          moment the preview became ready), or for ``promote`` when
                          autoPromotionEnabled is false (autoPromotionSeconds is then
                          ignored)
2     scale up            the new revision grows to ``replicas`` before it takes traffic
3     post-promotion      activeService selects the new revision; postPromotionAnalysis
                          runs; a failure switches activeService back at once (the old
                          revision is still up) and the phase is RolledBack
====  ==================  ==========================================================

Then the new revision is stable (Healthy) and the old one is scaled down after
scaleDownDelaySeconds. ``promote`` at stage 0 or 1 grants the promotion (the analysis
must still pass; an inconclusive one is accepted); ``promoteFull`` skips the
pre-promotion analysis too; at stage 3 either ends the post-promotion analysis early.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.api import BlueGreenStrategy
from controller.api import reasons as r
from controller.api.status import Phase
from strategies import common, runkeys
from strategies.context import Context
from strategies.judge import judge_run
from strategies.plan import Plan
from strategies.runkeys import RunKey

PREVIEW, PRE_PROMOTION, SCALE_UP, POST_PROMOTION = 0, 1, 2, 3


def plan_blue_green(ctx: Context) -> Plan:
    """Decide one pass of a blue-green rollout."""
    steps: tuple[Callable[[Context], bool], ...] = (
        common.reconcile_pause_clock,
        common.reconcile_first_deploy,
        common.reconcile_spec_paused,
        common.reconcile_stable,
        reconcile_new_revision,
        reconcile_requests,
        common.reconcile_pre_rollout,
        common.reconcile_on_abort,
        reconcile_aborted,
        reconcile_crash_loop,
        reconcile_preview,
        reconcile_pre_promotion,
        reconcile_scale_up,
        reconcile_post_promotion,
    )
    for step in steps:
        if step(ctx):
            break
    return ctx.plan()


def reconcile_new_revision(ctx: Context) -> bool:
    if common.start_new_revision(ctx):
        ctx.update(current_step_index=PREVIEW)
    return False


def reconcile_requests(ctx: Context) -> bool:
    """promote / promoteFull / abort / retry, each consumed once."""
    request = ctx.request
    if request is None:
        return False
    by, stage = request.by or "unknown", _stage(ctx)
    if request.action == "abort":
        if ctx.status.aborted:
            ctx.consume(request, note="already aborted")
            return False
        ctx.consume(request)
        common.abort(
            ctx, reason=r.ABORTED, message=f"aborted by {by} {_where(ctx)}", outcome="Aborted"
        )
        return False
    if request.action == "retry":
        if ctx.status.aborted:
            ctx.consume(request)
            common.retry(ctx, by=request.by)
            ctx.update(current_step_index=PREVIEW)
        else:
            inconclusive = [x.key for x in ctx.status.analysis_runs if x.phase == "Inconclusive"]
            ctx.consume(request, note="" if inconclusive else "nothing to retry")
            ctx.drop_runs(lambda run: run.phase != "Inconclusive")
        return False
    if ctx.status.aborted or request.action == "approve":
        ctx.consume(request, note=f"{request.action} does not apply {_where(ctx)}")
        return False
    ctx.consume(request)
    ctx.history_note(ctx.revision, f"{request.action} by {by} {_where(ctx)}")
    if stage == POST_PROMOTION:
        ctx.stop_running(runkeys.POST_PROMOTION)
        post = str(runkeys.POST_PROMOTION)
        ctx.drop_runs(lambda run: not (run.key == post and run.phase != "Successful"))
        ctx.event(r.PROMOTED, f"post-promotion analysis ended early by {by}")
        _finish(ctx)
        return True
    if request.action == "promoteFull" or _pre_run_phase(ctx) == "Inconclusive":
        ctx.stop_running(runkeys.PRE_PROMOTION)
        ctx.event(r.PROMOTED_FULL, f"promotion to {ctx.revision} forced by {by} {_where(ctx)}")
        _enter(ctx, SCALE_UP)
        return False
    ctx.update(approved_by=request.by or "unknown")
    ctx.event(r.PROMOTED, f"promotion of {ctx.revision} granted by {by}")
    return False


def reconcile_aborted(ctx: Context) -> bool:
    """Aborted or rolled back: active on the old revision at full size, new one at 0.

    After the switch (``promotedAt`` set) the active Service goes back only to an old
    revision that is fully available; until then (pods lost meanwhile) it stays on the
    new one and the old one is scaled up. ``promotedAt`` is cleared once it is back.
    """
    if not ctx.status.aborted:
        return False
    stable, wanted = _stable(ctx), ctx.replicas_wanted
    ctx.replicas[stable] = wanted
    common.keep_previous(ctx)
    if ctx.status.promoted_at is not None and ctx.status.canary_revision == ctx.revision:
        if ctx.state(stable).available < wanted:
            ctx.replicas[ctx.revision] = max(ctx.state(ctx.revision).desired, wanted)
            for service in common.services(ctx):
                ctx.selectors[service] = ctx.revision
            return True
        ctx.update(promoted_at=None)
    for service in common.services(ctx):
        ctx.selectors[service] = stable
    return True


def reconcile_crash_loop(ctx: Context) -> bool:
    new = ctx.state(ctx.revision)
    if not new.crash_looping:
        return False
    _fail(
        ctx,
        reason=r.CANARY_CRASH_LOOPING,
        message=f"revision {new.revision} is crash-looping ({new.restarts} restarts) {_where(ctx)}",
    )
    return True


def reconcile_preview(ctx: Context) -> bool:
    """Stage 0: the preview pods come up; the deadline runs from the revision's start."""
    if _stage(ctx) != PREVIEW:
        return False
    wanted, available = _preview_size(ctx), ctx.state(ctx.revision).available
    if available >= wanted:
        ctx.event(r.SCALED_UP, f"preview {ctx.revision}: {available}/{wanted} pods available")
        _enter(ctx, PRE_PROMOTION)
        return False
    if common.deadline_passed(ctx, since=ctx.status.current_step_started_at):
        _fail(
            ctx,
            reason=r.PROGRESS_DEADLINE_EXCEEDED,
            message=f"preview {ctx.revision}: {available}/{wanted} pods available after "
            f"{ctx.rollout.spec.progress_deadline_seconds}s",
        )
        return True
    ctx.set_phase(
        Phase.PROGRESSING,
        r.WAITING_FOR_REPLICAS,
        f"preview {ctx.revision}: {available}/{wanted} pods available",
    )
    _world(ctx)
    return True


def reconcile_pre_promotion(ctx: Context) -> bool:
    """Stage 1: prePromotionAnalysis, then automatic or manual promotion."""
    if _stage(ctx) != PRE_PROMOTION:
        return False
    spec = _spec(ctx)
    if spec.pre_promotion_analysis is not None:
        run = ctx.ensure_run(runkeys.PRE_PROMOTION, revision=ctx.revision)
        if _judge(ctx, runkeys.PRE_PROMOTION):
            return True
        if run.phase != "Successful":
            ctx.set_phase(
                Phase.PROGRESSING, r.ANALYSIS_RUNNING, "pre-promotion analysis running on preview"
            )
            _world(ctx)
            return True
    if ctx.status.approved_by is None:
        if not spec.auto_promotion_enabled:
            ctx.set_phase(
                Phase.PAUSED,
                r.AWAITING_PROMOTION,
                f"preview {ctx.revision} ready; waiting for `deployctl promote`",
            )
            _world(ctx)
            return True
        delay = spec.auto_promotion_seconds or 0
        if not ctx.wake_after(ctx.status.current_step_started_at, delay):
            ctx.set_phase(
                Phase.PAUSED,
                r.AWAITING_PROMOTION,
                f"preview {ctx.revision} ready; auto-promotion {delay}s after ready",
            )
            _world(ctx)
            return True
    _enter(ctx, SCALE_UP)
    return False


def reconcile_scale_up(ctx: Context) -> bool:
    """Stage 2: the new revision at full size before the switch; then switch active."""
    if _stage(ctx) != SCALE_UP:
        return False
    wanted, available = ctx.replicas_wanted, ctx.state(ctx.revision).available
    if available < wanted:
        if common.deadline_passed(ctx, since=ctx.status.current_step_started_at):
            _fail(
                ctx,
                reason=r.PROGRESS_DEADLINE_EXCEEDED,
                message=f"{ctx.revision}: {available}/{wanted} pods available for promotion",
            )
            return True
        ctx.set_phase(
            Phase.PROGRESSING,
            r.WAITING_FOR_REPLICAS,
            f"{ctx.revision}: {available}/{wanted} pods available before the switch",
        )
        _world(ctx)
        return True
    ctx.update(promoted_at=ctx.stamp)
    ctx.event(
        r.SERVICE_SWITCHED,
        f"{_spec(ctx).active_service} switched from {_stable(ctx)} to {ctx.revision}",
    )
    _enter(ctx, POST_PROMOTION)
    return False


def reconcile_post_promotion(ctx: Context) -> bool:
    """Stage 3: postPromotionAnalysis on live traffic; then the new revision is stable."""
    if _spec(ctx).post_promotion_analysis is not None:
        run = ctx.ensure_run(runkeys.POST_PROMOTION, revision=ctx.revision)
        if _judge(ctx, runkeys.POST_PROMOTION):
            return True
        if run.phase != "Successful":
            ctx.set_phase(Phase.PROGRESSING, r.ANALYSIS_RUNNING, "post-promotion analysis running")
            _world(ctx)
            return True
    hooks = common.post_promotion_hooks(ctx)
    if hooks is not None and hooks.phase != "Successful":
        failure = common.hook_failure(hooks)
        if failure is not None:
            _fail(ctx, reason=r.POST_PROMOTION_HOOK_FAILED, message=f"{failure} {_where(ctx)}")
            return True
        ctx.set_phase(Phase.PROGRESSING, r.HOOK_RUNNING, "postPromotion hook(s) running")
        _world(ctx)
        return True
    _finish(ctx)
    return True


# -- helpers ---------------------------------------------------------------------------


def _spec(ctx: Context) -> BlueGreenStrategy:
    spec = ctx.rollout.spec.strategy.blue_green
    assert spec is not None, "plan_blue_green is only called for blue-green rollouts"
    return spec


def _stage(ctx: Context) -> int:
    return ctx.status.current_step_index or 0


def _stable(ctx: Context) -> str:
    return ctx.status.stable_revision or ctx.revision


def _preview_size(ctx: Context) -> int:
    count = _spec(ctx).preview_replica_count
    return ctx.replicas_wanted if count is None else min(count, ctx.replicas_wanted)


def _where(ctx: Context) -> str:
    names = {PREVIEW: "preview", PRE_PROMOTION: "pre-promotion", SCALE_UP: "scale-up"}
    return f"at stage {names.get(_stage(ctx), 'post-promotion')}"


def _enter(ctx: Context, stage: int) -> None:
    ctx.update(current_step_index=stage, current_step_started_at=ctx.stamp)


def _pre_run_phase(ctx: Context) -> str | None:
    run = ctx.run(runkeys.PRE_PROMOTION, ctx.revision)
    return None if run is None else run.phase


def _world(ctx: Context) -> None:
    stable, stage = _stable(ctx), _stage(ctx)
    spec = _spec(ctx)
    ctx.replicas[stable] = ctx.replicas_wanted
    ctx.replicas[ctx.revision] = ctx.replicas_wanted if stage >= SCALE_UP else _preview_size(ctx)
    common.keep_previous(ctx)
    ctx.selectors[spec.active_service] = ctx.revision if stage == POST_PROMOTION else stable
    if spec.preview_service is not None:
        ctx.selectors[spec.preview_service] = ctx.revision


def _judge(ctx: Context, key: RunKey) -> bool:
    """The shared rule (``judge.judge_run``): before the switch the active Service never
    moved; after it, a failure switches it back (``_fail``). Waiting holds as it is."""
    return judge_run(
        ctx,
        ctx.run(key, ctx.revision),
        where=_where(ctx),
        fail=lambda message: _fail(ctx, reason=r.ANALYSIS_FAILED, message=message),
        hold=lambda: _world(ctx),
    )


def _fail(ctx: Context, *, reason: str, message: str) -> None:
    """Abort; after the switch the active Service goes back (the old revision is still
    up, so at once unless it lost pods): RolledBack."""
    switched = _stage(ctx) == POST_PROMOTION
    back = ""
    if switched:
        stable, active = _stable(ctx), _spec(ctx).active_service
        back = f"{active} switched back to {stable}"
        if ctx.state(stable).available < ctx.replicas_wanted:
            back = f"{active} switches back to {stable} once all its pods are available"
    common.abort(
        ctx, reason=reason, message=message + (f"; {back}" if back else ""), outcome="RolledBack"
    )
    if switched:
        ctx.update(phase=Phase.ROLLED_BACK)
        ctx.event(r.ROLLED_BACK, back)
    reconcile_aborted(ctx)


def _finish(ctx: Context) -> None:
    """The new revision is stable; the old one stays up for scaleDownDelaySeconds."""
    previous, delay = _stable(ctx), _spec(ctx).scale_down_delay_seconds
    message = f"revision {ctx.revision} promoted; {previous} scaled down in {delay}s"
    ctx.history_finish(ctx.revision, "Promoted", message)
    ctx.update(
        stable_revision=ctx.revision,
        canary_revision=None,
        previous_revision=previous,
        scale_down_at=ctx.later(delay),
        current_step_index=None,
        current_step_started_at=None,
    )
    ctx.event(r.PROMOTED, message)
    common.reconcile_stable(ctx)
