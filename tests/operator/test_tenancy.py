"""Consent and identity (``controller.tenancy``), the worker-progress liveness check and
the limits table: pure, no cluster. The same rules against the real apiserver and a
running controller are in ``tests/reliability/test_tenants.py``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from controller.api import AnalysisTemplate, Rollout
from controller.limits import markdown_table, truncate
from controller.operator import WorkerProgress
from controller.tenancy import (
    ControllerIdentity,
    consent_problems,
    identity_problems,
    revision_selector,
)

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = ControllerIdentity("deployctl-system", "deployctl-controller")


def rollout(namespace: str = "shop", **spec: Any) -> Rollout:
    body: dict[str, Any] = {
        "metadata": {"name": "checkout", "namespace": namespace, "uid": "u-1"},
        "spec": {
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {
                "metadata": {"labels": {"app": "checkout", "tier": "web"}},
                "spec": {"containers": [{"name": "app", "image": "shop/checkout:1"}]},
            },
            "strategy": {
                "canary": {
                    "stableService": "checkout",
                    "canaryService": "checkout-canary",
                    "trafficRouting": {"gatewayAPI": {"httpRoute": "checkout"}},
                }
            },
            **spec,
        },
    }
    return Rollout.model_validate(body)


def service(name: str, selector: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "spec": {"selector": selector}}


CONSENT = {"annotations": {"deployctl.io/rollout": "checkout"}}


def test_a_shared_object_without_consent_is_refused_with_the_command_to_give_it() -> None:
    objects = {
        ("Service", "checkout"): service("checkout", {"app": "checkout"}),
        ("Service", "checkout-canary"): service(
            "checkout-canary", {"app": "checkout"}, annotations={"deployctl.io/rollout": "cart"}
        ),
        ("HTTPRoute", "checkout"): {"metadata": {"name": "checkout"}},
    }
    problems = [str(p) for p in consent_problems(rollout(), objects)]
    assert problems == [
        "spec.strategy.canary.stableService: Service checkout does not consent to being "
        "managed by Rollout checkout: deployctl changes a Service only when its annotation "
        "deployctl.io/rollout names the Rollout; if this Service is yours, run `kubectl -n "
        "shop annotate service checkout deployctl.io/rollout=checkout`",
        "spec.strategy.canary.canaryService: Service checkout-canary does not consent to "
        "being managed by Rollout checkout (it names 'cart'): deployctl changes a Service only "
        "when its annotation deployctl.io/rollout names the Rollout; if this Service is "
        "yours, run `kubectl -n shop annotate service checkout-canary "
        "deployctl.io/rollout=checkout`",
        "spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute: HTTPRoute checkout does "
        "not consent to being managed by Rollout checkout: deployctl changes a HTTPRoute "
        "only when its annotation deployctl.io/rollout names the Rollout; if this HTTPRoute "
        "is yours, run `kubectl -n shop annotate httproute checkout "
        "deployctl.io/rollout=checkout`",
    ]


def test_consent_by_annotation_list_or_ownership_and_objects_not_there_yet() -> None:
    shared = {"annotations": {"deployctl.io/rollout": "cart, checkout"}}
    owned = {"ownerReferences": [{"kind": "Rollout", "name": "checkout", "uid": "u-1"}]}
    objects = {
        ("Service", "checkout"): service("checkout", {"app": "checkout"}, **shared),
        ("Service", "checkout-canary"): service("checkout-canary", {"app": "checkout"}, **owned),
    }
    assert consent_problems(rollout(), objects) == []  # the HTTPRoute does not exist yet
    stolen = {"ownerReferences": [{"kind": "Rollout", "name": "checkout", "uid": "other"}]}
    objects[("Service", "checkout-canary")] = service("checkout-canary", {"app": "x"}, **stolen)
    assert len(consent_problems(rollout(), objects)) == 1


def test_only_our_selector_key_is_written_and_the_owners_keys_must_fit() -> None:
    assert revision_selector("abc") == {"deployctl.io/revision": "abc"}
    foreign = {
        ("Service", "checkout"): service("checkout", {"app": "checkout", "team": "pay"}, **CONSENT)
    }
    (problem,) = consent_problems(rollout(), foreign)
    assert "selects team=pay, which the pods of Rollout checkout do not carry" in str(problem)
    wide = {("Service", "checkout"): service("checkout", {"tier": "web"}, **CONSENT)}
    (problem,) = consent_problems(rollout(), wide)
    assert "lacks app=checkout (the Rollout's selector.matchLabels)" in str(problem)
    fits = {
        ("Service", "checkout"): service(
            "checkout",
            {"app": "checkout", "tier": "web", "deployctl.io/revision": "old"},
            **CONSENT,
        )
    }
    assert consent_problems(rollout(), fits) == []


def hook(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "preRollout": [
            {
                "name": "migrate",
                "job": {
                    "spec": {
                        "template": {
                            "spec": {"containers": [{"name": "m", "image": "m"}], **pod_spec}
                        }
                    }
                },
            }
        ]
    }


def test_pods_may_not_run_as_the_controller_in_its_namespace() -> None:
    sa = {"serviceAccountName": "deployctl-controller"}
    as_controller = rollout("deployctl-system", hooks=hook(sa))
    template = rollout("deployctl-system").to_dict()
    template["spec"]["template"]["spec"]["serviceAccountName"] = "deployctl-controller"
    problems = [str(p) for p in identity_problems(as_controller, IDENTITY)]
    assert problems == [
        "spec.hooks.preRollout[0].job.spec.template.spec.serviceAccountName: "
        "deployctl-controller is the deployctl controller's own ServiceAccount; pods of a "
        "Rollout may not run as the controller (use an account of your own)"
    ]
    assert len(identity_problems(Rollout.model_validate(template), IDENTITY)) == 1
    token = {"volumes": [{"name": "t", "secret": {"secretName": "deployctl-controller-token-x7"}}]}
    (mounted,) = identity_problems(rollout("deployctl-system", hooks=hook(token)), IDENTITY)
    assert "deployctl-controller-token-x7 holds the deployctl controller's token" in str(mounted)
    # Elsewhere the same name is another namespace's account.
    assert identity_problems(rollout("shop", hooks=hook(sa)), IDENTITY) == []


def test_a_check_job_of_an_analysis_template_may_not_run_as_the_controller() -> None:
    template = AnalysisTemplate.model_validate(
        {
            "metadata": {"name": "smoke", "namespace": "deployctl-system"},
            "spec": {
                "metrics": [
                    {
                        "name": "smoke",
                        "provider": {
                            "job": {
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "serviceAccount": "deployctl-controller",
                                            "containers": [{"name": "s", "image": "s"}],
                                        }
                                    }
                                }
                            }
                        },
                    }
                ]
            },
        }
    )
    (problem,) = identity_problems(rollout("deployctl-system"), IDENTITY, [template])
    assert problem.path.startswith("AnalysisTemplate smoke: spec.metrics[0].provider.job")


def test_liveness_fails_for_a_dead_or_stuck_worker() -> None:
    now = [100.0]
    progress = WorkerProgress(stuck_after=300, clock=lambda: now[0])
    alive = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True)
    alive.start()
    progress.begin(alive.name, "shop/checkout")
    now[0] += 299
    assert progress.healthy([alive])
    now[0] += 2
    assert not progress.healthy([alive])
    assert progress.stuck() == {alive.name: ("shop/checkout", 301.0)}
    progress.end(alive.name)
    assert progress.healthy([alive])
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    assert not progress.healthy([alive, dead])


def test_truncation_marks_what_was_cut_and_the_limits_table_is_documented() -> None:
    cut = truncate("e" * 200_000)
    assert len(cut) == 1024 and cut.endswith("… [truncated 199002 chars]")
    assert truncate("short") == "short"
    doc = (ROOT / "docs" / "security.md").read_text()
    assert markdown_table() in doc, (
        "docs/security.md is out of date: paste `python -m controller.limits`"
    )
