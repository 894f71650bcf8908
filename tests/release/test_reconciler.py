"""One release pass, its I/O recorded: status first, then member changes, then Events.

A recording double of our ``Kube`` adapter and dict caches stand in for the management
cluster, a recording ``MemberClients`` for the members (their own behaviour is tested in
test_members.py, against the real thing in tests/integration/test_multicluster.py).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from controller.api import reasons as r
from controller.api.release import ClusterTarget, RolloutRef
from controller.kube import Conflict
from controller.release.actions import Action
from controller.release.members import ActionResult
from controller.release.observe import MemberRollout, Observation
from controller.release.reconciler import ReleaseReconciler
from tests.release.world import T0, member

NS = "releases"


class DictCache:
    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self.objects.get((str(namespace), name))
        return copy.deepcopy(found) if found else None

    def list(
        self, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (ns, _), o in sorted(self.objects.items()) if ns == namespace]


class Journal:
    def __init__(self) -> None:
        self.entries: list[tuple[Any, ...]] = []


class FakeKube:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.conflict = False

    def patch_release_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None
    ) -> dict[str, Any]:
        if self.conflict:
            raise Conflict("409", verb="patch", resource="releases/status")
        self.journal.entries.append(("status", dict(status), resource_version))
        return {}

    def record_event(self, obj: Any, *, reason: str, message: str, type: str = "Normal") -> Any:
        self.journal.entries.append(("event", reason, type, message))
        return {}


class FakeMembers:
    def __init__(self, journal: Journal, observations: dict[str, Observation]) -> None:
        self.journal = journal
        self.observations = observations
        self.fail_actions = False

    def read_all(
        self,
        namespace: str,
        targets: Mapping[str, ClusterTarget | None],
        rollout: RolloutRef,
        *,
        release: str = "",
    ) -> dict[str, Observation]:
        self.journal.entries.append(("read", sorted(targets), release))
        return {name: self.observations[name] for name in targets}

    def act(
        self,
        namespace: str,
        targets: Mapping[str, ClusterTarget | None],
        rollout: RolloutRef,
        actions: list[Action],
    ) -> list[ActionResult]:
        self.journal.entries.append(("act", [(type(a).__name__, a.cluster) for a in actions]))
        error = "connection refused" if self.fail_actions else None
        return [ActionResult(a.cluster, a, error) for a in actions]

    def forget(self, namespace: str, keep: set[str]) -> None:
        return None


def release_object(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "rel", "namespace": NS, "generation": 1, "resourceVersion": "7"},
        "spec": {
            "rollout": {"namespace": "app", "name": "shop"},
            "images": {"app": "shop:2"},
            "waves": [{"name": "w", "clusters": ["a"]}],
            **spec,
        },
    }


def target_object(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"kubeconfigSecretRef": {"name": f"{name}-kc"}},
    }


def reconciler(raw: dict[str, Any], *targets: str) -> tuple[ReleaseReconciler, Journal, Any, Any]:
    journal = Journal()
    kube = FakeKube(journal)
    members = FakeMembers(journal, {"a": MemberRollout(member())})
    subject = ReleaseReconciler(
        kube,  # type: ignore[arg-type]
        releases=DictCache(raw),
        targets=DictCache(*(target_object(t) for t in targets)),
        members=members,  # type: ignore[arg-type]
        clock=lambda: T0,
        poll_interval=5.0,
    )
    return subject, journal, kube, members


def test_status_is_written_before_the_member_is_changed_and_events_after() -> None:
    subject, journal, _kube, _members = reconciler(release_object(), "a")
    outcome = subject.reconcile(f"{NS}/rel")
    kinds = [entry[0] for entry in journal.entries]
    assert kinds[:3] == ["read", "status", "act"] and set(kinds[3:]) == {"event"}
    status, resource_version = journal.entries[1][1], journal.entries[1][2]
    assert resource_version == "7"  # conditional on what the pass read
    assert status["clusters"][0]["phase"] == "Progressing"
    assert journal.entries[2][1] == [("SetTemplate", "a")]
    assert [e[1] for e in journal.entries[3:]] == [
        r.RELEASE_STARTED,
        r.WAVE_STARTED,
        r.CLUSTER_STARTED,
    ]
    assert outcome.requeue_after == pytest.approx(5.0)


def test_a_stale_cache_changes_nothing() -> None:
    subject, journal, kube, _members = reconciler(release_object(), "a")
    kube.conflict = True
    with pytest.raises(Conflict):
        subject.reconcile(f"{NS}/rel")
    assert [e[0] for e in journal.entries] == ["read"]  # no member change, no Event


def test_a_change_that_could_not_be_sent_is_reported_and_retried_soon() -> None:
    subject, journal, _kube, members = reconciler(release_object(), "a")
    members.fail_actions = True
    outcome = subject.reconcile(f"{NS}/rel")
    warnings = [e for e in journal.entries if e[0] == "event" and e[2] == "Warning"]
    assert warnings == [
        (
            "event",
            r.CLUSTER_CHANGE_FAILED,
            "Warning",
            "could not change cluster a yet: connection refused",
        )
    ]
    assert outcome.requeue_after == pytest.approx(2.0)


def test_an_invalid_release_is_reported_and_nothing_is_read() -> None:
    raw = release_object(waves=[{"name": "w", "clusters": ["a"]}, {"name": "w", "clusters": ["b"]}])
    subject, journal, _kube, _members = reconciler(raw, "a", "b")
    assert subject.reconcile(f"{NS}/rel").requeue_after is None
    (status, event) = journal.entries
    assert status[0] == "status" and status[1]["phase"] == "Failed"
    assert (
        status[1]["reason"] == r.INVALID_SPEC
        and "wave names must be unique" in status[1]["message"]
    )
    assert event[1] == r.INVALID_SPEC and event[2] == "Warning"


def test_a_gone_release_needs_nothing() -> None:
    subject, journal, _kube, _members = reconciler(release_object(), "a")
    assert subject.reconcile(f"{NS}/other").requeue_after is None
    assert journal.entries == []


def test_an_unchanged_status_is_not_written_again() -> None:
    raw = release_object()
    subject, journal, _kube, _members = reconciler(raw, "a")
    subject.reconcile(f"{NS}/rel")
    written = journal.entries[1][1]
    raw["status"] = written
    subject.releases = DictCache(raw)
    subject.clock = lambda: T0 + timedelta(seconds=1)
    journal.entries.clear()
    subject.reconcile(f"{NS}/rel")
    assert "status" not in [e[0] for e in journal.entries]
