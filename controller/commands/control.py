"""``deployctl promote | abort | retry | pause | resume | undo``: drive a rollout in flight.

Requests travel through the Rollout resource, like kubectl would send them: promote,
abort and retry as the one-shot request annotation the controller consumes exactly once
(``controller/requests.py``), pause/resume as ``spec.paused``, undo as the pod template of
an earlier revision. Each command waits (``--ack-timeout``) until the controller has
acted, so "exit 0" means it happened, not merely that it was asked.
"""

from __future__ import annotations

import copy
import time
from typing import Annotated, Any

import typer

from controller.commands import requesting
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
    require_controller,
)
from controller.commands.requesting import AckTimeout, Target, request_command, wait_for
from controller.names import REQUEST_ANNOTATION, REVISION_LABEL, ROLLOUT_LABEL

Name = Annotated[str, typer.Argument(help="The Rollout", show_default=False)]
_NAME_HELP = "The Rollout"


def _patch_rollout(
    session: Session, name: str, body: dict[str, Any], resource_version: str
) -> object:
    return session.kube.patch_rollout(
        session.namespace, name, body, resource_version=resource_version
    )


ROLLOUT = Target(kind="Rollout", actor="the controller", read=get_rollout, patch=_patch_rollout)


def send_request(session: Session, name: str, action: str, *, ack_timeout: float) -> dict[str, Any]:
    """Write the request annotation; wait until status.lastHandledRequest carries its id."""
    return requesting.send_request(session, ROLLOUT, name, action, ack_timeout=ack_timeout)


def report(rollout: dict[str, Any], what: str, output: Output) -> None:
    status = rollout.get("status") or {}
    if output is Output.text:
        detail = f"phase {status.get('phase') or '-'}"
        if status.get("reason"):
            detail += f" ({status['reason']})"
        typer.echo(f"{what}: {detail}")
    else:
        from controller.commands.common import print_document

        print_document(
            {
                "rollout": f"{rollout['metadata']['namespace']}/{rollout['metadata']['name']}",
                "action": what,
                "phase": status.get("phase"),
                "reason": status.get("reason", ""),
                "message": status.get("message", ""),
                "currentStepIndex": status.get("currentStepIndex"),
                "weight": status.get("weight", 0),
            },
            output,
        )


def _run_request(
    action: str,
    verb: str,
    name: str,
    *,
    ack_timeout: float,
    output: Output,
    kubeconfig: Any,
    context: Any,
    namespace: Any,
) -> None:
    session = connect(kubeconfig, context, namespace)
    try:
        require_controller(session)
        rollout = send_request(session, name, action, ack_timeout=ack_timeout)
        report(rollout, f"{session.namespace}/{name} {verb}", output)
    finally:
        session.close()


@handle_errors
def promote(
    name: Name,
    full: Annotated[bool, typer.Option("--full", help="Skip the remaining steps")] = False,
    ack_timeout: AckTimeout = 30.0,
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Move past the current step (a pause, an approval), or with --full to the end."""
    _run_request(
        "promoteFull" if full else "promote",
        "promoted fully" if full else "promoted",
        name,
        ack_timeout=ack_timeout,
        output=output,
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
    )


abort = request_command(
    _run_request,
    "abort",
    "aborted",
    doc="Send all traffic back to stable and scale the canary to zero.",
    name_help=_NAME_HELP,
)
retry = request_command(
    _run_request,
    "retry",
    "retried",
    doc="Start an aborted revision again from its first step.",
    name_help=_NAME_HELP,
)
approve = request_command(
    _run_request,
    "approve",
    "approved",
    doc="Grant a pending approval (a policy rule or an approval step), recorded with who.",
    name_help=_NAME_HELP,
)


def _run_set_paused(
    action: str,
    verb: str,
    name: str,
    *,
    ack_timeout: float,
    output: Output,
    kubeconfig: Any,
    context: Any,
    namespace: Any,
) -> None:
    session = connect(kubeconfig, context, namespace)
    try:
        require_controller(session)
        rollout = set_paused(session, name, action == "pause", ack_timeout=ack_timeout)
        report(rollout, f"{session.namespace}/{name} {verb}", output)
    finally:
        session.close()


def set_paused(session: Session, name: str, paused: bool, *, ack_timeout: float) -> dict[str, Any]:
    """Write ``spec.paused``; wait until the controller has observed that generation."""
    current = get_rollout(session, name)
    written = session.kube.patch_rollout(
        session.namespace,
        name,
        {"spec": {"paused": paused}},
        resource_version=current["metadata"]["resourceVersion"],
    )
    generation = int(written["metadata"].get("generation") or 0)
    return wait_for(
        session,
        get_rollout,
        name,
        lambda r: int((r.get("status") or {}).get("observedGeneration") or 0) >= generation,
        timeout=ack_timeout,
        what="the controller to observe spec.paused",
    )


pause = request_command(
    _run_set_paused,
    "pause",
    "paused",
    doc="Hold the rollout where it is (spec.paused=true); timers stop.",
    name_help=_NAME_HELP,
)
resume = request_command(
    _run_set_paused,
    "resume",
    "resumed",
    doc="Continue a paused rollout (spec.paused=false); timers resume where they stopped.",
    name_help=_NAME_HELP,
)


def template_of_revision(session: Session, rollout_name: str, revision: str) -> dict[str, Any]:
    """The exact pod template a revision was created from (kept on its ReplicaSet)."""
    replicasets = session.kube.list_replicasets(
        session.namespace, f"{ROLLOUT_LABEL}={rollout_name},{REVISION_LABEL}={revision}"
    )
    if not replicasets:
        raise fail(
            f"revision {revision} has no ReplicaSet left (older than revisionHistoryLimit); "
            "roll its image out with `deployctl rollout --image` instead"
        )
    from controller.resources import saved_template

    return saved_template(replicasets[0])


def pick_revision(
    rollout: dict[str, Any], to_revision: str | None, current: str | None = None
) -> str:
    """``--to-revision`` as a history number (see ``history``) or a revision; default: the
    newest promoted revision that is not ``current`` (the current template's, which a
    StatefulSet or DaemonSet Rollout reads from its workload)."""
    from controller.commands.render import history_rows
    from controller.commands.rollout import revision_of

    rows = history_rows(rollout)
    if to_revision is not None:
        if to_revision.isdigit():
            number = int(to_revision)
            match = [r for r in rows if r["number"] == number]
            if not match:
                raise fail(f"--to-revision {number}: history has entries 1..{len(rows)}")
            return str(match[0]["revision"])
        return to_revision
    if current is None:
        current = revision_of(rollout)
    for row in reversed(rows):
        if row["outcome"] == "Promoted" and row["revision"] != current:
            return str(row["revision"])
    stable = (rollout.get("status") or {}).get("stableRevision")
    if stable and stable != current:
        return str(stable)
    raise fail("nothing to undo: no earlier promoted revision in history")


@handle_errors
def undo(
    name: Name,
    to_revision: Annotated[
        str | None,
        typer.Option("--to-revision", help="History number or revision hash", show_default=False),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", show_default=False)] = None,
    with_steps: Annotated[
        bool,
        typer.Option(
            "--with-steps", help="Walk the strategy's steps and analyses instead of fast-tracking"
        ),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to the end")] = False,
    timeout: Annotated[str, typer.Option("--timeout", help="With --wait")] = "30m",
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Go back to an earlier revision's pod template (default: the previous promoted one).

    The revision already ran in production, so it is fast-tracked to 100% (a one-shot
    promote --full sent with the change) unless --with-steps is given.
    """
    from controller.commands.rollout import finish_wait, parse_duration_seconds, revision_of

    timeout_seconds = parse_duration_seconds(timeout)
    session = connect(kubeconfig, context, namespace)
    try:
        require_controller(session)
        started = time.monotonic()
        written = request_undo(
            session, name, to_revision=to_revision, reason=reason, with_steps=with_steps
        )
        revision = revision_of(written, session)
        if not wait:
            typer.echo(f"{session.namespace}/{name}: undo to revision {revision} requested")
            return
        workload_kind = (written.get("spec", {}).get("workloadRef") or {}).get("kind")
        if workload_kind in ("StatefulSet", "DaemonSet"):
            # The template went into the workload, not the Rollout, so the Rollout's
            # generation did not move: its status may still name the canary an earlier
            # rollback left. Judge only once the controller has taken up this revision.
            wait_for(
                session,
                get_rollout,
                name,
                lambda r: (
                    revision
                    in (
                        (r.get("status") or {}).get("canaryRevision"),
                        (r.get("status") or {}).get("stableRevision"),
                    )
                ),
                timeout=timeout_seconds,
                what=f"the controller to take up revision {revision}",
            )
        finish_wait(
            session,
            name,
            revision=revision,
            generation=int(written["metadata"].get("generation") or 0),
            timeout=timeout_seconds,
            output=output,
            started=started,
        )
    finally:
        session.close()


def request_undo(
    session: Session,
    name: str,
    *,
    to_revision: str | None = None,
    reason: str | None = None,
    with_steps: bool = False,
) -> dict[str, Any]:
    """Write an earlier revision's pod template (with provenance and, unless
    ``with_steps``, a one-shot promoteFull request); returns the written Rollout."""
    from controller.commands.rollout import provenance, revision_of, validate_rollout
    from controller.kube import merge_patch
    from controller.requests import new_request

    current = get_rollout(session, name)
    kind = ((current.get("spec") or {}).get("workloadRef") or {}).get("kind")
    if kind in ("StatefulSet", "DaemonSet"):
        return _undo_workload(
            session, current, to_revision=to_revision, reason=reason, with_steps=with_steps
        )
    if (current.get("spec") or {}).get("workloadRef"):
        revision_of(current)  # refuses: the template to go back to is the Deployment's
    target = pick_revision(current, to_revision)
    desired = copy.deepcopy(current)
    desired.pop("status", None)
    desired["spec"]["template"] = template_of_revision(session, name, target)
    desired["metadata"]["annotations"] = {
        **(desired["metadata"].get("annotations") or {}),
        **provenance(session, reason=reason or f"undo to revision {target}"),
    }
    if not with_steps:
        # Consumed exactly once by the pass that sees the new template; when the
        # target is the stable revision it is consumed as "nothing in progress".
        fast_track = new_request("promoteFull", by=session.who())
        desired["metadata"]["annotations"][REQUEST_ANNOTATION] = fast_track.to_annotation()
    validate_rollout(desired)
    return session.kube.patch_rollout(
        session.namespace,
        name,
        {
            "metadata": {"annotations": desired["metadata"]["annotations"]},
            "spec": merge_patch(current.get("spec") or {}, desired["spec"]),
        },
        resource_version=current["metadata"]["resourceVersion"],
    )


def _undo_workload(
    session: Session,
    current: dict[str, Any],
    *,
    to_revision: str | None,
    reason: str | None,
    with_steps: bool,
) -> dict[str, Any]:
    """Undo for a StatefulSet or DaemonSet Rollout: the earlier revision's template comes
    from the workload's own ControllerRevision and goes back into the workload, exactly as
    ``rollout --image`` writes a new one (partition N for a StatefulSet, OnDelete held for
    a DaemonSet), so the Rollout delivers it like any change: fast-tracked to 100% by a
    one-shot promoteFull unless ``with_steps``. The Rollout itself only gets the
    provenance and the request."""
    from controller.commands.rollout import (
        daemonset_revision,
        provenance,
        revision_of,
        statefulset_revision,
        workload_of,
        write_workload_template,
    )
    from controller.requests import new_request

    name = current["metadata"]["name"]
    workload, kind = workload_of(session, current)
    workload_name = workload["metadata"]["name"]
    now = revision_of(current, session)
    target = pick_revision(current, to_revision, current=now)
    if target == now:
        raise fail(f"{kind} {workload_name} already runs revision {target}: nothing to undo")
    template = _workload_template(session, workload, kind, target)
    annotations: dict[str, Any] = provenance(session, reason=reason or f"undo to revision {target}")
    if not with_steps:
        fast_track = new_request("promoteFull", by=session.who())
        annotations[REQUEST_ANNOTATION] = fast_track.to_annotation()
    # The template first, then the request: a promoteFull the controller read before it
    # sees the new revision would be consumed as "nothing in progress".
    write_workload_template(session, workload, kind, template)
    written = _annotate(session, name, annotations)
    # The revision the workload's controller gives the template back must be the target:
    # it reuses the earlier ControllerRevision for an identical template.
    reached = (
        statefulset_revision(session, workload_name)
        if kind == "StatefulSet"
        else daemonset_revision(session, workload_name)
    )
    if reached != target:
        raise fail(
            f"{kind} {workload_name}: the template of revision {target} came back as "
            f"revision {reached}; check `deployctl status {name}`"
        )
    return dict(written)


def _annotate(session: Session, name: str, annotations: dict[str, Any]) -> dict[str, Any]:
    """Set ``annotations`` on the Rollout, reading it again when the controller wrote it
    meanwhile (its status writes move the resourceVersion)."""
    from controller.kube import Conflict

    for _attempt in range(5):
        current = get_rollout(session, name)
        try:
            return dict(
                session.kube.patch_rollout(
                    session.namespace,
                    name,
                    {"metadata": {"annotations": annotations}},
                    resource_version=current["metadata"]["resourceVersion"],
                )
            )
        except Conflict:
            continue
    raise fail("the Rollout kept changing under us (5 conflicts); try again")


def _workload_template(
    session: Session, workload: dict[str, Any], kind: str, revision: str
) -> dict[str, Any]:
    """The pod template of the workload's ControllerRevision ``revision`` (a StatefulSet's
    revision is the ControllerRevision's name, a DaemonSet's its hash). Only one the
    workload owns: a ControllerRevision of another workload in the namespace holds another
    application's template, which the Rollout would deliver."""
    from controller.commands.rollout import workload_revisions
    from controller.kube import NotFound
    from controller.stateful import owned_revision

    stored_name = owned_revision(workload, kind, workload_revisions(session, workload), revision)
    missing = (
        f"revision {revision} has no ControllerRevision of {kind} "
        f"{workload['metadata']['name']} left (older than its revisionHistoryLimit, or it "
        "names another workload's); roll its image out with `deployctl rollout --image` "
        "instead"
    )
    if stored_name is None:
        raise fail(missing)
    try:
        return dict(session.kube.get_statefulset_template(session.namespace, stored_name))
    except NotFound:
        raise fail(missing) from None
