"""``deployctl hand-back``: give a ``workloadRef`` Rollout's pods back to its Deployment.

The command writes the ``deployctl.io/hand-back=true`` annotation on the Rollout (the same
switch ``kubectl annotate`` sets, documented in docs/workloads.md), with the Rollout's
resourceVersion as a precondition. The controller then scales the Deployment back to
its size at take-over and scales the Rollout's pods to zero only once the Deployment has
them all available again. With ``--wait`` the command follows that to the end: the
Deployment at full Ready and no pod of the Rollout left; exit 0 then, 3 on timeout,
like the other waiting commands. ``handed_back`` is the end condition, pure, so it is
tested without a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from controller.commands.common import (
    Kubeconfig,
    KubeContext,
    Namespace,
    Output,
    OutputOpt,
    Session,
    connect,
    fail,
    get_rollout,
    handle_errors,
    print_document,
    require_controller,
)
from controller.exitcodes import Exit
from controller.names import HAND_BACK_ANNOTATION, ROLLOUT_LABEL

Obj = dict[str, Any]
# How often the Rollout, its Deployment and its pods are read while waiting.
POLL_SECONDS = 1.0


def workload_name(rollout: Mapping[str, Any]) -> str:
    """The Deployment a Rollout delivers; a usage error when it has its own template."""
    ref = (rollout.get("spec") or {}).get("workloadRef") or {}
    if not ref.get("name"):
        name = (rollout.get("metadata") or {}).get("name")
        raise fail(
            f"rollout {name!r} has its own pod template (no spec.workloadRef): there is no "
            "Deployment to hand back to. To stop delivering it, delete the Rollout; to move "
            "it to a Deployment, see docs/workloads.md"
        )
    return str(ref["name"])


def handed_back(
    rollout: Mapping[str, Any], deployment: Mapping[str, Any], rollout_pods: list[Obj]
) -> tuple[bool, str]:
    """Whether the hand-back is over (the controller says so, the Deployment has all its
    pods available, no pod of the Rollout is left, not even a Terminating one), and
    where it stands."""
    from controller.workload import HANDED_BACK, deployment_available

    workload = (rollout.get("status") or {}).get("workload") or {}
    spec_replicas = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    size = int(workload.get("replicas") or spec_replicas)
    available = int((deployment.get("status") or {}).get("availableReplicas", 0) or 0)
    left = len(rollout_pods)
    phase = workload.get("phase") or "-"
    detail = (
        f"take-over {phase}; Deployment {available}/{size} available; "
        f"{left} pods of the Rollout left"
    )
    done = phase == HANDED_BACK and deployment_available(deployment, size) and left == 0
    return done, detail


def request_hand_back(session: Session, name: str) -> Obj:
    """Write the annotation (resourceVersion precondition, retried on conflict)."""
    from controller.kube import Conflict

    for _attempt in range(5):
        current = get_rollout(session, name)
        workload_name(current)
        if (current["metadata"].get("annotations") or {}).get(HAND_BACK_ANNOTATION) == "true":
            return current
        try:
            return session.kube.patch_rollout(
                session.namespace,
                name,
                {"metadata": {"annotations": {HAND_BACK_ANNOTATION: "true"}}},
                resource_version=current["metadata"]["resourceVersion"],
            )
        except Conflict:
            continue
    raise fail("the Rollout kept changing under us; try again", Exit.UNREACHABLE)


def wait_handed_back(session: Session, name: str, *, timeout: float) -> tuple[Obj, Obj, str]:
    """Read the Rollout, its Deployment and its pods until the hand-back is over."""
    deadline = time.monotonic() + timeout
    while True:
        rollout = get_rollout(session, name)
        deployment = session.kube.get_deployment(session.namespace, workload_name(rollout))
        pods = session.kube.list_pods(session.namespace, f"{ROLLOUT_LABEL}={name}")
        done, detail = handed_back(rollout, deployment, pods)
        if done:
            return rollout, deployment, detail
        if time.monotonic() >= deadline:
            raise fail(
                f"timed out after {timeout:.0f} s waiting for the hand-back ({detail})",
                Exit.TIMEOUT,
            )
        time.sleep(POLL_SECONDS)


@handle_errors
def hand_back(
    name: Annotated[str, typer.Argument(help="The Rollout (with spec.workloadRef)")],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait until the Deployment is at full Ready and the Rollout's pods gone"
        ),
    ] = False,
    timeout: Annotated[str, typer.Option("--timeout", help="With --wait")] = "10m",
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Give a workloadRef Rollout's pods back to its Deployment, with no gap.

    Sets the deployctl.io/hand-back=true annotation: the controller scales the Deployment
    back to its size at take-over and removes the Rollout's pods only once the
    Deployment's are all Ready. Delete the Rollout afterwards if you are leaving deployctl.
    """
    from controller.commands.rollout import parse_duration_seconds

    timeout_seconds = parse_duration_seconds(timeout)
    session = connect(kubeconfig, context, namespace)
    try:
        require_controller(session)
        started = time.monotonic()
        written = request_hand_back(session, name)
        target = f"{session.namespace}/{name}"
        deployment_name = workload_name(written)
        if not wait:
            if output is Output.text:
                typer.echo(f"{target}: hand-back to Deployment {deployment_name} requested")
            else:
                print_document(
                    {"rollout": target, "deployment": deployment_name, "handedBack": False},
                    output,
                )
            return
        if output is Output.text:
            typer.echo(
                f"{target}: waiting for Deployment {deployment_name} to take its pods back "
                f"(timeout {timeout_seconds:.0f} s)",
                err=True,
            )
        _rollout, deployment, detail = wait_handed_back(session, name, timeout=timeout_seconds)
        seconds = time.monotonic() - started
        if output is Output.text:
            typer.echo(f"{target}: handed back to Deployment {deployment_name}: {detail}")
        else:
            status = deployment.get("status") or {}
            print_document(
                {
                    "rollout": target,
                    "deployment": deployment_name,
                    "handedBack": True,
                    "readyReplicas": int(status.get("readyReplicas", 0) or 0),
                    "availableReplicas": int(status.get("availableReplicas", 0) or 0),
                    "seconds": round(seconds, 1),
                },
                output,
            )
    finally:
        session.close()
