"""``deployctl plan``: what a Rollout's strategy will do, step by step, without a cluster.

Called by ``controller.commands.files.plan``. The preview starts from a healthy stable
revision and assumes every pod becomes available and every analysis passes; each row
says what happens at that point and where pods and traffic then stand. Columns:
``stable`` = pods of the revision being replaced, ``canary`` = pods of the new revision
(the preview pods for blue-green), ``weight`` = percent of traffic on the new revision,
``analysis`` = analysis templates running at that point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from controller.api import AnalysisRef, BlueGreenStrategy, CanaryStrategy, RollingStrategy, Rollout
from controller.api.duration import format_duration
from strategies.managed_routes import describe as describe_route
from strategies.rolling import rolling_update
from strategies.scaling import Pods, surge_and_unavailable
from strategies.traffic import (
    canary_replicas,
    replica_share_percent,
    share,
    share_targets,
    stable_replicas,
)

MAX_ROLLING_ROWS = 24
"""A rolling update of many pods takes many passes; longer previews are elided."""


@dataclass(frozen=True)
class PreviewRow:
    index: int | None
    """The step (status.currentStepIndex for canary); None for a hook's row."""
    action: str
    stable: int
    canary: int
    weight: int
    analysis: tuple[str, ...] = ()
    partition: int | None = None
    """A StatefulSet's partition at that point (``workloadRef`` kind StatefulSet)."""
    moves: tuple[int, ...] | None = None
    """The StatefulSet ordinals this row moves onto the new revision, highest first."""
    node_moves: tuple[int, ...] | None = None
    """A DaemonSet's Nodes this row moves, by position in the canary order (1 = the
    first ``canaryNodeSelector`` Node by name; ``workloadRef`` kind DaemonSet)."""

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "step": self.index,
            "action": self.action,
            "stable": self.stable,
            "canary": self.canary,
            "weight": self.weight,
            "analysis": list(self.analysis),
        }
        if self.partition is not None:
            row.update(partition=self.partition, moves=list(self.moves or ()))
        if self.node_moves is not None:
            row.update(nodes=self.canary, moves=_positions(self.node_moves))
        return row


def _positions(values: tuple[int, ...]) -> str:
    """``Nodes 3-5`` for a run, ``-`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"Node {values[0]}"
    return f"Nodes {values[0]}-{values[-1]}"


def preview(rollout: Rollout) -> list[PreviewRow]:
    """The rows of ``deployctl plan`` for ``rollout``'s strategy."""
    strategy = rollout.spec.strategy
    ref = rollout.spec.workload_ref
    if ref is not None and ref.kind == "StatefulSet" and strategy.canary is not None:
        return _with_hooks(rollout, _statefulset(rollout, strategy.canary))
    if ref is not None and ref.kind == "DaemonSet" and strategy.canary is not None:
        return _with_hooks(rollout, _daemonset(rollout, strategy.canary))
    if strategy.canary is not None:
        rows = _canary(rollout, strategy.canary)
    elif strategy.blue_green is not None:
        rows = _blue_green(rollout, strategy.blue_green)
    else:
        assert strategy.rolling is not None
        rows = _rolling(rollout, strategy.rolling)
    return _with_hooks(rollout, rows)


def _statefulset(rollout: Rollout, canary: CanaryStrategy) -> list[PreviewRow]:
    """A StatefulSet canary: the canary's pods counted on their own (the StatefulSet
    keeps N pods), each row with its partition and the ordinals it moves."""
    replicas = rollout.spec.replicas
    full = canary.model_copy(update={"stable_scale": "full"})
    rows = _canary(rollout, full)
    out, moved = [], replicas
    for row in rows:
        pods = min(row.canary, replicas)
        partition = replicas - pods
        moves = tuple(range(moved - 1, partition - 1, -1))
        moved = min(moved, partition)
        action = row.action
        if action.startswith("scale canary to"):
            action = "partition 0: every ordinal on the new revision"
        elif action.startswith("promote"):
            action = f"promote; partition back to {replicas}, at rest"
            partition = replicas
        out.append(
            replace(
                row,
                action=action,
                stable=replicas - pods,
                canary=pods,
                # Traffic follows the pods: the Service selects every ordinal.
                weight=100 * pods // replicas if replicas else 0,
                partition=partition,
                moves=moves,
            )
        )
    return out


def _daemonset(rollout: Rollout, canary: CanaryStrategy) -> list[PreviewRow]:
    """A DaemonSet canary: ``spec.replicas`` is its Node count; each row with the Nodes
    it moves, by position in the order the controller takes them (``canaryNodeSelector``
    matches first, then by name)."""
    nodes = rollout.spec.replicas
    full = canary.model_copy(update={"stable_scale": "full"})
    out, moved = [], 0
    for row in _canary(rollout, full):
        pods = min(row.canary, nodes)
        action = row.action
        if action.startswith("scale canary to"):
            action = "every Node on the new revision"
        elif action.startswith("promote"):
            action = "promote; the DaemonSet's own updateStrategy back"
        out.append(
            replace(
                row,
                action=action,
                stable=nodes - pods,
                canary=pods,
                # Traffic follows the pods: the Service selects every Node's pod.
                weight=100 * pods // nodes if nodes else 0,
                node_moves=tuple(range(moved + 1, pods + 1)),
            )
        )
        moved = max(moved, pods)
    return out


def _with_hooks(rollout: Rollout, rows: list[PreviewRow]) -> list[PreviewRow]:
    """preRollout Jobs before the first pod of the new revision; postPromotion Jobs just
    before the new revision becomes stable, where pods and traffic then stand."""
    hooks = rollout.spec.hooks
    if hooks is None:
        return rows
    out = list(rows)
    if hooks.post_promotion and len(out) >= 2:
        before = out[-2]
        names = ", ".join(h.name for h in hooks.post_promotion)
        row = PreviewRow(
            None,
            f"postPromotion jobs {names}",
            before.stable,
            before.canary,
            before.weight,
            before.analysis,
        )
        out.insert(len(out) - 1, row)
    if hooks.pre_rollout:
        names = ", ".join(h.name for h in hooks.pre_rollout)
        replicas = rollout.spec.replicas
        out.insert(0, PreviewRow(None, f"preRollout jobs {names}", replicas, 0, 0))
    return out


def _names(ref: AnalysisRef | None) -> tuple[str, ...]:
    return tuple(t.name for t in ref.templates) if ref is not None else ()


def _canary_pods(spec: CanaryStrategy, weight: int, replicas: int) -> tuple[int, int, int]:
    """(canary pods, stable pods, the canary's share of the traffic) at ``weight``: by
    replica share the share the pods give (``setWeight 33`` of 10: 3 pods, 30%)."""
    if spec.traffic_routing is not None:
        stable = stable_replicas(weight, replicas, dynamic=spec.dynamic_stable_scale)
        return canary_replicas(weight, replicas, routed=True), stable, weight
    if spec.stable_scale == "full":
        canary = canary_replicas(weight, replicas, routed=False)
        return canary, replicas, replica_share_percent(canary, replicas)
    canary, stable = share_targets(weight, replicas)
    return canary, stable, replica_share_percent(canary, stable)


def _canary(rollout: Rollout, spec: CanaryStrategy) -> list[PreviewRow]:
    replicas, routed = rollout.spec.replicas, spec.traffic_routing is not None
    background = tuple(f"{name} (background)" for name in _names(rollout.spec.analysis))
    rows: list[PreviewRow] = []
    weight = 0
    for index, step in enumerate(spec.steps):
        running = background
        if step.set_weight is not None:
            weight = step.set_weight
            action = f"setWeight {weight}"
        elif step.pause is not None:
            duration = step.pause.duration
            action = (
                "pause until promote" if duration is None else f"pause {format_duration(duration)}"
            )
        elif step.analysis is not None:
            action = "analysis " + ", ".join(_names(step.analysis))
            running = background + _names(step.analysis)
        elif step.managed_route is not None:
            action = describe_route(step.managed_route)
        else:
            groups = step.approval.groups if step.approval else []
            action = "approval" + (f" by {', '.join(groups)}" if groups else "")
        canary, stable, share_ = _canary_pods(spec, weight, replicas)
        rows.append(
            PreviewRow(
                index=index,
                action=action,
                stable=stable,
                canary=canary,
                weight=share_,
                analysis=running,
            )
        )
    end = len(spec.steps)
    by_share = not routed and spec.stable_scale == "share"
    rows.append(
        PreviewRow(
            index=end,
            action=f"scale canary to {replicas}",
            stable=0 if by_share else _canary_pods(spec, weight, replicas)[1],
            canary=replicas,
            weight=100 if by_share else weight,
            analysis=background,
        )
    )
    done = (
        "old revision already scaled down"
        if by_share
        else f"old revision scaled down after {spec.scale_down_delay_seconds}s"
    )
    rows.append(
        PreviewRow(index=end + 1, action=f"promote; {done}", stable=0, canary=replicas, weight=100)
    )
    return rows


def _blue_green(rollout: Rollout, spec: BlueGreenStrategy) -> list[PreviewRow]:
    replicas = rollout.spec.replicas
    preview_pods = min(spec.preview_replica_count or replicas, replicas)
    actions: list[tuple[str, int, int, int, tuple[str, ...]]] = [
        (f"scale up preview to {preview_pods}", replicas, preview_pods, 0, ())
    ]
    if spec.pre_promotion_analysis is not None:
        names = _names(spec.pre_promotion_analysis)
        actions.append(
            ("analysis " + ", ".join(names) + " (pre-promotion)", replicas, preview_pods, 0, names)
        )
    if not spec.auto_promotion_enabled:
        actions.append(("pause until promote", replicas, preview_pods, 0, ()))
    elif spec.auto_promotion_seconds:
        wait = format_duration(spec.auto_promotion_seconds)
        actions.append((f"auto-promote after {wait}", replicas, preview_pods, 0, ()))
    if preview_pods < replicas:
        actions.append((f"scale preview to {replicas}", replicas, replicas, 0, ()))
    actions.append(("switch active", replicas, replicas, 100, ()))
    if spec.post_promotion_analysis is not None:
        names = _names(spec.post_promotion_analysis)
        actions.append(
            ("analysis " + ", ".join(names) + " (post-promotion)", replicas, replicas, 100, names)
        )
    actions.append((f"scale down old after {spec.scale_down_delay_seconds}s", 0, replicas, 100, ()))
    return [
        PreviewRow(index=i, action=a, stable=s, canary=c, weight=w, analysis=n)
        for i, (a, s, c, w, n) in enumerate(actions)
    ]


def _rolling(rollout: Rollout, spec: RollingStrategy) -> list[PreviewRow]:
    replicas = rollout.spec.replicas
    surge, unavailable = surge_and_unavailable(
        spec.max_surge, spec.max_unavailable, replicas=replicas
    )
    new, old = Pods(0, 0), Pods(replicas, replicas)
    gates = list(spec.gates)
    rows: list[PreviewRow] = []

    def weight() -> int:
        return 100 * new.available // replicas if replicas else 100

    # Each pass: the planner's move, then (as the preview assumes) every pod is available.
    for _ in range(4 * replicas + 4 * len(gates) + 4):
        if gates and new.available >= share(gates[0].at_percent, replicas):
            gate = gates.pop(0)
            names = _names(gate.analysis)
            rows.append(
                PreviewRow(
                    index=len(rows),
                    action=f"analysis {', '.join(names)} at {gate.at_percent}%",
                    stable=old.desired,
                    canary=new.desired,
                    weight=weight(),
                    analysis=names,
                )
            )
            continue
        if new.available >= replicas and old.desired == 0:
            break
        target = share(gates[0].at_percent, replicas) if gates else replicas
        new_desired, olds = rolling_update(
            replicas=replicas,
            target=target,
            surge=surge,
            unavailable=unavailable,
            new=new,
            old=[("old", old)],
        )
        new, old = Pods(new_desired, new_desired), Pods(olds["old"], olds["old"])
        rows.append(
            PreviewRow(
                index=len(rows),
                action=f"new {new.desired}, old {old.desired}",
                stable=old.desired,
                canary=new.desired,
                weight=weight(),
            )
        )
    rows.append(PreviewRow(index=len(rows), action="done", stable=0, canary=replicas, weight=100))
    if len(rows) > MAX_ROLLING_ROWS:
        head, tail = rows[: MAX_ROLLING_ROWS - 6], rows[-5:]
        skipped = len(rows) - len(head) - len(tail)
        gap = PreviewRow(
            index=len(head),
            action=f"... {skipped} more passes ...",
            stable=tail[0].stable,
            canary=tail[0].canary,
            weight=tail[0].weight,
        )
        rows = [*head, gap, *tail]
    return rows
