"""What the planner reads from a member's Rollout: holds, busy members, evidence."""

from __future__ import annotations

from controller.release.observe import MemberRollout
from tests.release.world import member, revision, template

V1 = revision(template("shop:1"))
V2 = revision(template("shop:2"))


def held(**status: object) -> MemberRollout:
    return MemberRollout(
        member(
            image="shop:2",
            generation=2,
            status={
                "phase": "Paused",
                "reason": "OutsideWindow",
                "message": "outside every window",
                "observedGeneration": 2,
                "stableRevision": V1,
                "heldSince": "2026-03-01T12:00:00Z",
                **status,
            },
        )
    )


def test_a_policy_hold_is_the_member_status_the_policy_gate_writes() -> None:
    assert held().held_by_policy()
    assert not held(observedGeneration=1).held_by_policy()  # not seen yet
    assert not held(reason="AwaitingPromotion").held_by_policy()  # a pause step
    assert not held(heldSince=None).held_by_policy()


def test_a_member_is_busy_with_another_revision_in_flight_or_held() -> None:
    assert held().busy_with(V2) is None  # held with our own revision: not busy
    assert held().busy_with("other") == V2
    progressing = MemberRollout(
        member(status={"phase": "Progressing", "observedGeneration": 1, "canaryRevision": "x"})
    )
    assert progressing.busy_with(V2) == "x"
    aborted = MemberRollout(
        member(status={"phase": "Degraded", "aborted": True, "canaryRevision": "x"})
    )
    assert aborted.busy_with(V2) is None  # a failed earlier revision is not in the way
    assert MemberRollout(member()).busy_with(V2) is None


def test_evidence_is_the_failing_metrics_of_that_revision_only() -> None:
    runs = [
        {
            "key": "step-1",
            "revision": V2,
            "metrics": [
                {"name": "ok-metric", "phase": "Successful"},
                {
                    "name": "error-rate",
                    "phase": "Failed",
                    "message": "error-rate 0.31 > max 0.05",
                    "measurements": [{"value": "0.31", "at": "2026-03-01T12:00:05Z"}],
                },
            ],
        },
        {"key": "step-1", "revision": "older", "metrics": [{"name": "x", "phase": "Failed"}]},
    ]
    observed = MemberRollout(member(status={"analysisRuns": runs}))
    (evidence,) = observed.evidence(V2)
    assert (evidence.run, evidence.metric, evidence.value) == ("step-1", "error-rate", "0.31")
    assert evidence.message == "error-rate 0.31 > max 0.05"


def test_a_template_that_does_not_parse_has_no_revision() -> None:
    broken = member()
    broken["spec"]["template"] = {"spec": {"containers": []}}
    assert MemberRollout(broken).revision is None
