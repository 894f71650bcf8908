"""Blue-green on kind: the active Service switches, then post-promotion analysis switches back."""

from __future__ import annotations

from e2e.scenarios import APP, bluegreen_strategy, prepare, revision_selector, rollout, wait_phase
from tests.integration.harness import Cluster
from tests.waiting import wait_until


def test_bluegreen_switched_then_rolled_back_by_post_promotion_analysis(cluster: Cluster) -> None:
    strategy = bluegreen_strategy()
    prepare(cluster, strategy=strategy)
    cluster.apply_rollout(rollout("v1", strategy=strategy))
    blue = wait_phase(cluster, "Healthy")["stableRevision"]
    assert revision_selector(cluster, APP) == blue

    cluster.apply_rollout(rollout("broken", strategy=strategy))
    # The switch happens: the active Service selects the new (broken) revision...
    green = wait_until(
        lambda: revision_selector(cluster, APP),
        ok=lambda selected: selected not in (None, blue),
        timeout=180,
        what="the active Service switched to the new revision",
    )
    # ...then the post-promotion analysis sees its errors and switches back.
    # RolledBack, not Degraded: the switch had happened, so going back is a rollback.
    rolled_back = wait_phase(cluster, "RolledBack")
    assert rolled_back["stableRevision"] == blue
    post = [r for r in rolled_back.get("analysisRuns", []) if r.get("key") == "postPromotion"]
    assert post and post[0].get("phase") == "Failed", rolled_back.get("analysisRuns")
    assert revision_selector(cluster, APP) == blue
    wait_until(
        cluster.replicas_by_revision,
        ok=lambda r: r.get(green, 0) == 0 and r.get(blue) == 4,
        timeout=120,
        what="green scaled down, blue still at full size",
    )
