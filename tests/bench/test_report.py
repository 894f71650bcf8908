"""The benchmark report: fixed figures in, markdown out, spliced between markers without
touching the narrative, sections not run kept from the previous run's JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.analysis import AnalysisResult
from tests.bench.judge import JudgeResult, Repetition
from tests.bench.profiling import Summary
from tests.bench.report import (
    Results,
    merged,
    render_cli,
    render_page,
    splice,
    to_json,
    write_report,
)
from tests.bench.rollback import RollbackResult, RollbackRun
from tests.bench.scale import Phase, ScaleResult
from tests.bench.stats import Spread

NARRATIVE = """# Benchmarks

Hand-written words before.

<!-- bench:rollback:begin -->
old rollback table
<!-- bench:rollback:end -->

Reading the rollback figures: words that must stay.

<!-- bench:analysis:begin -->
old analysis table
<!-- bench:analysis:end -->

The end.
"""


def rollback() -> RollbackResult:
    runs = [
        RollbackRun(
            seconds=float(s),
            failed_requests=f,
            canary_requests=40,
            reason="AnalysisFailed",
            stages={"first series": 1.0 + s / 10, "aborted": None if s == 20 else s - 0.5},
        )
        for s, f in zip(range(1, 21), [3, 5] * 10, strict=True)
    ]
    return RollbackResult(runs=runs)


def scale() -> ScaleResult:
    return ScaleResult(
        rollouts=100,
        first_deploy=Phase(
            seconds=50,
            cpu=2.0,
            requests=600,
            passes=300,
            echoes=200,
            load=3.0,
            requests_by_kind={"create replicasets": 100, "patch rollouts": 500},
        ),
        canary=Phase(
            seconds=70,
            cpu=4.0,
            requests=1300,
            passes=500,
            echoes=400,
            load=4.0,
            requests_by_kind={"patch rollouts": 1000, "get replicasets": 280, "get leases": 20},
            requests_not_ok={"patch rollouts 409": 30},
        ),
        peak_rss_mib=80.4,
        reconcile=(0.01, 0.25, 800),
        queue_wait=(0.005, 1.0, 800),
        idle_window_s=10,
        idle_requests={"get leases": 5, "update leases": 5},
        profile=Summary(
            samples=200,
            by_cost=(("API writes (HTTP, TLS, JSON)", 150), ("logging", 50)),
            by_function=(),
        ),
    )


def analysis() -> AnalysisResult:
    return AnalysisResult(
        canaries=60,
        bad=["a00010", "a00030", "a00050"],
        rolled_back=["a00010", "a00030", "a00050"],
        promoted=57,
        seconds=100,
        load=5.0,
        queries=150,
        measurements=180,
        cpu=12.0,
        peak_rss_mib=70,
        first_verdict=[2.0] * 19 + [9.0],
        verdict_latency=[5.0] * 19 + [11.0],
        rollback_latency=[4.0, 5.0, 6.0],
        queries_by_kind={"grouped preset query": 150},
        revisions_per_query=[1, 1, 2, 5],
        longest_request=9000,
        scrapes_cut=2,
    )


def results() -> Results:
    return Results(
        settings="BENCH_RUNS=20",
        measured_at="2026-12-04 12:00 UTC",
        commit="abc1234",
        machine="2 cores",
        rollback=rollback(),
        cli={
            "deployctl --help": Spread(0.15, 0.1, 0.3, 10),
            "deployctl status shop": Spread(0.8, 0.6, 1.2, 10),
        },
        scale=scale(),
        analysis=analysis(),
    )


def test_the_generated_tables_replace_only_the_text_between_markers() -> None:
    page = render_page(NARRATIVE, to_json(results()))

    assert "old rollback table" not in page and "old analysis table" not in page
    for kept in ("Hand-written words before.", "words that must stay.", "The end."):
        assert page.count(kept) == 1
    assert page.index("<!-- bench:rollback:begin -->") < page.index("words that must stay.")
    # Sections the page had no markers for are appended, once each.
    for name in ("run", "cli", "scale"):
        assert page.count(f"<!-- bench:{name}:begin -->") == 1
    assert "huge" not in page


def test_rollback_figures_stand_beside_goal_and_anchors() -> None:
    page = render_page(NARRATIVE, to_json(results()))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines()}

    # Nearest rank over 1..20 s: p50 is the 10th value, p95 the 19th.
    assert "| 10.00 s | 3.17 s | 7.46 s |" in rows["time to rollback p50"]
    assert "19.00 s" in rows["time to rollback p95"]
    assert "< 5 s: **missed**" in rows["time to rollback p95"]
    assert "20.00 s (1.00 s)" in rows["time to rollback max (min)"]
    assert (
        "| 4 / 5 | 9 / 19 | 28 / 30 |"
        in rows["failed requests users saw (blast radius), median / max"]
    )
    assert "19 of 20" in rows["aborted"]  # a stage not seen in one run is counted apart


def test_scale_figures_per_rollout_and_per_kind() -> None:
    page = render_page(NARRATIVE, to_json(results()))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines()}

    assert "0.020 s (2.0 s)" in rows["controller CPU per Rollout, first deploy"]
    assert "**0.060 s**" in rows["controller CPU per Rollout, both phases"]
    assert "≤ 0.122 s: **met**" in rows["controller CPU per Rollout, both phases"]
    assert "19.0 (600 + 1,300)" in rows["API requests per Rollout, both phases"]
    assert "**missed**" in rows["API requests per Rollout, both phases"]
    assert "10 in 10 s (= 60 per minute)" in rows["API requests while idle"]
    assert rows["`patch rollouts`"].endswith("| 5 | 10 | 15 |")
    assert rows["`get replicasets`"].endswith("| 0 | 2.80 | 2.80 |")
    assert "Without the Lease's renewals: 18.8 requests per Rollout (20 Lease requests" in page
    assert "Answered other than 2xx: `patch rollouts 409` 30." in page
    assert rows["all"].endswith("| 6 | 13 | 19 |")
    assert "py-spy, 200 samples" in page
    assert rows["API writes (HTTP, TLS, JSON)"].endswith("| 75.0% |")


def test_analysis_figures_and_the_rolled_back_set() -> None:
    page = render_page(NARRATIVE, to_json(results()))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines()}

    assert "Run at 60 canaries (not the goal's 1,000)." in page
    assert "150 in 100 s = **1.50/s**" in rows["queries to Prometheus while the canaries ran"]
    assert "1.2 (180 measurements)" in rows["measurements per query"]
    assert "| 1.5 / 5 |" in rows["revisions per grouped query, median / max"]
    assert rows["grouped preset query"].endswith("| 150 | 1.50 |")
    assert "| 9,000 bytes |" in rows["longest query request line (long queries are POSTed)"]
    assert "| 2 |" in rows["exporter scrapes cut off by Prometheus's 1 s timeout"]
    assert (
        "p50 5.00 s, p95 5.00 s, max 11.00 s (n=20)"
        in rows["analysis started → run's verdict (Successful or Failed)"]
    )
    assert "3 (3 of 3 bad; 0 good)" in rows["rolled back"]
    assert "exactly the 3 bad: **met**" in rows["rolled back"]


def test_a_good_canary_rolled_back_is_named_and_the_goal_missed() -> None:
    figures = analysis()
    figures.rolled_back = [*figures.bad, "a00007"]
    figures.promoted = 56
    page = render_page(NARRATIVE, to_json(Results(analysis=figures)))

    assert "exactly the 3 bad: **missed**" in page
    assert "Good canaries rolled back: a00007." in page


def test_sections_not_run_are_kept_from_the_previous_json() -> None:
    previous = to_json(results())
    now = to_json(Results(settings="BENCH_SECTIONS=cli", measured_at="later", commit="def5678"))
    now["cli"] = to_json(results())["cli"]

    data = merged(now, previous)

    assert data["rollback"]["runs"] == previous["rollback"]["runs"]
    assert data["rollback"]["_run"]["commit"] == "abc1234"
    assert "_run" not in data["cli"]
    page = render_page(NARRATIVE, data)
    assert "Kept from an earlier run: 2026-12-04 12:00 UTC, commit abc1234" in page
    assert "old rollback table" not in page


def test_a_section_neither_run_nor_in_the_json_keeps_its_text() -> None:
    page = splice(NARRATIVE, {"rollback": None, "analysis": "new"})

    assert "old rollback table" in page
    assert "<!-- bench:analysis:begin -->\nnew\n<!-- bench:analysis:end -->" in page


def test_write_report_round_trips_through_its_json(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text(NARRATIVE)
    write_report(results(), report, previous=report)
    first = report.read_text()

    write_report(Results(settings="again"), report, previous=report)

    saved = json.loads(report.with_suffix(".json").read_text())
    assert saved["analysis"]["queries"] == 150
    again = report.read_text()
    assert again.count("words that must stay.") == 1
    assert "150 in 100 s" in first and "150 in 100 s" in again


def test_kubectl_get_is_shown_as_the_reference_beside_status() -> None:
    section = to_json(results())["cli"]
    section["kubectl get rollouts.deployctl.io shop"] = {
        "median": 0.2,
        "low": 0.1,
        "high": 0.3,
        "n": 10,
    }
    table = render_cli(section)
    kubectl_row = next(line for line in table.splitlines() if "kubectl get" in line)
    status_row = next(line for line in table.splitlines() if "deployctl status" in line)
    assert "- (reference)" in kubectl_row and "< 0.5 s" not in kubectl_row
    assert "< 0.5 s" in status_row


def test_judge_rates_are_counted_per_kind_beside_what_the_confidence_implies() -> None:
    judge = JudgeResult(repetitions=2, batch=4, seconds=300.0, load=3.0)
    judge.runs = [
        Repetition("same-000", False, 2000, "promoted", p_value=0.5, effect=0.01),
        Repetition("same-001", False, 2001, "rolled back", p_value=0.001, effect=0.12),
        Repetition("slow-000", True, 3000, "rolled back", p_value=1e-9, effect=0.19),
        Repetition("slow-001", True, 3001, "rolled back", p_value=1e-8, effect=0.21),
    ]
    page = render_page("# Benchmarks\n", to_json(Results(judge=judge)))
    assert "| identical canaries rolled back (false positives) | **1 of 2 (50.0%)** |" in page
    assert "| canaries 1.2x slower promoted (false negatives) | **0 of 2 (0.0%)** |" in page
    assert "at most 2% (1 - confidence 0.98" in page
    assert "median +20.0%, +19.0% .. +21.0%" in page
