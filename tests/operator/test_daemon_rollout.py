"""A DaemonSet Rollout's rules without a cluster (``controller.daemon``), its validation,
its ``deployctl plan`` rows and its ``deployctl status`` line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api import Rollout, RolloutStatus
from controller.api.status import DaemonSetStatus
from controller.commands.common import CliError
from controller.commands.render import workload_document, workload_line
from controller.commands.rollout import revision_of as revision_of_request
from controller.daemon import (
    STRATEGY_ANNOTATION,
    max_unavailable,
    move,
    node_count,
    node_of,
    resolve,
    revision_of,
)
from controller.validation import parse_document
from strategies.preview import preview

STABLE, CANARY = "old1", "new2"
NODES = [f"n{i}" for i in range(10)]
ZONE = "topology.kubernetes.io/zone"
USERS = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}


def rollout_body(strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "agent", "namespace": "ops"},
        "spec": {
            "replicas": 10,
            "workloadRef": {"kind": "DaemonSet", "name": "agent"},
            "strategy": strategy
            or {
                "canary": {
                    "canaryNodeSelector": {ZONE: "b"},
                    "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}],
                }
            },
        },
    }


def daemonset(*, held: bool = True, generation: int = 2, observed: int = 2) -> dict[str, Any]:
    annotations = {STRATEGY_ANNOTATION: json.dumps(USERS)} if held else {}
    return {
        "metadata": {
            "name": "agent",
            "namespace": "ops",
            "uid": "u1",
            "generation": generation,
            "annotations": annotations,
        },
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "OnDelete"} if held else USERS,
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "app", "image": "agent:2"}]},
            },
        },
        "status": {
            "observedGeneration": observed,
            "desiredNumberScheduled": 10,
            "updatedNumberScheduled": 10,
        },
    }


def revision(value: str, number: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"agent-{value}",
            "labels": {"controller-revision-hash": value},
            "ownerReferences": [{"uid": "u1"}],
        },
        "revision": number,
    }


REVISIONS = [revision(STABLE, 1), revision(CANARY, 2)]


def pod(node: str, rev: str, *, ready: bool = True, bound: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node} if bound else {}
    spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "values": [node]}]}]
            }
        }
    }
    return {
        "metadata": {
            "name": f"agent-{node}-{rev}",
            "uid": f"{node}-{rev}",
            "labels": {"app": "agent", "controller-revision-hash": rev},
            "ownerReferences": [{"kind": "DaemonSet", "uid": "u1"}],
        },
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def nodes() -> dict[str, dict[str, Any]]:
    # Odd Nodes in zone b: n1, n3, n5, n7, n9.
    return {
        n: {"metadata": {"name": n, "labels": {ZONE: "b" if i % 2 else "a"}}}
        for i, n in enumerate(NODES)
    }


def status(**fields: Any) -> RolloutStatus:
    return RolloutStatus(stable_revision=STABLE, canary_revision=CANARY, **fields)


def parsed() -> Rollout:
    return Rollout.model_validate(rollout_body())


def step(pods: list[dict[str, Any]], state: RolloutStatus, canary_pods: int, **kw: Any) -> Any:
    return move(
        kw.pop("ds", daemonset()),
        REVISIONS,
        pods,
        nodes(),
        state,
        canary_pods=canary_pods,
        max_unavailable=kw.pop("max_unavailable", 1),
        canary_node_selector={ZONE: "b"},
    )


def test_the_validator_refuses_blue_green_rolling_and_routing_for_a_daemonset() -> None:
    (problem,) = parse_document(rollout_body({"blueGreen": {"activeService": "a"}})).problems
    assert "blue-green has no meaning for a DaemonSet" in problem.message
    (rolling,) = parse_document(rollout_body({"rolling": {}})).problems
    assert "a DaemonSet is delivered with spec.strategy.canary" in rolling.message
    routed = {"canary": {"stableService": "s", "canaryService": "c", "steps": []}}
    (routing,) = parse_document(rollout_body(routed)).problems
    assert "the pods of every Node" in routing.message
    assert parse_document(rollout_body()).problems == ()


def test_a_canary_node_selector_needs_a_daemonset() -> None:
    body = rollout_body()
    body["spec"]["workloadRef"]["kind"] = "StatefulSet"
    (problem,) = parse_document(body).problems
    assert "canaryNodeSelector" in problem.message and "DaemonSet" in problem.message


def test_max_unavailable_defaults_to_one_node_unless_given() -> None:
    assert max_unavailable(parsed()) == 1
    body = rollout_body()
    body["spec"]["strategy"]["canary"]["maxUnavailable"] = "20%"
    assert max_unavailable(Rollout.model_validate(body)) == "20%"


def test_resolve_takes_the_template_and_counts_nodes_as_replicas() -> None:
    resolved, problems = resolve(parsed(), daemonset(), node_count(daemonset(), []))
    assert problems == [] and resolved is not None
    assert resolved.spec.replicas == 10
    assert resolved.spec.selector is not None
    assert resolved.spec.selector.match_labels == {"app": "agent"}
    assert resolved.spec.strategy.canary is not None
    assert resolved.spec.strategy.canary.stable_scale == "full"
    missing, why = resolve(parsed(), None, 0)
    assert missing is None and "DaemonSet 'agent' not found" in why[0].message


def test_the_revision_is_the_newest_controller_revision_once_synced() -> None:
    assert revision_of(daemonset(), REVISIONS, None) == CANARY
    assert revision_of(daemonset(observed=1), REVISIONS, None) is None
    rolled_back = [revision(STABLE, 3), revision(CANARY, 2)]
    refused = status(aborted=True)
    assert revision_of(daemonset(), rolled_back, refused) == CANARY  # still refused


def test_an_unbound_pod_belongs_to_the_node_its_affinity_names() -> None:
    assert node_of(pod("n4", CANARY, bound=False)) == "n4"


def test_the_strategy_is_held_at_on_delete_before_any_pod_is_deleted() -> None:
    pods = [pod(n, STABLE) for n in NODES]
    first = step(pods, status(), 2, ds=daemonset(held=False))
    assert first.hold and first.deletions == ()


def test_the_canary_replaces_the_selector_nodes_first_one_at_a_time() -> None:
    pods = [pod(n, STABLE) for n in NODES]
    first = step(pods, status(), 2)
    assert [d.node for d in first.deletions] == ["n1"]
    assert first.status.waiting_for == ["n1", "n3"]
    # n1's new pod Ready: n3 next; a pass on the same view asks for n3 again, not more.
    pods = [pod(n, CANARY if n == "n1" else STABLE) for n in NODES]
    second = step(pods, status(), 2)
    assert [d.node for d in second.deletions] == ["n3"]
    assert step(pods, status(), 2).deletions == second.deletions
    pods = [pod(n, CANARY if n in ("n1", "n3") else STABLE) for n in NODES]
    done = step(pods, status(), 2)
    assert done.deletions == () and done.status.waiting_for == []
    assert done.status.nodes == {CANARY: ["n1", "n3"], STABLE: sorted(set(NODES) - {"n1", "n3"})}


def test_a_pod_being_replaced_uses_the_budget_so_nothing_more_is_deleted() -> None:
    pods = [pod(n, STABLE) for n in NODES if n != "n1"]  # n1's replacement not created yet
    before = status(daemon_set=DaemonSetStatus(name="agent", nodes={STABLE: NODES}))
    again = step(pods, before, 2)
    assert again.deletions == () and again.status.waiting_for == ["n1", "n3"]


def test_a_rollback_puts_the_template_back_then_replaces_only_the_updated_nodes() -> None:
    pods = [pod(n, CANARY if n in ("n1", "n3") else STABLE) for n in NODES]
    aborted = status(aborted=True)
    first = step(pods, aborted, 0, ds=daemonset())
    # The DaemonSet's newest revision is still the canary's: the stable template first.
    assert first.template_of == STABLE and first.deletions == ()
    back = [revision(STABLE, 3), revision(CANARY, 2)]
    second = move(
        daemonset(), back, pods, nodes(), aborted,
        canary_pods=0, max_unavailable=1, canary_node_selector={ZONE: "b"},
    )  # fmt: skip
    assert [d.node for d in second.deletions] == ["n1"]
    assert second.status is not None and second.status.rolling_back == ["n1"]
    pods = [pod(n, STABLE) for n in NODES]
    done = move(
        daemonset(), back, pods, nodes(), status(aborted=True, daemon_set=second.status),
        canary_pods=0, max_unavailable=1, canary_node_selector=None,
    )  # fmt: skip
    # Every Node back on the stable revision: the user's strategy is handed back.
    assert done.deletions == () and done.hand_back == USERS


def test_a_broken_canary_pod_is_replaced_in_a_rollback_whatever_the_budget() -> None:
    pods = [pod(n, STABLE) for n in NODES if n != "n1"] + [pod("n1", CANARY, ready=False)]
    back = [revision(STABLE, 3), revision(CANARY, 2)]
    rolled = move(
        daemonset(), back, pods, nodes(), status(aborted=True),
        canary_pods=0, max_unavailable=1, canary_node_selector=None,
    )  # fmt: skip
    assert [d.node for d in rolled.deletions] == ["n1"]


def test_after_promotion_the_strategy_is_handed_back() -> None:
    back = [revision(STABLE, 1)]
    pods = [pod(n, STABLE) for n in NODES]
    promoted = RolloutStatus(stable_revision=STABLE)
    done = move(
        daemonset(), back, pods, nodes(), promoted,
        canary_pods=0, max_unavailable=1, canary_node_selector=None,
    )  # fmt: skip
    assert done.hand_back == USERS and done.status is not None
    assert done.status.moving == "AtRest"


def test_the_strategy_waits_while_the_daemonset_has_a_template_its_revisions_lack() -> None:
    # A new template (held by ``rollout --image``) is in the DaemonSet read, its
    # ControllerRevision not yet in the revisions read: the revision still looks stable
    # and every pod on it, but the DaemonSet controller counts none on its template.
    back = [revision(STABLE, 1)]
    pods = [pod(n, STABLE) for n in NODES]
    promoted = RolloutStatus(stable_revision=STABLE)
    ds = daemonset(generation=3, observed=3)
    ds["status"]["updatedNumberScheduled"] = 0
    early = move(
        ds, back, pods, nodes(), promoted,
        canary_pods=0, max_unavailable=1, canary_node_selector=None,
    )  # fmt: skip
    assert early.hand_back is None and early.deletions == ()
    ds["status"]["updatedNumberScheduled"] = 10  # every pod on its current template
    settled = move(
        ds, back, pods, nodes(), promoted,
        canary_pods=0, max_unavailable=1, canary_node_selector=None,
    )  # fmt: skip
    assert settled.hand_back == USERS


def test_plan_rows_show_the_nodes_each_step_moves() -> None:
    rows = [row.to_dict() for row in preview(parsed())]
    assert [(r["nodes"], r["moves"]) for r in rows] == [
        (2, "Nodes 1-2"),
        (2, "-"),
        (5, "Nodes 3-5"),
        (10, "Nodes 6-10"),
        (10, "-"),
    ]


def test_the_revision_of_a_daemonset_rollout_is_read_from_the_daemonset() -> None:
    with pytest.raises(CliError) as refused:
        revision_of_request(rollout_body())
    assert "delivers DaemonSet agent's pod template" in refused.value.message
    assert "read from the DaemonSet" in refused.value.message


def test_status_shows_the_nodes_per_revision() -> None:
    body = rollout_body()
    body["status"] = {
        "stableRevision": STABLE,
        "canaryRevision": CANARY,
        "daemonSet": {
            "name": "agent",
            "nodes": {CANARY: ["n1"], STABLE: ["n0", "n2"]},
            "moving": "Canary",
            "waitingFor": ["n3"],
        },
    }
    document = workload_document(body)
    assert document is not None
    assert document["nodes"][CANARY] == {"role": "canary", "nodes": ["n1"]}
    assert workload_line(document) == (
        f"DaemonSet agent: Canary; {CANARY} (canary) 1 Nodes: n1; "
        f"{STABLE} (stable) 2 Nodes: n0, n2; waiting for n3"
    )


# --------------------------------------------------------------------- restarts


class _Fleet:
    """The DaemonSet controller under OnDelete and its kubelets, at the level
    ``controller.daemon.move`` observes: a deleted pod terminates, then a new pod on the
    current template is created, then it becomes Ready, each when the schedule says so."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.pods: dict[str, dict[str, Any]] = {n: pod(n, STABLE) for n in NODES}
        self.serial = 0
        self.deleted: list[str] = []

    def delete(self, node: str, uid: str) -> None:
        current = self.pods.get(node)
        if current is not None and current["metadata"]["uid"] == uid:  # the precondition
            current["metadata"]["deletionTimestamp"] = "now"
            self.deleted.append(node)

    def tick(self, node: str) -> None:
        current = self.pods.get(node)
        if current is None:
            self.serial += 1
            fresh = pod(node, self.template, ready=False)
            fresh["metadata"]["uid"] = f"{node}-{self.serial}"
            self.pods[node] = fresh
        elif current["metadata"].get("deletionTimestamp"):
            del self.pods[node]
        else:
            current["status"]["conditions"] = [{"type": "Ready", "status": "True"}]

    def unavailable(self) -> int:
        return sum(
            1
            for n in NODES
            if (p := self.pods.get(n)) is None
            or p["metadata"].get("deletionTimestamp")
            or p["status"]["conditions"][0]["status"] != "True"
        )


@given(
    schedule=st.lists(
        st.one_of(st.sampled_from(NODES), st.just("pass"), st.just("restart")), max_size=300
    ),
    weight_pods=st.sampled_from([1, 2, 5, 10]),
)
@settings(max_examples=150, deadline=None)
def test_passes_with_restarts_replace_each_canary_node_once_within_the_budget(
    schedule: list[str], weight_pods: int
) -> None:
    """Whatever the interleaving of passes, pod events and restarts, a canary step
    replaces each target Node's pod at most once, never a Node outside the step, and
    never makes more than one pod unavailable (maxUnavailable 1). A restart keeps only
    status, and may lose the last pass's status write (killed after its deletions,
    before the write)."""
    fleet = _Fleet(CANARY)
    written: DaemonSetStatus | None = None
    previous: DaemonSetStatus | None = None
    targets = ["n1", "n3", "n5", "n7", "n9", "n0", "n2", "n4", "n6", "n8"][:weight_pods]
    for event in schedule:
        if event == "restart":
            written = previous  # nothing else is kept between passes
            continue
        if event != "pass":
            fleet.tick(event)
            continue
        before = fleet.unavailable()
        write = move(
            daemonset(), REVISIONS, list(fleet.pods.values()), nodes(),
            status(daemon_set=written), canary_pods=weight_pods, max_unavailable=1,
            canary_node_selector={ZONE: "b"},
        )  # fmt: skip
        for deletion in write.deletions:
            fleet.delete(deletion.node, deletion.uid)
        previous, written = written, write.status
        if write.deletions:
            assert before == 0 and fleet.unavailable() == 1
    assert len(fleet.deleted) == len(set(fleet.deleted)), fleet.deleted
    assert set(fleet.deleted) <= set(targets)
