"""``deployctl release create | status | promote | abort | plan``: releases across clusters.

Every command but ``plan`` talks to the management cluster only (the kubeconfig's), never
to the members: the release controller does that. ``create --wait`` and ``status --wait``
follow a Release to its outcome with the usual exit codes (0 succeeded, 1 halted or
rolled back, 2 invalid, 3 timed out, 4 no release controller or cluster unreachable);
``promote`` and ``abort`` return once the release controller has acted. ``plan -f``
prints the waves of a file without any cluster.

Imports stay light at module level (``deployctl --help`` loads this module): the models,
the Kubernetes client and rich load inside the commands.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.commands.common import (
    Kubeconfig,
    KubeContext,
    Namespace,
    Output,
    OutputOpt,
    Session,
    connect,
    controller_state,
    fail,
    handle_errors,
    print_document,
)
from controller.commands.requesting import Target, request_command, send_request
from controller.exitcodes import Exit

if TYPE_CHECKING:
    from controller.api.release import Release

RELEASE_CONTROLLER_NAMESPACE_ENV = "DEPLOYCTL_RELEASE_CONTROLLER_NAMESPACE"
RELEASE_CONTROLLER_LEASE_ENV = "DEPLOYCTL_RELEASE_CONTROLLER_LEASE"
DEFAULT_LEASE = ("deployctl-system", "deployctl-release-controller")
CONTROLLER_CHECK_SECONDS = 15.0

release_app = typer.Typer(
    name="release",
    help="Roll one version through waves of clusters (a Release in the management cluster).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_NAME_HELP = "The Release"
Name = Annotated[str, typer.Argument(help=_NAME_HELP, show_default=False)]
FileOpt = Annotated[Path, typer.Option("--file", "-f", help="A Release YAML file; - = stdin")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Follow the release to its outcome")]
TimeoutOpt = Annotated[str, typer.Option("--timeout", help="With --wait")]


def release_lease() -> tuple[str, str]:
    return (
        os.environ.get(RELEASE_CONTROLLER_NAMESPACE_ENV, DEFAULT_LEASE[0]),
        os.environ.get(RELEASE_CONTROLLER_LEASE_ENV, DEFAULT_LEASE[1]),
    )


def require_release_controller(session: Session) -> None:
    state = controller_state(session, lease=release_lease())
    if not state.running:
        raise fail(
            f"no deployctl release controller is running ({state.detail}); nothing would act "
            "on this release: install manifests/release-controller/ (docs/multicluster.md). "
            f"If it runs in another namespace, set {RELEASE_CONTROLLER_NAMESPACE_ENV}.",
            Exit.UNREACHABLE,
        )


def get_release(session: Session, name: str) -> dict[str, Any]:
    from controller.kube import NotFound

    try:
        return session.kube.get_release(session.namespace, name)
    except NotFound as exc:
        if "the server could not find" in exc.message.lower():
            raise fail(
                "the Release CRD is not installed in this cluster; install manifests/crds/",
                Exit.UNREACHABLE,
            ) from None
        raise fail(f"release {name!r} not found in namespace {session.namespace!r}") from None


def read_release_file(file: Path) -> tuple[Release, dict[str, Any], list[dict[str, Any]]]:
    """The one Release of ``file`` (model and raw) and its ClusterTargets, or a usage
    error naming each problem."""
    from controller.api.release import Release
    from controller.commands.files import read_files
    from controller.validation import validate_documents

    docs = read_files([file])
    problems = validate_documents(docs, check_references=False)
    if problems:
        raise fail("the file has problems:\n  " + "\n  ".join(str(p) for p in problems))
    others = sorted({d.kind for d in docs} - {"Release", "ClusterTarget"})
    if others:
        raise fail(
            f"{file}: a release file holds a Release and ClusterTargets, not {', '.join(others)}"
        )
    releases = [d for d in docs if isinstance(d.model, Release)]
    if len(releases) != 1:
        raise fail(f"{file}: expected exactly one Release, found {len(releases)}")
    assert isinstance(releases[0].model, Release)
    targets = [copy.deepcopy(dict(d.raw)) for d in docs if d.kind == "ClusterTarget"]
    return releases[0].model, copy.deepcopy(dict(releases[0].raw)), targets


def apply_targets(session: Session, targets: list[dict[str, Any]]) -> None:
    """Create or update the file's ClusterTargets (a CI job may re-apply them each time)."""
    from controller.kube import CLUSTER_TARGETS, Conflict, NotFound

    for body in targets:
        meta = body.setdefault("metadata", {})
        if meta.setdefault("namespace", session.namespace) != session.namespace:
            raise fail(
                f"ClusterTarget/{meta.get('name')} is in namespace {meta['namespace']!r}, "
                f"the Release in {session.namespace!r}: they must be in the same one"
            )
        for _attempt in range(5):
            try:
                current = session.kube.get(CLUSTER_TARGETS, session.namespace, meta["name"])
            except NotFound:
                session.kube.create_object(CLUSTER_TARGETS, session.namespace, body)
                break
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                session.kube.replace_object(CLUSTER_TARGETS, session.namespace, meta["name"], body)
                break
            except Conflict:
                continue


# --------------------------------------------------------------------------- create


@release_app.command("create")
@handle_errors
def create(
    file: FileOpt,
    image: Annotated[
        list[str] | None,
        typer.Option("--image", help="CONTAINER=IMAGE, overriding the file's (repeatable)"),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Override metadata.name", show_default=False)
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded in every member's history)")
    ] = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = "2h",
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Create a Release from a file (and its ClusterTargets); images may be given here."""
    from controller.commands.rollout import parse_duration_seconds, parse_image_flags, provenance
    from controller.kube import RELEASES, AlreadyExists
    from controller.validation import parse_document

    images = parse_image_flags(image or [])
    timeout_seconds = parse_duration_seconds(timeout)
    _model, raw, targets = read_release_file(file)
    meta = raw.setdefault("metadata", {})
    if name is not None:
        meta["name"] = name
    spec = raw.setdefault("spec", {})
    if images:
        spec["images"] = {**(spec.get("images") or {}), **images}
    if reason is not None:
        spec["reason"] = reason
    checked = parse_document(raw)
    if checked.problems:
        raise fail("the Release would be invalid:\n  " + "\n  ".join(map(str, checked.problems)))
    session = connect(kubeconfig, context, namespace)
    try:
        ns = meta.get("namespace") or session.namespace
        if ns != session.namespace and namespace is not None:
            raise fail(
                f"Release/{meta.get('name')} is in namespace {ns!r} but the command targets "
                f"{session.namespace!r}"
            )
        session.namespace = meta["namespace"] = ns
        require_release_controller(session)
        apply_targets(session, targets)
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            **provenance(session, reason=reason or spec.get("reason")),
        }
        started = time.monotonic()
        try:
            written = session.kube.create_object(RELEASES, ns, raw)
        except AlreadyExists:
            raise fail(
                f"release {meta.get('name')!r} exists in {ns!r}; a Release is not edited once "
                "created: give a new --name (e.g. the version)"
            ) from None
        if not wait:
            if output is Output.text:
                typer.echo(f"release {ns}/{written['metadata']['name']} created")
            else:
                print_document({"release": f"{ns}/{written['metadata']['name']}"}, output)
            return
        finish_wait(
            session, str(written["metadata"]["name"]), timeout=timeout_seconds, output=output,
            started=started,
        )  # fmt: skip
    finally:
        session.close()


def finish_wait(
    session: Session, name: str, *, timeout: float, output: Output, started: float
) -> None:
    """Follow to the outcome, print it, exit with its code."""
    from controller.commands.release_view import ReleaseNarrator, judge_release, status_document
    from controller.rollout_outcome import WaitOutcome

    narrator = ReleaseNarrator()
    next_check = time.monotonic() + CONTROLLER_CHECK_SECONDS
    if output is Output.text:
        typer.echo(f"{session.namespace}/{name}: waiting (timeout {timeout:.0f} s)", err=True)
    while True:
        raw = get_release(session, name)
        for line in narrator.lines(raw):
            typer.echo(f"{session.namespace}/{name}: {line}", err=True)
        outcome = judge_release(raw)
        now = time.monotonic()
        if outcome is None and now - started >= timeout:
            phase = (raw.get("status") or {}).get("phase") or "pending"
            outcome = WaitOutcome("TimedOut", Exit.TIMEOUT, f"still {phase} after {timeout:.0f} s")
        if outcome is None and now >= next_check:
            next_check = now + CONTROLLER_CHECK_SECONDS
            state = controller_state(session, lease=release_lease())
            if not state.running:
                outcome = WaitOutcome(
                    "NoController",
                    Exit.UNREACHABLE,
                    f"the release controller stopped: {state.detail}",
                )
        if outcome is not None:
            break
        time.sleep(1.0)  # a poll interval, not synchronisation
    if output is Output.text:
        typer.echo(f"{session.namespace}/{name}: {outcome.name}: {outcome.message}")
    else:
        document = status_document(raw)
        document.update(
            outcome=outcome.name,
            exitCode=int(outcome.code),
            durationSeconds=round(time.monotonic() - started, 1),
        )
        print_document(document, output)
    if outcome.code != Exit.OK:
        raise typer.Exit(outcome.code)


# --------------------------------------------------------------------------- status


@release_app.command("status")
@handle_errors
def status(
    name: Name,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = "2h",
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Waves x clusters with their phases; exit 1 when the release failed or rolled back."""
    from controller.commands.release_view import status_document, status_view
    from controller.commands.rollout import parse_duration_seconds

    session = connect(kubeconfig, context, namespace)
    try:
        if wait:
            finish_wait(
                session, name, timeout=parse_duration_seconds(timeout), output=output,
                started=time.monotonic(),
            )  # fmt: skip
            return
        raw = get_release(session, name)
        if output is Output.text:
            from rich.console import Console

            Console().print(status_view(raw))
        else:
            print_document(status_document(raw), output)
        if (raw.get("status") or {}).get("phase") in ("Failed", "RolledBack"):
            raise typer.Exit(Exit.ROLLED_BACK)
    finally:
        session.close()


# --------------------------------------------------------------------------- requests


def _patch_release(
    session: Session, name: str, body: dict[str, Any], resource_version: str
) -> object:
    return session.kube.patch_release(
        session.namespace, name, body, resource_version=resource_version
    )


RELEASE = Target(
    kind="Release",
    actor="the release controller",
    read=get_release,
    patch=_patch_release,
    requester=lambda session: session.user,
)


def _run_request(action: str, verb: str, name: str, *, ack_timeout: float, output: Output,
                 kubeconfig: Any, context: Any, namespace: Any) -> None:  # fmt: skip
    session = connect(kubeconfig, context, namespace)
    try:
        require_release_controller(session)
        raw = send_request(session, RELEASE, name, action, ack_timeout=ack_timeout)
        status_ = raw.get("status") or {}
        if output is Output.text:
            typer.echo(
                f"release {session.namespace}/{name} {verb}: {status_.get('phase')}"
                + (f" ({status_.get('reason')})" if status_.get("reason") else "")
            )
        else:
            from controller.commands.release_view import status_document

            print_document({**status_document(raw), "action": verb}, output)
    finally:
        session.close()


promote = release_app.command("promote")(
    request_command(
        _run_request,
        "promote",
        "promoted",
        doc="End the soak of the current wave now (its clusters must be Healthy).",
        name_help=_NAME_HELP,
    )
)
abort = release_app.command("abort")(
    request_command(
        _run_request,
        "abort",
        "aborted",
        doc="Halt: change no further cluster (with onFailure rollbackAll, return the changed "
        "ones).",
        name_help=_NAME_HELP,
    )
)


# --------------------------------------------------------------------------- plan


@release_app.command("plan")
@handle_errors
def plan(
    file: FileOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Print the waves a Release file will go through, without any cluster."""
    import json

    from controller.commands.release_view import plan_rows, plan_view

    if output not in ("table", "json"):
        raise fail(f"--output {output!r}: use table or json")
    release, _raw, _targets = read_release_file(file)
    if output == "json":
        spec = release.spec
        document = {
            "release": release.metadata.name,
            "rollout": str(spec.rollout),
            "images": spec.images,
            "templatePatch": spec.template_patch,
            "onFailure": spec.on_failure,
            "waves": plan_rows(release),
        }
        typer.echo(json.dumps(document, indent=2))
        return
    from rich.console import Console

    Console().print(plan_view(release))
