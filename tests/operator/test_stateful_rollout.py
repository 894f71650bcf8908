"""A StatefulSet Rollout's rules without a cluster (``controller.stateful``), its
validation, its ``deployctl plan`` rows and its ``deployctl status`` line."""

from __future__ import annotations

from typing import Any

from controller.api import Rollout, RolloutStatus
from controller.commands.render import workload_document, workload_line
from controller.stateful import move, resolve, revision_of
from controller.validation import parse_document
from strategies.preview import preview

STABLE, CANARY = "db-old", "db-new"


def rollout_body(strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {
            "workloadRef": {"kind": "StatefulSet", "name": "db"},
            "strategy": strategy
            or {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}},
        },
    }


def statefulset(
    *, partition: int = 5, update: str = CANARY, generation: int = 2, observed: int = 2
) -> dict[str, Any]:
    return {
        "metadata": {"name": "db", "namespace": "shop", "uid": "u1", "generation": generation},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "db"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "app", "image": "db:2"}]},
            },
        },
        "status": {"observedGeneration": observed, "updateRevision": update},
    }


def pod(ordinal: int, revision: str, *, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"db-{ordinal}",
            "labels": {"app": "db", "controller-revision-hash": revision},
            "ownerReferences": [{"kind": "StatefulSet", "name": "db", "uid": "u1"}],
        },
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def parsed(body: dict[str, Any] | None = None) -> Rollout:
    return Rollout.model_validate(body or rollout_body())


def test_blue_green_and_rolling_are_refused_for_a_statefulset_with_the_reason() -> None:
    blue_green = parse_document(rollout_body({"blueGreen": {"activeService": "db"}}))
    (problem,) = blue_green.problems
    assert "blue-green has no meaning for a StatefulSet" in problem.message
    assert "stable names" in problem.message and "spec.strategy.canary" in problem.message
    (rolling,) = parse_document(rollout_body({"rolling": {}})).problems
    assert "spec.strategy.canary" in rolling.message
    assert parse_document(rollout_body()).problems == ()


def test_resolve_takes_the_statefulsets_template_and_size_and_counts_canary_pods_alone() -> None:
    resolved, problems = resolve(parsed(), statefulset())
    assert problems == [] and resolved is not None
    assert resolved.spec.replicas == 5
    assert resolved.spec.pod_template.spec.containers[0].image == "db:2"
    assert resolved.spec.strategy.canary is not None
    assert resolved.spec.strategy.canary.stable_scale == "full"
    on_delete = statefulset()
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    none, (problem,) = resolve(parsed(), on_delete)
    assert none is None and "RollingUpdate" in problem.message
    missing, (gone,) = resolve(parsed(), None)
    assert missing is None and "not found" in gone.message


def test_the_revision_waits_for_the_controller_and_stays_the_refused_one_after_rollback() -> None:
    assert revision_of(statefulset(observed=1), None) is None
    assert revision_of(statefulset(), None) == CANARY
    aborted = RolloutStatus(stable_revision=STABLE, canary_revision=CANARY, aborted=True)
    assert revision_of(statefulset(update=STABLE), aborted) == CANARY
    assert revision_of(statefulset(update=STABLE), RolloutStatus(stable_revision=STABLE)) == STABLE


def test_a_canary_step_sets_the_partition_and_waits_for_its_highest_ordinal() -> None:
    status = RolloutStatus(stable_revision=STABLE, canary_revision=CANARY, weight=0)
    pods = [pod(o, STABLE) for o in range(5)]
    first = move(statefulset(), pods, status, canary_pods=1)
    assert first.partition == 4 and first.template_of is None
    assert first.status is not None and first.status.waiting_for == 4
    moving = [pod(o, STABLE) for o in range(4)] + [pod(4, CANARY, ready=False)]
    held = move(statefulset(partition=4), moving, status, canary_pods=1)
    assert held.partition is None  # already 4: nothing written, nothing moves twice
    assert held.status is not None and held.status.ordinals == {STABLE: [0, 1, 2, 3], CANARY: [4]}
    at_60 = move(statefulset(partition=4), moving, status, canary_pods=3)
    assert at_60.partition == 2


def test_a_rollback_puts_the_stable_template_back_then_walks_down_one_ordinal_at_a_time() -> None:
    status = RolloutStatus(stable_revision=STABLE, canary_revision=CANARY, aborted=True)
    pods = [pod(o, STABLE) for o in range(2)] + [pod(o, CANARY) for o in (2, 3, 4)]
    first = move(statefulset(partition=2), pods, status, canary_pods=0)
    # The template first, never a lower partition: no stable ordinal moves to the canary.
    assert first.template_of == STABLE and first.partition == 4
    back = [pod(o, STABLE) for o in range(2)] + [pod(2, CANARY), pod(3, CANARY), pod(4, STABLE)]
    walk = move(statefulset(partition=4, update=STABLE), back, status, canary_pods=0)
    assert walk.template_of is None and walk.partition == 3
    done = move(
        statefulset(partition=2, update=STABLE),
        [pod(o, STABLE) for o in range(5)],
        status,
        canary_pods=0,
    )
    assert done.partition == 5 and done.status is not None and done.status.moving == "AtRest"


def test_at_rest_the_partition_is_n_once_every_ordinal_runs_the_stable_revision() -> None:
    status = RolloutStatus(stable_revision=STABLE)
    settled = move(
        statefulset(partition=0, update=STABLE),
        [pod(o, STABLE) for o in range(5)],
        status,
        canary_pods=0,
    )
    assert settled.partition == 5


def test_plan_shows_the_partition_and_the_ordinals_each_step_moves() -> None:
    body = rollout_body()
    body["spec"]["replicas"] = 5
    rows = [row.to_dict() for row in preview(parsed(body))]
    assert [(r["partition"], r["moves"]) for r in rows] == [
        (4, [4]),
        (4, []),
        (2, [3, 2]),
        (0, [1, 0]),
        (5, []),
    ]
    assert [r["weight"] for r in rows] == [20, 20, 60, 100, 100]


def test_status_shows_the_ordinals_of_each_revision() -> None:
    body = rollout_body()
    body["status"] = {
        "stableRevision": STABLE,
        "canaryRevision": CANARY,
        "statefulSet": {
            "name": "db",
            "replicas": 5,
            "partition": 2,
            "ordinals": {STABLE: [0, 1], CANARY: [2, 3, 4]},
            "moving": "Canary",
            "waitingFor": 2,
        },
    }
    line = workload_line(workload_document(body) or {})
    assert line == (
        f"StatefulSet db: Canary, partition 2; {CANARY} (canary) ordinals 2-4; "
        f"{STABLE} (stable) ordinals 0, 1; waiting for ordinal 2"
    )


def test_a_rolled_back_canary_pod_that_never_became_ready_is_deleted_by_its_uid() -> None:
    status = RolloutStatus(stable_revision=STABLE, canary_revision=CANARY, aborted=True)
    crashing = pod(4, CANARY, ready=False)
    crashing["metadata"]["uid"] = "pod-4-uid"
    pods = [pod(o, STABLE) for o in range(4)] + [crashing]
    write = move(statefulset(partition=4, update=STABLE), pods, status, canary_pods=0)
    # OrderedReady: the StatefulSet controller would wait on it for ever.
    assert write.delete == ("db-4", "pod-4-uid") and write.partition is None
    ready = [pod(o, STABLE) for o in range(4)] + [pod(4, CANARY)]
    assert (
        move(statefulset(partition=4, update=STABLE), ready, status, canary_pods=0).delete is None
    )
