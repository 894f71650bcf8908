"""`deployctl plan` rows: what each strategy will do, simulated without a cluster."""

from __future__ import annotations

import json

from controller.api.reasons import set_condition
from strategies.preview import preview
from tests.strategies.world import T0, canary, gateway, make_rollout


def test_canary_preview_lists_each_step_with_replicas_weight_and_analysis() -> None:
    rows = preview(make_rollout(canary(), analysis={"templates": [{"name": "bg"}]}))
    assert [row.action for row in rows] == [
        "setWeight 10",
        "pause 2m",
        "analysis http-health",
        "setWeight 50",
        "pause until promote",
        "scale canary to 10",
        "promote; old revision already scaled down",
    ]
    assert (rows[0].stable, rows[0].canary, rows[0].weight) == (9, 1, 10)
    assert (rows[3].stable, rows[3].canary, rows[3].weight) == (5, 5, 50)
    assert rows[2].analysis == ("bg (background)", "http-health")
    assert (rows[-1].stable, rows[-1].canary, rows[-1].weight) == (0, 10, 100)
    json.dumps([row.to_dict() for row in rows])


def test_replica_share_preview_shows_the_share_the_pods_give() -> None:
    steps = [{"setWeight": 33}, {"setWeight": 80}]
    rows = preview(make_rollout(canary(steps), replicas=10))
    assert [(r.canary, r.stable, r.weight) for r in rows[:2]] == [(3, 7, 30), (8, 2, 80)]
    full = preview(make_rollout(canary(steps[1:], stableScale="full"), replicas=5))
    assert (full[0].canary, full[0].stable, full[0].weight) == (4, 5, 44)
    assert full[-1].action == "promote; old revision scaled down after 30s"


def test_gateway_preview_uses_routed_canary_sizes() -> None:
    rows = preview(make_rollout(gateway([{"setWeight": 5}]), replicas=20))
    assert (rows[0].canary, rows[0].weight) == (1, 5)


def test_blue_green_preview_shows_the_switch() -> None:
    rollout = make_rollout(
        {
            "blueGreen": {
                "activeService": "a",
                "previewService": "p",
                "autoPromotionEnabled": False,
                "previewReplicaCount": 1,
                "prePromotionAnalysis": {"templates": [{"name": "smoke"}]},
            }
        },
        replicas=4,
    )
    actions = [row.action for row in preview(rollout)]
    assert actions == [
        "scale up preview to 1",
        "analysis smoke (pre-promotion)",
        "pause until promote",
        "scale preview to 4",
        "switch active",
        "scale down old after 30s",
    ]


def test_rolling_preview_respects_surge_and_is_bounded_for_large_rollouts() -> None:
    rows = preview(make_rollout({"rolling": {"maxSurge": 1, "maxUnavailable": 0}}, replicas=3))
    assert all(row.stable + row.canary <= 4 for row in rows)
    assert rows[-1].action == "done"
    big = preview(make_rollout({"rolling": {"maxSurge": 1, "maxUnavailable": 0}}, replicas=500))
    assert len(big) <= 24 and any("more passes" in row.action for row in big)


def test_set_condition_keeps_the_transition_time_while_status_is_unchanged() -> None:
    first = set_condition([], "Paused", status="True", reason="A", message="", now=T0, generation=1)
    later = T0.replace(hour=13)
    same = set_condition(
        first, "Paused", status="True", reason="B", message="m", now=later, generation=2
    )
    flipped = set_condition(
        same, "Paused", status="False", reason="C", message="", now=later, generation=2
    )
    assert same[0].last_transition_time == "2026-03-01T12:00:00Z" and same[0].reason == "B"
    assert flipped[0].last_transition_time == "2026-03-01T13:00:00Z"


def test_hooks_appear_where_they_run() -> None:
    from tests.strategies.test_hooks import STRATEGIES, with_hooks

    for kind, strategy in STRATEGIES.items():
        rows = preview(with_hooks(strategy, preRollout=["migrate"], postPromotion=["smoke"]))
        assert rows[0].index is None and rows[0].action == "preRollout jobs migrate", kind
        assert (rows[0].stable, rows[0].canary, rows[0].weight) == (4, 0, 0)
        hook = rows[-2]
        assert hook.index is None and hook.action == "postPromotion jobs smoke", kind
        # Before the new revision becomes stable: the old one is still there to go back to
        # for canary and blue-green; a rolling update has replaced every pod by then.
        assert hook.canary == 4 and rows[-1].index is not None
        assert json.loads(json.dumps(hook.to_dict()))["step"] is None
