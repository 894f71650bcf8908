"""The admission policy's CEL, compiled and run by the API server's own code, offline.

``tools/celcheck`` links the ValidatingAdmissionPolicy compiler and validator of
``k8s.io/apiserver`` (the version in its go.mod) and evaluates ``manifests/admission/``
on admission requests written here: a syntax or type error in an expression, or a rule
that admits what it should refuse, fails this test without a 1.30+ cluster. It does not
replace the test on a real API server (tests/integration/test_admission_policy.py),
which also covers bindings, parameters lookup and RBAC.

Skips with one line where Go is not installed. The binary is built once per source
hash into the user's cache (a cold build takes a few minutes on two cores).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "celcheck"
POLICIES = [ROOT / "manifests" / "admission" / n for n in ("identity.yaml", "approval-rules.yaml")]
LEADS = "sre-leads"


def go() -> str | None:
    return shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go",) if Path(p).exists()), None
    )


@pytest.fixture(scope="module")
def celcheck() -> Path:
    binary_go = go()
    if binary_go is None:
        pytest.skip("Go is not installed: the admission policy's CEL is not compiled here")
    digest = hashlib.sha256()
    for path in sorted(TOOL.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deployctl-tools"
    binary = cache / f"celcheck-{digest.hexdigest()[:16]}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
        built = subprocess.run(
            [binary_go, "build", "-trimpath", "-o", str(binary) + ".tmp", "."],
            cwd=TOOL,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert built.returncode == 0, built.stderr[-4000:]
        Path(str(binary) + ".tmp").rename(binary)
    return binary


def rollout(
    annotations: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    image: str = "shop/checkout:1.0.0",
    handled: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "checkout", "namespace": "shop", "annotations": annotations or {}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
    }
    if labels:
        body["metadata"]["labels"] = labels
    if handled:
        body["status"] = {"lastHandledRequest": handled}
    return body


def approve(by: str, request_id: str = "a1b2c3") -> dict[str, str]:
    return {
        "deployctl.io/request": json.dumps(
            {"action": "approve", "by": by, "id": request_id}, sort_keys=True
        )
    }


def delivery_policy(**rule: Any) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "DeliveryPolicy",
        "metadata": {"name": "production", "namespace": "shop"},
        "spec": {"approvals": [{"name": "prod", **rule}]},
    }


REQUESTED = {"deployctl.io/requested-by": "alice"}
FOUR_EYES = delivery_policy(groups=[LEADS], requireDifferentApprover=True)

# name, policy, user, groups, old object, new object, params, denied message part ("" = admitted)
CASES: list[tuple[str, str, str, list[str], Any, Any, Any, str]] = [
    (
        "own approval",
        "identity",
        "bob",
        [],
        rollout(REQUESTED),
        rollout({**REQUESTED, **approve("bob")}),
        None,
        "",
    ),
    (
        "forged approver",
        "identity",
        "bob",
        [],
        rollout(REQUESTED),
        rollout({**REQUESTED, **approve("alice")}),
        None,
        '"by": "bob"',
    ),
    (
        "hand-written odd JSON",
        "identity",
        "bob",
        [],
        rollout(),
        rollout({"deployctl.io/request": '{"id": "x", "action": "approve", "by": "bob"}'}),
        None,
        "must name its writer",
    ),
    (
        "quote in by",
        "identity",
        'bob", "by": "x',
        [],
        rollout(),
        rollout(approve('bob", "by": "x')),
        None,
        "must name its writer",
    ),
    (
        "unchanged request",
        "identity",
        "carol",
        [],
        rollout(approve("alice")),
        rollout({**approve("alice"), "x": "y"}),
        None,
        "",
    ),
    ("request removed", "identity", "carol", [], rollout(approve("alice")), rollout(), None, ""),
    (
        "promote by writer",
        "identity",
        "bob",
        [],
        rollout(),
        rollout(
            {
                "deployctl.io/request": json.dumps(
                    {"action": "promote", "by": "bob", "id": "9"}, sort_keys=True
                )
            }
        ),
        None,
        "",
    ),
    ("create without request", "identity", "alice", [], None, rollout(REQUESTED), None, ""),
    (
        "override by writer",
        "identity",
        "bob",
        [],
        rollout(),
        rollout(
            {
                "deployctl.io/exempt": "hotfix",
                "deployctl.io/override-reason": "INC-1",
                "deployctl.io/requested-by": "bob",
            }
        ),
        None,
        "",
    ),
    (
        "override under another name",
        "identity",
        "bob",
        [],
        rollout(),
        rollout(
            {
                "deployctl.io/exempt": "hotfix",
                "deployctl.io/override-reason": "INC-1",
                "deployctl.io/requested-by": "alice",
            }
        ),
        None,
        "requested-by: bob",
    ),
    (
        "override label",
        "identity",
        "bob",
        [],
        rollout(),
        rollout(labels={"deployctl.io/exempt": "security"}),
        None,
        "requested-by: bob",
    ),
    (
        "member approves",
        "approval-rules",
        "bob",
        [LEADS],
        rollout(REQUESTED),
        rollout({**REQUESTED, **approve("bob")}),
        FOUR_EYES,
        "",
    ),
    (
        "non-member approves",
        "approval-rules",
        "carol",
        ["devs"],
        rollout(REQUESTED),
        rollout({**REQUESTED, **approve("carol")}),
        FOUR_EYES,
        "carol is not in the groups",
    ),
    (
        "requester approves",
        "approval-rules",
        "alice",
        [LEADS],
        rollout(REQUESTED),
        rollout({**REQUESTED, **approve("alice")}),
        FOUR_EYES,
        "alice requested it",
    ),
    (
        "nobody requested",
        "approval-rules",
        "bob",
        [LEADS],
        rollout(),
        rollout(approve("bob")),
        FOUR_EYES,
        "nobody is recorded",
    ),
    (
        "no four eyes",
        "approval-rules",
        "alice",
        [LEADS],
        rollout(REQUESTED),
        rollout({**REQUESTED, **approve("alice")}),
        delivery_policy(groups=[LEADS]),
        "",
    ),
    (
        "rule for another namespace",
        "approval-rules",
        "carol",
        [],
        rollout(REQUESTED),
        rollout({**REQUESTED, **approve("carol")}),
        delivery_policy(groups=[LEADS], namespaces=["payments"]),
        "",
    ),
    (
        "rule selects other labels",
        "approval-rules",
        "carol",
        [],
        rollout(REQUESTED),
        rollout({**REQUESTED, **approve("carol")}),
        delivery_policy(groups=[LEADS], selector={"matchLabels": {"tier": "prod"}}),
        "",
    ),
    (
        "rule selects these labels",
        "approval-rules",
        "carol",
        [],
        rollout(REQUESTED, labels={"tier": "prod"}),
        rollout({**REQUESTED, **approve("carol")}, labels={"tier": "prod"}),
        delivery_policy(groups=[LEADS], selector={"matchLabels": {"tier": "prod"}}),
        "carol is not in the groups",
    ),
    (
        "template by its requester",
        "approval-rules",
        "alice",
        [],
        rollout(REQUESTED),
        rollout(REQUESTED, image="shop/checkout:2.0.0"),
        FOUR_EYES,
        "",
    ),
    (
        "template under another name",
        "approval-rules",
        "alice",
        [],
        rollout({"deployctl.io/requested-by": "bob"}),
        rollout({"deployctl.io/requested-by": "bob"}, image="shop/checkout:2.0.0"),
        FOUR_EYES,
        "requested-by: alice",
    ),
    (
        "create under another name",
        "approval-rules",
        "alice",
        [],
        None,
        rollout({"deployctl.io/requested-by": "bob"}),
        FOUR_EYES,
        "requested-by: alice",
    ),
    (
        "template over an unused approval",
        "approval-rules",
        "alice",
        [],
        rollout({**REQUESTED, **approve("bob")}),
        rollout({**REQUESTED, **approve("bob")}, image="shop/checkout:2.0.0"),
        FOUR_EYES,
        "has not used yet",
    ),
    (
        "template after the approval was used",
        "approval-rules",
        "alice",
        [],
        rollout({**REQUESTED, **approve("bob")}, handled="a1b2c3"),
        rollout({**REQUESTED, **approve("bob")}, image="shop/checkout:2.0.0", handled="a1b2c3"),
        FOUR_EYES,
        "",
    ),
]


def test_the_admission_policy_compiles_and_decides_as_documented(
    celcheck: Path, tmp_path: Path
) -> None:
    cases = [
        {
            "name": name,
            "policy": f"deployctl.io-{policy}",
            "operation": "UPDATE" if old is not None else "CREATE",
            "user": user,
            "groups": groups,
            "object": new,
            "oldObject": old,
            "params": params,
        }
        for name, policy, user, groups, old, new, params, _ in CASES
    ]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    done = subprocess.run(
        [str(celcheck), str(path), *map(str, POLICIES)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["name"] for a in answers] == [c[0] for c in CASES]
    for answer, case in zip(answers, CASES, strict=True):
        expected = case[-1]
        assert not answer["errors"], (answer["name"], answer["errors"])
        if expected:
            assert any(expected in message for message in answer["denied"]), answer
        else:
            assert not answer["denied"], answer
