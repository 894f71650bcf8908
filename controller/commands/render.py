"""How a Rollout looks to a person (rich, loaded only for text) and to a script (plain
dicts): the status view, the progress lines ``--wait`` prints, and the evidence of an
outcome.

Pure functions of the Rollout as read from the API: no I/O here except writing to the
console handed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from controller.names import BASELINE_SUFFIX, REVISION_LABEL
from controller.times import parse_timestamp
from strategies.runkeys import RunKey

if TYPE_CHECKING:  # rich loads only for text output: `-o json` and `--wait` lines skip it
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

PHASE_COLOURS = {
    "Healthy": "green",
    "Progressing": "cyan",
    "Paused": "yellow",
    "Degraded": "red",
    "RolledBack": "red",
    "InvalidSpec": "red",
}


def strategy_name(spec: Mapping[str, Any]) -> str:
    strategy = spec.get("strategy") or {}
    for key, shown in (("canary", "canary"), ("blueGreen", "bluegreen"), ("rolling", "rolling")):
        if key in strategy and strategy[key] is not None:
            return shown
    return "?"


def step_count(spec: Mapping[str, Any]) -> int:
    canary = (spec.get("strategy") or {}).get("canary") or {}
    return len(canary.get("steps") or [])


def age(timestamp: str | None, *, now: datetime | None = None) -> str:
    if not timestamp:
        return "-"
    try:
        then = parse_timestamp(timestamp)
    except ValueError:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    return duration_text(seconds)


def duration_text(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 172_800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


def summary_row(rollout: Mapping[str, Any]) -> dict[str, str]:
    """One line of ``deployctl list``."""
    meta, spec = rollout.get("metadata") or {}, rollout.get("spec") or {}
    status = rollout.get("status") or {}
    steps = step_count(spec)
    index = status.get("currentStepIndex")
    step = f"{min(index, steps)}/{steps}" if steps and index is not None else "-"
    return {
        "namespace": str(meta.get("namespace", "")),
        "name": str(meta.get("name", "")),
        "strategy": strategy_name(spec),
        "phase": str(status.get("phase") or "-"),
        "step": step,
        "weight": f"{status.get('weight', 0)}%",
        "stable": str(status.get("stableRevision") or "-"),
        "canary": str(status.get("canaryRevision") or "-"),
        "age": age(meta.get("creationTimestamp")),
    }


def plain(value: object) -> Text:
    """``value`` as text that is never read as rich markup: names, messages, annotations
    and images come from the cluster, and ``[link=...]`` or ``[/x]`` in them must show
    as written (markup in data would restyle the output or crash it)."""
    from rich.text import Text

    return Text(str(value))


def list_table(rollouts: Sequence[Mapping[str, Any]], *, all_namespaces: bool) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    columns = ["name", "strategy", "phase", "step", "weight", "stable", "canary", "age"]
    if all_namespaces:
        columns.insert(0, "namespace")
    for column in columns:
        table.add_column(column.upper())
    for rollout in rollouts:
        row = summary_row(rollout)
        cells = [plain(row[c]) for c in columns]
        colour = PHASE_COLOURS.get(row["phase"])
        if colour:
            cells[columns.index("phase")].stylize(colour)
        table.add_row(*cells)
    return table


NO_DATA = ("Inconclusive", "Error")


def no_data(metric: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any] | None:
    """While a metric waits on missing data: since when, for how long, how many
    measurements in a row found nothing, and the newest one's reason; else None.

    Status keeps the newest measurements only, so when every kept one found nothing and
    more were counted, ``since`` is the oldest kept and ``atLeast`` says so.
    """
    # Status is written without defaults (to_wire): no phase means Running.
    if (metric.get("phase") or "Running") not in ("Running", "Inconclusive"):
        return None
    measurements = list(metric.get("measurements") or [])
    streak = 0
    for measurement in reversed(measurements):
        if measurement.get("phase") not in NO_DATA:
            break
        streak += 1
    if streak == 0:
        return None
    first, latest = measurements[-streak], measurements[-1]
    at_least = streak == len(measurements) and int(metric.get("inconclusive") or 0) > streak
    count = max(streak, int(metric.get("inconclusive") or 0)) if at_least else streak
    seconds: int | None = None
    try:
        began = parse_timestamp(str(first.get("at")))
        seconds = max(0, int(((now or datetime.now(UTC)) - began).total_seconds()))
    except ValueError:
        seconds = None
    return {
        "since": first.get("at"),
        "seconds": seconds,
        "measurements": count,
        "atLeast": at_least,
        "reason": str(latest.get("message") or ""),
    }


def no_data_line(entry: Mapping[str, Any]) -> str:
    """``no data for 40s (since 12:00:03Z, 4 measurements in a row): <reason>``."""
    gap = entry["noData"]
    took = duration_text(gap["seconds"]) if gap["seconds"] is not None else "?"
    more = "at least " if gap["atLeast"] else ""
    text = (
        f"{entry['metric']} ({entry['run']}): no data for {more}{took} "
        f"(since {gap['since']}, {more}{gap['measurements']} measurement"
        f"{'' if gap['measurements'] == 1 else 's'} in a row)"
    )
    return f"{text}: {gap['reason']}" if gap["reason"] else text


def latest_measurements(
    status: Mapping[str, Any], revision: str | None, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each metric's newest measurement per analysis run of ``revision`` (all if None)."""
    out: list[dict[str, Any]] = []
    for run in status.get("analysisRuns") or []:
        if revision is not None and run.get("revision") != revision:
            continue
        for metric in run.get("metrics") or []:
            measurements = metric.get("measurements") or []
            latest = measurements[-1] if measurements else {}
            out.append(
                {
                    "run": run.get("key"),
                    "about": describe_run(str(run.get("key", ""))),
                    "revision": run.get("revision"),
                    "metric": metric.get("name"),
                    "phase": metric.get("phase") or "Running",
                    "value": latest.get("value"),
                    "verdict": latest.get("phase"),
                    "at": latest.get("at"),
                    "successful": metric.get("successful", 0),
                    "failed": metric.get("failed", 0),
                    "inconclusive": metric.get("inconclusive", 0),
                    "unreachableSince": metric.get("unreachableSince"),
                    "message": metric.get("message") or latest.get("message", ""),
                    "noData": no_data(metric, now=now),
                    "comparison": latest.get("comparison"),
                    "score": run.get("score"),
                }
            )
    return out


def describe_run(key: str) -> str:
    """An analysis run key as a person names it ("gate at 50%"); unknown keys as written."""
    try:
        return RunKey.parse(key).describe()
    except ValueError:
        return key


def verdict_text(measurement: Mapping[str, Any]) -> Text:
    """A metric's verdict for the status view; a provider that does not answer says so.
    The phase and time are data, so they are styled, never read as markup."""
    from rich.text import Text

    since = measurement.get("unreachableSince")
    if since and measurement.get("phase") in ("Running", "Pending"):
        return Text.assemble(("Unreachable", "yellow"), f" since {since}")
    colour = {"Successful": "green", "Failed": "red"}.get(str(measurement["phase"]), "yellow")
    return Text(str(measurement["phase"]), style=colour)


def replicas_by_revision(replicasets: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for rs in replicasets:
        revision = ((rs.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL)
        if not revision:
            continue
        status = rs.get("status") or {}
        out[revision] = {
            "desired": int((rs.get("spec") or {}).get("replicas", 0)),
            "ready": int(status.get("readyReplicas", 0)),
            "available": int(status.get("availableReplicas", 0)),
        }
    return out


def status_document(
    rollout: Mapping[str, Any],
    replicasets: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``deployctl status -o json``: the summary, replicas per revision, the evidence."""
    status = rollout.get("status") or {}
    row = summary_row(rollout)
    pending = pending_approval(rollout)
    return {
        **row,
        "reason": status.get("reason", ""),
        "message": status.get("message", ""),
        "replicas": replicas_by_revision(replicasets),
        "measurements": latest_measurements(status, None, now=now),
        "conditions": status.get("conditions") or [],
        "pendingApproval": pending,
        "workload": workload_document(rollout),
    }


def workload_document(rollout: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Deployment a ``spec.workloadRef`` names and where its take-over stands."""
    ref = (rollout.get("spec") or {}).get("workloadRef")
    if not ref:
        return None
    if ref.get("kind") == "StatefulSet":
        return statefulset_document(rollout)
    if ref.get("kind") == "DaemonSet":
        return daemonset_document(rollout)
    known = (rollout.get("status") or {}).get("workload") or {}
    return {
        "deployment": ref.get("name"),
        "scaleDown": ref.get("scaleDown", "never"),
        "phase": known.get("phase", "TakingOver") if known else "TakingOver",
        "replicas": known.get("replicas"),
    }


def statefulset_document(rollout: Mapping[str, Any]) -> dict[str, Any]:
    """A StatefulSet Rollout's workload: its partition and the ordinals per revision,
    each revision with its role (stable, canary)."""
    ref = (rollout.get("spec") or {}).get("workloadRef") or {}
    status = rollout.get("status") or {}
    known = status.get("statefulSet") or {}
    roles = {status.get("stableRevision"): "stable", status.get("canaryRevision"): "canary"}
    return {
        "statefulSet": ref.get("name"),
        "replicas": known.get("replicas"),
        "partition": known.get("partition"),
        "moving": known.get("moving", "AtRest"),
        "waitingFor": known.get("waitingFor"),
        "ordinals": {
            revision: {"role": roles.get(revision, "old"), "ordinals": ordinals}
            for revision, ordinals in sorted((known.get("ordinals") or {}).items())
        },
    }


def daemonset_document(rollout: Mapping[str, Any]) -> dict[str, Any]:
    """A DaemonSet Rollout's workload: the Nodes per revision, each revision with its
    role (stable, canary), and the Nodes the current move waits on."""
    ref = (rollout.get("spec") or {}).get("workloadRef") or {}
    status = rollout.get("status") or {}
    known = status.get("daemonSet") or {}
    roles = {status.get("stableRevision"): "stable", status.get("canaryRevision"): "canary"}
    return {
        "daemonSet": ref.get("name"),
        "moving": known.get("moving", "AtRest"),
        "waitingFor": list(known.get("waitingFor") or []),
        "nodes": {
            revision: {"role": roles.get(revision, "old"), "nodes": sorted(nodes)}
            for revision, nodes in sorted((known.get("nodes") or {}).items())
        },
    }


def _ordinals_text(ordinals: Sequence[int]) -> str:
    """``0-3`` for a run, ``0, 2`` otherwise."""
    values = sorted(ordinals)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(str(v) for v in values)


def workload_line(workload: Mapping[str, Any]) -> str:
    """``Deployment web (scaleDown onsuccess): TakenOver, 6 to give back``, or for a
    StatefulSet ``StatefulSet db: Canary, partition 2; db-7f (stable) ordinals 0-1;
    db-9c (canary) ordinals 2-4; waiting for ordinal 2``."""
    if "daemonSet" in workload:
        text = f"DaemonSet {workload['daemonSet']}: {workload['moving']}"
        for revision, held in workload["nodes"].items():
            names = held["nodes"]
            text += f"; {revision} ({held['role']}) {len(names)} Nodes: {', '.join(names)}"
        if workload.get("waitingFor"):
            text += f"; waiting for {', '.join(workload['waitingFor'])}"
        return text
    if "statefulSet" in workload:
        text = f"StatefulSet {workload['statefulSet']}: {workload['moving']}"
        if workload.get("partition") is not None:
            text += f", partition {workload['partition']}"
        for revision, held in workload["ordinals"].items():
            text += f"; {revision} ({held['role']}) ordinals {_ordinals_text(held['ordinals'])}"
        if workload.get("waitingFor") is not None:
            text += f"; waiting for ordinal {workload['waitingFor']}"
        return text
    text = f"Deployment {workload['deployment']} (scaleDown {workload['scaleDown']}): "
    text += str(workload["phase"])
    if workload.get("replicas") is not None:
        text += f", {workload['replicas']} replicas to give back"
    return text


def pending_approval(rollout: Mapping[str, Any]) -> str | None:
    """The approval a rollout waits for, as a sentence, or None."""
    status = rollout.get("status") or {}
    reason = str(status.get("reason") or "")
    if "Approval" in reason and status.get("phase") == "Paused":
        return str(status.get("message") or reason)
    return None


def status_view(
    rollout: Mapping[str, Any],
    replicasets: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> Group:
    """The rich view ``deployctl status`` prints (and refreshes with ``--watch``)."""
    from rich.console import Group, RenderableType
    from rich.table import Table
    from rich.text import Text

    doc = status_document(rollout, replicasets, now=now)
    colour = PHASE_COLOURS.get(doc["phase"], "white")
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Rollout", plain(f"{doc['namespace']}/{doc['name']}  ({doc['strategy']})"))
    head.add_row(
        "Phase",
        Text.assemble((str(doc["phase"]), colour), f"  {doc['reason']}" if doc["reason"] else ""),
    )
    if doc["message"]:
        head.add_row("Message", plain(doc["message"]))
    if doc["workload"]:
        head.add_row("Workload", plain(workload_line(doc["workload"])))
    head.add_row("Step", plain(f"{doc['step']}   weight {doc['weight']}"))
    head.add_row("Stable", plain(doc["stable"]))
    head.add_row("Canary", plain(doc["canary"]))
    if doc["pendingApproval"]:
        head.add_row(
            "Approval", Text.assemble(("pending", "yellow"), f": {doc['pendingApproval']}")
        )
    parts: list[RenderableType] = [head]
    if doc["replicas"]:
        replicas = Table(title="Replicas", title_justify="left", box=None)
        for column in ("REVISION", "ROLE", "DESIRED", "READY", "AVAILABLE"):
            replicas.add_column(column)
        for revision, counts in sorted(doc["replicas"].items()):
            role = (
                "stable"
                if revision == doc["stable"]
                else "canary"
                if revision == doc["canary"]
                else "baseline"
                if revision.endswith(BASELINE_SUFFIX)
                else "old"
            )
            replicas.add_row(
                plain(revision),
                role,
                str(counts["desired"]),
                str(counts["ready"]),
                str(counts["available"]),
            )
        parts.append(replicas)
    if doc["measurements"]:
        metrics = Table(title="Analysis", title_justify="left", box=None)
        for column in ("RUN", "REVISION", "METRIC", "VERDICT", "LATEST", "OK/FAIL/INCONCL."):
            metrics.add_column(column)
        for m in doc["measurements"]:
            metrics.add_row(
                plain(m["about"]),
                plain(m["revision"]),
                plain(m["metric"]),
                verdict_text(m),
                plain(format_value(m["value"])),
                f"{m['successful']}/{m['failed']}/{m['inconclusive']}",
            )
        parts.append(metrics)
        for m in doc["measurements"]:
            if m["noData"] is not None:
                parts.append(Text("waiting: " + no_data_line(m), style="yellow"))
        judged = [m for m in doc["measurements"] if m.get("comparison")]
        if judged:
            parts.append(Text("Judge", style="bold"))
            for m in judged:
                parts.append(plain(judge_block(m)))
    return Group(*parts)


def judge_block(measurement: Mapping[str, Any]) -> str:
    """A compare metric's latest evidence, one fact a line, for people::

    step 2 analysis · latency against baseline: Failed
      samples  canary 240, baseline 238
      medians  canary 0.12, baseline 0.1 (+20.0%)
      p-value  1.2e-08 (fails below 0.02, confidence 98%)
      shift    0.02 [0.018, 0.022] at 98%
      score    40
    """
    evidence = measurement.get("comparison") or {}
    against = str(evidence.get("against") or "stable")
    confidence = evidence.get("confidence")
    lines = [
        f"{measurement['about']} · {measurement['metric']} against {against}: "
        f"{measurement.get('verdict') or measurement['phase']}",
        f"  samples  canary {evidence.get('canarySamples', 0)}, "
        f"{against} {evidence.get('comparisonSamples', 0)}",
    ]
    if evidence.get("canaryMedian") is not None or evidence.get("comparisonMedian") is not None:
        effect = evidence.get("effect")
        change = f" ({effect * 100:+.1f}%)" if effect is not None else ""
        lines.append(
            f"  medians  canary {_number(evidence.get('canaryMedian'))}, "
            f"{against} {_number(evidence.get('comparisonMedian'))}{change}"
        )
    if evidence.get("pValue") is not None:
        level = (
            f" (fails below {_number(1 - confidence)}, confidence {_number(confidence * 100)}%)"
            if confidence is not None
            else ""
        )
        lines.append(f"  p-value  {_number(evidence['pValue'])}{level}")
    if evidence.get("shift") is not None:
        at = f" at {_number(confidence * 100)}%" if confidence is not None else ""
        lines.append(
            f"  shift    {_number(evidence['shift'])} "
            f"[{_number(evidence.get('shiftLow'))}, {_number(evidence.get('shiftHigh'))}]{at}"
        )
    if measurement.get("score") is not None:
        lines.append(f"  score    {_number(measurement['score'])}")
    return "\n".join(lines)


def _number(value: Any) -> str:
    """3 significant digits, as the judge's own messages write numbers."""
    if value is None:
        return "-"
    return f"{float(value):.3g}"


def format_value(value: Any) -> str:
    if value is None or value == "":
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "NaN"
    return f"{number:.4g}"


def history_rows(rollout: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``deployctl history``: numbered oldest first, as ``undo --to-revision N`` takes them."""
    from controller.versions import version_label  # semver: only history needs it

    status = rollout.get("status") or {}
    rows = []
    for number, entry in enumerate(status.get("history") or [], start=1):
        images = dict(entry.get("images") or {})
        started, finished = entry.get("startedAt"), entry.get("finishedAt")
        duration = ""
        if started and finished:
            try:
                span = parse_timestamp(finished) - parse_timestamp(started)
                duration = duration_text(span.total_seconds())
            except ValueError:
                duration = ""
        rows.append(
            {
                "number": number,
                "revision": entry.get("revision"),
                "version": version_label(images),
                "images": images,
                "strategy": entry.get("strategy", ""),
                "requestedBy": entry.get("requestedBy", ""),
                "reason": entry.get("reason", ""),
                "ci": entry.get("ci") or {},
                "outcome": entry.get("outcome", ""),
                "message": entry.get("message", ""),
                "startedAt": started,
                "finishedAt": finished,
                "duration": duration,
                "events": entry.get("events") or [],
            }
        )
    return rows


def history_table(rows: list[dict[str, Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    for column in (
        "#",
        "REVISION",
        "VERSION",
        "IMAGES",
        "STRATEGY",
        "WHO",
        "WHY",
        "OUTCOME",
        "TOOK",
    ):
        table.add_column(column)
    for row in rows:
        outcome = str(row["outcome"])
        colour = {"Promoted": "green", "RolledBack": "red", "Aborted": "red"}.get(outcome)
        table.add_row(
            str(row["number"]),
            plain(row["revision"]),
            plain(row["version"] or "-"),
            plain(",".join(f"{k}={v}" for k, v in row["images"].items())),
            plain(row["strategy"]),
            plain(row["requestedBy"] or "-"),
            plain(row["reason"] or "-"),
            Text(outcome, style=colour or ""),
            plain(row["duration"] or "-"),
        )
    return table


class Narrator:
    """Progress lines for ``--wait``: each step, weight and measurement once, as they come."""

    def __init__(self, revision: str, generation: int = 0) -> None:
        self.revision = revision
        self.generation = generation
        self._seen: set[tuple[Any, ...]] = set()

    def lines(self, rollout: Mapping[str, Any]) -> list[str]:
        status = rollout.get("status") or {}
        spec = rollout.get("spec") or {}
        out: list[str] = []
        if int(status.get("observedGeneration") or 0) < self.generation:
            return out  # the controller has not seen the change yet: old news

        def once(key: tuple[Any, ...], text: str) -> None:
            if key not in self._seen:
                self._seen.add(key)
                out.append(text)

        phase = status.get("phase") or "-"
        steps = step_count(spec)
        index = status.get("currentStepIndex")
        if index is not None and steps:
            once(
                ("step", index, status.get("weight")),
                f"step {min(index + 1, steps)}/{steps}, weight {status.get('weight', 0)}%, "
                f"phase {phase}",
            )
        once(("phase", phase, status.get("reason")), _phase_line(status))
        for m in latest_measurements(status, self.revision):
            if m["at"]:
                once(
                    ("m", m["run"], m["metric"], m["at"]),
                    f"measured {m['metric']} ({m['about']}): {format_value(m['value'])} -> "
                    f"{m['verdict']}",
                )
        return out


def _phase_line(status: Mapping[str, Any]) -> str:
    text = f"phase {status.get('phase') or '-'}"
    if status.get("reason"):
        text += f" ({status['reason']})"
    if status.get("message"):
        text += f": {status['message']}"
    return text
