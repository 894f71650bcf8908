"""A Rollout page left open under a stream of updates keeps the server's memory flat.

A real ``deployctl dashboard`` process serves one page in headless Chromium while the
Rollout's status changes twice a second (a new measurement each time, as a long analysis
writes them), through the real apiserver. The server's RSS is sampled from /proc; after a
warm-up, the last third of the samples may not sit more than ``GROWTH_LIMIT_KIB`` above
the first third. ``make test`` runs it for 60 s; ``DEPLOYCTL_DASHBOARD_SOAK_SECONDS=600``
runs the ten-minute version (docs/dashboard.md records its figures).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.dashboard.helpers import browser, dashboard_process, wait_until
from tests.integration.harness import GROUP, VERSION, Cluster, demo_rollout

SECONDS = float(os.environ.get("DEPLOYCTL_DASHBOARD_SOAK_SECONDS", "60"))
UPDATE_EVERY = 0.5
SAMPLE_EVERY = 2.0
WARM_UP = 0.25  # share of the run before samples count
GROWTH_LIMIT_KIB = 4 * 1024


def status_at(n: int, start: datetime) -> dict[str, Any]:
    """The status a long-running analysis would have after ``n`` measurements."""
    measurements = [
        {
            "at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "value": f"{(i % 20) / 200:.4f}",
            "phase": "Successful" if i % 20 <= 10 else "Pending",
            "message": f"measurement {i}",
        }
        for i in range(max(0, n - 10), n)
    ]
    return {
        "phase": "Progressing",
        "reason": "AnalysisRunning",
        "message": f"{n} measurements",
        "observedGeneration": 1,
        "currentStepIndex": 2,
        "stableRevision": "stable0001",
        "canaryRevision": "canary0001",
        "weight": 25,
        "analysisRuns": [
            {
                "key": "step-2",
                "revision": "canary0001",
                "phase": "Running",
                "startedAt": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "metrics": [
                    {
                        "name": "error-rate",
                        "phase": "Running",
                        "successful": n,
                        "measurements": measurements,
                    }
                ],
            }
        ],
    }


def test_a_page_open_under_updates_keeps_the_server_memory_flat(
    cluster: Cluster, control_plane: Any, tmp_path: Path
) -> None:
    ns = cluster.namespace
    steps = [{"setWeight": 25}, {"pause": {}}, {"analysis": {"templates": [{"name": "e"}]}}]
    cluster.apply_rollout(demo_rollout("shop", version="v1", strategy={"canary": {"steps": steps}}))
    start = datetime.now(UTC).replace(microsecond=0)

    def write(n: int) -> None:
        cluster.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, "rollouts", "shop", {"status": status_at(n, start)}
        )

    write(1)
    with (
        dashboard_process(control_plane.kubeconfig, ns, tmp_path) as dashboard,
        browser(tmp_path) as driver,
    ):
        driver.get(f"{dashboard.url}/rollouts/{ns}/shop")
        wait_until(
            lambda: (
                driver.execute_script("return document.getElementById('live').textContent")
                == "live"
            ),
            timeout=30,
            what="the page's live stream",
        )
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        began = time.monotonic()
        written = 1
        next_sample = began
        while time.monotonic() - began < SECONDS:
            written += 1
            write(written)
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - began, dashboard.rss_kib()))
                next_sample = now + SAMPLE_EVERY
            # Pacing the writer (a rate of updates), not waiting for anything.
            stop.wait(UPDATE_EVERY)
        updates = int(driver.execute_script("return document.body.dataset.updates || 0"))
        shown = driver.execute_script(
            "return document.querySelector('.chart[data-metric=\"error-rate\"]')"
            "._chartData.points.length"
        )
        alive = dashboard.process.poll() is None
    counted = [kib for at, kib in samples if at >= SECONDS * WARM_UP]
    third = max(1, len(counted) // 3)
    early, late = statistics.median(counted[:third]), statistics.median(counted[-third:])
    print(
        f"\nsoak: {SECONDS:.0f} s, {written} status writes, {updates} page updates; "
        f"RSS {samples[0][1] / 1024:.1f} MiB at start, {early / 1024:.1f} MiB after warm-up, "
        f"{late / 1024:.1f} MiB at the end, peak {max(k for _, k in samples) / 1024:.1f} MiB"
    )
    assert alive, dashboard.log_text()[-3000:]
    assert shown == 10
    # Updates are coalesced (at most two a second), never dropped for good.
    assert updates >= written * 0.3, (updates, written)
    assert late - early <= GROWTH_LIMIT_KIB, (
        f"RSS grew {(late - early) / 1024:.1f} MiB while the page was open: {samples}"
    )
