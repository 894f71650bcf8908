"""``deployctl undo`` of a StatefulSet Rollout reads the template to go back to only from a
ControllerRevision the StatefulSet owns, against a recording double of the ``Kube``
adapter (the sandbox test is tests/integration/test_statefulset_undo.py)."""

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
TEMPLATE = {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}


def revision(name: str, owner_uid: str | None) -> dict[str, Any]:
    owners = [{"kind": "StatefulSet", "uid": owner_uid}] if owner_uid else []
    return {"metadata": {"name": name, "ownerReferences": owners}}


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
    kube = RecordingKube([revision("db-7c9f", "sts-uid")])
    assert _workload_template(session(kube), STATEFULSET, "StatefulSet", "db-7c9f") == TEMPLATE
    assert kube.selectors == ["app=db"] and kube.read == ["db-7c9f"]


@pytest.mark.parametrize(
    "stored",
    [
        [],  # older than revisionHistoryLimit
        [revision("db-7c9f", "other-uid")],  # a StatefulSet of the same name, recreated
        [revision("db-7c9f", None)],  # an orphan the StatefulSet has not adopted
    ],
)
def test_a_revision_the_statefulset_does_not_own_is_refused_unread(
    stored: list[dict[str, Any]],
) -> None:
    kube = RecordingKube(stored)
    with pytest.raises(CliError) as refused:
        _workload_template(session(kube), STATEFULSET, "StatefulSet", "db-7c9f")
    assert "revision db-7c9f has no ControllerRevision of StatefulSet db" in refused.value.message
    assert "another workload's" in refused.value.message
    assert kube.read == []
