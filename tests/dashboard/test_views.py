"""The dashboard's views and pages as pure functions of API objects (no cluster, no browser)."""

from __future__ import annotations

import doctest
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.dashboard import html as html_module
from controller.dashboard.actions import Offer, state_offers
from controller.dashboard.charts import seconds_of
from controller.dashboard.pages import list_rows_html, rollout_html
from controller.dashboard.views import list_rows, rollout_view
from tests.dashboard.samples import CANARY, REPLICASETS, STABLE, TEMPLATE, rollout

NOW = datetime(2026, 12, 4, 5, 30, tzinfo=UTC)


def view_of(obj: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return rollout_view(
        obj or rollout(),
        replicasets=REPLICASETS,
        templates=[TEMPLATE],
        now=NOW,
        **kwargs,
    )


def test_html_builder_escapes_by_construction() -> None:
    assert doctest.testmod(html_module).failed == 0
    hostile = "<script>alert(1)</script>"
    page = rollout_html(view_of(rollout(message=hostile)), None)
    assert hostile not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_list_rows_filter_by_phase_and_sort() -> None:
    healthy = rollout(phase="Healthy")
    healthy["metadata"] = {**healthy["metadata"], "name": "api", "namespace": "a"}
    rows = list_rows([rollout(), healthy], now=NOW)
    assert [(r["namespace"], r["name"]) for r in rows] == [("a", "api"), ("demo", "shop")]
    assert rows[1]["age"] == "6m50s"
    assert [r["name"] for r in list_rows([rollout(), healthy], phase="Degraded", now=NOW)] == [
        "shop"
    ]
    assert 'href="/rollouts/demo/shop"' in list_rows_html(rows)
    assert "no rollouts match" in list_rows_html([])


def test_a_rolled_back_canary_shows_the_breach_the_for_window_and_the_rollback() -> None:
    view = view_of()
    assert [s["state"] for s in view["steps"]] == ["done", "done", "aborted", "pending", "pending"]
    assert view["traffic"] == [
        {"revision": STABLE, "role": "stable", "percent": 100},
        {"revision": CANARY, "role": "canary", "percent": 0},
    ]
    assert [(r["revision"], r["role"], r["ready"]) for r in view["revisions"]] == [
        (STABLE, "stable", 4),
        (CANARY, "canary", 0),
    ]
    (run,) = view["analysis"]
    (metric,) = run["metrics"]
    assert metric["threshold"]["max"] == 0.05 and metric["threshold"]["text"] == "max 0.05"
    assert metric["forSeconds"] == 4.0
    breach = seconds_of("2026-12-04T05:25:37Z")
    assert breach is not None
    assert metric["breachAt"] == breach
    # The window from the first breach to where it would count, clipped to the breach.
    assert metric["windows"] == [[breach, breach + 4]]
    assert metric["rollbackAt"] == seconds_of("2026-12-04T05:25:41Z")
    assert [p["breach"] for p in metric["points"]] == [False] * 6 + [True] * 3
    assert metric["chartable"]
    assert view["history"][0]["outcome"] == "RolledBack"  # newest first
    assert view["history"][0]["requestedBy"] == "alice"


def test_the_page_carries_the_evidence_the_chart_data_and_the_weight() -> None:
    page = rollout_html(view_of(), [Offer("promote", "Promote", False, "nothing to promote")])
    assert 'id="evidence"' in page and "error-rate 0.1792 &gt; max 0.05 for 4s" in page
    assert re.search(r'<dd id="weight">0%</dd>', page)
    (raw,) = re.findall(r'data-chart="([^"]+)"', page)
    data = json.loads(raw.replace("&quot;", '"'))
    assert data["max"] == 0.05 and len(data["points"]) == 9
    assert data["rollbackAt"] > data["breachAt"]
    assert "crossed the threshold at 05:25:37 (0.05486)" in page
    assert "rolled back at 05:25:41" in page
    assert "Actions disabled: nothing to promote" in page
    assert re.search(r"<button[^>]*disabled[^>]*title=\"nothing to promote\"", page)


def test_a_metric_without_numbers_is_a_table_and_relative_thresholds_are_text() -> None:
    template = json.loads(json.dumps(TEMPLATE))
    template["spec"]["metrics"][0] = {
        "name": "error-rate",
        "provider": {"prometheus": {"query": "x"}},
        "relativeTo": "stable",
        "threshold": {"maxIncrease": 0.02},
    }
    view = rollout_view(rollout(), replicasets=REPLICASETS, templates=[template], now=NOW)
    metric = view["analysis"][0]["metrics"][0]
    assert metric["threshold"]["relative"] and "stable + 0.02" in metric["threshold"]["text"]
    # Without bounds, breaches are the verdicts that are not (yet) passing.
    assert [p["breach"] for p in metric["points"]][-3:] == [True, True, True]
    no_numbers = rollout()
    for m in no_numbers["status"]["analysisRuns"][0]["metrics"][0]["measurements"]:
        m["value"] = ""
    metric = view_of(no_numbers)["analysis"][0]["metrics"][0]
    assert not metric["chartable"]
    assert 'class="chart"' not in rollout_html(view_of(no_numbers), None)


def test_holds_and_approvals_are_shown_with_their_reason() -> None:
    held = rollout(
        phase="Paused",
        reason="FrozenUntil",
        message="frozen until 2026-12-24T00:00:00Z by DeliveryPolicy shop/holidays",
        heldSince="2026-12-04T05:20:00Z",
        aborted=None,
    )
    (hold,) = view_of(held)["holds"]
    assert hold["reason"] == "FrozenUntil" and "holidays" in hold["message"] and hold["active"]
    page = rollout_html(view_of(held), None)
    assert "Policy holds" in page and "since 05:20:00" in page


def test_actions_follow_the_rollout_state() -> None:
    offers = {a: (possible, why) for a, _label, possible, why in state_offers(rollout())}
    assert offers["promote"] == (False, "nothing to promote: aborted")
    assert offers["retry"][0] and CANARY in offers["retry"][1]
    assert offers["pause"][0]
    assert offers["undo"][0] and "4rg6qp45q4" in offers["undo"][1]
    assert offers["approve"] == (False, "no approval is pending")
    paused = rollout(aborted=None, phase="Paused", reason="PauseStep")
    paused["spec"]["paused"] = True
    offers = {a: (possible, why) for a, _label, possible, why in state_offers(paused)}
    assert offers["promote"][0] and offers["abort"][0] and offers["resume"][0]
    assert not offers["retry"][0]
    waiting = rollout(aborted=None, phase="Paused", reason="AwaitingApproval", message="2 of 2")
    offers = {a: (possible, why) for a, _label, possible, why in state_offers(waiting)}
    assert offers["approve"] == (True, "grant: 2 of 2")


def test_the_bundled_chart_library_is_the_version_pinned_in_web() -> None:
    """``make dashboard-assets`` copies what controller/dashboard/web/package-lock.json
    pins; the committed copy must be that version (and its licence ships beside it)."""
    root = Path(__file__).resolve().parents[2]
    lock = json.loads((root / "controller" / "dashboard" / "web" / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/uplot"]["version"]
    vendor = root / "controller" / "dashboard" / "static" / "vendor"
    header = (vendor / "uPlot.iife.min.js").read_text()[:200]
    assert f"(v{pinned})" in header
    assert "MIT License" in (vendor / "uPlot.LICENSE.txt").read_text()
