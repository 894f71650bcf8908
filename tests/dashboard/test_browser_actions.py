"""Actions from the page, in a real browser (headless Chromium, one session): promote and
abort change the Rollout through the controller, after a confirmation; a user whose
credentials may read Rollouts but not ``patch`` them sees every action disabled with the
reason, and a request forged with the page's token is refused without touching the
Rollout.

The second user is the sandbox apiserver's token user ``alice`` (no groups, so RBAC
grants her nothing by default), given a Role here that reads what the dashboard shows
and nothing more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.dashboard.helpers import browser, dashboard_process, text_of, wait_until
from tests.integration.harness import Cluster, demo_rollout

LEASE = "deployctl-dashboard-actions"
STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
READ_ONLY_RULES = [
    {
        "apiGroups": ["deployctl.io"],
        "resources": ["rollouts", "analysistemplates"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]},
]


def shop(version: str) -> dict[str, Any]:
    return demo_rollout("shop", version=version, replicas=2, strategy={"canary": {"steps": STEPS}})


def grant_read_only(api: Any, namespace: str, user: str) -> None:
    # Plain dict bodies; the generated models would only get in the way.
    rbac: Any = k8s.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace, {"metadata": {"name": "rollout-viewer"}, "rules": READ_ONLY_RULES}
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"rollout-viewer-{user}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "rollout-viewer",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


def click(driver: Any, selector: str) -> None:
    """Click the enabled element ``selector``, found and clicked in one script: the page
    redraws on every update, so an element found in one call can be stale in the next."""
    wait_until(
        lambda: driver.execute_script(
            "const b = document.querySelector(arguments[0]);"
            " if (!b || b.disabled) return false; b.click(); return true;",
            selector,
        ),
        timeout=10,
        what=f"{selector} to be clicked",
    )


def confirm(driver: Any, action: str) -> str:
    """Click the action, check the dialog says what will happen, confirm; the banner's text."""
    click(driver, f"button.action.{action}")
    dialog = driver.find_element("id", "confirm")
    wait_until(dialog.is_displayed, timeout=10, what=f"the {action} confirmation")
    assert "shop" in text_of(driver, "id", "confirm-title")
    click(driver, "#confirm-ok")
    return str(
        wait_until(
            lambda: (
                text_of(driver, "id", "banner")
                if "waiting" not in text_of(driver, "id", "banner")
                else ""
            ),
            timeout=60,
            what=f"the outcome of {action}",
        )
    )


def enabled(driver: Any, action: str) -> bool:
    # One script: the page redraws on every update, so a button found in one call can be
    # gone (a stale element) by the next.
    return bool(
        driver.execute_script(
            "const b = document.querySelector(arguments[0]); return !!b && !b.disabled;",
            f"button.action.{action}",
        )
    )


def test_promote_and_abort_from_the_page_and_a_viewer_sees_why_not(
    cluster: Cluster,
    start_controller: Any,
    control_plane: Any,
    kube_api: Any,
    tmp_path: Path,
) -> None:
    ns = cluster.namespace
    start_controller(
        [
            *("--lease-namespace", ns, "--lease-name", LEASE, "--retry-period", "0.5"),
            *("--renew-deadline", "10", "--lease-duration", "15"),
        ]
    )
    cluster.apply_rollout(shop("v1"))
    wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: s.get("phase") == "Healthy",
        timeout=90,
        what="v1 Healthy",
    )
    grant_read_only(kube_api, ns, "alice")
    alice = control_plane.user_kubeconfig("alice", tmp_path / "alice.kubeconfig")
    env = {
        "DEPLOYCTL_CONTROLLER_NAMESPACE": ns,
        "DEPLOYCTL_CONTROLLER_LEASE": LEASE,
        "DEPLOYCTL_USER": "release-manager",
    }
    with (
        dashboard_process(control_plane.kubeconfig, ns, tmp_path, env=env) as admin,
        dashboard_process(alice, ns, tmp_path, env=env) as viewer,
        browser(tmp_path) as driver,
    ):
        driver.get(f"{admin.url}/rollouts/{ns}/shop")
        cluster.apply_rollout(shop("v2"))
        wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: s.get("currentStepIndex") == 1 and s.get("phase") == "Paused",
            timeout=60,
            what="v2 waiting at its first indefinite pause",
        )
        wait_until(
            lambda: enabled(driver, "promote") and "Paused" in text_of(driver, "id", "title"),
            timeout=30,
            what="the page to offer promote on the paused rollout",
        )

        # Promote: past the first indefinite pause, to the second.
        outcome = confirm(driver, "promote")
        assert "promoted" in outcome, outcome
        promoted = wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: s.get("currentStepIndex") == 3 and s.get("weight") == 50,
            timeout=60,
            what="the rollout at its second pause with weight 50",
        )
        request = cluster.rollout("shop")["metadata"]["annotations"]["deployctl.io/request"]
        # The requester is the name the API server knows the dashboard's user by
        # (SelfSubjectReview, 1.28+: the sandbox's admin); before that, DEPLOYCTL_USER.
        requester = "admin" if control_plane.minor >= (1, 28) else "release-manager"
        assert f'"by": "{requester}"' in request and '"promote"' in request, request
        assert promoted["lastHandledRequest"] in request
        wait_until(
            lambda: text_of(driver, "id", "weight") == "50%",
            timeout=30,
            what="the page to show weight 50%",
        )

        # A cancelled confirmation sends nothing.
        click(driver, "button.action.abort")
        click(driver, "#confirm-cancel")
        assert cluster.status("shop").get("aborted") is not True

        outcome = confirm(driver, "abort")
        assert "aborted" in outcome, outcome
        aborted = wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: s.get("aborted") is True and s.get("weight", 0) == 0,
            timeout=60,
            what="the rollout aborted, all traffic back on stable",
        )
        assert aborted["stableRevision"] != aborted["canaryRevision"]
        wait_until(lambda: enabled(driver, "retry"), timeout=30, what="retry offered")
        assert not enabled(driver, "abort")

        # The viewer: may read, may not patch.
        driver.get(f"{viewer.url}/rollouts/{ns}/shop")
        buttons = driver.execute_script(
            "return Array.from(document.querySelectorAll('button.action'),"
            " b => [b.disabled, b.title]);"
        )
        assert len(buttons) == 6 and all(disabled for disabled, _ in buttons), buttons
        why = text_of(driver, "css selector", ".actions .why")
        assert "may not patch rollouts in namespace" in why and ns in why
        assert "may not patch" in str(buttons[0][1])
        version = cluster.rollout("shop")["metadata"]["resourceVersion"]
        forged = driver.execute_script(
            "const t = document.querySelector('meta[name=deployctl-token]').content;"
            f"return fetch('/rollouts/{ns}/shop/actions/retry', {{method: 'POST',"
            " headers: {'X-Deployctl-Token': t, Accept: 'application/json'}})"
            ".then(r => r.json().then(j => [r.status, j.message]));"
        )
        assert forged[0] == 409 and "may not patch" in forged[1], forged
        assert cluster.rollout("shop")["metadata"]["resourceVersion"] == version
