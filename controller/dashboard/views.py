"""What the dashboard shows, as plain data: pure functions of the objects read from the API.

``list_rows`` is the list page (``deployctl list``'s rows, filtered); ``rollout_view`` is
one Rollout: the CLI's status document (``controller.commands.render``) plus the steps as
a timeline, replicas and traffic per revision, every analysis run with each metric's
measurements against its threshold (``charts.metric_chart``), hooks and their Jobs,
policy holds, history and Events. The same dict is served as JSON and rendered to HTML
by ``pages``; no I/O here, and the time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from controller.analysis.run import BoundMetric, resolve
from controller.analysis.templating import TemplateError
from controller.api import AnalysisTemplate, Rollout
from controller.api import reasons as R
from controller.bound_runs import hook_metrics
from controller.commands.render import (
    age,
    history_rows,
    pending_approval,
    status_document,
    summary_row,
)
from controller.dashboard.charts import metric_chart, seconds_of
from controller.names import ANALYSIS_LABEL, FOR_REVISION_LABEL, REVISION_LABEL
from strategies.runkeys import RunKey, RunKind, analysis_ref

Obj = Mapping[str, Any]
PHASES = ("Progressing", "Paused", "Healthy", "Degraded", "RolledBack")
HOLD_REASONS = frozenset(
    {
        R.FROZEN_UNTIL,
        R.OUTSIDE_WINDOW,
        R.AWAITING_GATE,
        R.AWAITING_APPROVAL,
        R.ERROR_BUDGET_EXHAUSTED,
    }
)
MAX_EVENTS = 50


def list_rows(
    rollouts: Sequence[Obj], *, phase: str | None = None, now: datetime
) -> list[dict[str, str]]:
    """``deployctl list`` rows sorted by namespace and name; only ``phase`` if given."""
    rows = []
    for rollout in rollouts:
        row = summary_row(rollout)
        row["age"] = age((rollout.get("metadata") or {}).get("creationTimestamp"), now=now)
        if phase and row["phase"] != phase:
            continue
        rows.append(row)
    return sorted(rows, key=lambda r: (r["namespace"], r["name"]))


def in_flight(status: Mapping[str, Any]) -> bool:
    """A revision other than stable is being rolled out (or was just aborted)."""
    canary = status.get("canaryRevision")
    return bool(canary) and canary != status.get("stableRevision")


def rollout_view(
    rollout: Obj,
    *,
    replicasets: Sequence[Obj],
    jobs: Sequence[Obj] = (),
    events: Sequence[Obj] = (),
    templates: Sequence[Obj] = (),
    now: datetime,
) -> dict[str, Any]:
    status = rollout.get("status") or {}
    spec = rollout.get("spec") or {}
    document = status_document(rollout, replicasets)
    document["age"] = age((rollout.get("metadata") or {}).get("creationTimestamp"), now=now)
    model = _model(rollout)
    return {
        **document,
        "paused": bool(spec.get("paused")),
        "aborted": bool(status.get("aborted")),
        "inFlight": in_flight(status),
        "steps": steps(spec, status),
        "revisions": revisions(replicasets, status),
        "traffic": traffic(spec, status, replicasets),
        "analysis": analysis_runs(rollout, model, _templates(templates), now=now),
        "hooks": hooks(status, jobs),
        "holds": holds(rollout),
        "history": list(reversed(history_rows(rollout))),
        "events": event_rows(events),
    }


def _model(rollout: Obj) -> Rollout | None:
    try:
        return Rollout.model_validate(dict(rollout))
    except ValidationError:
        return None  # an invalid spec still shows its status, without thresholds


def _templates(objects: Sequence[Obj]) -> dict[str, AnalysisTemplate]:
    parsed = {}
    for obj in objects:
        try:
            template = AnalysisTemplate.model_validate(dict(obj))
        except ValidationError:
            continue
        if template.metadata.name:
            parsed[template.metadata.name] = template
    return parsed


# ---------------------------------------------------------------------- steps


def steps(spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The strategy's steps (canary), stages (blue-green) or gates (rolling), each
    ``done``, ``current``, ``aborted`` or ``pending``."""
    strategy = spec.get("strategy") or {}
    index = status.get("currentStepIndex")
    busy = in_flight(status)
    if strategy.get("canary") is not None:
        labels = [_canary_step(step) for step in (strategy["canary"].get("steps") or [])]
    elif strategy.get("blueGreen") is not None:
        labels = ["preview", "pre-promotion analysis", "scale to full size", "switch traffic"]
    elif strategy.get("rolling") is not None:
        gates = strategy["rolling"].get("gates") or []
        labels = [
            f"at {g.get('atPercent')}%: analysis {_templates_text(g.get('analysis'))}"
            for g in gates
        ] + ["all replicas updated"]
    else:
        labels = []
    out = []
    for number, label in enumerate(labels):
        if not busy or index is None:
            state = "done" if status.get("phase") == "Healthy" else "pending"
        elif number < index:
            state = "done"
        elif number == index:
            state = "aborted" if status.get("aborted") else "current"
        else:
            state = "pending"
        out.append({"index": number, "text": label, "state": state})
    return out


def _templates_text(ref: Mapping[str, Any] | None) -> str:
    names = [t.get("name", "?") for t in (ref or {}).get("templates") or []]
    return ", ".join(names) or "-"


def _canary_step(step: Mapping[str, Any]) -> str:
    if step.get("setWeight") is not None:
        return f"set weight {step['setWeight']}%"
    if "pause" in step:
        duration = (step.get("pause") or {}).get("duration")
        return f"pause {duration}" if duration else "pause until promoted"
    if step.get("analysis") is not None:
        return f"analysis {_templates_text(step['analysis'])}"
    if "approval" in step:
        return "approval"
    return "step"


# ---------------------------------------------------------------------- revisions and traffic


def _revision_of(rs: Obj) -> str | None:
    return ((rs.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL)


def role_of(revision: str, status: Mapping[str, Any]) -> str:
    if revision == status.get("stableRevision"):
        return "stable"
    if revision == status.get("canaryRevision"):
        return "canary"
    return "old"


def revisions(replicasets: Sequence[Obj], status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Replicas and Ready pods per revision, stable first, then canary, then the rest."""
    out = []
    for rs in replicasets:
        revision = _revision_of(rs)
        if not revision:
            continue
        rs_status = rs.get("status") or {}
        containers = (((rs.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []
        out.append(
            {
                "revision": revision,
                "role": role_of(revision, status),
                "desired": int((rs.get("spec") or {}).get("replicas") or 0),
                "ready": int(rs_status.get("readyReplicas") or 0),
                "available": int(rs_status.get("availableReplicas") or 0),
                "images": {str(c.get("name")): str(c.get("image")) for c in containers},
            }
        )
    order = {"stable": 0, "canary": 1, "old": 2}
    return sorted(out, key=lambda r: (order[r["role"]], r["revision"]))


def traffic(
    spec: Mapping[str, Any], status: Mapping[str, Any], replicasets: Sequence[Obj]
) -> list[dict[str, Any]]:
    """Each revision's share of requests, as the strategy routes them."""
    stable = status.get("stableRevision")
    canary = status.get("canaryRevision") if in_flight(status) else None
    strategy = spec.get("strategy") or {}
    if strategy.get("canary") is not None:
        weight = int(status.get("weight") or 0) if canary else 0
        shares = [(stable, "stable", 100 - weight)]
        if canary:
            shares.append((canary, "canary", weight))
    elif strategy.get("blueGreen") is not None:
        # The active Service carries every request; the preview only test traffic.
        shares = [(stable, "active", 100)]
        if canary:
            shares.append((canary, "preview", 0))
    else:
        ready = {
            _revision_of(rs): int((rs.get("status") or {}).get("availableReplicas") or 0)
            for rs in replicasets
        }
        total = sum(ready.values())
        shares = [
            (revision, role_of(str(revision), status), round(100 * count / total) if total else 0)
            for revision, count in sorted(ready.items(), key=lambda kv: str(kv[0]))
            if count
        ]
    return [
        {"revision": revision or "-", "role": role, "percent": percent}
        for revision, role, percent in shares
        if revision
    ]


# ---------------------------------------------------------------------- analysis


def analysis_runs(
    rollout: Obj,
    model: Rollout | None,
    templates: Mapping[str, AnalysisTemplate],
    *,
    now: datetime,
) -> list[dict[str, Any]]:
    """Every analysis run (newest first), each metric charted against its threshold."""
    status = rollout.get("status") or {}
    out = []
    for run in status.get("analysisRuns") or []:
        key = str(run.get("key", ""))
        bound = _bound_metrics(model, templates, key)
        rollback_at = _rollback_time(status, str(run.get("revision", "")))
        metrics = [
            metric_chart(
                metric,
                spec=bound.get(str(metric.get("name"))),
                started_at=run.get("startedAt"),
                rollback_at=rollback_at,
                now=now,
            )
            for metric in run.get("metrics") or []
        ]
        out.append(
            {
                "key": key,
                "title": _run_title(key),
                "revision": run.get("revision"),
                "role": role_of(str(run.get("revision")), status),
                "phase": run.get("phase", "Running"),
                "startedAt": run.get("startedAt"),
                "message": run.get("message", ""),
                "hook": key.startswith("hook-"),
                "metrics": metrics,
            }
        )
    return sorted(out, key=lambda r: str(r["startedAt"] or ""), reverse=True)


def _run_title(key: str) -> str:
    try:
        run_key = RunKey.parse(key)
    except ValueError:
        return key
    if run_key.kind is RunKind.STEP and run_key.number is not None:
        return f"step {run_key.number + 1} analysis"  # steps are numbered from 1 here
    return run_key.describe()


def _bound_metrics(
    model: Rollout | None, templates: Mapping[str, AnalysisTemplate], key: str
) -> dict[str, BoundMetric]:
    if model is None:
        return {}
    try:
        run_key = RunKey.parse(key)
    except ValueError:
        return {}
    if run_key.is_hook:
        return {b.metric.name: b for b in hook_metrics(model, run_key)}
    ref = analysis_ref(model, run_key)
    if ref is None:
        return {}
    try:
        return {b.metric.name: b for b in resolve(templates, ref)}
    except TemplateError:
        return {}


def _rollback_time(status: Mapping[str, Any], revision: str) -> float | None:
    """When ``revision`` was sent back (aborted), if it was."""
    if status.get("aborted") and status.get("canaryRevision") == revision:
        at = seconds_of(status.get("abortedAt"))
        if at is not None:
            return at
    for entry in status.get("history") or []:
        if entry.get("revision") == revision and entry.get("outcome") in ("RolledBack", "Aborted"):
            return seconds_of(entry.get("finishedAt"))
    return None


# ---------------------------------------------------------------------- hooks, holds, events


def hooks(status: Mapping[str, Any], jobs: Sequence[Obj]) -> list[dict[str, Any]]:
    """Check and hook Jobs of this rollout, newest first, with how they ended."""
    out = []
    for job in jobs:
        meta = job.get("metadata") or {}
        job_status = job.get("status") or {}
        conditions = {c.get("type"): c for c in job_status.get("conditions") or []}
        if (conditions.get("Complete") or {}).get("status") == "True":
            state, detail = "Succeeded", ""
        elif (conditions.get("Failed") or {}).get("status") == "True":
            state, detail = "Failed", str(conditions["Failed"].get("message") or "")
        else:
            state, detail = ("Running" if job_status.get("active") else "Pending"), ""
        labels = meta.get("labels") or {}
        out.append(
            {
                "name": meta.get("name"),
                "run": labels.get(ANALYSIS_LABEL, ""),
                "revision": labels.get(FOR_REVISION_LABEL, ""),
                "state": state,
                "detail": detail,
                "startedAt": job_status.get("startTime") or meta.get("creationTimestamp"),
                "finishedAt": job_status.get("completionTime"),
            }
        )
    return sorted(out, key=lambda j: str(j["startedAt"] or ""), reverse=True)


def holds(rollout: Obj) -> list[dict[str, Any]]:
    """Why a new revision is being held: a policy freeze or window, a promotion gate,
    an approval; and the policy decisions recorded in the current history entry."""
    status = rollout.get("status") or {}
    out: list[dict[str, Any]] = []
    reason = str(status.get("reason") or "")
    approval = pending_approval(rollout)
    if reason in HOLD_REASONS or status.get("heldSince") or approval:
        out.append(
            {
                "reason": reason or "Held",
                "message": str(status.get("message") or approval or ""),
                "since": status.get("heldSince"),
                "active": True,
            }
        )
    history = status.get("history") or []
    if history:
        for text in history[-1].get("events") or []:
            out.append({"reason": "Policy", "message": str(text), "since": None, "active": False})
    return out


def event_rows(events: Sequence[Obj]) -> list[dict[str, Any]]:
    rows = [
        {
            "type": e.get("type", ""),
            "reason": e.get("reason", ""),
            "message": e.get("message", ""),
            "count": int(e.get("count") or 1),
            "last": e.get("lastTimestamp") or e.get("eventTime") or "",
        }
        for e in events
    ]
    rows.sort(key=lambda r: str(r["last"]), reverse=True)
    return rows[:MAX_EVENTS]
