"""The canary strategy: steps of setWeight / pause / analysis / approval, then promotion.

Called by ``strategies.decide`` for Rollouts with ``strategy.canary``. ``plan_canary``
is the table of contents: a row of reconcile steps, each finishing the pass early
when it has decided everything (see ``common.py`` for the shared ones).

State kept in status: ``canaryRevision``, ``currentStepIndex`` and
``currentStepStartedAt`` (the step being worked on and since when), ``weight`` (the
traffic the canary carries now), ``analysisRuns`` (``background`` and ``step-<i>``),
``aborted``. A step index equal to ``len(steps)`` means every step is done and the
canary is being scaled to full size before it becomes stable.

Rules worth knowing:

* A setWeight step first scales the canary for the new weight, and sets the weight
  (route weights, status.weight) only once those pods are available; a
  setHeaderRoute / setMirrorRoute step is done once a canary pod is available, and
  its route is then in force until a later step removes it, an abort, or promotion
  (``managed_routes.py``).
* By replica share (no trafficRouting, ``stableScale: share``) the weight is the
  canary's share of the pods: ``setWeight: w`` moves the canary toward
  ``round(w x replicas / 100)`` pods and the stable toward the rest, within
  maxSurge / maxUnavailable (``scaling.converge``), and the step is done once both
  are there and available. ``status.weight`` is the share the available pods give
  the canary, as users get it. An abort, a newer revision and the template going back
  to stable move the pods back the same way: the stable grows first and the canary
  shrinks within the budget. A change of ``replicas`` keeps the step's share of the new
  size (10 to 20 replicas at 10%: 1 / 9 becomes 2 / 18).
* A ``promote`` request ends the current step (a pause, an approval, an analysis);
  ``promoteFull`` skips to the end; ``approve`` ends an approval step and records who.
* What an analysis verdict does is ``judge.py``'s rule, the same in every strategy:
  Failed (or errored) aborts with the metric's message as evidence; Inconclusive
  pauses until ``retry`` or ``promote``; a provider that does not answer pauses and
  the rollout goes on by itself once it answers.
* Traffic goes back to stable (abort, a newer revision, the template reverted, retry)
  only onto stable pods that are available: with dynamicStableScale the canary keeps
  the share stable cannot carry yet while stable grows back, and all of it until
  stable's ReplicaSet has settled (the pods of its smaller spec are gone).
* ``baseline.enabled``: by replica share the baseline's pods come out of the stable's
  (``baseline.py``); behind a router they come on top, as many as the canary's, a
  setWeight step waits for both, and the route weights name the baseline (the canary's
  share, ``traffic.route_weights``) only while its pods are available.
* Every manual request is consumed exactly once, even when it does not apply (an
  event then says why it was ignored).
"""

from __future__ import annotations

from collections.abc import Callable

from controller.api import CanaryStep, CanaryStrategy
from controller.api import reasons as r
from controller.api.duration import format_duration
from controller.api.rollout import Pacing
from controller.api.status import Phase
from strategies import common
from strategies.baseline import baseline_revision, baseline_split
from strategies.context import Context
from strategies.judge import judge_run
from strategies.managed_routes import describe as describe_route
from strategies.pacing import decide_pace
from strategies.plan import Plan
from strategies.runkeys import BACKGROUND, RunKey
from strategies.scaling import Pods, converge, surge_and_unavailable
from strategies.traffic import (
    canary_replicas,
    replica_share_percent,
    route_weights,
    share_targets,
    stable_replicas,
)

Step = Callable[[Context], bool]


def plan_canary(ctx: Context) -> Plan:
    """Decide one pass of a canary rollout."""
    steps: tuple[Step, ...] = (
        common.reconcile_pause_clock,
        common.reconcile_first_deploy,
        common.reconcile_spec_paused,
        reconcile_stable_short,
        common.reconcile_stable,
        reconcile_new_revision,
        reconcile_requests,
        common.reconcile_pre_rollout,
        common.reconcile_on_abort,
        reconcile_aborted,
        reconcile_crash_loop,
        reconcile_background_analysis,
        reconcile_steps,
        reconcile_promotion,
    )
    for step in steps:
        if step(ctx):
            break
    return ctx.plan()


# -- the reconcile steps, in order ----------------------------------------------------


def reconcile_stable_short(ctx: Context) -> bool:
    """The template moved on (a newer revision, or back to stable) from a canary that
    carries traffic stable cannot take back yet (dynamicStableScale shrank it): the
    canary keeps its pods and that share while stable grows back; what comes next starts
    once stable can carry all the traffic. Traffic never lands on pods that are not there.
    """
    if _by_share(ctx):
        return _share_back_to_stable(ctx)
    status = ctx.status
    canary, stable = status.canary_revision, status.stable_revision
    if canary is None or stable is None or canary in (ctx.revision, stable):
        return False
    weight = _weight_stable_cannot_carry(ctx, stable)
    if weight == 0 or status.weight == 0:
        return False
    wanted = ctx.replicas_wanted
    ctx.update(weight=weight)
    ctx.replicas[stable] = wanted
    ctx.replicas[canary] = max(ctx.state(canary).desired, 1)
    common.keep_previous(ctx)
    for service in common.services(ctx):
        ctx.selectors[service] = _service_target(ctx, service)
    if _spec(ctx).traffic_routing is not None:
        ctx.route_weights = route_weights(stable=stable, canary=canary, weight=weight)
    ctx.set_phase(
        Phase.PROGRESSING,
        r.WAITING_FOR_REPLICAS,
        f"stable {stable}: {ctx.state(stable).available}/{wanted} pods available; canary "
        f"{canary} keeps {weight}% of traffic until stable can carry it, then "
        f"{ctx.revision} {'is stable again' if ctx.revision == stable else 'starts'}",
    )
    return True


def reconcile_new_revision(ctx: Context) -> bool:
    """A new revision starts at step 0; a half-done canary of another one is superseded."""
    if common.start_new_revision(ctx):
        _announce_step(ctx)
    return False


def reconcile_requests(ctx: Context) -> bool:
    """Act on a manual request (promote, promoteFull, abort, retry, approve) once."""
    request = ctx.request
    if request is None:
        return False
    by = request.by or "unknown"
    index, steps = _index(ctx), _spec(ctx).steps
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
        if (
            ctx.status.aborted
            and not _by_share(ctx)
            and _weight_stable_cannot_carry(ctx, _stable(ctx)) > 0
        ):
            # Step 0 carries no traffic: retry once stable has taken all of it back.
            return False
        if ctx.status.aborted:
            ctx.consume(request)
            common.retry(ctx, by=request.by)
            _announce_step(ctx)
        elif _inconclusive_runs(ctx):
            ctx.consume(request)
            ctx.drop_runs(lambda run: run.phase != "Inconclusive")
            ctx.event(r.RETRIED, f"inconclusive analysis restarted by {by} {_where(ctx)}")
        else:
            ctx.consume(request, note="nothing to retry: the rollout is not aborted")
        return False
    if ctx.status.aborted:
        ctx.consume(request, note="the rollout is aborted; use retry first")
        return False
    if request.action == "approve":
        if index < len(steps) and steps[index].kind == "approval":
            ctx.consume(request)
            ctx.update(approved_by=request.by)
            ctx.history_note(ctx.revision, f"step {index} approved by {by} at {ctx.stamp}")
            ctx.event(r.APPROVED, f"step {index} approved by {by}")
            _advance(ctx)
        else:
            ctx.consume(request, note=f"step {index} is not an approval step")
        return False
    if index >= len(steps):
        ctx.consume(request, note="every step is done; the canary is being promoted")
        return False
    ctx.consume(request)
    # Whatever was inconclusive is accepted by a promote; the background run restarts.
    background = str(BACKGROUND)
    ctx.drop_runs(lambda run: not (run.key == background and run.phase == "Inconclusive"))
    if request.action == "promoteFull":
        ctx.stop_running(RunKey.step(index))
        ctx.history_note(ctx.revision, f"promoted to the end by {by} at step {index}")
        ctx.event(r.PROMOTED_FULL, f"promoted to the end by {by} at step {index}")
        ctx.update(current_step_index=len(steps), current_step_started_at=ctx.stamp)
        return False
    ctx.history_note(ctx.revision, f"step {index} promoted by {by}")
    ctx.event(r.PROMOTED, f"step {index} ({_describe(steps[index])}) promoted by {by}")
    _advance(ctx)
    return False


def reconcile_aborted(ctx: Context) -> bool:
    """An aborted canary: all traffic on stable, canary at 0, until retry or new revision.

    Traffic goes back only onto stable pods that are available: while stable is short
    (it shrank with dynamicStableScale, or pods are not Ready yet) the canary keeps its
    pods and the share of traffic stable cannot carry yet.
    """
    if not ctx.status.aborted:
        return False
    spec, wanted = _spec(ctx), ctx.replicas_wanted
    stable, canary = _stable(ctx), ctx.status.canary_revision
    if _by_share(ctx):
        _share_world(ctx, canary=canary, stable=stable, weight=0)
        for service in common.services(ctx):
            ctx.selectors[service] = (
                stable if ctx.status.weight == 0 else _service_target(ctx, service)
            )
        return True
    weight = _weight_stable_cannot_carry(ctx, stable)
    ctx.update(weight=weight)
    ctx.replicas[stable] = wanted
    if weight and canary:
        ctx.replicas[canary] = ctx.state(canary).desired
    common.keep_previous(ctx)
    for service in common.services(ctx):
        ctx.selectors[service] = stable if weight == 0 else _service_target(ctx, service)
    if spec.traffic_routing is not None:
        ctx.route_weights = route_weights(stable=stable, canary=canary, weight=weight)
    return True


def _weight_stable_cannot_carry(ctx: Context, stable: str) -> int:
    """The canary's weight after an abort: what it carries now, less what stable's
    available pods can take back (0 once stable is fully available).

    Nothing moves back while stable's ReplicaSet is not settled: a stable just shrunk
    for the canary's weight and grown straight back may still be losing pods to the
    smaller spec, and the pod cache can show them Ready after they were deleted.
    """
    wanted, weight = ctx.replicas_wanted, ctx.status.weight
    state = ctx.state(stable)
    if not state.settled:
        return weight
    available = state.available
    if available >= wanted or not wanted:
        return 0
    carried = 100 * available // wanted  # stable's share that its pods can serve
    return max(0, min(weight, 100 - carried))


def reconcile_crash_loop(ctx: Context) -> bool:
    """A crash-looping canary is aborted at once: waiting for a deadline helps nobody."""
    canary = ctx.state(ctx.status.canary_revision)
    if not canary.crash_looping:
        return False
    common.abort(
        ctx,
        reason=r.CANARY_CRASH_LOOPING,
        message=f"canary revision {canary.revision} is crash-looping ({canary.restarts} "
        f"restarts) {_where(ctx)}",
        outcome="RolledBack",
    )
    return reconcile_aborted(ctx)


def reconcile_background_analysis(ctx: Context) -> bool:
    """spec.analysis runs for the whole canary; it can abort or pause any step."""
    if ctx.rollout.spec.analysis is None:
        return False
    canary = ctx.status.canary_revision or ctx.revision
    ctx.ensure_run(BACKGROUND, revision=canary)
    return _judge(ctx, BACKGROUND)


def reconcile_steps(ctx: Context) -> bool:
    """Work through the steps from the current one; finish the pass at the first that waits."""
    steps = _spec(ctx).steps
    while _index(ctx) < len(steps):
        step = steps[_index(ctx)]
        handler = _STEP_HANDLERS[step.kind]
        if not handler(ctx, step):
            if not ctx.status.aborted:
                _world(ctx)
            return True
        _advance(ctx)
    return False


def reconcile_promotion(ctx: Context) -> bool:
    """Every step done: scale the canary to full size, then make it the stable revision."""
    canary, wanted = ctx.status.canary_revision or ctx.revision, ctx.replicas_wanted
    available = ctx.state(canary).available
    if available < wanted:
        moved = False
        if _by_share(ctx):
            _share_world(ctx, canary=canary, stable=_stable(ctx), weight=100)
            moved = _share_moved(ctx)
        if moved:
            ctx.update(current_step_started_at=ctx.stamp)
        if _deadline(ctx, f"canary {canary}: {available}/{wanted} pods available for promotion"):
            return True
        ctx.set_phase(
            Phase.PROGRESSING,
            r.WAITING_FOR_REPLICAS,
            f"all steps done; canary {canary}: {available}/{wanted} pods available",
        )
        _world(ctx)
        return True
    hooks = common.post_promotion_gate(
        ctx,
        rollback=f"traffic back on {_stable(ctx)}",
        waiting=f"all steps done; canary {canary} at full size; postPromotion hook(s) running",
    )
    if hooks == "failed":
        return reconcile_aborted(ctx)
    if hooks == "running":
        _world(ctx)
        return True
    previous = ctx.status.stable_revision
    message = f"revision {canary} promoted to stable after {len(_spec(ctx).steps)} step(s)"
    # Promoted in the pass that finished the steps: the canary was at full size already,
    # and the promotion's Event says all the steps were done.
    ctx.retract(r.STEP_STARTED, _all_steps_done(ctx))
    ctx.stop_running(BACKGROUND)
    ctx.history_finish(canary, "Promoted", message)
    ctx.update(stable_revision=canary, canary_revision=None, weight=100)
    if _by_share(ctx):
        # By replica share the old stable gave its pods up on the way to 100%: nothing
        # is kept to switch back to (as Argo Rollouts' basic canary).
        ctx.update(previous_revision=None, scale_down_at=None)
        ctx.event(r.PROMOTED, f"{message}; {previous} scaled down")
        return common.reconcile_stable(ctx)
    delay = _spec(ctx).scale_down_delay_seconds
    ctx.update(previous_revision=previous, scale_down_at=ctx.later(delay))
    ctx.event(r.PROMOTED, f"{message}; {previous} kept for {delay}s")
    return common.reconcile_stable(ctx)


# -- one function per step kind; True when the step is done --------------------------


def _set_weight(ctx: Context, step: CanaryStep) -> bool:
    weight = step.set_weight or 0
    canary = ctx.status.canary_revision or ctx.revision
    if _by_share(ctx):
        return _set_share(ctx, weight, canary)
    needed = _canary_pods(ctx, weight)
    available = ctx.state(canary).available
    short = _baseline_short(ctx, needed)
    if available >= needed and short is None:
        ctx.update(weight=weight if _routed(ctx) else _full_share(ctx, canary, pods=needed))
        beside = " (and as many baseline)" if _routed(ctx) and _spec(ctx).baseline_enabled else ""
        ctx.event(
            r.WEIGHT_SET,
            f"step {_index(ctx)}: weight {weight}% with {available} canary pod(s) "
            f"available{beside}",
        )
        return True
    lacking = f", {short} pods available" if short else ""
    if _deadline(
        ctx, f"canary {canary}: {available}/{needed} pods available{lacking} for {weight}%"
    ):
        return False
    ctx.set_phase(
        Phase.PROGRESSING,
        r.WAITING_FOR_REPLICAS,
        f"step {_index(ctx)} setWeight {weight}: canary {available}/{needed} pods "
        f"available{lacking}",
    )
    return False


def _set_share(ctx: Context, weight: int, canary: str) -> bool:
    """setWeight by replica share: done once the canary and the stable are at their
    counts for ``weight`` with those pods available."""
    stable = _stable(ctx)
    pods, stable_pods, baseline_pods = _share_targets(
        ctx, weight, canary=None if canary == stable else canary
    )
    if _share_world(ctx, canary=canary, stable=stable, weight=weight):
        beside = f", {baseline_pods} baseline" if baseline_pods else ""
        ctx.event(
            r.WEIGHT_SET,
            f"step {_index(ctx)}: {pods} canary{beside} and {stable_pods} stable pod(s) "
            f"available, {ctx.status.weight}% of the traffic (setWeight {weight})",
        )
        return True
    available = f"{ctx.state(canary).available}/{pods}"
    if _share_moved(ctx):
        # The deadline is for progress, as a rolling update's: a move of many pods
        # within the budget takes many passes, each one a step forward.
        ctx.update(current_step_started_at=ctx.stamp)
    if _deadline(
        ctx,
        f"canary {canary}: {available} pods available, stable "
        f"{ctx.state(stable).available}/{stable_pods}, for {weight}%",
    ):
        return False
    ctx.set_phase(
        Phase.PROGRESSING,
        r.WAITING_FOR_REPLICAS,
        f"step {_index(ctx)} setWeight {weight}: canary {available}, "
        f"stable {ctx.state(stable).available}/{stable_pods} pods available",
    )
    return False


PACE_RECHECK = 15.0
"""Seconds between counts of the canary's requests while a paced step waits."""


def _pause(ctx: Context, step: CanaryStep) -> bool:
    if step.pause is not None and step.pause.until_requests is not None:
        return _paced(ctx, step.pause)
    duration = step.pause.duration if step.pause else None
    if duration is None:
        ctx.set_phase(
            Phase.PAUSED, r.PAUSE_STEP, f"step {_index(ctx)}: paused until `deployctl promote`"
        )
        return False
    if ctx.wake_after(ctx.status.current_step_started_at, duration):
        return True
    left = duration - ctx.elapsed(ctx.status.current_step_started_at)
    ctx.set_phase(
        Phase.PAUSED, r.PAUSE_STEP, f"step {_index(ctx)}: pause {duration:g}s, {left:g}s left"
    )
    return False


def _paced(ctx: Context, pause: Pacing) -> bool:
    """A pause or analysis step waiting until the canary served ``untilRequests``
    (``strategies.pacing``)."""
    assert pause.until_requests is not None
    count = ctx.observed.canary_requests
    if count is not None and count.step != _index(ctx):
        count = None  # counted for another step: not evidence for this one
    decision = decide_pace(
        count,
        until_requests=pause.until_requests,
        elapsed=ctx.elapsed(ctx.status.current_step_started_at),
        max_duration=pause.max_duration,
        no_traffic_after=pause.no_traffic_after,
    )
    where = f"step {_index(ctx)}"
    if decision.done:
        ctx.event(r.PAUSE_STEP, f"{where}: {decision.message}")
        return True
    reason = {
        "timedOut": r.REQUESTS_TIMED_OUT,
        "noTraffic": r.NO_CANARY_TRAFFIC,
    }.get(decision.state, r.WAITING_FOR_REQUESTS)
    ctx.set_phase(Phase.PAUSED, reason, f"{where}: {decision.message}")
    if decision.state != "timedOut":
        ctx.wake_in(PACE_RECHECK)
    return False


def _analysis(ctx: Context, step: CanaryStep) -> bool:
    key = RunKey.step(_index(ctx))
    canary = ctx.status.canary_revision or ctx.revision
    run = ctx.ensure_run(key, revision=canary, what=_describe(step))
    if _judge(ctx, key):
        return False
    if run.phase == "Successful":
        paced = step.analysis
        # A passing run is not enough on a paced step: the canary must also have served
        # untilRequests (never promoted on the evidence of no traffic).
        if paced is not None and paced.until_requests is not None and not _paced(ctx, paced):
            return False
        ctx.event(r.ANALYSIS_SUCCESSFUL, f"analysis {key} passed {_where(ctx)}")
        return True
    ctx.set_phase(
        Phase.PROGRESSING, r.ANALYSIS_RUNNING, f"step {_index(ctx)}: {_describe(step)} running"
    )
    return False


def _approval(ctx: Context, step: CanaryStep) -> bool:
    groups = ", ".join(step.approval.groups) if step.approval and step.approval.groups else ""
    who = f" from {groups}" if groups else ""
    ctx.set_phase(
        Phase.PAUSED,
        r.AWAITING_APPROVAL,
        f"step {_index(ctx)}: waiting for `deployctl approve`{who}",
    )
    return False


def _set_managed_route(ctx: Context, step: CanaryStep) -> bool:
    """setHeaderRoute / setMirrorRoute: in force from the moment the step is done
    (``strategies.managed_routes``), which is once a canary pod can take the requests."""
    route = step.managed_route
    assert route is not None
    canary = ctx.status.canary_revision or ctx.revision
    available = ctx.state(canary).available
    if not route.match or available >= 1:
        ctx.event(r.ROUTE_SET, f"step {_index(ctx)}: {describe_route(route)}")
        return True
    if _deadline(ctx, f"canary {canary}: no pod available for {describe_route(route)}"):
        return False
    ctx.set_phase(
        Phase.PROGRESSING,
        r.WAITING_FOR_REPLICAS,
        f"step {_index(ctx)} {step.kind} {route.name}: waiting for a canary pod",
    )
    return False


_STEP_HANDLERS: dict[str, Callable[[Context, CanaryStep], bool]] = {
    "setWeight": _set_weight,
    "pause": _pause,
    "analysis": _analysis,
    "approval": _approval,
    "setHeaderRoute": _set_managed_route,
    "setMirrorRoute": _set_managed_route,
}


# -- helpers ---------------------------------------------------------------------------


def _spec(ctx: Context) -> CanaryStrategy:
    spec = ctx.rollout.spec.strategy.canary
    assert spec is not None, "plan_canary is only called for canary rollouts"
    return spec


def _index(ctx: Context) -> int:
    return ctx.status.current_step_index or 0


def _stable(ctx: Context) -> str:
    return ctx.status.stable_revision or ctx.revision


def _canary_pods(ctx: Context, weight: int) -> int:
    return canary_replicas(
        weight, ctx.replicas_wanted, routed=_spec(ctx).traffic_routing is not None
    )


def _advance(ctx: Context) -> None:
    """Leave the current step for the next one, whose clock starts now."""
    ctx.update(current_step_index=_index(ctx) + 1, current_step_started_at=ctx.stamp)
    _announce_step(ctx)


def _announce_step(ctx: Context) -> None:
    steps, index = _spec(ctx).steps, _index(ctx)
    if index < len(steps):
        ctx.event(r.STEP_STARTED, f"step {index}: {_describe(steps[index])}")
    else:
        ctx.event(r.STEP_STARTED, _all_steps_done(ctx))


def _all_steps_done(ctx: Context) -> str:
    return f"all {len(_spec(ctx).steps)} step(s) done; scaling the canary to full"


def _describe(step: CanaryStep) -> str:
    """The step as a person writes it: 'setWeight 10', 'pause 2m', 'analysis http-health'."""
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.pause is not None:
        if step.pause.until_requests is not None:
            return f"pause until {step.pause.until_requests:,} canary requests"
        if step.pause.duration is None:
            return "pause until promote"
        return f"pause {format_duration(step.pause.duration)}"
    if step.analysis is not None:
        names = "analysis " + ", ".join(t.name for t in step.analysis.templates)
        if step.analysis.until_requests is not None:
            return f"{names} until {step.analysis.until_requests:,} canary requests"
        return names
    if step.managed_route is not None:
        return describe_route(step.managed_route)
    groups = step.approval.groups if step.approval else []
    return "approval" + (f" by {', '.join(groups)}" if groups else "")


def _where(ctx: Context) -> str:
    return f"at step {_index(ctx)} (weight {ctx.status.weight}%)"


def _inconclusive_runs(ctx: Context) -> list[str]:
    canary = ctx.status.canary_revision
    return [
        run.key
        for run in ctx.status.analysis_runs
        if run.revision == canary and run.phase == "Inconclusive"
    ]


def _judge(ctx: Context, key: RunKey) -> bool:
    """The shared rule (``judge.judge_run``): a canary aborts to stable, or holds as it is."""

    def fail(message: str) -> None:
        common.abort(ctx, reason=r.ANALYSIS_FAILED, message=message, outcome="RolledBack")
        reconcile_aborted(ctx)

    def hold() -> None:
        _world(ctx)

    return judge_run(ctx, ctx.run(key), where=_where(ctx), fail=fail, hold=hold)


def _deadline(ctx: Context, what: str) -> bool:
    """Abort when the current step has waited past progressDeadlineSeconds for pods."""
    if not common.deadline_passed(ctx, since=ctx.status.current_step_started_at):
        return False
    seconds = ctx.rollout.spec.progress_deadline_seconds
    common.abort(
        ctx,
        reason=r.PROGRESS_DEADLINE_EXCEEDED,
        message=f"{what} after {seconds}s {_where(ctx)}",
        outcome="RolledBack",
    )
    reconcile_aborted(ctx)
    return True


def _world(ctx: Context) -> None:
    """Replicas, selectors and route weights for the canary as it stands this pass."""
    spec, wanted = _spec(ctx), ctx.replicas_wanted
    stable, canary = _stable(ctx), ctx.status.canary_revision or ctx.revision
    if _by_share(ctx):
        _share_world(ctx, canary=canary, stable=stable, weight=_share_weight(ctx))
        for service in common.services(ctx):
            ctx.selectors[service] = _service_target(ctx, service)
        return
    if not _routed(ctx):
        # stableScale: full: the stable keeps every pod, the canary's come on top.
        pods = canary_replicas(_share_weight(ctx), wanted, routed=False)
        ctx.replicas[stable] = wanted
        ctx.replicas[canary] = wanted if _index(ctx) >= len(spec.steps) else pods
        common.keep_previous(ctx)
        for service in common.services(ctx):
            ctx.selectors[service] = _service_target(ctx, service)
        if not ctx.status.aborted:
            ctx.update(weight=_full_share(ctx, canary, pods=ctx.replicas[canary]))
        return
    weight, steps, index = ctx.status.weight, spec.steps, _index(ctx)
    # Pods for the weight being set now (scaled before traffic moves), else the current one.
    target = weight
    if index >= len(steps):
        pods = wanted
    else:
        if steps[index].set_weight is not None:
            target = max(weight, steps[index].set_weight or 0)
        pods = _canary_pods(ctx, target)
    ctx.replicas[stable] = stable_replicas(weight, wanted, dynamic=spec.dynamic_stable_scale)
    ctx.replicas[canary] = pods
    baseline = _routed_baseline(ctx, stable, canary, pods=_canary_pods(ctx, target))
    common.keep_previous(ctx)
    for service in common.services(ctx):
        ctx.selectors[service] = _service_target(ctx, service)
    if spec.traffic_routing is not None:
        ctx.route_weights = route_weights(
            stable=stable, canary=canary, weight=weight, baseline=baseline
        )


def _routed_baseline(ctx: Context, stable: str, canary: str, *, pods: int) -> str | None:
    """With ``baseline.enabled`` behind a router: as many baseline pods as the canary
    has for the weight being set (``pods``), on top of the stable's; the baseline's
    revision when its pods can take their share of the traffic now, else None (the
    router then sends it nothing, and drops it once the plan has no baseline pods)."""
    if not _spec(ctx).baseline_enabled or canary == stable:
        return None
    revision = baseline_revision(stable)
    ctx.replicas[revision] = pods
    needed = _canary_pods(ctx, ctx.status.weight)
    return revision if ctx.state(revision).available >= needed else None


def _baseline_short(ctx: Context, needed: int) -> str | None:
    """Behind a router, what the baseline still lacks for a weight whose canary needs
    ``needed`` pods (it takes traffic with the canary, so the step waits for both)."""
    if not (_routed(ctx) and _spec(ctx).baseline_enabled):
        return None
    available = ctx.state(baseline_revision(_stable(ctx))).available
    return None if available >= needed else f"baseline {available}/{needed}"


def _service_target(ctx: Context, service: str) -> str:
    spec = _spec(ctx)
    if service == spec.canary_service:
        return ctx.status.canary_revision or _stable(ctx)
    return _stable(ctx)


# -- by replica share ------------------------------------------------------------------


def _routed(ctx: Context) -> bool:
    return _spec(ctx).traffic_routing is not None


def _full_share(ctx: Context, canary: str, *, pods: int) -> int:
    """With ``stableScale: full``: the share the canary's available pods (at most
    ``pods``) get beside the stable's."""
    stable = ctx.state(_stable(ctx))
    serving = min(ctx.state(canary).available, pods)
    return replica_share_percent(serving, min(stable.available, ctx.replicas_wanted))


def _by_share(ctx: Context) -> bool:
    """Traffic follows the pods and the stable gives up the canary's share of them."""
    spec = _spec(ctx)
    return spec.traffic_routing is None and spec.stable_scale == "share"


def _share_weight(ctx: Context) -> int:
    """The weight the pods head for: the setWeight step being worked on, else the last
    one done (0 before the first), 100 once every step is done, 0 after an abort."""
    if ctx.status.aborted:
        return 0
    steps, index = _spec(ctx).steps, _index(ctx)
    if index >= len(steps):
        return 100
    return max((s.set_weight or 0 for s in steps[: index + 1]), default=0)


def _share_world(ctx: Context, *, canary: str | None, stable: str, weight: int) -> bool:
    """Move the pods one pass toward ``weight`` percent on ``canary`` by replica share
    (every other revision toward 0), set status.weight to the share the available pods
    give the canary, and say whether the counts are reached with their pods available.
    """
    spec, wanted = _spec(ctx), ctx.replicas_wanted
    if canary == stable:
        canary = None
    canary_pods, stable_pods, baseline_pods = _share_targets(ctx, weight, canary=canary)
    targets = {stable: stable_pods, **({canary: canary_pods} if canary else {})}
    order = [stable, *([canary] if canary else [])]
    if baseline_pods:
        # Out of the stable's pods, beside the canary; least important (baseline.py).
        targets[baseline_revision(stable)] = baseline_pods
        order.append(baseline_revision(stable))
    surge, unavailable = surge_and_unavailable(
        spec.max_surge, spec.max_unavailable, replicas=wanted
    )
    involved = {
        rev: state
        for rev, state in ctx.observed.revisions.items()
        if rev in targets or state.desired > 0 or state.current > 0
    }
    # No availability is spent while a ReplicaSet controller has not acted on what we
    # asked, nor while one is still deleting pods of a smaller spec (not settled): the
    # Ready pods in view may be ones that are going away. Look again shortly.
    synced = all(state.synced and state.settled for state in involved.values())
    if not synced:
        ctx.wake_in(1.0)
    desired = converge(
        replicas=wanted,
        # One replica split between two revisions needs a second pod whatever the surge.
        surge=surge + max(0, canary_pods + stable_pods - wanted),
        unavailable=unavailable,
        targets=targets,
        pods={rev: Pods(s.desired, s.available, s.current) for rev, s in involved.items()},
        order=order,
        synced=synced,
    )
    ctx.replicas.update(desired)
    common.keep_previous(ctx)

    def serving(rev: str) -> int:
        return min(ctx.state(rev).available, ctx.replicas.get(rev, 0))

    on_canary = serving(canary) if canary else 0
    others = sum(serving(rev) for rev in ctx.replicas if rev != canary)
    ctx.update(weight=replica_share_percent(on_canary, others))
    kept = ctx.status.previous_revision  # kept for its scale-down delay by its own rule
    at_targets = all(ctx.replicas.get(rev, 0) == n for rev, n in targets.items()) and not any(
        n for rev, n in ctx.replicas.items() if rev not in targets and rev != kept
    )
    available = all(ctx.state(rev).available >= n for rev, n in targets.items())
    return at_targets and available


def _share_targets(ctx: Context, weight: int, *, canary: str | None) -> tuple[int, int, int]:
    """(canary, stable, baseline) pods for ``weight`` by replica share: the baseline,
    when enabled, out of the stable's pods (``baseline.py``)."""
    wanted = ctx.replicas_wanted
    if canary is None:
        return 0, wanted, 0
    canary_pods, stable_pods = share_targets(weight, wanted)
    if not _spec(ctx).baseline_enabled:
        return canary_pods, stable_pods, 0
    baseline_pods, stable_pods = baseline_split(canary_pods, stable_pods)
    return canary_pods, stable_pods, baseline_pods


def _share_moved(ctx: Context) -> bool:
    """Whether this pass's plan changes any ReplicaSet's size."""
    revisions = set(ctx.observed.revisions) | set(ctx.replicas)
    return any(ctx.replicas.get(rev, 0) != ctx.state(rev).desired for rev in revisions)


def _share_back_to_stable(ctx: Context) -> bool:
    """The template went back to stable while a canary by replica share had taken part
    of the pods: the stable grows back within the budget before the canary goes (the
    canary's pods serve meanwhile); once the stable is whole, ``reconcile_stable``."""
    status = ctx.status
    stable = status.stable_revision
    if stable is None or ctx.revision != stable:
        return False
    wanted = ctx.replicas_wanted
    leftovers = [
        rev for rev, s in ctx.observed.revisions.items() if rev != stable and s.desired > 0
    ]
    if not leftovers or ctx.state(stable).available >= wanted:
        return False
    superseded = status.canary_revision
    if superseded is not None and superseded != stable:
        message = f"revision {superseded} superseded: the template is back to stable {stable}"
        ctx.history_finish(superseded, "Superseded", message)
        ctx.event(r.SUPERSEDED, message)
        ctx.drop_runs(lambda run: run.revision == stable)
        ctx.update(canary_revision=None, aborted=False, aborted_at=None)
    _share_world(ctx, canary=None, stable=stable, weight=0)
    for service in common.services(ctx):
        ctx.selectors[service] = stable
    ctx.set_phase(
        Phase.PROGRESSING,
        r.WAITING_FOR_REPLICAS,
        f"back to stable {stable}: {ctx.state(stable).available}/{wanted} pods available",
    )
    return True
