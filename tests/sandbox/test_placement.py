"""Where the node agent binds a pending pod among its Nodes: the scheduler's filters (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.node_agent import node_names, zone_name
from sandbox.placement import node_fits, pick_node

NODES = [
    ("n-0", {"zone": "a", "gpu": "2"}),
    ("n-1", {"zone": "b"}),
    ("n-2", {"zone": "a"}),
]


def pinned_by_name(node: str) -> dict[str, Any]:
    """A DaemonSet pod as the real DaemonSet controller writes its affinity."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    required = {"nodeSelectorTerms": [term]}
    return {
        "spec": {
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
            }
        }
    }


def test_a_daemonset_pod_fits_only_the_node_it_names() -> None:
    pod = pinned_by_name("n-1")
    assert [name for name, labels in NODES if node_fits(pod, name, labels)] == ["n-1"]
    assert all(pick_node(pod, NODES, turn) == "n-1" for turn in range(5))
    assert pick_node(pinned_by_name("elsewhere"), NODES, 0) is None


def test_a_pod_without_constraints_rotates_over_the_nodes() -> None:
    assert [pick_node({"spec": {}}, NODES, turn) for turn in range(4)] == [
        "n-0",
        "n-1",
        "n-2",
        "n-0",
    ]


@pytest.mark.parametrize(
    ("expression", "fitting"),
    [
        ({"key": "zone", "operator": "In", "values": ["a"]}, ["n-0", "n-2"]),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, ["n-1"]),
        ({"key": "gpu", "operator": "Exists"}, ["n-0"]),
        ({"key": "gpu", "operator": "DoesNotExist"}, ["n-1", "n-2"]),
        ({"key": "gpu", "operator": "Gt", "values": ["1"]}, ["n-0"]),
        ({"key": "gpu", "operator": "Lt", "values": ["1"]}, []),
        ({"key": "zone", "operator": "Bogus", "values": ["a"]}, []),
    ],
)
def test_match_expressions(expression: dict[str, Any], fitting: list[str]) -> None:
    required = {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}
    pod = {
        "spec": {
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
            }
        }
    }
    assert [name for name, labels in NODES if node_fits(pod, name, labels)] == fitting


def test_node_selector_and_terms_combine() -> None:
    # nodeSelector AND (term 1 OR term 2); an empty term matches nothing.
    terms = [
        {},
        {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n-0"]}]},
    ]
    pod = {
        "spec": {
            "nodeSelector": {"zone": "a"},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
                }
            },
        }
    }
    assert [name for name, labels in NODES if node_fits(pod, name, labels)] == ["n-2"]


def test_node_names_and_zones() -> None:
    assert node_names("sandbox-node", 1) == ("sandbox-node",)
    assert node_names("fleet", 3) == ("fleet-0", "fleet-1", "fleet-2")
    with pytest.raises(ValueError, match="at least 1"):
        node_names("fleet", 0)
    assert [zone_name(i, 3) for i in range(4)] == ["zone-a", "zone-b", "zone-c", "zone-a"]
    assert zone_name(26, 30) == "zone-aa"
