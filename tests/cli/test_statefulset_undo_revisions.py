"""``deployctl undo`` of a StatefulSet or DaemonSet Rollout reads the template to go back to
only from a ControllerRevision the workload owns (a StatefulSet's revision names it, a
DaemonSet's is its hash label), against a recording double of the ``Kube`` adapter (the
sandbox tests are tests/integration/test_statefulset_undo.py and test_daemonset.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from controller.commands.common import CliError, Session
from controller.commands.control import _workload_template

STATEFULSET = {
    "metadata": {"name": "db", "uid": "sts-uid"},
    "spec": {"selector": {"matchLabels": {"app": "db"}}},
}
DAEMONSET = {
    "metadata": {"name": "agent", "uid": "ds-uid"},
    "spec": {"selector": {"matchLabels": {"app": "agent"}}},
}
SELF, OTHER = "sts-uid", "other-uid"  # the StatefulSet's UID, another workload's
TEMPLATE = {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}


def revision(name: str, owner_uid: str | None, hash_label: str | None = None) -> dict[str, Any]:
    owners = [{"kind": "StatefulSet", "uid": owner_uid}] if owner_uid else []
    labels = {"controller-revision-hash": hash_label} if hash_label else {}
    return {"metadata": {"name": name, "ownerReferences": owners, "labels": labels}}


class RecordingKube:
    """Lists answer from the given ControllerRevisions; template reads are recorded."""

    def __init__(self, revisions: list[dict[str, Any]]) -> None:
        self.revisions = revisions
        self.selectors: list[str | None] = []
        self.read: list[str] = []

    def list_objects(self, _kind: Any, namespace: str, label_selector: str | None = None) -> Any:
        assert namespace == "shop"
        self.selectors.append(label_selector)
        return SimpleNamespace(items=self.revisions)

    def get_statefulset_template(self, namespace: str, name: str) -> dict[str, Any]:
        self.read.append(name)
        return TEMPLATE


def session(kube: RecordingKube) -> Session:
    return Session(kube=kube, namespace="shop", user="sre")  # type: ignore[arg-type]


def test_the_template_comes_from_a_revision_the_statefulset_owns() -> None:
    kube = RecordingKube([revision("db-7c9f", SELF)])
    assert _workload_template(session(kube), STATEFULSET, "StatefulSet", "db-7c9f") == TEMPLATE
    assert kube.selectors == ["app=db"] and kube.read == ["db-7c9f"]


def test_a_daemonset_revision_is_found_by_its_hash_among_those_it_owns() -> None:
    kube = RecordingKube(
        [
            # Another DaemonSet's revision with the same hash comes first: not this one's.
            revision("other-6d4b", "other-uid", hash_label="6d4b"),
            revision("agent-5f8a", "ds-uid", hash_label="5f8a"),
            revision("agent-6d4b", "ds-uid", hash_label="6d4b"),
        ]
    )
    assert _workload_template(session(kube), DAEMONSET, "DaemonSet", "6d4b") == TEMPLATE
    assert kube.selectors == ["app=agent"] and kube.read == ["agent-6d4b"]


@pytest.mark.parametrize(
    ("workload", "kind", "target", "stored"),
    [
        (STATEFULSET, "StatefulSet", "db-7c9f", []),  # older than revisionHistoryLimit
        # A StatefulSet of the same name, recreated; an orphan it has not adopted.
        (STATEFULSET, "StatefulSet", "db-7c9f", [revision("db-7c9f", OTHER)]),
        (STATEFULSET, "StatefulSet", "db-7c9f", [revision("db-7c9f", None)]),
        # A StatefulSet's revision is the ControllerRevision's name, not its hash label.
        (STATEFULSET, "StatefulSet", "db-7c9f", [revision("db-5f8a", SELF, hash_label="db-7c9f")]),
        # Another DaemonSet's revision of that hash; one of its own under another hash.
        (DAEMONSET, "DaemonSet", "6d4b", [revision("agent-6d4b", OTHER, hash_label="6d4b")]),
        (DAEMONSET, "DaemonSet", "6d4b", [revision("agent-6d4b", "ds-uid", hash_label="5f8a")]),
        # A DaemonSet's revision is its hash label, not the ControllerRevision's name.
        (DAEMONSET, "DaemonSet", "6d4b", [revision("6d4b", "ds-uid", hash_label="5f8a")]),
    ],
)
def test_a_revision_the_workload_does_not_own_under_that_key_is_refused_unread(
    workload: dict[str, Any], kind: str, target: str, stored: list[dict[str, Any]]
) -> None:
    kube = RecordingKube(stored)
    with pytest.raises(CliError) as refused:
        _workload_template(session(kube), workload, kind, target)
    name = workload["metadata"]["name"]
    assert f"revision {target} has no ControllerRevision of {kind} {name}" in refused.value.message
    assert "another workload's" in refused.value.message
    assert kube.read == []
