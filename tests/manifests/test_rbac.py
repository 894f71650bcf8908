"""The operator's RBAC: code, ``controller/rbac.py``, manifests and docs agree, both ways.

``controller/rbac.py`` is the one list. Here it is checked against what the code can
call (``rbac_from_code``: nothing missing, nothing extra), against the Roles in the
manifests (nothing missing, nothing extra, no wildcard, Secrets only read and only in
the operator's own namespace) and against the table in ``docs/install.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.rbac import (
    MEMBER_PERMISSIONS,
    PERMISSIONS,
    RELEASE_PERMISSIONS,
    Scope,
    markdown_table,
    permissions,
    rules,
)
from tests.manifests.rbac_from_code import (
    kube_method_needs,
    member_needs,
    operator_needs,
    release_controller_needs,
)

ROOT = Path(__file__).resolve().parents[2]
Key = tuple[str, str, str]


def load(relative: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / relative).read_text()) if d]


def granted(role: dict[str, Any]) -> set[Key]:
    out: set[Key] = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out |= {(group, resource, verb) for verb in rule["verbs"]}
    return out


def keys(*scopes: Scope) -> set[Key]:
    return {p.key for scope in scopes for p in permissions(scope)}


def role(relative: str, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in load(relative) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{relative}: expected one {kind} {name}"
    return found[0]


CLUSTER_ROLE = ("manifests/clusterrole.yaml", "ClusterRole", "deployctl-controller")
NAMESPACED_ROLE = ("manifests/namespaced/role.yaml", "Role", "deployctl-controller")
LEADER_ROLE = ("manifests/operator/leader-election.yaml", "Role", "deployctl-leader-election")
ADMISSION_ROLE = ("manifests/admission/rbac.yaml", "ClusterRole", "deployctl-admission-reader")
ALL_ROLES = [CLUSTER_ROLE, NAMESPACED_ROLE, LEADER_ROLE, ADMISSION_ROLE]


def test_the_list_has_no_duplicates_and_a_reason_for_each() -> None:
    assert len({(p.key, p.scope) for p in PERMISSIONS}) == len(PERMISSIONS)
    assert all(p.why.strip() for p in PERMISSIONS)


def test_the_list_covers_every_api_call_of_the_operator_and_nothing_more() -> None:
    needed = operator_needs()
    listed = {p.key for p in PERMISSIONS}
    missing = sorted(needed - listed)
    extra = sorted(listed - needed)
    assert not missing, f"the operator calls these but controller/rbac.py lacks them: {missing}"
    assert not extra, f"controller/rbac.py grants these but no operator code uses them: {extra}"


def test_the_derivation_sees_the_typed_methods() -> None:
    """Guards the AST reading itself: a few known answers."""
    needs = kube_method_needs()
    assert needs["patch_rollout_status"] == {("deployctl.io", "rollouts/status", "patch")}
    assert ("deployctl.io", "rollouts/finalizers", "update") in needs["create_replicaset"]
    assert needs["scale_replicaset"] == {("apps", "replicasets", "patch")}
    assert needs["record_event"] == {("", "events", v) for v in ("create", "patch", "get")}
    # Deletes go through one helper; the kind named at each call decides the permission.
    assert needs["delete_replicaset"] == {("apps", "replicasets", "delete")}
    assert needs["delete_job"] == {("batch", "jobs", "delete")}
    assert ("deployctl.io", "rollouts/finalizers", "update") in needs["create_job"]


@pytest.mark.parametrize(
    ("where", "scopes"),
    [
        (CLUSTER_ROLE, (Scope.WATCHED, Scope.CLUSTER)),
        (NAMESPACED_ROLE, (Scope.WATCHED,)),
        (LEADER_ROLE, (Scope.OWN,)),
        (ADMISSION_ROLE, (Scope.ADMISSION,)),
    ],
    ids=["clusterrole", "namespaced-role", "leader-election-role", "admission-reader"],
)
def test_manifests_grant_exactly_the_list(
    where: tuple[str, str, str], scopes: tuple[Scope, ...]
) -> None:
    have = granted(role(*where))
    want = keys(*scopes)
    assert not want - have, f"{where[0]} lacks {sorted(want - have)}"
    assert not have - want, f"{where[0]} grants more than controller/rbac.py: {sorted(have - want)}"
    assert granted({"rules": [r for scope in scopes for r in rules(scope)]}) == want


@pytest.mark.parametrize("where", ALL_ROLES, ids=lambda w: w[0])
def test_no_wildcards_and_no_secrets(where: tuple[str, str, str]) -> None:
    for rule in role(*where)["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"{where[0]}: wildcard in {field}: {rule}"
        if {"secrets", "secrets/*"} & set(rule["resources"]):
            # Webhook URLs only: read, in the operator's own namespace, nothing more.
            assert where == LEADER_ROLE and rule["resources"] == ["secrets"], where[0]
            assert rule["verbs"] == ["get"], rule
        assert "nonResourceURLs" not in rule
        # Verbs that escalate or impersonate are never needed by a rollout controller.
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_bindings_point_at_the_roles_and_the_service_account() -> None:
    expected = {
        ("manifests/clusterrole.yaml", "ClusterRoleBinding"): (
            "ClusterRole",
            "deployctl-controller",
        ),
        ("manifests/namespaced/role.yaml", "RoleBinding"): ("Role", "deployctl-controller"),
        ("manifests/operator/leader-election.yaml", "RoleBinding"): (
            "Role",
            "deployctl-leader-election",
        ),
        ("manifests/admission/rbac.yaml", "ClusterRoleBinding"): (
            "ClusterRole",
            "deployctl-admission-reader",
        ),
    }
    for (path, kind), (role_kind, role_name) in expected.items():
        (binding,) = [d for d in load(path) if d["kind"] == kind]
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) == (role_kind, role_name)
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "deployctl-controller",
                "namespace": "deployctl-system",
            }
        ]


def test_the_admission_reads_are_limited_to_the_policys_own_objects() -> None:
    from controller.admission import BINDINGS, POLICIES

    for rule in role(*ADMISSION_ROLE)["rules"]:
        names = POLICIES if rule["resources"] == ["validatingadmissionpolicies"] else BINDINGS
        assert sorted(rule["resourceNames"]) == sorted(names)
        assert rule["verbs"] == ["get"]


@pytest.mark.parametrize("doc", ["install.md", "security.md"])
def test_the_docs_have_the_generated_table(doc: str) -> None:
    text = (ROOT / "docs" / doc).read_text()
    assert markdown_table() in text, (
        f"docs/{doc}'s RBAC table is out of date: paste `python -m controller.rbac`"
    )


# --------------------------------------------------------------------------- releases

RELEASE_ROLE = ("manifests/release-controller/role.yaml", "Role", "deployctl-release-controller")
MEMBER_ROLE = ("manifests/member/clusterrole.yaml", "ClusterRole", "deployctl-release-member")


@pytest.mark.parametrize(
    ("derived", "listed"),
    [(release_controller_needs, RELEASE_PERMISSIONS), (member_needs, MEMBER_PERMISSIONS)],
    ids=["management", "member"],
)
def test_release_lists_cover_every_call_and_nothing_more(derived: Any, listed: Any) -> None:
    needed = derived()
    have = {p.key for p in listed}
    assert not needed - have, f"called but not in controller/rbac.py: {sorted(needed - have)}"
    assert not have - needed, f"in controller/rbac.py but never called: {sorted(have - needed)}"
    assert len(have) == len(listed) and all(p.why.strip() for p in listed)


def test_the_member_side_only_reads_and_patches_the_rollout() -> None:
    assert {p.key for p in MEMBER_PERMISSIONS} == {
        ("deployctl.io", "rollouts", "get"),
        ("deployctl.io", "rollouts", "patch"),
        ("apps", "replicasets", "list"),
    }
    assert not {"create", "delete", "update"} & {p.verb for p in MEMBER_PERMISSIONS}


@pytest.mark.parametrize(
    ("where", "listed"),
    [(RELEASE_ROLE, RELEASE_PERMISSIONS), (MEMBER_ROLE, MEMBER_PERMISSIONS)],
    ids=["release-controller-role", "member-clusterrole"],
)
def test_release_manifests_grant_exactly_the_lists(where: Any, listed: Any) -> None:
    have = granted(role(*where))
    want = {p.key for p in listed}
    assert have == want, f"{where[0]}: missing {sorted(want - have)}, extra {sorted(have - want)}"
    assert granted({"rules": rules(None, listed)}) == want
    for rule in role(*where)["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"{where[0]}: wildcard in {field}: {rule}"
        if "secrets" in rule["resources"]:
            assert where == RELEASE_ROLE and rule["verbs"] == ["get"], rule


def test_release_bindings_are_namespaced_and_point_at_their_roles() -> None:
    (binding,) = [d for d in load(RELEASE_ROLE[0]) if d["kind"] == "RoleBinding"]
    assert binding["metadata"]["namespace"] == "deployctl-releases"
    assert binding["roleRef"]["name"] == RELEASE_ROLE[2]
    # The member ClusterRole is only ever bound per namespace, never cluster-wide.
    (member,) = load("manifests/member/rolebinding.yaml")
    assert member["kind"] == "RoleBinding" and member["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": MEMBER_ROLE[2],
    }
    assert not [d for d in load("manifests/member/clusterrole.yaml") if "Binding" in d["kind"]]


def test_multicluster_doc_has_the_generated_table() -> None:
    doc = (ROOT / "docs" / "multicluster.md").read_text()
    assert markdown_table(RELEASE_PERMISSIONS + MEMBER_PERMISSIONS) in doc, (
        "docs/multicluster.md's RBAC table is out of date: paste "
        "`python -m controller.rbac release`"
    )
