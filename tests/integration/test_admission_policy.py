"""Approvals the API server vouches for: manifests/admission/ on a real API server.

Needs a cluster that serves ``admissionregistration.k8s.io/v1``
ValidatingAdmissionPolicy (Kubernetes 1.30+); on an older sandbox every test here skips
with one line. Users are real to the API server through **impersonation**
(``Impersonate-User``/``Impersonate-Group`` with the official client, as the sandbox's
admin, who may impersonate): the admission policy sees ``request.userInfo`` exactly as
for a token user, the sandbox needs no token file with groups, and each test chooses the
groups it needs. RBAC lets alice, bob and carol annotate Rollouts in the test namespace
only; what stops them is the admission policy, named in the API server's answer.

The matrix: bob's approval under alice's name is rejected; the requester's own approval
is rejected under ``requireDifferentApprover``; a non-member's approval is rejected; a
member who did not request it is admitted; an override must name its writer; a template
change under four eyes must name its requester. The controller is not needed: the API
server decides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from tests.integration.harness import GROUP, VERSION, demo_rollout
from tests.waiting import wait_until

ADMISSION = Path(__file__).resolve().parents[2] / "manifests" / "admission"
LEADS = "sre-leads"


def serves_admission_policies(api: Any) -> bool:
    try:
        resources = k8s.AdmissionregistrationV1Api(api).get_api_resources().resources
    except k8s.ApiException:
        return False
    return any(r.name == "validatingadmissionpolicies" for r in resources)


@pytest.fixture
def admission(kube_api: Any) -> Iterator[None]:
    if not serves_admission_policies(kube_api):
        pytest.skip("the API server does not serve ValidatingAdmissionPolicy (Kubernetes 1.30+)")
    registration: Any = k8s.AdmissionregistrationV1Api(kube_api)
    created: list[tuple[str, str]] = []
    for path in ("identity.yaml", "approval-rules.yaml"):
        for doc in yaml.safe_load_all((ADMISSION / path).read_text()):
            if doc["kind"] == "ValidatingAdmissionPolicy":
                registration.create_validating_admission_policy(doc)
            else:
                registration.create_validating_admission_policy_binding(doc)
            created.append((doc["kind"], doc["metadata"]["name"]))
    try:
        yield
    finally:
        for kind, name in reversed(created):
            if kind == "ValidatingAdmissionPolicy":
                registration.delete_validating_admission_policy(name)
            else:
                registration.delete_validating_admission_policy_binding(name)


def as_user(control_plane: Any, user: str, *groups: str) -> Any:
    """CustomObjectsApi speaking as ``user`` in ``groups`` (impersonated by the admin)."""
    api = control_plane.api_client()
    api.set_default_header("Impersonate-User", user)
    for group in groups:  # one header per group; the client keeps one value per name
        api.set_default_header("Impersonate-Group", group)
    return k8s.CustomObjectsApi(api)


def allow_annotating(kube_api: Any, namespace: str, users: list[str]) -> None:
    rbac: Any = k8s.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "rollout-editors"},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": ["rollouts"],
                    "verbs": ["get", "create", "patch", "update"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "rollout-editors"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "rollout-editors",
            },
            "subjects": [
                {"kind": "User", "name": u, "apiGroup": "rbac.authorization.k8s.io"} for u in users
            ],
        },
    )


def approve_as(api: Any, namespace: str, by: str, request_id: str) -> None:
    body = json.dumps({"action": "approve", "by": by, "id": request_id}, sort_keys=True)
    api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "rollouts",
        "checkout",
        {"metadata": {"annotations": {"deployctl.io/request": body}}},
    )


def refused(call: Any, *words: str) -> str:
    with pytest.raises(k8s.ApiException) as caught:
        call()
    body = str(caught.value.body)
    assert caught.value.status in (403, 422), body
    for word in words:
        assert word in body, body
    return body


def test_the_api_server_vouches_for_approvers_and_requesters(
    admission: None, kube_api: Any, control_plane: Any, namespace: str
) -> None:
    allow_annotating(kube_api, namespace, ["alice", "bob", "carol"])
    admin: Any = k8s.CustomObjectsApi(kube_api)
    admin.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "deliverypolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DeliveryPolicy",
            "metadata": {"name": "production"},
            "spec": {
                "approvals": [{"name": "prod", "groups": [LEADS], "requireDifferentApprover": True}]
            },
        },
    )
    alice = as_user(control_plane, "alice", LEADS)
    bob = as_user(control_plane, "bob", LEADS)
    carol = as_user(control_plane, "carol", "developers")
    rollout = demo_rollout("checkout", version="v1", strategy={"canary": {"steps": []}})

    # The policy takes a moment to be in force: until then a forged requester goes through.
    def create_as_bob_under_alices_name() -> bool:
        body = {
            **rollout,
            "metadata": {"name": "checkout", "annotations": {"deployctl.io/requested-by": "bob"}},
        }
        try:
            alice.create_namespaced_custom_object(GROUP, VERSION, namespace, "rollouts", body)
        except k8s.ApiException as exc:
            return "requested-by: alice" in str(exc.body)
        admin.delete_namespaced_custom_object(GROUP, VERSION, namespace, "rollouts", "checkout")
        return False

    wait_until(
        create_as_bob_under_alices_name, ok=bool, timeout=60, what="the admission policy in force"
    )
    created = {
        **rollout,
        "metadata": {"name": "checkout", "annotations": {"deployctl.io/requested-by": "alice"}},
    }
    alice.create_namespaced_custom_object(GROUP, VERSION, namespace, "rollouts", created)

    # bob writes an approval under alice's name.
    refused(
        lambda: approve_as(bob, namespace, "alice", "a1"), "must name its writer", '"by": "bob"'
    )
    # alice approves her own rollout (four eyes).
    refused(
        lambda: approve_as(alice, namespace, "alice", "a2"),
        "requires a different approver",
        "alice requested it",
    )
    # carol is not in sre-leads.
    refused(lambda: approve_as(carol, namespace, "carol", "a3"), "carol is not in the groups")
    # bob, a lead who did not request it, may.
    approve_as(bob, namespace, "bob", "a4")

    # An override's "who" is its writer.
    def override(api: Any, by: str) -> None:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "rollouts",
            "checkout",
            {
                "metadata": {
                    "annotations": {
                        "deployctl.io/exempt": "hotfix",
                        "deployctl.io/override-reason": "INC-1",
                        "deployctl.io/requested-by": by,
                    }
                }
            },
        )

    refused(lambda: override(bob, "alice"), "must carry deployctl.io/requested-by: bob")

    # Under four eyes a new template must say who asked, and not ride an unused approval.
    def new_template(api: Any, by: str, *, drop_request: bool) -> None:
        annotations: dict[str, Any] = {"deployctl.io/requested-by": by}
        if drop_request:
            annotations["deployctl.io/request"] = None
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "rollouts",
            "checkout",
            {
                "metadata": {"annotations": annotations},
                "spec": {"template": {"metadata": {"labels": {"app": "checkout", "v": "2"}}}},
            },
        )

    refused(lambda: new_template(alice, "bob", drop_request=True), "requested-by: alice")
    refused(lambda: new_template(alice, "alice", drop_request=False), "has not used yet")
    new_template(alice, "alice", drop_request=True)
