"""A Rollout's author stays within their own rights, on the sandbox with the controller.

- Release hooks run as Jobs in the Rollout's namespace with the ServiceAccount their
  template names, or the namespace's ``default`` one; never the controller's (a pod can
  only use a ServiceAccount of its own namespace, and the controller adds none).
- An AnalysisTemplate reference and a Secret reference resolve in the Rollout's own
  namespace only: the same names in another namespace are not found, and the message
  says where it looked.
"""

from __future__ import annotations

from typing import Any

from tests.integration.harness import SANDBOX_WEB, Cluster, settled
from tests.integration.release_helpers import canary, jobs_of, shell_job, with_hooks
from tests.integration.web_helpers import (
    checked_rollout,
    deploy_v1_then_v2,
    measured,
    other_namespace,
    web_template,
)
from tests.waiting import wait_until


def test_hooks_run_as_their_own_service_account_and_references_stay_in_the_namespace(
    cluster: Cluster, start_controller: Any, kube_api: Any
) -> None:
    ns = cluster.namespace
    cluster.core.create_namespaced_service_account(ns, {"metadata": {"name": "migrator"}})
    start_controller(args=["--no-leader-elect", "--service-address", "pods", *SANDBOX_WEB])
    with other_namespace(kube_api, ns) as other:
        there = Cluster(kube_api, other)
        there.create_template(web_template("gate", {"url": "http://127.0.0.2:9/"}))
        there.core.create_namespaced_secret(
            other, {"metadata": {"name": "probe"}, "stringData": {"token": "elsewhere"}}
        )
        # Hooks: one names its ServiceAccount, one does not.
        named = shell_job("sleep 2; echo migrating")
        named["spec"]["template"]["spec"]["serviceAccountName"] = "migrator"
        hooks = [
            {"name": "migrate", "job": named},
            {"name": "warm", "job": shell_job("sleep 2; echo ok")},
        ]
        # A first deploy has nothing to migrate from: hooks run from the second revision.
        cluster.apply_rollout(canary("hooked", "v1", [{"setWeight": 50}]))
        settled(cluster, "hooked", timeout=120)
        cluster.apply_rollout(
            with_hooks(canary("hooked", "v2", [{"setWeight": 50}]), preRollout=hooks)
        )
        # Finished hook Jobs are tidied away: collect them while the hooks run.
        seen: dict[str, Any] = {}

        def hook_jobs() -> dict[str, Any]:
            for job in jobs_of(cluster, "hooked"):
                seen[job.metadata.labels.get("deployctl.io/metric")] = job
            return seen

        jobs = wait_until(
            hook_jobs, ok=lambda found: len(found) == 2, timeout=60, what="both hook Jobs"
        )
        assert all(j.metadata.namespace == ns for j in jobs.values())
        accounts = {name: job.spec.template.spec.service_account_name for name, job in jobs.items()}
        # The real Job controller makes the pods from these templates; the API server's
        # ServiceAccount admission gives a template without one the namespace's default.
        assert accounts == {"migrate": "migrator", "warm": None}, accounts
        # References: a template only the other namespace has; a Secret likewise.
        cluster.create_template(
            web_template(
                "secret-header",
                {
                    "url": "http://127.0.0.2:9/",
                    "headers": [
                        {
                            "name": "X-Token",
                            "valueFrom": {"secretKeyRef": {"name": "probe", "key": "token"}},
                        }
                    ],
                },
            )
        )
        cluster.apply_rollout(checked_rollout("foreign-template", "v1", "gate"))
        stable = deploy_v1_then_v2(cluster, {"foreign-secret": "secret-header"})
        foreign = wait_until(
            lambda: cluster.status("foreign-template"),
            ok=lambda s: "unknown AnalysisTemplate" in str(s.get("message")),
            timeout=60,
            what="foreign-template refused",
        )
        assert foreign["reason"] == "InvalidSpec" and "known: secret-header" in foreign["message"]
        secret = measured(cluster, "foreign-secret", stable["foreign-secret"])
        assert f"no Secret {ns}/probe" in secret["message"], secret

        assert settled(cluster, "hooked", timeout=120)["phase"] == "Healthy"
        ran_as = accounts
        assert "deployctl-controller" not in str(ran_as)
