"""docs/benchmarks.md from a ``make bench`` run: the generated tables, each figure beside
its goal and the anchors' figures, spliced between markers into the hand-written page.

The run's figures are kept as JSON next to the report (``benchmarks.json``). Rendering
works on that JSON form, so a section this invocation did not run is rendered again from
the previous JSON, and a section neither has keeps whatever text its markers hold. Each
section is one block::

    <!-- bench:rollback:begin -->
    ... generated ...
    <!-- bench:rollback:end -->

Everything outside the markers (the narrative) is left untouched; a section whose
markers the page lacks is appended at its end. ``render_section`` and ``splice`` are pure
functions (figures in, markdown out), unit-tested without a sandbox.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from tests.bench.stats import percentile

SECTIONS = ("run", "rollback", "cli", "scale", "analysis", "huge", "judge", "shards")

# The anchors' figures (Argo Rollouts v1.9.1 and deployctl at main 8a967fe on the same
# sandbox, quiet 2-core machine; /work ANCHORS, measured 2026-12-04).
ANCHORS_SOURCE = (
    "Argo Rollouts v1.9.1 and deployctl 8a967fe on the same sandbox, measured 2026-12-04"
)
ANCHOR_ROLLBACK = {"ours_p50": 3.17, "ours_p95": 6.39, "argo_p50": 7.46, "argo_p95": 7.82}
ANCHOR_BLAST = {"ours_median": 9, "ours_max": 19, "argo_median": 28, "argo_max": 30}
ANCHOR_SCALE = {
    "first_deploy_s": (181.0, 243.0),
    "canary_s": (252.0, 721.0),
    "peak_rss_mib": (186.0, 226.0),
    "cpu_per_rollout": (0.299, 0.122),
    "requests_per_rollout": (16.5, 47.5),
    "idle_requests_60s": (324.0, 869.0),
}
ANCHOR_CLI = {"help": (0.185, 0.036), "status": (0.58, 0.137)}


@dataclass
class Results:
    """Everything one ``make bench`` invocation measured (None: section not run)."""

    settings: str = ""
    measured_at: str = ""
    commit: str = ""
    machine: str = ""
    rollback: Any = None
    cli: Any = None
    scale: Any = None
    analysis: Any = None
    huge: Any = None
    shards: Any = None
    judge: Any = None
    notes: list[str] = field(default_factory=list)


def to_json(results: Results) -> dict[str, Any]:
    """The JSON form of ``results`` (dataclasses as dicts, tuples as lists)."""

    def plain(value: Any) -> Any:
        if is_dataclass(value) and not isinstance(value, type):
            return plain(asdict(value))
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    data: dict[str, Any] = plain(results)
    return data


def merged(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``current``, with each section it did not run taken from ``previous``; the run
    facts (when, commit, settings) of a kept section stay with that section."""
    out = dict(current)
    for name in ("rollback", "cli", "scale", "analysis", "huge", "judge", "shards"):
        if out.get(name) is None and previous and previous.get(name) is not None:
            kept = dict(previous[name])
            kept.setdefault("_run", _run_facts(previous))
            out[name] = kept
    return out


def _run_facts(data: dict[str, Any]) -> dict[str, str]:
    return {k: str(data.get(k, "")) for k in ("measured_at", "commit", "settings")}


# -- formatting helpers ------------------------------------------------------------------


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def _n(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _met(value: float | None, goal: float, label: str) -> str:
    if value is None:
        return label
    return f"{label}: **{'met' if value < goal else 'missed'}**"


def _provenance(section: dict[str, Any]) -> list[str]:
    run = section.get("_run")
    if not run:
        return []
    return [
        f"(Kept from an earlier run: {run.get('measured_at') or 'date unknown'}, commit "
        f"{run.get('commit') or 'unknown'}, {run.get('settings') or ''}.)",
        "",
    ]


# -- sections ----------------------------------------------------------------------------


def render_run(data: dict[str, Any]) -> str:
    lines = [
        f"Last `make bench` invocation: {data.get('measured_at') or '-'}, commit "
        f"`{data.get('commit') or '-'}`, {data.get('machine') or '-'}.",
        "",
        f"Settings: `{data.get('settings') or '-'}`. The anchors' figures beside ours are "
        f"from ANCHORS ({ANCHORS_SOURCE}), a quiet run.",
    ]
    for note in data.get("notes") or []:
        lines += ["", f"- {note}"]
    return "\n".join(lines)


def render_rollback(section: dict[str, Any]) -> str:
    runs = section.get("runs") or []
    if not runs:
        return "No rollback runs."
    seconds = [float(r["seconds"]) for r in runs]
    failed = [int(r["failed_requests"]) for r in runs]
    served = [int(r["canary_requests"]) for r in runs]
    p50, p95 = percentile(seconds, 0.5), percentile(seconds, 0.95)
    lines = _provenance(section)
    lines += _table(
        [
            "figure",
            f"deployctl, this run (n={len(runs)})",
            "deployctl, anchors (n=10)",
            "Argo Rollouts, anchors (n=10)",
            "goal",
        ],
        [
            [
                "time to rollback p50",
                _s(p50),
                _s(ANCHOR_ROLLBACK["ours_p50"]),
                _s(ANCHOR_ROLLBACK["argo_p50"]),
                "-",
            ],
            [
                "time to rollback p95",
                _s(p95),
                _s(ANCHOR_ROLLBACK["ours_p95"]),
                _s(ANCHOR_ROLLBACK["argo_p95"]),
                _met(p95, 5.0, "< 5 s"),
            ],
            [
                "time to rollback max (min)",
                f"{_s(max(seconds))} ({_s(min(seconds))})",
                "-",
                "-",
                "-",
            ],
            [
                "failed requests users saw (blast radius), median / max",
                f"{_n(statistics.median(failed))} / {max(failed)}",
                f"{ANCHOR_BLAST['ours_median']} / {ANCHOR_BLAST['ours_max']}",
                f"{ANCHOR_BLAST['argo_median']} / {ANCHOR_BLAST['argo_max']}",
                "-",
            ],
            ["requests the canary served, median", _n(statistics.median(served)), "-", "-", "-"],
        ],
    )
    stages: dict[str, list[float]] = {}
    for run in runs:
        for name, value in (run.get("stages") or {}).items():
            stages.setdefault(name, [])
            if value is not None:
                stages[name].append(float(value))
    if stages:
        lines += ["", f"Stages, seconds after the first canary request (n={len(runs)}):", ""]
        lines += _table(
            ["stage", "median", "max", "seen in"],
            [
                [
                    name,
                    _s(statistics.median(v)) if v else "-",
                    _s(max(v)) if v else "-",
                    f"{len(v)} of {len(runs)}",
                ]
                for name, v in stages.items()
            ],
        )
    reasons: dict[str, int] = {}
    for run in runs:
        reasons[str(run.get("reason"))] = reasons.get(str(run.get("reason")), 0) + 1
    lines += ["", "Reasons recorded: " + ", ".join(f"{k} ×{v}" for k, v in reasons.items()) + "."]
    return "\n".join(lines)


def render_cli(section: dict[str, Any]) -> str:
    lines = _provenance(section)
    rows = []
    for label, spread in section.items():
        if label.startswith("_"):
            continue
        median = float(spread["median"])
        measured = f"{_s(median)} ({_s(spread['low'])}-{_s(spread['high'])}, n={spread['n']})"
        if label.startswith("kubectl"):  # the reference, measured in turn with status
            rows.append([f"`{label}`", measured, "-", "-", "- (reference)"])
            continue
        kind = "help" if "--help" in label else "status"
        ours, plugin = ANCHOR_CLI[kind]
        goal = 0.2 if kind == "help" else 0.5
        rows.append(
            [
                f"`{label}`",
                measured,
                _s(ours, 3),
                _s(plugin, 3),
                _met(median, goal, f"< {goal:g} s"),
            ]
        )
    lines += _table(
        [
            "command",
            "median wall (min-max), this run",
            "deployctl, anchors",
            "Argo's kubectl plugin, anchors",
            "goal",
        ],
        rows,
    )
    return "\n".join(lines)


def _phase_rows(section: dict[str, Any]) -> dict[str, Any]:
    count = int(section["rollouts"])
    first, canary = section["first_deploy"], section["canary"]
    return {"count": count, "first": first, "canary": canary}


def _kinds(section: dict[str, Any]) -> list[list[str]]:
    """Per verb and resource: requests per Rollout in each phase and over both."""
    count = int(section["rollouts"])
    first = section["first_deploy"].get("requests_by_kind") or {}
    canary = section["canary"].get("requests_by_kind") or {}
    kinds = sorted(set(first) | set(canary), key=lambda k: -(first.get(k, 0) + canary.get(k, 0)))
    rows = [
        [
            f"`{kind}`",
            _n(first.get(kind, 0) / count, 2),
            _n(canary.get(kind, 0) / count, 2),
            _n((first.get(kind, 0) + canary.get(kind, 0)) / count, 2),
        ]
        for kind in kinds
    ]
    if rows:
        total_first = sum(first.values()) / count
        total_canary = sum(canary.values()) / count
        rows.append(
            ["all", _n(total_first, 2), _n(total_canary, 2), _n(total_first + total_canary, 2)]
        )
    return rows


def render_scale(section: dict[str, Any]) -> str:
    count = int(section["rollouts"])
    first, canary = section["first_deploy"], section["canary"]
    cpu_first, cpu_canary = first["cpu"] / count, canary["cpu"] / count
    requests = (first["requests"] + canary["requests"]) / count
    idle = section.get("idle_requests") or {}
    idle_s = float(section.get("idle_window_s") or 0)
    idle_total = sum(idle.values())
    idle_per_min = idle_total * 60 / idle_s if idle_s else None
    a = ANCHOR_SCALE
    lines = _provenance(section)
    lines += _table(
        [
            "figure",
            f"deployctl, this run ({count:,})",
            "deployctl before (anchors, 1,000)",
            "Argo Rollouts (anchors, 1,000)",
            "goal",
        ],
        [
            [
                "first deploys, all Healthy (wall)",
                f"{first['seconds']:.0f} s (load {first['load']:.1f})",
                f"{a['first_deploy_s'][0]:.0f} s",
                f"{a['first_deploy_s'][1]:.0f} s",
                "compare only on a quiet machine",
            ],
            [
                "canaries, all promoted (wall)",
                f"{canary['seconds']:.0f} s (load {canary['load']:.1f})",
                f"{a['canary_s'][0]:.0f} s",
                f"{a['canary_s'][1]:.0f} s",
                "compare only on a quiet machine",
            ],
            [
                "controller CPU per Rollout, first deploy",
                f"{cpu_first:.3f} s ({first['cpu']:.1f} s)",
                "-",
                "-",
                "-",
            ],
            [
                "controller CPU per Rollout, canary",
                f"{cpu_canary:.3f} s ({canary['cpu']:.1f} s)",
                "-",
                "-",
                "-",
            ],
            [
                "controller CPU per Rollout, both phases",
                f"**{cpu_first + cpu_canary:.3f} s**",
                f"{a['cpu_per_rollout'][0]:.3f} s",
                f"{a['cpu_per_rollout'][1]:.3f} s",
                _met(cpu_first + cpu_canary, a["cpu_per_rollout"][1] + 1e-9, "≤ 0.122 s"),
            ],
            [
                "controller peak RSS",
                f"{section['peak_rss_mib']:.0f} MiB",
                f"{a['peak_rss_mib'][0]:.0f} MiB",
                f"{a['peak_rss_mib'][1]:.0f} MiB",
                "< 2 GiB at 10,000 (stretch 1 GiB)",
            ],
            [
                "API requests per Rollout, both phases",
                f"{requests:.1f} ({first['requests']:,.0f} + {canary['requests']:,.0f})",
                f"{a['requests_per_rollout'][0]:.1f}",
                f"{a['requests_per_rollout'][1]:.1f}",
                _met(requests, a["requests_per_rollout"][0] + 1e-9, "no worse than 16.5"),
            ],
            [
                "passes, both phases (echoes of our own status writes skipped)",
                f"{first['passes'] + canary['passes']:,.0f} "
                f"({first['echoes'] + canary['echoes']:,.0f} skipped)",
                "-",
                "-",
                "-",
            ],
            [
                "reconcile p50 / p99 (bucket bounds)",
                f"{_s(section['reconcile'][0], 3)} / {_s(section['reconcile'][1], 3)}",
                "-",
                "-",
                "-",
            ],
            [
                "work-queue wait p50 / p99 (bucket bounds)",
                f"{_s(section['queue_wait'][0], 3)} / {_s(section['queue_wait'][1], 3)}",
                "-",
                "-",
                "-",
            ],
            [
                "API requests while idle",
                f"{idle_total:,.0f} in {idle_s:g} s"
                + (f" (= {idle_per_min:,.0f} per minute)" if idle_per_min is not None else "")
                + (
                    ": " + ", ".join(f"{k} {_n(v)}" for k, v in sorted(idle.items()))
                    if idle
                    else ""
                ),
                f"{a['idle_requests_60s'][0]:.0f} in 60 s",
                f"{a['idle_requests_60s'][1]:.0f} in 60 s",
                "the Lease and watches only",
            ],
        ],
    )
    kinds = _kinds(section)
    if kinds:
        lines += [
            "",
            "API requests per Rollout by verb and resource (the controller's "
            "`deployctl_api_requests_total`); the Lease's renewals are per second of wall "
            "time, not per Rollout, so a slower run shows more of them per Rollout:",
            "",
        ]
        lines += _table(["verb resource", "first deploy", "canary", "both"], kinds)
        leases = sum(
            n
            for phase in (first, canary)
            for kind, n in (phase.get("requests_by_kind") or {}).items()
            if kind.endswith(" leases")
        )
        wall = first["seconds"] + canary["seconds"]
        lines += [
            "",
            f"Without the Lease's renewals: {requests - leases / count:.1f} requests per "
            f"Rollout ({leases:,.0f} Lease requests in {wall:.0f} s).",
        ]
        not_ok: dict[str, float] = {}
        for phase in (first, canary):
            for key, n in (phase.get("requests_not_ok") or {}).items():
                not_ok[key] = not_ok.get(key, 0.0) + n
        lines += [
            "",
            "Answered other than 2xx: "
            + (", ".join(f"`{k}` {_n(v)}" for k, v in sorted(not_ok.items())) or "none")
            + ".",
        ]
    profile = section.get("profile")
    if profile and profile.get("samples"):
        samples = int(profile["samples"])
        lines += ["", f"Where the controller's CPU went (py-spy, {samples:,} samples):", ""]
        lines += _table(
            ["cost", "share"],
            [[name, f"{n / samples:.1%}"] for name, n in (profile.get("by_cost") or [])[:8]],
        )
    return "\n".join(lines)


def render_analysis(section: dict[str, Any]) -> str:
    count = int(section["canaries"])
    bad = list(section.get("bad") or [])
    rolled_back = list(section.get("rolled_back") or [])
    promoted = int(section.get("promoted") or 0)
    wrong = sorted(set(rolled_back) - set(bad))
    missed = sorted(set(bad) - set(rolled_back))
    seconds = float(section["seconds"])
    queries = float(section["queries"])
    measurements = float(section.get("measurements") or 0)
    verdicts = [float(v) for v in section.get("verdict_latency") or []]
    firsts = [float(v) for v in section.get("first_verdict") or []]
    per_query = [int(v) for v in section.get("revisions_per_query") or []]
    exact = not wrong and not missed and promoted == count - len(bad)
    lines = _provenance(section)
    if count < 1000:
        lines += [f"Run at {count:,} canaries (not the goal's 1,000).", ""]

    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        return (
            f"p50 {_s(percentile(values, 0.5))}, p95 {_s(percentile(values, 0.95))}, "
            f"max {_s(max(values))} (n={len(values)})"
        )

    lines += _table(
        ["figure", f"deployctl, this run ({count:,} canaries, {len(bad)} bad)", "goal"],
        [
            [
                "queries to Prometheus while the canaries ran",
                f"{queries:,.0f} in {seconds:.0f} s = **{queries / seconds:.2f}/s** "
                f"(load {section['load']:.1f})"
                if seconds
                else "-",
                "grows with distinct templates (1 here), not with Rollouts",
            ],
            [
                "revisions per grouped query, median / max",
                f"{statistics.median(per_query):g} / {max(per_query)}" if per_query else "-",
                "many (every revision measured in the same tick)",
            ],
            [
                "measurements per query",
                f"{measurements / queries:.1f} ({measurements:,.0f} measurements)"
                if queries
                else "-",
                "> 1 (batched)",
            ],
            [
                "exporter scrapes cut off by Prometheus's 1 s timeout",
                _n(section.get("scrapes_cut") or 0),
                "0 (a loaded machine makes gaps in the data)",
            ],
            [
                "longest query request line (long queries are POSTed)",
                f"{int(section.get('longest_request') or 0):,} bytes",
                "under common URL limits (8 KiB in nginx's default buffers)",
            ],
            [
                "controller CPU, canary phase",
                f"{section['cpu']:.1f} s ({section['cpu'] / count:.3f} s per canary)",
                "-",
            ],
            ["controller peak RSS", f"{section['peak_rss_mib']:.0f} MiB", "-"],
            ["analysis started → first verdict", spread(firsts), "-"],
            ["analysis started → run's verdict (Successful or Failed)", spread(verdicts), "-"],
            [
                "bad canaries: first request served → rolled back",
                spread([float(v) for v in section.get("rollback_latency") or []]),
                "-",
            ],
            [
                "rolled back",
                f"{len(rolled_back)} ({len(bad) - len(missed)} of {len(bad)} bad; "
                f"{len(wrong)} good)",
                f"exactly the {len(bad)} bad: **{'met' if exact else 'missed'}**",
            ],
            ["promoted", f"{promoted} of {count - len(bad)} good", "all good"],
        ],
    )
    kinds = section.get("queries_by_kind") or {}
    if kinds:
        lines += ["", "The queries by kind (classified by the counting proxy):", ""]
        lines += _table(
            ["query", "count", "per second"],
            [
                [kind, _n(n), f"{n / seconds:.2f}" if seconds else "-"]
                for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])
            ],
        )
    if wrong:
        lines += ["", "Good canaries rolled back: " + ", ".join(wrong[:20]) + "."]
    if missed:
        lines += ["", "Bad canaries not rolled back: " + ", ".join(missed[:20]) + "."]
    lines += ["", "No anchor figure: ANCHORS measured no analysis at scale."]
    return "\n".join(lines)


def render_judge(section: dict[str, Any]) -> str:
    """The comparison judge's measured error rates beside what its confidence implies."""
    runs = list(section.get("runs") or [])
    confidence = float(section["confidence"])
    tolerance = float(section["tolerance"])
    slower = float(section.get("slower") or 1.2)

    def rate(kind: bool, outcome: str) -> tuple[int, int]:
        chosen = [r for r in runs if bool(r["slower"]) == kind]
        return sum(1 for r in chosen if r["outcome"] == outcome), len(chosen)

    false_pos, identical = rate(False, "rolled back")
    false_neg, slow = rate(True, "promoted")
    undecided = sum(1 for r in runs if r["outcome"] == "undecided")

    def share(n: int, of: int) -> str:
        return f"{n} of {of} ({100 * n / of:.1f}%)" if of else "-"

    def p_values(kind: bool) -> str:
        values = sorted(
            float(r["p_value"])
            for r in runs
            if bool(r["slower"]) == kind and r.get("p_value") is not None
        )
        if not values:
            return "-"
        return f"median {statistics.median(values):.2g}, min {values[0]:.2g}, max {values[-1]:.2g}"

    def effects(kind: bool) -> str:
        values = [
            float(r["effect"])
            for r in runs
            if bool(r["slower"]) == kind and r.get("effect") is not None
        ]
        if not values:
            return "-"
        middle, low, high = (100 * statistics.median(values), 100 * min(values), 100 * max(values))
        return f"median {middle:+.1f}%, {low:+.1f}% .. {high:+.1f}%"

    lines = _provenance(section)
    lines += _table(
        ["figure", "measured", "implied by the settings"],
        [
            [
                "identical canaries rolled back (false positives)",
                f"**{share(false_pos, identical)}**",
                f"at most {100 * (1 - confidence):g}% (1 - confidence {confidence:g}; "
                f"less with tolerance {tolerance:g})",
            ],
            [
                f"canaries {slower:g}x slower promoted (false negatives)",
                f"**{share(false_neg, slow)}**",
                "near 0 when the samples resolve the shift (the power, not set by confidence)",
            ],
            ["undecided when the run ended", str(undecided), "0"],
            ["p-value, identical canaries", p_values(False), "uniform-ish, mostly large"],
            ["p-value, slower canaries", p_values(True), f"below {1 - confidence:.2g}"],
            ["effect (canary median vs baseline's), identical", effects(False), "about 0"],
            ["effect, slower", effects(True), f"about +{100 * (slower - 1):.0f}%"],
            [
                "wall time, Rollouts at once",
                f"{float(section.get('seconds') or 0):.0f} s, {section.get('batch')} at once "
                f"(load {float(section.get('load') or 0):.1f})",
                "-",
            ],
        ],
    )
    return "\n".join(lines)


def render_shards(section: dict[str, Any]) -> str:
    """Active-active shards: the split, CPU per replica, takeover, join, leave, audit."""

    def per_replica(values: dict[str, Any]) -> str:
        return " / ".join(f"{k} {_n(float(v), 2)}" for k, v in sorted(values.items()))

    doubles = dict(section.get("double_writes") or {})
    lease = float(section.get("lease_s") or 0)
    lines = _provenance(section)
    lines += _table(
        ["figure", f"{_n(section.get('rollouts'))} Rollouts, {section.get('shards')} shards"],
        [
            ["Rollouts per replica by recorded writer", per_replica(section.get("split") or {})],
            [
                "first deploys: wall time; CPU seconds per replica",
                f"{_s(section.get('first_deploy_s'), 0)}; "
                f"{per_replica(section.get('first_deploy_cpu') or {})}",
            ],
            ["canary start to every canary in its pause", _s(section.get("to_pause_s"), 0)],
            [
                "canary start to every canary promoted; CPU seconds per replica",
                f"{_s(section.get('canary_s'), 0)}; {per_replica(section.get('canary_cpu') or {})}",
            ],
            [
                f"SIGKILL to each of the killed replica's {section.get('killed_shards')} shards "
                f"written by another (lease {lease:.0f} s; goal lease + 5 s)",
                f"**{_s(section.get('takeover_s'), 1)}** (first "
                f"{_s(section.get('takeover_first_s'), 1)}): "
                f"{_met(section.get('takeover_s'), lease + 5, 'within lease + 5 s')}",
            ],
            [
                f"SIGKILL to all its {section.get('killed_rollouts')} Rollouts promoted "
                "and written by another",
                _s(section.get("takeover_all_s"), 1),
            ],
            [
                "a 4th replica started to a quarter each (process start and sync included)",
                f"**{_s(section.get('join_s'), 1)}** "
                f"(shards {per_replica(section.get('join_split') or {})})",
            ],
            [
                "SIGTERM of the 4th to its shards held by the others",
                f"**{_s(section.get('leave_s'), 1)}**",
            ],
            [
                "Rollouts written by a replica after another in the same phase "
                f"({_n(section.get('writes_audited'))} status writes audited)",
                "**"
                + ", ".join(f"{k}: {v}" for k, v in doubles.items())
                + f"**; watch errors {len(section.get('audit_errors') or [])}",
            ],
            ["load average during the run (2 cores)", _n(float(section.get("load") or 0), 1)],
        ],
    )
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "rollback": render_rollback,
    "cli": render_cli,
    "scale": render_scale,
    "analysis": render_analysis,
    "huge": render_scale,
    "judge": render_judge,
    "shards": render_shards,
}


def render_section(name: str, data: dict[str, Any]) -> str | None:
    """The generated markdown of section ``name`` from the JSON form of a run; None when
    the run has no figures for it."""
    if name == "run":
        return render_run(data)
    section = data.get(name)
    if section is None:
        return None
    return RENDERERS[name](section)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"


def splice(page: str, blocks: dict[str, str | None]) -> str:
    """``page`` with the text between each section's markers replaced by its block; a
    None block keeps what is there; a block whose markers are missing is appended."""
    for name, block in blocks.items():
        if block is None:
            continue
        begin, end = _markers(name)
        body = f"{begin}\n{block.rstrip()}\n{end}"
        start = page.find(begin)
        stop = page.find(end, start) if start >= 0 else -1
        if start >= 0 and stop >= 0:
            page = page[:start] + body + page[stop + len(end) :]
        else:
            page = page.rstrip("\n") + "\n\n" + body + "\n"
    return page


def render_page(page: str, data: dict[str, Any]) -> str:
    return splice(page, {name: render_section(name, data) for name in SECTIONS})


def write_report(results: Results, path: Path, previous: Path | None = None) -> None:
    """Write ``path`` (markdown) and its JSON beside it, keeping the sections not run."""
    json_path = path.with_suffix(".json")
    old: dict[str, Any] | None = None
    if json_path.exists():
        try:
            old = json.loads(json_path.read_text())
        except ValueError:
            old = None
    data = merged(to_json(results), old)
    page = previous.read_text() if previous is not None and previous.exists() else "# Benchmarks\n"
    path.write_text(render_page(page, data))
    json_path.write_text(json.dumps(data, indent=1) + "\n")
