"""The rolling strategy: the new revision grows and the old ones shrink within
maxSurge / maxUnavailable, counting only available pods, with optional analysis gates.

Called by ``strategies.decide`` for Rollouts with ``strategy.rolling`` and by
``preview.py``. The arithmetic (``resolve``, ``surge_and_unavailable``,
``rolling_update``) is pure and table-tested; ``plan_rolling`` is the table of contents.

Rounding is Kubernetes': a percentage maxSurge rounds up, a percentage maxUnavailable
rounds down, and when both come to 0 maxUnavailable becomes 1 so something can move.

Worked example, replicas 4, maxSurge 25% (= 1), maxUnavailable 25% (= 1), pods
becoming available one pass after they are asked for:

====  ==============  ==============  =========================================
pass  new (avail)     old (avail)     why
====  ==============  ==============  =========================================
1     0 -> 1 (0)      4 -> 3 (4)      surge room 1; 4 available may lose 1
2     1 -> 2 (1)      3 -> 2 (3)      4 available, minimum 3: one old may go
3     2 -> 3 (2)      2 -> 1 (2)
4     3 -> 4 (3)      1 -> 0 (1)
5     4 (4)           0               done: the new revision is stable
====  ==============  ==============  =========================================

A gate at ``atPercent: 50`` caps the new revision at ceil(50% x replicas) pods (old
revisions keep the rest) until the ``gate-50`` analysis succeeds. ``abort`` (or a
failed gate, a crash loop, the progress deadline) rolls back the same way with the
roles swapped: the old stable grows back to ``replicas`` and the new one shrinks, still
within maxSurge / maxUnavailable. ``promote`` accepts the current gate, ``promoteFull``
all of them.

Progress deadline: a pass that changes no replica count while the new revision still
has unavailable pods is waiting; if it waits longer than progressDeadlineSeconds since
the last change (``currentStepStartedAt``) the rollout is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controller.api import RollingStrategy
from controller.api import reasons as r
from controller.api.status import AnalysisRunStatus, Phase
from strategies import common
from strategies.context import Context
from strategies.judge import judge_run
from strategies.observed import RevisionState
from strategies.plan import Plan
from strategies.runkeys import RunKey
from strategies.traffic import share


def resolve(value: int | str, total: int, *, round_up: bool) -> int:
    """An int-or-percent against ``total``, rounded the Kubernetes way.

    >>> resolve("25%", 10, round_up=True), resolve("25%", 10, round_up=False)
    (3, 2)
    >>> resolve(3, 10, round_up=True), resolve("1%", 10, round_up=True)
    (3, 1)
    """
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    return (percent * total + 99) // 100 if round_up else (percent * total) // 100


def surge_and_unavailable(
    max_surge: int | str, max_unavailable: int | str, *, replicas: int
) -> tuple[int, int]:
    """(surge, unavailable) in pods; never both 0.

    >>> surge_and_unavailable("25%", "25%", replicas=10)
    (3, 2)
    >>> surge_and_unavailable("0%", "10%", replicas=5)
    (0, 1)
    """
    surge = resolve(max_surge, replicas, round_up=True)
    unavailable = resolve(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass(frozen=True)
class Pods:
    """A ReplicaSet as the arithmetic sees it: desired pods (its spec), available pods
    and pods not terminating (``current``), as ``controller.observe`` counts them."""

    desired: int
    available: int
    current: int = 0

    @property
    def counted(self) -> int:
        """Available pods that will stay: never more than ``desired`` (a shrinking
        ReplicaSet's extra pods are going away, whatever their state)."""
        return min(self.desired, self.available)

    @property
    def footprint(self) -> int:
        """Pods it has or is about to have: its extra pods are still there until deleted."""
        return max(self.desired, self.current)


def rolling_update(
    *,
    replicas: int,
    target: int,
    surge: int,
    unavailable: int,
    new: Pods,
    old: Sequence[tuple[str, Pods]],
    synced: bool = True,
) -> tuple[int, dict[str, int]]:
    """One pass: (new desired, {old revision: desired}) moving ``new`` toward ``target``.

    As the Deployment controller: the pods that exist or are about to (``footprint``)
    stay at or below ``replicas + surge``; the available pods that will stay
    (``counted``) stay at or above ``replicas - unavailable``. ``old`` is in scale-down
    order (the first loses pods first). Old revisions keep at least ``replicas -
    target`` pods between them, so a gate holding ``new`` at ``target`` leaves the rest
    serving. Unavailable old pods go first: they cost no availability. ``synced`` False
    (a ReplicaSet controller has not yet acted on a spec we wrote) makes no scale-down
    at all this pass: the pods in view may not be the ones that will stay.

    >>> rolling_update(replicas=4, target=4, surge=1, unavailable=1,
    ...                new=Pods(0, 0), old=[("a", Pods(4, 4))])
    (1, {'a': 3})
    >>> rolling_update(replicas=4, target=2, surge=1, unavailable=1,
    ...                new=Pods(2, 2), old=[("a", Pods(3, 3))])
    (2, {'a': 2})

    Status lags: the old ReplicaSet was just cut from 8 to 6 but its 8 pods are all still
    there and Ready. It counts 6 available (not 8) and 8 pods towards the surge (not 6),
    so with 2 new pods not yet Ready nothing more may go and nothing more may come:

    >>> rolling_update(replicas=8, target=8, surge=2, unavailable=0,
    ...                new=Pods(2, 0, 2), old=[("a", Pods(6, 8, 8))])
    (2, {'a': 6})
    """
    available = new.counted + sum(p.counted for _, p in old)
    budget = available - (replicas - unavailable)

    def shrink(pods: Pods, wanted: int) -> int:
        """Pods to remove (up to ``wanted``): unavailable ones free, the rest from budget."""
        nonlocal budget
        if not synced:
            return 0
        free = max(0, pods.desired - pods.counted)
        take = max(0, min(pods.desired, wanted, free + max(budget, 0)))
        budget -= max(0, take - free)
        return take

    new_desired = new.desired
    if new_desired > target:
        # Above its target (a lower gate, fewer replicas): shrink it like an old revision.
        new_desired -= shrink(new, new_desired - target)
    else:
        room = replicas + surge - (new.footprint + sum(p.footprint for _, p in old))
        new_desired = min(target, new_desired + max(room, 0))
    excess = sum(p.desired for _, p in old) - max(0, replicas - target)
    out: dict[str, int] = {}
    for revision, pods in old:
        take = shrink(pods, excess)
        excess -= take
        out[revision] = pods.desired - take
    return new_desired, out


def plan_rolling(ctx: Context) -> Plan:
    """Decide one pass of a rolling update."""
    steps: tuple[Callable[[Context], bool], ...] = (
        common.reconcile_pause_clock,
        common.reconcile_first_deploy,
        common.reconcile_spec_paused,
        reconcile_revert,
        common.reconcile_stable,
        reconcile_new_revision,
        reconcile_requests,
        common.reconcile_pre_rollout,
        common.reconcile_on_abort,
        reconcile_crash_loop,
        reconcile_aborted,
        reconcile_gates,
        reconcile_roll,
    )
    for step in steps:
        if step(ctx):
            break
    return ctx.plan()


def reconcile_new_revision(ctx: Context) -> bool:
    common.start_new_revision(ctx)
    return False


def reconcile_revert(ctx: Context) -> bool:
    """The template went back to stable mid-rollout: roll back within the budget too.

    Other strategies can drop a canary at once because stable is still fully scaled;
    a rolling update has already shrunk it, so stable grows back pass by pass.
    """
    stable = ctx.status.stable_revision
    if stable is None or ctx.revision != stable:
        return False
    leftovers = [r for r, s in ctx.observed.revisions.items() if r != stable and s.desired > 0]
    if not leftovers:
        return False
    superseded = ctx.status.canary_revision
    if superseded is not None and superseded != stable:
        message = f"revision {superseded} superseded: the template is back to stable {stable}"
        ctx.history_finish(superseded, "Superseded", message)
        ctx.event(r.SUPERSEDED, message)
        ctx.drop_runs(lambda run: run.revision == stable)
        ctx.update(canary_revision=None, aborted=False, aborted_at=None)
    _move(ctx, grow=stable, target=ctx.replicas_wanted)
    ctx.set_phase(
        Phase.PROGRESSING,
        r.ROLLING_UPDATE,
        f"back to stable {stable}: {ctx.state(stable).available}/{ctx.replicas_wanted} available",
    )
    return True


def reconcile_requests(ctx: Context) -> bool:
    request = ctx.request
    if request is None:
        return False
    by, gates, index = request.by or "unknown", _spec(ctx).gates, _index(ctx)
    if request.action == "abort":
        if ctx.status.aborted:
            ctx.consume(request, note="already aborted")
        else:
            ctx.consume(request)
            common.abort(ctx, reason=r.ABORTED, message=f"aborted by {by}", outcome="Aborted")
    elif request.action == "retry" and ctx.status.aborted:
        ctx.consume(request)
        common.retry(ctx, by=request.by)
    elif request.action in ("promote", "promoteFull") and not ctx.status.aborted:
        ctx.consume(request)
        if index >= len(gates):
            ctx.event(r.REQUEST_IGNORED, f"{request.action} by {by}: no gate left to pass")
            return False
        last = len(gates) if request.action == "promoteFull" else index + 1
        for skipped in gates[index:last]:
            ctx.stop_running(RunKey.gate(skipped.at_percent))
        ctx.event(r.PROMOTED, f"gate(s) up to {gates[last - 1].at_percent}% passed by {by}")
        ctx.history_note(ctx.revision, f"{request.action} by {by} at gate {index}")
        ctx.update(current_step_index=last, current_step_started_at=ctx.stamp)
    else:
        ctx.consume(request, note=f"{request.action} does not apply now")
    return False


def reconcile_crash_loop(ctx: Context) -> bool:
    new = ctx.state(ctx.revision)
    if ctx.status.aborted or not new.crash_looping:
        return False
    common.abort(
        ctx,
        reason=r.CANARY_CRASH_LOOPING,
        message=f"revision {new.revision} is crash-looping ({new.restarts} restarts)",
        outcome="RolledBack",
    )
    return False


def reconcile_aborted(ctx: Context) -> bool:
    """Roll back: the stable revision grows back, the others shrink, within the budget."""
    if not ctx.status.aborted:
        return False
    stable = ctx.status.stable_revision or ctx.revision
    _move(ctx, grow=stable, target=ctx.replicas_wanted)
    ctx.update(weight=0)
    return True


def reconcile_gates(ctx: Context) -> bool:
    """Hold at each gate's percentage until its analysis succeeds."""
    gates, wanted = _spec(ctx).gates, ctx.replicas_wanted
    while _index(ctx) < len(gates):
        gate = gates[_index(ctx)]
        cap = share(gate.at_percent, wanted)
        available = ctx.state(ctx.revision).available
        if available < cap:
            return False
        key = RunKey.gate(gate.at_percent)
        run = ctx.ensure_run(key, revision=ctx.revision)
        if _judge(ctx, run, gate=gate.at_percent, cap=cap):
            return True
        if run.phase != "Successful":
            ctx.set_phase(
                Phase.PROGRESSING,
                r.ANALYSIS_GATE,
                f"holding at {gate.at_percent}% ({available} new pods) for analysis {key}",
            )
            _move(ctx, grow=ctx.revision, target=cap)
            return True
        ctx.event(r.ANALYSIS_SUCCESSFUL, f"gate {gate.at_percent}% passed")
        ctx.update(current_step_index=_index(ctx) + 1, current_step_started_at=ctx.stamp)
    return False


def _judge(ctx: Context, run: AnalysisRunStatus, *, gate: int, cap: int) -> bool:
    """The shared rule (``judge.judge_run``): roll back within the budget, or hold at the
    gate's share."""

    def fail(message: str) -> None:
        common.abort(ctx, reason=r.ANALYSIS_FAILED, message=message, outcome="RolledBack")
        reconcile_aborted(ctx)

    def hold() -> None:
        _move(ctx, grow=ctx.revision, target=cap)

    return judge_run(ctx, run, where=f"at gate {gate}%", fail=fail, hold=hold)


def reconcile_roll(ctx: Context) -> bool:
    """Move toward the next gate (or all pods); promote when every pod is new and available."""
    gates, wanted = _spec(ctx).gates, ctx.replicas_wanted
    index = _index(ctx)
    target = share(gates[index].at_percent, wanted) if index < len(gates) else wanted
    changed = _move(ctx, grow=ctx.revision, target=target)
    new = ctx.state(ctx.revision)
    olds_left = any(n > 0 for rev, n in ctx.replicas.items() if rev != ctx.revision)
    if new.available >= wanted and not olds_left and index >= len(gates):
        hooks = common.post_promotion_gate(
            ctx,
            rollback=f"rolling back to {ctx.status.stable_revision}",
            waiting=f"revision {ctx.revision} on all {wanted} pods; postPromotion hook(s) running",
        )
        if hooks == "passed":
            return _promote(ctx)
        if hooks == "failed":
            return reconcile_aborted(ctx)
        return True
    if changed:
        ctx.update(current_step_started_at=ctx.stamp)
    elif new.available < ctx.replicas.get(ctx.revision, 0) and common.deadline_passed(
        ctx, since=ctx.status.current_step_started_at
    ):
        common.abort(
            ctx,
            reason=r.PROGRESS_DEADLINE_EXCEEDED,
            message=f"revision {ctx.revision}: {new.available}/{ctx.replicas[ctx.revision]} "
            f"pods available after {ctx.rollout.spec.progress_deadline_seconds}s without progress",
            outcome="RolledBack",
        )
        ctx.replicas.clear()
        return reconcile_aborted(ctx)
    ctx.set_phase(
        Phase.PROGRESSING,
        r.ROLLING_UPDATE,
        f"revision {ctx.revision}: {ctx.replicas.get(ctx.revision, 0)} desired, "
        f"{new.available}/{wanted} available",
    )
    return True


# -- helpers ---------------------------------------------------------------------------


def _spec(ctx: Context) -> RollingStrategy:
    spec = ctx.rollout.spec.strategy.rolling
    assert spec is not None, "plan_rolling is only called for rolling rollouts"
    return spec


def _index(ctx: Context) -> int:
    return ctx.status.current_step_index or 0


def _move(ctx: Context, *, grow: str, target: int) -> bool:
    """One rolling pass growing ``grow`` toward ``target``; True when any count changed."""
    spec, wanted = _spec(ctx), ctx.replicas_wanted
    surge, unavailable = surge_and_unavailable(
        spec.max_surge, spec.max_unavailable, replicas=wanted
    )
    stable = ctx.status.stable_revision
    others = sorted(
        # Revisions already at 0 whose pods are not yet gone still count towards the surge.
        (
            rev
            for rev, s in ctx.observed.revisions.items()
            if rev != grow and (s.desired > 0 or s.current > 0)
        ),
        # The stable revision goes last: it is what we fall back on.
        key=lambda rev: (rev == stable, rev),
    )
    grown = ctx.state(grow)

    def pods(state: RevisionState) -> Pods:
        return Pods(state.desired, state.available, state.current)

    involved = [grown, *(ctx.state(rev) for rev in others)]
    synced = all(state.synced for state in involved)
    if not synced:
        # A ReplicaSet controller has not yet acted on what we asked: its pods are not
        # yet the ones that will stay. Look again shortly (its status update wakes us).
        ctx.wake_in(1.0)
    new_desired, old = rolling_update(
        replicas=wanted,
        target=target,
        surge=surge,
        unavailable=unavailable,
        new=pods(grown),
        old=[(rev, pods(ctx.state(rev))) for rev in others],
        synced=synced,
    )
    ctx.replicas[grow] = new_desired
    ctx.replicas.update(old)
    if wanted:
        ctx.update(weight=min(100, 100 * ctx.state(ctx.revision).available // wanted))
    changed = new_desired != grown.desired or any(
        n != ctx.state(rev).desired for rev, n in old.items()
    )
    return changed


def _promote(ctx: Context) -> bool:
    previous = ctx.status.stable_revision
    message = f"revision {ctx.revision} rolled out to all {ctx.replicas_wanted} pods"
    ctx.history_finish(ctx.revision, "Promoted", message)
    ctx.update(
        stable_revision=ctx.revision,
        canary_revision=None,
        previous_revision=None,
        scale_down_at=None,
        current_step_index=None,
        current_step_started_at=None,
    )
    ctx.event(r.PROMOTED, f"{message}; {previous} scaled down")
    ctx.replicas.clear()
    return common.reconcile_stable(ctx)
