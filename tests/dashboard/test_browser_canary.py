"""A broken canary, watched live in a real browser (headless Chromium, one session).

The operator runs as a real process with leader election, real Prometheus scrapes real
demo-app pods, traffic flows. A v2 that starts failing 30% of requests 20 s after it
starts is rolled back by its analysis step while its page is open: without a reload the
page shows the error-rate line going from below the threshold to above it (drawn: the
threshold's red pixels, the line's, the rollback's), the rollback, the weight back at
0 and the evidence. The list page and the rolled-back canary are screenshotted (into
docs/images/ with DEPLOYCTL_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.dashboard.helpers import (
    browser,
    dashboard_process,
    full_page,
    save_screenshot,
    text_of,
    texts_of,
    wait_until,
)
from tests.integration.harness import Cluster, demo_rollout

LEASE = "deployctl-dashboard-test"
STEPS = [
    {"setWeight": 25},
    {"pause": {"duration": "2s"}},
    {"analysis": {"templates": [{"name": "errors"}]}},
    {"setWeight": 50},
    {"pause": {}},
]
TEMPLATE = {
    "apiVersion": "deployctl.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "errors"},
    "spec": {
        "metrics": [
            {
                "name": "error-rate",
                "errorRate": {"max": 0.05, "window": "10s"},
                "interval": "2s",
                "count": 40,
                "failureLimit": 0,
                "inconclusiveLimit": 20,
                "for": "4s",
            }
        ]
    },
}

# Counts pixels of a colour family in a strip of the chart's canvas: proves a line was
# drawn where the data says, not only that the data is there.
PIXELS = """
const [metric, what, value] = arguments;
const el = document.querySelector(`.chart[data-metric="${metric}"]`);
const u = el && el._uplot;
if (!u) return -1;
const ctx = u.ctx, box = u.bbox, dpr = window.devicePixelRatio;
let x0, y0, w, h;
if (what === "horizontal") {
  y0 = Math.round(u.valToPos(value, "y", true)) - 2 * dpr; h = 4 * dpr;
  x0 = Math.round(box.left); w = Math.round(box.width);
} else {
  x0 = Math.round(u.valToPos(value, "x", true)) - 2 * dpr; w = 4 * dpr;
  y0 = Math.round(box.top); h = Math.round(box.height);
}
const data = ctx.getImageData(x0, y0, w, h).data;
let red = 0, darkred = 0, blue = 0;
for (let i = 0; i < data.length; i += 4) {
  const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
  if (r > 190 && g < 90 && b < 90) red++;
  if (r > 90 && r < 160 && g < 50 && b < 50) darkred++;
  if (b > 190 && r < 90 && g < 140) blue++;
}
return {red, darkred, blue};
"""


def canary(version: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    body = demo_rollout(
        "shop",
        version=version,
        env=env,
        strategy={
            "canary": {
                "stableService": "shop-stable",
                "canaryService": "shop-canary",
                "steps": STEPS,
            }
        },
    )
    body["metadata"]["annotations"] = {
        "deployctl.io/requested-by": "alice",
        "deployctl.io/reason": f"release {version}",
    }
    return body


def test_a_broken_canary_rolls_back_before_your_eyes(
    cluster: Cluster, start_controller: Any, control_plane: Any, traffic: Any, tmp_path: Path
) -> None:
    ns = cluster.namespace
    for service in ("shop", "shop-stable", "shop-canary"):
        cluster.create_service(service, {"app": "shop"}, rollout="shop")
    cluster.create_template(TEMPLATE)
    controller = start_controller(
        [
            "--lease-namespace",
            ns,
            "--lease-name",
            LEASE,
            "--retry-period",
            "0.5",
            # Generous: a loaded machine must not cost the leader its Lease mid-test.
            "--renew-deadline",
            "10",
            "--lease-duration",
            "15",
        ]
    )
    cluster.apply_rollout(canary("v1"))
    # Two more, so the list has something to list: one settled, one waiting at a pause.
    small = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
    cluster.apply_rollout(demo_rollout("cart", version="v7", replicas=1, strategy=small))
    cluster.apply_rollout(demo_rollout("search", version="v3", replicas=2, strategy=small))
    wait_until(
        lambda: cluster.status("search"),
        ok=lambda s: s.get("phase") == "Healthy",
        timeout=90,
        what="search Healthy",
    )
    cluster.apply_rollout(demo_rollout("search", version="v4", replicas=2, strategy=small))
    wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: s.get("phase") == "Healthy",
        timeout=90,
        what="v1 Healthy",
    )
    traffic(ns, service="shop", rate_per_second=40)
    env = {"DEPLOYCTL_CONTROLLER_NAMESPACE": ns, "DEPLOYCTL_CONTROLLER_LEASE": LEASE}
    with (
        dashboard_process(control_plane.kubeconfig, ns, tmp_path, env=env) as dashboard,
        browser(tmp_path) as driver,
    ):
        driver.get(f"{dashboard.url}/rollouts/{ns}/shop")
        wait_until(
            lambda: (
                driver.execute_script("return document.getElementById('live').textContent")
                == "live"
            ),
            timeout=60,
            what="the page's live stream",
        )
        # v2 breaks 20 s after its pods start; the page is not reloaded from here on.
        cluster.apply_rollout(
            canary("v2", {"DEMO_ERROR_RATE": "0.3", "DEMO_ERRORS_AFTER_SECONDS": "20"})
        )
        wait_until(
            lambda: driver.execute_script(
                "const s = document.querySelector('.summary');"
                "return s && s.dataset.phase === 'Degraded' && "
                "document.getElementById('weight').textContent === '0%' && "
                "!!document.querySelector('.chart[data-metric=\"error-rate\"]')"
            ),
            timeout=300,
            what="the page to show the rollback",
        )
        assert int(driver.execute_script("return document.body.dataset.updates")) >= 3

        evidence = text_of(driver, "id", "evidence")
        assert "AnalysisFailed" in evidence and "error-rate" in evidence
        assert "> max 0.05" in evidence
        # Read in one script: the page redraws on every update, and elements found in one
        # call can be gone by the next (a stale element reference).
        shares = driver.execute_script(
            "const out = {};"
            "document.querySelectorAll('li.share-text').forEach("
            "li => { out[li.dataset.role] = li.dataset.percent; });"
            "return out;"
        )
        assert shares == {"stable": "100", "canary": "0"}

        data = driver.execute_script(
            "return document.querySelector('.chart[data-metric=\"error-rate\"]')._chartData"
        )
        values = [p[1] for p in data["points"] if p[1] is not None]
        assert data["max"] == 0.05
        below = [i for i, v in enumerate(values) if v <= 0.05]
        above = [i for i, v in enumerate(values) if v > 0.05]
        assert below and above and below[0] < above[-1], f"no crossing in {values}"
        assert data["rollbackAt"] is not None and data["breachAt"] is not None
        assert data["rollbackAt"] >= data["breachAt"]
        assert data["windows"], "the for window is shaded"

        threshold = driver.execute_script(PIXELS, "error-rate", "horizontal", 0.05)
        assert threshold["red"] > 20, threshold
        top = driver.execute_script(PIXELS, "error-rate", "horizontal", max(values))
        assert top["blue"] > 5, top
        rollback = driver.execute_script(PIXELS, "error-rate", "vertical", data["rollbackAt"])
        assert rollback["darkred"] > 20, rollback
        caption = text_of(driver, "css selector", "figure.metric figcaption")
        assert "crossed the threshold at" in caption and "rolled back at" in caption

        history = texts_of(driver, "tr[data-outcome='RolledBack']")
        assert history and "alice" in history[0] and "release v2" in history[0]
        warnings = texts_of(driver, ".events tr.warning")
        assert any("AnalysisFailed" in row for row in warnings)
        # What the page offers after a rollback: a retry or an undo, not a promotion.
        buttons = driver.execute_script(
            "const out = {};"
            "document.querySelectorAll('button.action').forEach("
            "b => { out[b.dataset.action] = !b.disabled; });"
            "return out;"
        )
        assert buttons["retry"] and not buttons["promote"] and not buttons["abort"]

        full_page(driver)
        save_screenshot(driver, tmp_path, "dashboard-rolled-back-canary.png")
        driver.get(dashboard.url)
        row = text_of(driver, "css selector", f"tr[data-rollout='{ns}/shop']")
        assert "Degraded" in row and "0%" in row
        wait_until(
            lambda: "Paused" in text_of(driver, "css selector", f"tr[data-rollout='{ns}/search']"),
            timeout=60,
            what="search paused at its indefinite pause in the list",
        )
        driver.set_window_size(1280, 560)
        save_screenshot(driver, tmp_path, "dashboard-list.png")
    assert controller.process.poll() is None, controller.log_text()[-3000:]
