"""The release planner with plain values: waves, soak, halts, rollbacks, holds, partitions.

Each test drives ``controller.release.planner`` through a simulated fleet (``world.py``)
on a frozen clock; nothing here touches a cluster.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from controller.api import reasons as r
from controller.api.release import Release
from controller.api.status import parse_timestamp, timestamp
from controller.names import REQUEST_ANNOTATION, REQUESTED_BY_ANNOTATION
from controller.release.actions import RELEASE_ANNOTATION, RollBack, SetTemplate
from controller.release.observe import MemberRollout, ReadFailure, unreachable
from controller.release.planner import clusters_to_read, plan, spec_hash
from tests.release.world import (
    T0,
    Fleet,
    make_release,
    member,
    revision,
    template,
    three_waves,
)

V1 = revision(template("shop:1"))
V2 = revision(template("shop:2"))


def only(name: str, **wave: object) -> list[dict[str, object]]:
    return [{"name": name, "clusters": [name], **wave}]


# --------------------------------------------------------------------------- the first pass


def test_the_first_pass_records_every_cluster_and_starts_the_first_wave() -> None:
    release = make_release(three_waves())
    observed = {"staging": MemberRollout(member())}
    result = plan(release, observed, now=T0, targets={"staging", "eu-1", "eu-2", "eu-3"})
    status = result.status
    assert status.phase == "Progressing" and status.current_wave == "staging"
    assert [c.name for c in status.clusters] == ["staging", "eu-1", "eu-2", "eu-3"]
    staging = status.cluster("staging")
    assert staging is not None and staging.phase == "Progressing"
    assert (staging.revision, staging.previous_revision, staging.replaced_revision) == (V2, V1, V1)
    (action,) = result.actions
    assert isinstance(action, SetTemplate) and action.cluster == "staging"
    assert action.template == template("shop:2") and action.expected_revision == V1
    assert action.annotations[RELEASE_ANNOTATION] == "releases/rel"
    assert status.spec_hash == spec_hash(release) and status.started_at == timestamp(T0)
    assert [e.reason for e in result.events] == [
        r.RELEASE_STARTED,
        r.WAVE_STARTED,
        r.CLUSTER_STARTED,
    ]
    assert result.active


def test_a_missing_cluster_target_fails_before_anything_is_touched() -> None:
    release = make_release(three_waves())
    result = plan(release, {}, now=T0, targets={"staging", "eu-1"})
    assert result.status.phase == "Failed"
    assert result.status.reason == r.CLUSTER_TARGET_MISSING
    assert "eu-2, eu-3" in result.status.message
    assert not result.actions and not result.active
    assert clusters_to_read(release.model_copy(update={"status": result.status}), now=T0) == []


def test_provenance_names_the_release_and_who_created_it() -> None:
    release = make_release(
        only("a"),
        annotations={
            REQUESTED_BY_ANNOTATION: "ci (kubeconfig user deployer)",
            "deployctl.io/ci-run": "42",
        },
        reason="JIRA-7",
    )
    result = plan(release, {"a": MemberRollout(member())}, now=T0, targets={"a"})
    (action,) = result.actions
    assert action.annotations[REQUESTED_BY_ANNOTATION] == (
        "release releases/rel (ci (kubeconfig user deployer))"
    )
    assert action.annotations["deployctl.io/reason"] == "JIRA-7"
    assert action.annotations["deployctl.io/ci-run"] == "42"
    # A new revision never inherits a freeze override.
    assert action.annotations["deployctl.io/exempt"] is None


# --------------------------------------------------------------------------- waves and soak


def test_a_healthy_release_goes_wave_by_wave_honouring_soak_and_max_parallel() -> None:
    fleet = Fleet.of(make_release(three_waves())).run()
    assert fleet.phase == "Succeeded"
    for name in ("staging", "eu-1", "eu-2", "eu-3"):
        assert fleet.members[name].changes == [V2]
        assert fleet.cluster(name).phase == "Healthy"
    canary = fleet.wave("canary")
    # The canary wave soaked 30 s after its cluster became Healthy; rest started after.
    healthy_at = fleet.cluster("eu-1").healthy_at
    assert canary.soak_until == timestamp(datetime_of(healthy_at) + timedelta(seconds=30))
    assert fleet.cluster("eu-2").started_at >= canary.soak_until
    # maxParallel 1: eu-3 started only once eu-2 was Healthy.
    assert fleet.cluster("eu-3").started_at >= fleet.cluster("eu-2").healthy_at
    assert fleet.events(r.RELEASE_SUCCEEDED)


def datetime_of(value: str | None) -> datetime:
    assert value is not None
    return parse_timestamp(value)


def test_nothing_is_read_or_requeued_once_the_release_is_done() -> None:
    fleet = Fleet.of(make_release(only("a"))).run()
    assert fleet.phase == "Succeeded"
    assert clusters_to_read(fleet.release, now=fleet.now) == []
    again = fleet.step()
    assert not again.active and not again.actions and not again.events


def test_promote_ends_the_soak_of_the_current_wave() -> None:
    release = make_release(
        [{"name": "a", "clusters": ["a"], "soak": "1h"}, {"name": "b", "clusters": ["b"]}],
        annotations={},
    )
    fleet = Fleet.of(release).run(lambda f: f.wave("a").phase == "Soaking")
    request = {"action": "promote", "id": "r1", "by": "alice"}
    fleet.release = fleet.release.model_copy(
        update={
            "metadata": fleet.release.metadata.model_copy(
                update={"annotations": {REQUEST_ANNOTATION: json.dumps(request)}}
            )
        }
    )
    fleet.step()
    assert fleet.wave("a").phase == "Succeeded"
    assert fleet.release.status is not None and fleet.release.status.last_handled_request == "r1"
    assert [e.message for e in fleet.events(r.SOAK_SKIPPED)] == [
        "soak of wave a ended early by alice (promote)"
    ]
    fleet.run()
    assert fleet.phase == "Succeeded"
    # The same request is not acted on twice.
    assert len(fleet.events(r.SOAK_SKIPPED)) == 1


def test_promote_while_nothing_soaks_is_consumed_and_said_so() -> None:
    release = make_release(only("a", soak="1h"))
    fleet = Fleet.of(release)
    fleet.step()
    fleet.release = with_request(fleet.release, "promote", "p1")
    fleet.step()
    assert fleet.release.status is not None and fleet.release.status.last_handled_request == "p1"
    (ignored,) = fleet.events(r.REQUEST_IGNORED)
    assert "no wave is soaking" in ignored.message


def with_request(release: Release, action: str, request_id: str, by: str = "alice") -> Release:
    annotation = json.dumps({"action": action, "id": request_id, "by": by})
    meta = release.metadata.model_copy(update={"annotations": {REQUEST_ANNOTATION: annotation}})
    return release.model_copy(update={"metadata": meta})


# --------------------------------------------------------------------------- failures


def test_a_member_rolling_back_halts_the_release_and_touches_no_further_cluster() -> None:
    fleet = Fleet.of(make_release(three_waves()), eu_1="fail").run()
    assert fleet.phase == "Failed" and fleet.release.status is not None
    assert fleet.release.status.reason == r.CLUSTER_FAILED
    assert "eu-1" in fleet.release.status.message
    assert "not changed: eu-2, eu-3" in fleet.release.status.message
    failed = fleet.cluster("eu-1")
    assert failed.phase == "Failed" and "AnalysisFailed" in failed.message
    assert [(e.metric, e.value, e.phase) for e in failed.evidence] == [
        ("error-rate", "0.31", "Failed")
    ]
    (warning,) = fleet.events(r.CLUSTER_FAILED)
    assert warning.type == "Warning" and "error-rate=0.31" in warning.message
    assert fleet.members["eu-2"].changes == [] and fleet.members["eu-3"].changes == []
    # halt: staging keeps the new revision.
    assert fleet.members["staging"].changes == [V2]
    assert fleet.wave("canary").phase == "Failed"


def test_rollback_all_returns_every_changed_cluster_with_the_fast_track() -> None:
    fleet = Fleet.of(make_release(three_waves(), on_failure="rollbackAll"), eu_1="fail").run()
    assert fleet.phase == "RolledBack"
    assert fleet.members["staging"].changes == [V2, V1]
    assert fleet.members["eu-1"].changes == [V2, V1]
    assert fleet.members["eu-2"].changes == []
    rollbacks = [a for p in fleet.plans for a in p.actions if isinstance(a, RollBack)]
    assert {a.cluster for a in rollbacks} == {"staging", "eu-1"}
    for action in rollbacks:
        request = json.loads(str(action.annotations[REQUEST_ANNOTATION]))
        assert request["action"] == "promoteFull"
        assert action.annotations["deployctl.io/exempt"] == "regression"
    assert fleet.cluster("staging").phase == "RolledBack"
    # The failed cluster keeps why it failed, with its evidence.
    eu1 = fleet.cluster("eu-1")
    assert eu1.phase == "RolledBack" and "AnalysisFailed" in eu1.message and eu1.evidence
    assert fleet.events(r.ROLLED_BACK)


def test_a_healthy_cluster_that_loses_its_revision_during_the_soak_fails_the_release() -> None:
    fleet = Fleet.of(make_release(three_waves())).run(lambda f: f.wave("canary").phase == "Soaking")
    eu1 = fleet.members["eu-1"]
    eu1.raw["status"] = {**eu1.raw["status"], "stableRevision": V1, "phase": "Degraded"}
    fleet.run()
    assert fleet.phase == "Failed" and fleet.cluster("eu-1").phase == "Failed"
    assert fleet.members["eu-2"].changes == []


def test_someone_else_changing_the_template_supersedes_the_cluster() -> None:
    fleet = Fleet.of(make_release(only("a", soak="1m")))
    fleet.run(lambda f: f.cluster("a").phase == "Healthy")
    fleet.members["a"].raw["spec"]["template"] = template("shop:9")
    fleet.run()
    assert fleet.phase == "Failed" and fleet.cluster("a").reason == r.CLUSTER_SUPERSEDED


def test_a_member_that_never_gets_healthy_times_out() -> None:
    release = make_release(only("a"), clusterTimeout="20s")
    fleet = Fleet.of(release, a="stuck").run()
    assert fleet.phase == "Failed" and fleet.cluster("a").reason == r.CLUSTER_TIMED_OUT
    assert "clusterTimeout 20s" in fleet.cluster("a").message
    failed_at = datetime_of(fleet.cluster("a").finished_at)
    assert failed_at - T0 >= timedelta(seconds=20)


def test_abort_halts_and_rolls_back_with_rollback_all() -> None:
    fleet = Fleet.of(make_release(three_waves(), on_failure="rollbackAll"))
    fleet.run(lambda f: f.cluster("eu-1").phase == "Progressing")
    fleet.release = with_request(fleet.release, "abort", "a1", by="bob")
    fleet.run()
    assert fleet.phase == "RolledBack" and fleet.release.status is not None
    assert fleet.release.status.reason == r.ABORTED
    assert fleet.release.status.message.startswith("aborted by bob")
    assert fleet.members["staging"].changes == [V2, V1]
    assert fleet.members["eu-2"].changes == []


def test_an_edited_spec_halts_without_touching_anything_more() -> None:
    fleet = Fleet.of(make_release(three_waves()))
    fleet.run(lambda f: f.cluster("eu-1").phase == "Progressing")
    edited = make_release(three_waves(), images={"app": "shop:3"})
    fleet.release = edited.model_copy(update={"status": fleet.release.status})
    fleet.run()
    assert fleet.phase == "Failed" and fleet.release.status is not None
    assert fleet.release.status.reason == r.SPEC_CHANGED
    assert fleet.members["eu-2"].changes == []
    assert fleet.members["staging"].changes == [V2]


def test_a_change_the_template_cannot_take_fails_that_cluster_untouched() -> None:
    release = make_release(only("a"), images={"sidecar": "proxy:2"})
    fleet = Fleet.of(release).run()
    assert fleet.phase == "Failed" and fleet.cluster("a").reason == r.INVALID_CHANGE
    assert "no container named sidecar" in fleet.cluster("a").message
    assert fleet.members["a"].changes == []


def test_a_change_that_breaks_the_rollout_is_refused_before_it_is_sent() -> None:
    patch = {"metadata": {"labels": {"app": None}}}
    fleet = Fleet.of(make_release(only("a"), images=None, patch=patch)).run()
    assert fleet.cluster("a").reason == r.INVALID_CHANGE
    assert "selector.matchLabels must match" in fleet.cluster("a").message
    assert fleet.members["a"].changes == []


def test_halt_withdraws_a_change_that_a_member_policy_still_holds() -> None:
    release = make_release([{"name": "w", "clusters": ["a", "b"]}])
    fleet = Fleet.of(release, a="fail", b="hold").run()
    assert fleet.phase == "Failed"
    assert fleet.members["a"].changes == [V2]  # halt: the failed one is left to its operator
    assert fleet.members["b"].changes == [V2, V1]  # held, never started: withdrawn
    assert fleet.cluster("b").phase == "RolledBack"
    assert "withdrawing the change held in b" in [e.message for e in fleet.events(r.ROLLING_BACK)]
    assert fleet.release.status is not None and fleet.release.status.finished_at


# --------------------------------------------------------------------------- holds, waits


def test_a_freeze_in_a_member_holds_the_wave_and_its_time_does_not_count() -> None:
    release = make_release(three_waves(), clusterTimeout="10s")
    fleet = Fleet.of(release, eu_1="hold").run(steps=60)
    assert fleet.phase == "Waiting" and fleet.release.status is not None
    assert fleet.release.status.reason == r.CLUSTER_HELD
    assert "eu-1 held by its delivery policy: FrozenUntil" in fleet.release.status.message
    held = fleet.cluster("eu-1")
    assert held.phase == "Held" and held.reason == "FrozenUntil"
    # A minute held, with a 10 s clusterTimeout: the hold is not a timeout.
    assert fleet.members["eu-2"].changes == []
    assert len(fleet.events(r.CLUSTER_HELD)) == 1
    # The freeze ends: the clock starts from there.
    fleet.members["eu-1"].behaviour = "ok"
    fleet.run()
    assert fleet.phase == "Succeeded"


def test_a_member_busy_with_another_revision_is_waited_for() -> None:
    busy = member(
        status={
            "phase": "Progressing",
            "observedGeneration": 1,
            "stableRevision": V1,
            "canaryRevision": "otherrev",
        }
    )
    release = make_release(only("a"))
    result = plan(release, {"a": MemberRollout(busy)}, now=T0, targets={"a"})
    assert not result.actions and result.status.phase == "Waiting"
    assert result.status.reason == r.CLUSTER_BUSY
    assert "revision otherrev is rolling out there" in result.status.message


def test_a_member_waiting_for_a_person_is_shown_as_the_reason() -> None:
    fleet = Fleet.of(make_release(only("a")))
    fleet.step()
    fleet.members["a"].behaviour = "stuck"
    fleet.members["a"].raw["status"] = {
        "phase": "Paused",
        "observedGeneration": 2,
        "stableRevision": V1,
        "canaryRevision": V2,
        "reason": "AwaitingPromotion",
        "message": "step 3: paused until `deployctl promote`",
    }
    fleet.step()
    assert fleet.phase == "Waiting" and fleet.release.status is not None
    assert fleet.release.status.reason == r.CLUSTER_WAITING
    assert "AwaitingPromotion" in fleet.release.status.message


# --------------------------------------------------------------------------- partitions


def test_an_unreachable_cluster_waits_with_backoff_then_fails_past_its_deadline() -> None:
    release = make_release([{"name": "w", "clusters": ["a", "b"]}], unreachableTimeout="30s")
    fleet = Fleet.of(release, b="down")
    fleet.run(steps=10)
    assert fleet.phase == "Waiting" and fleet.release.status is not None
    assert fleet.release.status.reason == r.CLUSTER_UNREACHABLE
    assert "cluster b unreachable since" in fleet.release.status.message
    # The other cluster is read and goes on meanwhile.
    assert fleet.cluster("a").phase == "Healthy"
    b = fleet.cluster("b")
    assert b.failures >= 3 and b.retry_at is not None and "connect timeout" in b.last_error
    # Backed off: not every pass reads b.
    reads = [i for i, p in enumerate(fleet.plans) if p.status.cluster("b").failures]  # type: ignore[union-attr]
    assert len({fleet.plans[i].status.cluster("b").failures for i in reads}) < len(reads)  # type: ignore[union-attr]
    fleet.run()
    assert fleet.phase == "Failed" and fleet.release.status.reason == r.CLUSTER_UNREACHABLE
    failed = fleet.cluster("b")
    assert datetime_of(failed.finished_at) - datetime_of(failed.unreachable_since) >= timedelta(
        seconds=30
    )
    assert fleet.events(r.CLUSTER_UNREACHABLE)[0].type == "Warning"


def test_a_cluster_that_answers_again_in_time_carries_on() -> None:
    release = make_release(only("a"), unreachableTimeout="1m")
    fleet = Fleet.of(release, a="down")
    fleet.run(steps=10)
    fleet.members["a"].behaviour = "ok"
    fleet.run()
    assert fleet.phase == "Succeeded"
    assert fleet.events(r.CLUSTER_REACHABLE)


def test_an_unreachable_cluster_of_a_finished_wave_is_only_reported() -> None:
    release = make_release(
        [{"name": "a", "clusters": ["a"]}, {"name": "b", "clusters": ["b"], "soak": "5m"}],
        unreachableTimeout="10s",
    )
    fleet = Fleet.of(release).run(lambda f: f.wave("b").phase == "Soaking")
    fleet.members["a"].behaviour = "down"
    fleet.run(steps=60)
    assert fleet.phase == "Progressing" and fleet.cluster("a").phase == "Healthy"
    assert fleet.cluster("a").unreachable_since is not None


def test_a_missing_rollout_in_a_member_fails_at_once() -> None:
    release = make_release(only("a"))
    missing = ReadFailure(r.ROLLOUT_NOT_FOUND, "no Rollout app/shop in cluster a")
    result = plan(release, {"a": missing}, now=T0, targets={"a"})
    assert result.status.phase == "Failed" and result.status.reason == r.ROLLOUT_NOT_FOUND


def test_not_read_this_pass_is_not_unreachable() -> None:
    release = make_release(only("a"))
    first = plan(release, {}, now=T0, targets={"a"})
    assert first.status.phase == "Progressing" and not first.actions
    assert first.wake_at == T0  # a wave began with nothing read yet: look again at once
    cluster = first.status.cluster("a")
    assert cluster is not None and cluster.unreachable_since is None


# --------------------------------------------------------------------------- restarts


def test_a_crash_between_status_and_change_resends_the_change_once() -> None:
    fleet = Fleet.of(make_release(three_waves()))
    fleet.step(crash=True)  # status says staging was asked; the member never heard
    assert fleet.cluster("staging").phase == "Progressing"
    assert fleet.members["staging"].changes == []
    fleet.run()
    assert fleet.phase == "Succeeded"
    assert all(m.changes == [V2] for m in fleet.members.values())


def test_a_resumed_pass_does_not_resend_what_was_applied() -> None:
    fleet = Fleet.of(make_release(only("a", soak="1m")))
    fleet.step()
    assert fleet.members["a"].changes == [V2]
    again = fleet.step()
    assert not again.actions


def test_unreachable_reads_are_retried_no_earlier_than_their_backoff() -> None:
    release = make_release(only("a"))
    first = plan(release, {"a": unreachable("timeout")}, now=T0, targets={"a"})
    after = release.model_copy(update={"status": first.status})
    assert clusters_to_read(after, now=T0) == []
    assert clusters_to_read(after, now=T0 + timedelta(seconds=1)) == ["a"]
