"""Property tests of the StatefulSet and DaemonSet canary arithmetic (pure).

The StatefulSet side is played against a model of the StatefulSet controller at its most
eager (it replaces every pod at or above the partition that is off the template at
once, as ``podManagementPolicy: Parallel`` with a large ``maxUnavailable`` would), the
DaemonSet side against a model of the DaemonSet controller under ``OnDelete`` (a deleted
pod is recreated on the current template); pods become Ready when the generated
schedule says so.
"""

from __future__ import annotations

import doctest
import os
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import daemonset as ds
from strategies import statefulset as sts
from strategies.daemonset import NodeInfo, NodePod
from strategies.statefulset import OrdinalPod

SETTINGS = settings(
    max_examples=int(os.environ.get("DEPLOYCTL_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
OLD, NEW = "app-old", "app-new"
weights = st.integers(min_value=0, max_value=100)

# ------------------------------------------------------------------ StatefulSet


@SETTINGS
@given(replicas=st.integers(min_value=0, max_value=200), weight=weights, other=weights)
def test_partition_puts_ceil_of_the_weight_on_the_highest_ordinals(
    replicas: int, weight: int, other: int
) -> None:
    moved = sts.canary_pods(replicas, weight)
    partition = sts.partition_for(replicas, weight)
    assert 0 <= partition <= replicas and moved == replicas - partition
    # ceil(w x N / 100), exactly
    assert moved * 100 >= weight * replicas > (moved - 1) * 100 or moved == 0 == weight * replicas
    assert sts.canary_ordinals(replicas, weight) == tuple(range(replicas - 1, partition - 1, -1))
    if weight <= other:
        assert sts.partition_for(replicas, other) <= partition
    if weight > 0 and replicas > 0:
        assert moved >= 1
    assert sts.partition_for(replicas, 0) == replicas and sts.partition_for(replicas, 100) == 0


def test_the_five_replica_story() -> None:
    """20% -> 60% -> 100% of 5 replicas is partition 4 -> 2 -> 0."""
    assert [sts.partition_for(5, w) for w in (20, 60, 100)] == [4, 2, 0]


@SETTINGS
@given(
    replicas=st.integers(min_value=1, max_value=12),
    weight=weights,
    data=st.data(),
)
def test_a_step_is_done_exactly_when_its_ordinals_are_ready_on_the_new_revision(
    replicas: int, weight: int, data: st.DataObject
) -> None:
    pods = {
        o: OrdinalPod(
            revision=data.draw(st.sampled_from([OLD, NEW])),
            ready=data.draw(st.booleans()),
            terminating=data.draw(st.booleans()),
        )
        for o in range(replicas)
        if data.draw(st.integers(0, 9)) > 0  # now and then a pod is missing
    }
    move = sts.canary_move(replicas, weight, pods, NEW)
    wanted = sts.canary_ordinals(replicas, weight)
    there = [
        o
        for o in wanted
        if o in pods and pods[o].revision == NEW and pods[o].ready and not pods[o].terminating
    ]
    assert move.partition == sts.partition_for(replicas, weight)
    assert move.done == (len(there) == len(wanted))
    if not move.done:
        assert move.waiting_for == next(o for o in wanted if o not in there)


@SETTINGS
@given(
    replicas=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_rollback_brings_the_ordinals_back_highest_first_one_at_a_time(
    replicas: int, data: st.DataObject
) -> None:
    updated = data.draw(st.integers(min_value=0, max_value=replicas), label="updated")
    # The partition observed: at the canary's lowest ordinal, or lower mid-step.
    partition = data.draw(st.integers(min_value=0, max_value=replicas - updated), label="partition")
    pods = {
        o: OrdinalPod(revision=NEW if o >= replicas - updated else OLD, ready=True)
        for o in range(replicas)
    }
    replaced: list[int] = []
    for turn in range(6 * replicas + 6):
        move = sts.rollback_move(replicas, pods, OLD, partition=partition)
        assert sum(1 for p in pods.values() if not p.ready) <= 1, pods
        if move.done:
            break
        assert move.partition == move.waiting_for
        partition = move.partition
        # The most eager controller: every pod at or above the partition off the template
        # (OLD again) is replaced at once; then its new pod may or may not be Ready yet
        # (every third turn it is, so the rollback can finish).
        for ordinal in range(partition, replicas):
            if pods[ordinal].revision != OLD:
                pods[ordinal] = OrdinalPod(revision=OLD, ready=False)
                replaced.append(ordinal)
        if turn % 3 == 2 or data.draw(st.booleans(), label="pods get Ready"):
            pods = {o: replace(p, ready=True) for o, p in pods.items()}
    else:
        pytest.fail("the rollback did not finish")
    assert move.partition == replicas
    assert all(p.revision == OLD and p.ready for p in pods.values())
    # Exactly the updated ordinals, highest first; the others never restarted.
    assert replaced == list(range(replicas - 1, replicas - updated - 1, -1))


# ------------------------------------------------------------------ DaemonSet

ZONES = ["zone-a", "zone-b", "zone-c"]


@st.composite
def node_lists(draw: st.DrawFn, max_size: int = 15) -> list[NodeInfo]:
    names = draw(st.sets(st.integers(0, 99), min_size=1, max_size=max_size))
    return [NodeInfo(f"node-{n:02d}", {"zone": draw(st.sampled_from(ZONES))}) for n in names]


selectors: st.SearchStrategy[dict[str, str] | None] = st.one_of(
    st.none(), st.sampled_from([{"zone": z} for z in ZONES]), st.just({})
)


@SETTINGS
@given(nodes=node_lists(), weight=weights, other=weights, selector=selectors, data=st.data())
def test_canary_nodes_are_a_deterministic_growing_prefix(
    nodes: list[NodeInfo],
    weight: int,
    other: int,
    selector: dict[str, str] | None,
    data: st.DataObject,
) -> None:
    chosen = ds.canary_nodes(nodes, weight, selector)
    assert len(chosen) == -(-weight * len(nodes) // 100) and len(set(chosen)) == len(chosen)
    shuffled = data.draw(st.permutations(nodes))
    assert ds.canary_nodes(shuffled, weight, selector) == chosen
    low, high = sorted((weight, other))
    assert ds.canary_nodes(nodes, high, selector)[: len(ds.canary_nodes(nodes, low, selector))] == (
        ds.canary_nodes(nodes, low, selector)
    )
    # Selected Nodes come first: no unselected Node before a selected one.
    matching = [ds.selector_matches(selector, n.labels) for n in nodes]
    by_name = {n.name: m for n, m in zip(nodes, matching, strict=True)}
    flags = [by_name[name] for name in ds.node_order(nodes, selector)]
    assert flags == sorted(flags, reverse=True)


def test_two_canary_nodes_of_ten_in_one_zone() -> None:
    nodes = [
        NodeInfo(f"node-{i}", {"zone": "zone-b" if i in (3, 7, 8) else "zone-a"}) for i in range(10)
    ]
    assert ds.canary_nodes(nodes, 20, {"zone": "zone-b"}) == ("node-3", "node-7")
    assert ds.canary_nodes(nodes, 20) == ("node-0", "node-1")
    assert ds.canary_nodes(nodes, 40, {"zone": "zone-b"}) == (
        "node-3",
        "node-7",
        "node-8",
        "node-0",
    )


class DaemonSetModel:
    """The DaemonSet controller under OnDelete, and Nodes whose pods come up when told."""

    def __init__(self, nodes: list[NodeInfo], broken: set[str]) -> None:
        self.template = OLD
        self.serial = 0
        self.pods: dict[str, NodePod | None] = {}
        for node in nodes:
            self.pods[node.name] = self._new_pod(node.name, ready=node.name not in broken)
        self.deleted: list[str] = []

    def _new_pod(self, node: str, *, ready: bool = False) -> NodePod:
        self.serial += 1
        return NodePod(f"ds-{self.serial}", f"uid-{self.serial}", self.template, ready=ready)

    def unavailable(self) -> int:
        return sum(1 for p in self.pods.values() if p is None or not p.available)

    def delete(self, deletion: ds.PodDeletion) -> None:
        pod = self.pods[deletion.node]
        assert pod is not None and pod.uid == deletion.uid and pod.name == deletion.pod
        self.pods[deletion.node] = replace(pod, terminating=True)
        self.deleted.append(deletion.node)

    def tick(self, data: st.DataObject) -> None:
        """Terminating pods go, missing pods are created (current template), some get Ready."""
        for node, pod in sorted(self.pods.items()):
            if pod is not None and pod.terminating:
                self.pods[node] = None
            elif pod is None:
                self.pods[node] = self._new_pod(node)
            elif not pod.ready and data.draw(st.booleans(), label=f"{node} ready"):
                self.pods[node] = replace(pod, ready=True)


max_unavailables = st.one_of(st.integers(0, 4), st.sampled_from(["10%", "25%", "50%"]))


@SETTINGS
@given(
    nodes=node_lists(),
    steps=st.lists(st.integers(1, 100), min_size=1, max_size=4).map(sorted),
    max_unavailable=max_unavailables,
    selector=selectors,
    abort_after=st.one_of(st.none(), st.integers(0, 3)),
    data=st.data(),
)
def test_a_daemonset_canary_and_its_rollback_touch_only_the_canary_nodes(
    nodes: list[NodeInfo],
    steps: list[int],
    max_unavailable: int | str,
    selector: dict[str, str] | None,
    abort_after: int | None,
    data: st.DataObject,
) -> None:
    broken = set(data.draw(st.sets(st.sampled_from([n.name for n in nodes]), max_size=2)))
    world = DaemonSetModel(nodes, broken)
    original = dict(world.pods)
    budget = ds.unavailable_budget(max_unavailable, len(nodes))
    world.template = NEW
    reached: tuple[str, ...] = ()

    def play(move_of: object) -> None:
        for _ in range(8 * len(nodes) + 10):
            move = move_of()  # type: ignore[operator]
            if move.done:
                return
            before = world.unavailable()
            for deletion in move.deletions:
                world.delete(deletion)
            # Deletions only spend the budget left; they never add to an overspend.
            assert world.unavailable() <= max(budget, before)
            world.tick(data)
            # A node that never gets Ready holds the move forever: make it Ready at last.
            if not move.deletions and data.draw(st.integers(0, 9)) == 0:
                world.pods = {
                    n: replace(p, ready=True) if p is not None else p for n, p in world.pods.items()
                }
        pytest.fail("the move did not finish")

    for index, weight in enumerate(steps):
        if abort_after is not None and index > abort_after:
            break
        reached = ds.canary_nodes(nodes, weight, selector)
        play(lambda w=weight: ds.canary_move(nodes, world.pods, w, NEW, max_unavailable, selector))
        for node in reached:
            pod = world.pods[node]
            assert pod is not None and pod.revision == NEW and pod.available
    # Only canary Nodes' pods were ever deleted, each at most once.
    assert set(world.deleted) <= set(reached)
    assert len(world.deleted) == len(set(world.deleted))
    if abort_after is None:
        return
    # Rollback: the previous template back; only the updated Nodes' pods are replaced.
    world.template = OLD
    world.deleted.clear()
    updated = ds.updated_nodes(world.pods, OLD)
    assert set(updated) <= set(reached)
    play(lambda: ds.rollback_move(world.pods, OLD, max_unavailable, rolling_back=updated))
    assert set(world.deleted) == set(updated)
    for node, pod in world.pods.items():
        assert pod is not None and pod.revision == OLD
        if node not in reached:
            assert pod.uid == original[node].uid, node  # type: ignore[union-attr]


def test_the_unavailable_budget_counts_every_node() -> None:
    pods: dict[str, NodePod | None] = {
        "a": NodePod("p-a", "u-a", OLD, ready=True),
        "b": NodePod("p-b", "u-b", OLD, ready=False),  # someone else's trouble
        "c": NodePod("p-c", "u-c", OLD, ready=True),
        "d": None,
    }
    # maxUnavailable 2, two Nodes already down: nothing may be deleted now.
    move = ds.replace_move(["a", "c"], pods, NEW, 2)
    assert move.deletions == () and not move.done and move.waiting_for == ("a", "c")
    move = ds.replace_move(["a", "c"], pods, NEW, 3)
    assert move.deletions == (ds.PodDeletion("a", "p-a", "u-a"),)


@pytest.mark.parametrize("module", [sts, ds], ids=["statefulset", "daemonset"])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
