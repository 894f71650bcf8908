"""One metric of an analysis run as a chart: measurements against the threshold.

The measurements are the ones status keeps (the newest ``MAX_MEASUREMENTS`` per metric);
the threshold and ``for`` come from the metric's spec (its AnalysisTemplate, or the
preset's defaults). A breach is a measurement outside the bounds; the ``for`` window is
shaded from where a breach began to where it would count (or to the last measurement of
the breach, whichever is first), so a reader sees why a breach did, or did not yet, fail
the analysis. Times are seconds since the epoch, as the browser's chart takes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.analysis.run import BoundMetric
from controller.commands.render import format_value
from controller.times import parse_timestamp

BREACH_VERDICTS = frozenset({"Failed", "Pending"})


def seconds_of(timestamp: Any) -> float | None:
    if not timestamp:
        return None
    try:
        return parse_timestamp(str(timestamp)).timestamp()
    except ValueError:
        return None


def number(value: Any) -> float | None:
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        return None
    return parsed if math.isfinite(parsed) else None


def threshold_of(bound: BoundMetric | None) -> dict[str, Any]:
    """``{"min", "max", "relative", "text"}`` of a metric's spec (all None if unknown)."""
    out: dict[str, Any] = {"min": None, "max": None, "relative": False, "text": ""}
    if bound is None:
        return out
    metric = bound.metric
    if metric.error_rate is not None:
        out["max"] = metric.error_rate.max
    elif metric.latency is not None:
        out["max"] = metric.latency.max
    elif metric.threshold is not None:
        if metric.relative_to is not None:
            out["relative"] = True
            parts = []
            if metric.threshold.max_increase is not None:
                parts.append(f"at most stable + {format_value(metric.threshold.max_increase)}")
            if metric.threshold.max_ratio is not None:
                parts.append(f"at most stable x {format_value(metric.threshold.max_ratio)}")
            out["text"] = ", ".join(parts) or "relative to stable"
            return out
        out["min"], out["max"] = metric.threshold.min, metric.threshold.max
    bounds = []
    if out["min"] is not None:
        bounds.append(f"min {format_value(out['min'])}")
    if out["max"] is not None:
        bounds.append(f"max {format_value(out['max'])}")
    out["text"] = ", ".join(bounds)
    return out


def _outside(value: float | None, verdict: str, threshold: Mapping[str, Any]) -> bool:
    if value is not None and (threshold["min"] is not None or threshold["max"] is not None):
        low, high = threshold["min"], threshold["max"]
        return (low is not None and value < low) or (high is not None and value > high)
    return verdict in BREACH_VERDICTS


def metric_chart(
    metric: Mapping[str, Any],
    *,
    spec: BoundMetric | None,
    started_at: Any,
    rollback_at: float | None,
    now: datetime,
) -> dict[str, Any]:
    threshold = threshold_of(spec)
    for_seconds = spec.metric.effective_for if spec is not None else 0.0
    points = []
    for m in metric.get("measurements") or []:
        t = seconds_of(m.get("at"))
        if t is None:
            continue
        value = number(m.get("value"))
        verdict = str(m.get("phase") or "")
        points.append(
            {
                "t": t,
                "at": m.get("at"),
                "value": value,
                "shown": format_value(m.get("value")),
                "verdict": verdict,
                "message": m.get("message", ""),
                "breach": _outside(value, verdict, threshold),
            }
        )
    points.sort(key=lambda p: p["t"])
    windows, breach_at = _for_windows(points, for_seconds, metric.get("breachSince"))
    start = seconds_of(started_at)
    times = [p["t"] for p in points] + [t for t in (start, rollback_at) if t is not None]
    numeric = [p["value"] for p in points if p["value"] is not None]
    job = spec is not None and spec.metric.job is not None
    return {
        "name": metric.get("name"),
        "phase": metric.get("phase", "Running"),
        "successful": int(metric.get("successful") or 0),
        "failed": int(metric.get("failed") or 0),
        "inconclusive": int(metric.get("inconclusive") or 0),
        "message": metric.get("message", ""),
        "query": metric.get("query", ""),
        "job": metric.get("job"),
        "threshold": threshold,
        "forSeconds": for_seconds,
        "points": points,
        "windows": windows,
        "breachAt": breach_at,
        "rollbackAt": rollback_at,
        "from": min(times) if times else now.timestamp(),
        "to": max(times) if times else now.timestamp(),
        # A line needs numbers; a job's or an alert's verdict is shown as a table only.
        "chartable": bool(numeric) and not job,
    }


def _for_windows(
    points: list[dict[str, Any]], for_seconds: float, breach_since: Any
) -> tuple[list[list[float]], float | None]:
    """The shaded ``for`` windows (one per run of consecutive breaches) and when the
    newest breach began."""
    windows: list[list[float]] = []
    began: float | None = None
    last: float | None = None
    newest: float | None = None

    def close() -> None:
        if began is not None and last is not None and for_seconds > 0:
            windows.append([began, min(began + for_seconds, max(last, began))])

    for point in points:
        if point["breach"]:
            if began is None:
                began = point["t"]
                newest = began
            last = point["t"]
        else:
            close()
            began, last = None, None
    if began is not None:
        # An ongoing breach: the controller's own start of it is the authority.
        since = seconds_of(breach_since)
        if since is not None and since <= began:
            began = since
            newest = since
        if for_seconds > 0:
            windows.append([began, began + for_seconds])
    return windows, newest
