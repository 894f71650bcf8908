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

Then every rule on its own: the API server's type check of the expressions against the
Rollout and DeliveryPolicy schemas (kube-controller-manager writes it to the policies'
status) reports nothing, and a table of writes, each refused or admitted as documented,
answered by the API server (dry run over Rollouts whose old state was written before
the policies were in force). This is the only check of the policies' CEL: the sandbox's
1.37 API server compiles and runs it exactly as a user's cluster does.
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
    # The Status body is JSON: its message holds the policy's words unescaped.
    message = str(json.loads(body)["message"])
    for word in words:
        assert word in message, message
    return message


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


# The decision table: every rule of both policies, admitted and refused, on the real API
# server (what the API server's type checker and CEL runtime make of the expressions is
# what a user's cluster makes of them). Each case writes as one user, with dryRun=All,
# over a Rollout created before the policies were in force (so its old state can carry
# any annotations); its namespace holds the case's DeliveryPolicy (the parameter), if any.


def rollout_body(
    name: str,
    annotations: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    image: str = "shop/checkout:1.0.0",
) -> dict[str, Any]:
    body = demo_rollout(name, version="v1", strategy={"canary": {"steps": []}})
    body["metadata"]["annotations"] = annotations or {}
    if labels:
        body["metadata"]["labels"] = labels
    body["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return body


def approve(by: str, request_id: str = "a1b2c3") -> dict[str, str]:
    return {
        "deployctl.io/request": json.dumps(
            {"action": "approve", "by": by, "id": request_id}, sort_keys=True
        )
    }


def rules(**rule: Any) -> dict[str, Any]:
    """A DeliveryPolicy spec with one approval rule."""
    return {"approvals": [{"name": "prod", **rule}]}


class State:
    """A Rollout's metadata and image in a case (the body is built per Rollout name)."""

    def __init__(
        self,
        annotations: dict[str, str] | None = None,
        *,
        labels: dict[str, str] | None = None,
        image: str = "shop/checkout:1.0.0",
        handled: str | None = None,
    ) -> None:
        self.annotations, self.labels, self.image, self.handled = (
            annotations,
            labels,
            image,
            handled,
        )

    def body(self, name: str) -> dict[str, Any]:
        return rollout_body(name, self.annotations, labels=self.labels, image=self.image)


REQUESTED = {"deployctl.io/requested-by": "alice"}
FOUR_EYES = rules(groups=[LEADS], requireDifferentApprover=True)
ODD_REQUEST = '{"id": "x", "action": "approve", "by": "bob"}'
PROMOTE = json.dumps({"action": "promote", "by": "bob", "id": "9"}, sort_keys=True)
OVERRIDE = {"deployctl.io/exempt": "hotfix", "deployctl.io/override-reason": "INC-1"}

# name, writer, writer's groups, old state (None: a create), new state, the namespace's
# DeliveryPolicy spec (None: none), a part of the refusal ("": admitted)
CASES: list[tuple[str, str, list[str], State | None, State, dict[str, Any] | None, str]] = [
    ("own approval", "bob", [], State(REQUESTED), State({**REQUESTED, **approve("bob")}), None, ""),
    (
        "forged approver",
        "bob",
        [],
        State(REQUESTED),
        State({**REQUESTED, **approve("alice")}),
        None,
        '"by": "bob"',
    ),
    (
        "hand-written odd JSON",
        "bob",
        [],
        State(),
        State({"deployctl.io/request": ODD_REQUEST}),
        None,
        "must name its writer",
    ),
    (
        "quote in by",
        'bob", "by": "x',
        [],
        State(),
        State(approve('bob", "by": "x')),
        None,
        "must name its writer",
    ),
    (
        "unchanged request",
        "carol",
        [],
        State(approve("alice")),
        State({**approve("alice"), "x": "y"}),
        None,
        "",
    ),
    ("request removed", "carol", [], State(approve("alice")), State(), None, ""),
    ("promote by writer", "bob", [], State(), State({"deployctl.io/request": PROMOTE}), None, ""),
    ("create without request", "alice", [], None, State(REQUESTED), None, ""),
    (
        "override by writer",
        "bob",
        [],
        State(),
        State({**OVERRIDE, "deployctl.io/requested-by": "bob"}),
        None,
        "",
    ),
    (
        "override under another name",
        "bob",
        [],
        State(),
        State({**OVERRIDE, "deployctl.io/requested-by": "alice"}),
        None,
        "requested-by: bob",
    ),
    (
        "override label",
        "bob",
        [],
        State(),
        State(labels={"deployctl.io/exempt": "security"}),
        None,
        "requested-by: bob",
    ),
    (
        "member approves",
        "bob",
        [LEADS],
        State(REQUESTED),
        State({**REQUESTED, **approve("bob")}),
        FOUR_EYES,
        "",
    ),
    (
        "non-member approves",
        "carol",
        ["devs"],
        State(REQUESTED),
        State({**REQUESTED, **approve("carol")}),
        FOUR_EYES,
        "carol is not in the groups",
    ),
    (
        "requester approves",
        "alice",
        [LEADS],
        State(REQUESTED),
        State({**REQUESTED, **approve("alice")}),
        FOUR_EYES,
        "alice requested it",
    ),
    ("nobody requested", "bob", [LEADS], State(), State(approve("bob")), FOUR_EYES, "nobody is"),
    (
        "no four eyes",
        "alice",
        [LEADS],
        State(REQUESTED),
        State({**REQUESTED, **approve("alice")}),
        rules(groups=[LEADS]),
        "",
    ),
    (
        "rule for another namespace",
        "carol",
        [],
        State(REQUESTED),
        State({**REQUESTED, **approve("carol")}),
        rules(groups=[LEADS], namespaces=["payments"]),
        "",
    ),
    (
        "rule selects other labels",
        "carol",
        [],
        State(REQUESTED),
        State({**REQUESTED, **approve("carol")}),
        rules(groups=[LEADS], selector={"matchLabels": {"tier": "prod"}}),
        "",
    ),
    (
        "rule selects these labels",
        "carol",
        [],
        State(REQUESTED, labels={"tier": "prod"}),
        State({**REQUESTED, **approve("carol")}, labels={"tier": "prod"}),
        rules(groups=[LEADS], selector={"matchLabels": {"tier": "prod"}}),
        "carol is not in the groups",
    ),
    (
        "template by its requester",
        "alice",
        [],
        State(REQUESTED),
        State(REQUESTED, image="shop/checkout:2.0.0"),
        FOUR_EYES,
        "",
    ),
    (
        "template under another name",
        "alice",
        [],
        State({"deployctl.io/requested-by": "bob"}),
        State({"deployctl.io/requested-by": "bob"}, image="shop/checkout:2.0.0"),
        FOUR_EYES,
        "requested-by: alice",
    ),
    (
        "create under another name",
        "alice",
        [],
        None,
        State({"deployctl.io/requested-by": "bob"}),
        FOUR_EYES,
        "requested-by: alice",
    ),
    (
        "template over an unused approval",
        "alice",
        [],
        State({**REQUESTED, **approve("bob")}),
        State({**REQUESTED, **approve("bob")}, image="shop/checkout:2.0.0"),
        FOUR_EYES,
        "has not used yet",
    ),
    (
        "template after the approval was used",
        "alice",
        [],
        State({**REQUESTED, **approve("bob")}, handled="a1b2c3"),
        State({**REQUESTED, **approve("bob")}, image="shop/checkout:2.0.0", handled="a1b2c3"),
        FOUR_EYES,
        "",
    ),
]


@pytest.fixture
def case_namespaces(kube_api: Any, namespace: str) -> Iterator[dict[str, str]]:
    """One namespace per distinct DeliveryPolicy of the table (and one without any)."""
    core: Any = k8s.CoreV1Api(kube_api)
    names: dict[str, str] = {}
    try:
        for _, _, _, _, _, spec, _ in CASES:
            key = json.dumps(spec, sort_keys=True)
            if key in names:
                continue
            name = f"{namespace}-p{len(names)}"
            core.create_namespace(
                {"metadata": {"name": name, "labels": {"deployctl.io/test": "true"}}}
            )
            names[key] = name
        yield names
    finally:
        for name in names.values():
            core.delete_namespace(name)


def type_check_warnings(kube_api: Any) -> list[str]:
    """What the API server's type checker (run by kube-controller-manager against the
    Rollout and DeliveryPolicy schemas) says of our policies' expressions; none: []."""
    registration: Any = k8s.AdmissionregistrationV1Api(kube_api)
    warnings: list[str] = []
    for name in ("deployctl.io-identity", "deployctl.io-approval-rules"):

        def read(name: str = name) -> Any:
            return registration.read_validating_admission_policy(name)

        policy = wait_until(
            read,
            ok=lambda p: (
                p.status is not None and p.status.observed_generation == p.metadata.generation
            ),
            timeout=120,
            what=f"the API server's type check of {name}",
        )
        checking = policy.status.type_checking
        warnings += [
            f"{name} {w.field_ref}: {w.warning}"
            for w in (checking.expression_warnings if checking else None) or []
        ]
    return warnings


def test_the_admission_policy_decides_as_documented(
    kube_api: Any, control_plane: Any, case_namespaces: dict[str, str], request: Any
) -> None:
    if not serves_admission_policies(kube_api):
        pytest.skip("the API server does not serve ValidatingAdmissionPolicy (Kubernetes 1.30+)")
    admin: Any = k8s.CustomObjectsApi(kube_api)
    placed: list[tuple[str, str]] = []  # each case's namespace and Rollout name

    # A test before this one may have just deleted the policies; the API server stops
    # enforcing them a moment later, and the old states below need them gone.
    def not_in_force() -> bool:
        body = rollout_body("probe", approve("nobody"))
        where = case_namespaces[json.dumps(None)]
        try:
            admin.create_namespaced_custom_object(
                GROUP, VERSION, where, "rollouts", body, dry_run="All"
            )
        except k8s.ApiException as exc:
            if exc.status != 403:
                raise
            return False
        return True

    wait_until(not_in_force, ok=bool, timeout=60, what="no admission policy in force yet")
    for index, (_, _, _, old, _, spec, _) in enumerate(CASES):
        where = case_namespaces[json.dumps(spec, sort_keys=True)]
        placed.append((where, f"case-{index}"))
        if old is None:
            continue
        admin.create_namespaced_custom_object(
            GROUP, VERSION, where, "rollouts", old.body(f"case-{index}")
        )
        if old.handled:
            admin.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                where,
                "rollouts",
                f"case-{index}",
                {"status": {"lastHandledRequest": old.handled}},
            )
    for key, where in case_namespaces.items():
        spec = json.loads(key)
        if spec is not None:
            admin.create_namespaced_custom_object(
                GROUP,
                VERSION,
                where,
                "deliverypolicies",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "DeliveryPolicy",
                    "metadata": {"name": "production"},
                    "spec": spec,
                },
            )
        allow_annotating(kube_api, where, sorted({case[1] for case in CASES}))

    # The policies only now: the old states above would not all be admitted.
    request.getfixturevalue("admission")
    assert type_check_warnings(kube_api) == []
    four_eyes = case_namespaces[json.dumps(FOUR_EYES, sort_keys=True)]
    alice = as_user(control_plane, "alice")

    def in_force() -> bool:
        body = rollout_body("probe", {"deployctl.io/requested-by": "bob"})
        try:
            alice.create_namespaced_custom_object(
                GROUP, VERSION, four_eyes, "rollouts", body, dry_run="All"
            )
        except k8s.ApiException as exc:
            return "requested-by: alice" in str(exc.body)
        return False

    wait_until(in_force, ok=bool, timeout=60, what="the admission policies in force")

    def decide(index: int) -> str:
        """The API server's answer: "" when admitted, else its message."""
        _, user, groups, old, new, _, _ = CASES[index]
        where, name = placed[index]
        api = as_user(control_plane, user, *groups)
        try:
            if old is None:
                api.create_namespaced_custom_object(
                    GROUP, VERSION, where, "rollouts", new.body(name), dry_run="All"
                )
            else:
                current = admin.get_namespaced_custom_object(
                    GROUP, VERSION, where, "rollouts", name
                )
                body = new.body(name)
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                api.replace_namespaced_custom_object(
                    GROUP, VERSION, where, "rollouts", name, body, dry_run="All"
                )
        except k8s.ApiException as exc:
            assert exc.status == 403, (CASES[index][0], exc.body)
            return str(json.loads(str(exc.body))["message"])
        return ""

    wrong = []
    for index, case in enumerate(CASES):
        answer, expected = decide(index), case[-1]
        if (expected and expected not in answer) or (not expected and answer):
            wrong.append(
                f"{case[0]}: expected {expected or 'admitted'!r}, got {answer or 'admitted'!r}"
            )
    assert wrong == []
