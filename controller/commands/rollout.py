"""``deployctl rollout``: start a new revision (``--image``) or apply a file (``-f``).

It edits the Rollout resource and nothing else: the controller does the rollout. The
edit records who asked, why and from which CI job (annotations the controller copies into
history), refuses an accidental semantic-version downgrade, and is validated with the
same models the CRD is generated from before anything is written. ``--wait`` then
follows the revision to its outcome (see ``follow.py`` for the exit codes).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
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

STRATEGIES = ("canary", "bluegreen", "rolling")
STRATEGY_KEYS = {"canary": "canary", "bluegreen": "blueGreen", "rolling": "rolling"}
DEFAULT_STEPS = "10,pause:1m,25,pause:1m,50,pause:1m"


def parse_duration_seconds(text: str) -> float:
    """``30m``, ``90s``, ``1h`` or plain seconds, for ``--timeout``."""
    from controller.api.duration import parse_duration

    try:
        return parse_duration(text.strip())
    except (ValueError, TypeError) as exc:
        raise fail(f"--timeout {text!r}: {exc}") from None


def parse_image_flags(values: list[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for value in values:
        container, sep, image = value.partition("=")
        if not sep or not container or not image:
            raise fail(f"--image {value!r}: expected CONTAINER=IMAGE, e.g. app=shop/checkout:1.4.2")
        images[container] = image
    return images


def parse_steps(text: str) -> list[dict[str, Any]]:
    """``10,pause:1m,analysis:errors+latency,50,pause`` as canary steps."""
    steps: list[dict[str, Any]] = []
    for raw in text.split(","):
        token = raw.strip()
        if not token:
            continue
        if token.isdigit():
            steps.append({"setWeight": int(token)})
        elif token == "pause":
            steps.append({"pause": {}})
        elif token.startswith("pause:"):
            steps.append({"pause": {"duration": token.removeprefix("pause:")}})
        elif token.startswith("analysis:"):
            names = [n for n in token.removeprefix("analysis:").split("+") if n]
            steps.append({"analysis": {"templates": [{"name": n} for n in names]}})
        else:
            raise fail(
                f"--steps: cannot read {token!r}; use weights (10), pause, pause:30s or "
                "analysis:TEMPLATE[+TEMPLATE]"
            )
    if not steps:
        raise fail("--steps: no steps given")
    return steps


def build_strategy(
    current: dict[str, Any], kind: str | None, steps: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The new ``spec.strategy``: the current one, switched and/or with new steps."""
    strategy = copy.deepcopy(current)
    existing = next((k for k in STRATEGY_KEYS.values() if strategy.get(k) is not None), None)
    key = STRATEGY_KEYS[kind] if kind else existing
    if key is None:
        raise fail("the Rollout has no strategy; give --strategy")
    if key != existing:
        old = strategy.get(existing or "", {}) or {}
        if key == "canary":
            strategy = {
                "canary": {
                    k: v
                    for k, v in {
                        "stableService": old.get("activeService"),
                        "canaryService": old.get("previewService"),
                    }.items()
                    if v
                }
            }
            strategy["canary"]["steps"] = parse_steps(DEFAULT_STEPS)
        elif key == "blueGreen":
            active = old.get("stableService") or old.get("activeService")
            if not active:
                raise fail(
                    "--strategy bluegreen needs an active Service: this Rollout names none; "
                    "set spec.strategy.blueGreen.activeService in the file and use "
                    "`deployctl rollout -f`"
                )
            preview = old.get("canaryService")
            strategy = {
                "blueGreen": {
                    "activeService": active,
                    **({"previewService": preview} if preview else {}),
                }
            }
        else:
            strategy = {"rolling": {}}
    if steps is not None:
        if key != "canary":
            raise fail("--steps applies to the canary strategy only")
        strategy["canary"]["steps"] = steps
    return strategy


def validate_rollout(raw: dict[str, Any]) -> None:
    from controller.validation import parse_document

    parsed = parse_document(raw)
    if parsed.problems:
        lines = "\n  ".join(str(p) for p in parsed.problems)
        raise fail(f"the resulting Rollout would be invalid:\n  {lines}")


def revision_of(raw: dict[str, Any], session: Session | None = None) -> str:
    """The revision ``raw`` asks for: its template's hash, or with ``spec.workloadRef``
    the referenced Deployment's (read with ``session``)."""
    from controller.api.revision import template_hash
    from controller.api.rollout import PodTemplateSpec

    spec = raw.get("spec") or {}
    ref = spec.get("workloadRef")
    if ref and ref.get("kind") == "StatefulSet" and session is not None:
        return statefulset_revision(session, str(ref.get("name")))
    if ref and ref.get("kind") == "DaemonSet" and session is not None:
        return daemonset_revision(session, str(ref.get("name")))
    if ref and "template" not in spec:
        name = raw.get("metadata", {}).get("name")
        kind = str(ref.get("kind", "Deployment"))
        if session is None and kind in ("StatefulSet", "DaemonSet"):
            raise fail(
                f"rollout {name} delivers {kind} {ref.get('name')}'s pod template "
                "(spec.workloadRef): its revision is read from the " + kind
            )
        if session is None:
            raise fail(
                f"rollout {name} delivers Deployment {ref.get('name')}'s pod template "
                "(spec.workloadRef): change or revert the template in the Deployment, where "
                "Helm or GitOps keep it; the Rollout delivers each change with its strategy"
            )
        deployment = session.kube.get_deployment(session.namespace, str(ref.get("name")))
        template = (deployment.get("spec") or {}).get("template") or {}
        return template_hash(PodTemplateSpec.model_validate(template))
    return template_hash(PodTemplateSpec.model_validate(spec["template"]))


def statefulset_revision(session: Session, name: str, *, timeout: float = 60) -> str:
    """The StatefulSet's ``updateRevision`` once its controller has seen its current
    template: the revision (its pods' controller-revision-hash) the Rollout delivers."""
    from controller.kube import STATEFULSETS

    deadline = time.monotonic() + timeout
    while True:
        found = session.kube.get(STATEFULSETS, session.namespace, name)
        meta, status = found.get("metadata") or {}, found.get("status") or {}
        seen = int(status.get("observedGeneration", 0) or 0) >= int(meta.get("generation", 0))
        if seen and status.get("updateRevision"):
            return str(status["updateRevision"])
        if time.monotonic() >= deadline:
            raise fail(
                f"StatefulSet {name}: its controller has not taken in the new template "
                f"within {timeout:.0f} s (is kube-controller-manager running?)",
                Exit.UNREACHABLE,
            )
        time.sleep(0.2)


def daemonset_revision(session: Session, name: str, *, timeout: float = 60) -> str:
    """The hash of the DaemonSet's newest ControllerRevision once its controller has seen
    its current template: the revision (its new pods' controller-revision-hash) the
    Rollout delivers."""
    from controller import daemon
    from controller.kube import DAEMONSETS
    from controller.stateful import synced

    deadline = time.monotonic() + timeout
    while True:
        found = session.kube.get(DAEMONSETS, session.namespace, name)
        newest = daemon.newest_revision(found, workload_revisions(session, found))
        if newest and synced(found):
            return newest
        if time.monotonic() >= deadline:
            raise fail(
                f"DaemonSet {name}: its controller has not taken in the new template "
                f"within {timeout:.0f} s (is kube-controller-manager running?)",
                Exit.UNREACHABLE,
            )
        time.sleep(0.2)


def workload_revisions(session: Session, workload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ControllerRevisions ``workload`` (a StatefulSet or a DaemonSet) owns: those its
    selector matches, kept only when owned by its UID (``controller.stateful.owned_by``)."""
    from controller.kube import CONTROLLER_REVISIONS
    from controller.stateful import owned_by

    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    listed = session.kube.list_objects(
        CONTROLLER_REVISIONS, session.namespace, label_selector=selector
    ).items
    return owned_by(workload, listed)


def provenance(session: Session, *, reason: str | None) -> dict[str, str]:
    from controller.requests import provenance_annotations

    return provenance_annotations(
        requested_by=session.who(), reason=reason or "", environ=os.environ
    )


def override_annotations(kind: str | None, reason: str | None) -> dict[str, str | None]:
    from controller.api.policy import EXEMPTION_KINDS
    from controller.names import EXEMPT_KEY, OVERRIDE_REASON_ANNOTATION

    if kind is None:
        # A new revision does not inherit an earlier override: clear it.
        return {EXEMPT_KEY: None, OVERRIDE_REASON_ANNOTATION: None}
    if kind not in EXEMPTION_KINDS:
        raise fail(f"--override-freeze {kind!r}: must be one of {', '.join(EXEMPTION_KINDS)}")
    if not reason:
        raise fail("--override-freeze needs --reason: an override without a reason is refused")
    return {EXEMPT_KEY: kind, OVERRIDE_REASON_ANNOTATION: reason}


def set_images(raw: dict[str, Any], images: dict[str, str]) -> dict[str, str]:
    """Apply ``images`` to the template; return each changed container's previous image."""
    ref = (raw.get("spec") or {}).get("workloadRef")
    if ref and images and ref.get("kind") not in ("StatefulSet", "DaemonSet"):
        # The Deployment is what Helm or GitOps writes: an image set here would be
        # undone at their next sync, and deployctl needs no write access to Deployments.
        name = raw.get("metadata", {}).get("name")
        raise fail(
            f"rollout {name} delivers Deployment {ref.get('name')}'s pod template "
            "(spec.workloadRef): change the image in the Deployment, where Helm or GitOps "
            "keep it (e.g. `kubectl set image deployment/"
            f"{ref.get('name')} ...` or your chart's values); the Rollout then delivers it "
            "with its strategy. deployctl does not edit it here, or the next sync would undo it"
        )
    containers = raw["spec"]["template"]["spec"]["containers"]
    by_name = {c["name"]: c for c in containers}
    unknown = [c for c in images if c not in by_name]
    if unknown:
        raise fail(
            f"no container named {', '.join(repr(u) for u in unknown)} in this Rollout's "
            f"template; containers: {', '.join(by_name)}"
        )
    previous = {}
    for container, image in images.items():
        previous[container] = by_name[container]["image"]
        by_name[container]["image"] = image
    return previous


def write_rollout(
    session: Session, current: dict[str, Any], desired: dict[str, Any]
) -> dict[str, Any]:
    """Merge-patch metadata.annotations and spec, conditional on the version we read."""
    from controller.kube import merge_patch

    patch = {
        "metadata": {"annotations": desired["metadata"].get("annotations") or {}},
        "spec": merge_patch(current.get("spec") or {}, desired["spec"]),
    }
    return session.kube.patch_rollout(
        session.namespace,
        current["metadata"]["name"],
        patch,
        resource_version=current["metadata"]["resourceVersion"],
    )


def rollout(
    name: Annotated[str | None, typer.Argument(help="The Rollout", show_default=False)] = None,
    image: Annotated[
        list[str] | None,
        typer.Option("--image", help="CONTAINER=IMAGE (repeatable)", show_default=False),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Create or update from a YAML file", show_default=False),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option("--strategy", help="canary, bluegreen or rolling", show_default=False),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            "--steps", help="Canary steps: 10,pause:1m,analysis:errors,50", show_default=False
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded in history)", show_default=False)
    ] = None,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Allow a lower semantic version")
    ] = False,
    override_freeze: Annotated[
        str | None,
        typer.Option(
            "--override-freeze",
            help="Exempt from freezes/windows: hotfix, security, regression, release-blocker "
            "(needs --reason)",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to the end")] = False,
    timeout: Annotated[str, typer.Option("--timeout", help="With --wait")] = "30m",
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Roll out a new revision: set images (and strategy/steps), or apply a file."""
    run_rollout(
        name=name,
        images=image or [],
        file=file,
        strategy=strategy,
        steps=steps,
        reason=reason,
        allow_downgrade=allow_downgrade,
        override_freeze=override_freeze,
        wait=wait,
        timeout=timeout,
        output=output,
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
    )


@handle_errors
def run_rollout(
    *,
    name: str | None,
    images: list[str],
    file: Path | None,
    strategy: str | None,
    steps: str | None,
    reason: str | None,
    allow_downgrade: bool,
    override_freeze: str | None,
    wait: bool,
    timeout: str,
    output: Output,
    kubeconfig: Path | None,
    context: str | None,
    namespace: str | None,
) -> None:
    image_map = parse_image_flags(images)
    if strategy is not None and strategy not in STRATEGIES:
        raise fail(f"--strategy {strategy!r}: must be one of {', '.join(STRATEGIES)}")
    if file is None and name is None:
        raise fail("give a Rollout NAME with --image, or -f FILE")
    if file is None and not images and strategy is None and steps is None:
        raise fail("nothing to change: give --image CONTAINER=IMAGE (or --strategy/--steps)")
    if file is not None and (images or strategy or steps):
        raise fail("-f FILE cannot be combined with --image/--strategy/--steps")
    timeout_seconds = parse_duration_seconds(timeout)
    overrides = override_annotations(override_freeze, reason)
    new_steps = parse_steps(steps) if steps is not None else None

    session = connect(kubeconfig, context, namespace)
    try:
        require_controller(session)
        started = time.monotonic()
        if file is not None:
            written = apply_file(session, file, reason=reason, overrides=overrides)
        else:
            assert name is not None
            written = change_rollout(
                session,
                name,
                images=image_map,
                strategy=strategy,
                steps=new_steps,
                reason=reason,
                overrides=overrides,
                allow_downgrade=allow_downgrade,
            )
        revision = revision_of(written, session)
        rollout_name = written["metadata"]["name"]
        generation = int(written["metadata"].get("generation") or 0)
        if not wait:
            document = {
                "rollout": f"{session.namespace}/{rollout_name}",
                "revision": revision,
                "generation": generation,
            }
            if output is Output.text:
                typer.echo(
                    f"rollout {session.namespace}/{rollout_name}: revision {revision} requested"
                )
            else:
                print_document(document, output)
            return
        finish_wait(
            session,
            rollout_name,
            revision=revision,
            generation=generation,
            timeout=timeout_seconds,
            output=output,
            started=started,
        )
    finally:
        session.close()


def finish_wait(
    session: Session,
    name: str,
    *,
    revision: str,
    generation: int,
    timeout: float,
    output: Output,
    started: float,
) -> None:
    """Follow to the outcome, print it, exit with its code."""
    from controller.commands.follow import follow, outcome_document

    def progress(line: str) -> None:
        typer.echo(f"{session.namespace}/{name}: {line}", err=True)

    if output is Output.text:
        progress(f"waiting for revision {revision} (timeout {timeout:.0f} s)")
    outcome, final = follow(
        session, name, revision=revision, generation=generation, timeout=timeout, progress=progress
    )
    seconds = time.monotonic() - started
    if output is Output.text:
        verb = {"Promoted": "promoted", "RolledBack": "rolled back"}.get(outcome.name, outcome.name)
        stream_err = outcome.code != Exit.OK
        typer.echo(f"{session.namespace}/{name}: {verb}: {outcome.message}", err=stream_err)
    else:
        print_document(outcome_document(final, outcome, revision=revision, seconds=seconds), output)
    if outcome.code != Exit.OK:
        raise typer.Exit(outcome.code)


def change_rollout(
    session: Session,
    name: str,
    *,
    images: dict[str, str],
    strategy: str | None,
    steps: list[dict[str, Any]] | None,
    reason: str | None,
    overrides: dict[str, str | None],
    allow_downgrade: bool,
) -> dict[str, Any]:
    from controller.kube import Conflict
    from controller.versions import downgrades

    for _attempt in range(5):
        current = get_rollout(session, name)
        desired = copy.deepcopy(current)
        desired.pop("status", None)
        statefulset = _statefulset_of(session, desired) if images else None
        daemonset = _daemonset_of(session, desired) if images else None
        workload = statefulset if statefulset is not None else daemonset
        if workload is not None:
            # A StatefulSet or DaemonSet Rollout delivers its workload's template: the
            # images go there.
            template = copy.deepcopy(workload["spec"]["template"])
            previous = set_images({"spec": {"template": template}}, images)
        else:
            previous = set_images(desired, images)
        found = downgrades(previous, images)
        if found and not allow_downgrade:
            raise fail(
                "refusing to downgrade: "
                + "; ".join(d.describe() for d in found)
                + ". Pass --allow-downgrade if you mean it, or `deployctl undo` to go back."
            )
        if strategy is not None or steps is not None:
            desired["spec"]["strategy"] = build_strategy(
                desired["spec"].get("strategy") or {}, strategy, steps
            )
        annotations = dict(desired["metadata"].get("annotations") or {})
        annotations.update(provenance(session, reason=reason))
        desired["metadata"]["annotations"] = {**annotations, **overrides}
        validate_rollout(_without_nulls(desired))
        try:
            written = write_rollout(session, current, desired)
            if statefulset is not None:
                write_workload_template(session, statefulset, "StatefulSet", template)
            if daemonset is not None:
                write_workload_template(session, daemonset, "DaemonSet", template)
            return written
        except Conflict:
            continue  # the controller wrote status meanwhile: read again, redo the edit
    raise fail("the Rollout kept changing under us (5 conflicts); try again", Exit.UNREACHABLE)


def workload_of(session: Session, raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The StatefulSet or DaemonSet a Rollout's workloadRef names, with its kind."""
    statefulset = _statefulset_of(session, raw)
    if statefulset is not None:
        return statefulset, "StatefulSet"
    daemonset = _daemonset_of(session, raw)
    if daemonset is not None:
        return daemonset, "DaemonSet"
    raise fail(f"rollout {raw['metadata']['name']} delivers no StatefulSet or DaemonSet")


def write_workload_template(
    session: Session, workload: dict[str, Any], kind: str, template: dict[str, Any]
) -> None:
    """``template`` into the workload so that nothing moves before the Rollout's first step
    asks: a StatefulSet's partition at N in the same write, a DaemonSet held on OnDelete."""
    if kind == "StatefulSet":
        replicas = int(workload["spec"].get("replicas", 1) or 0)
        session.kube.patch_statefulset_template(workload, template, partition=replicas)
    else:
        _write_daemonset_template(session, workload, template)


def _statefulset_of(session: Session, raw: dict[str, Any]) -> dict[str, Any] | None:
    """The StatefulSet a Rollout's workloadRef names; None for any other Rollout."""
    from controller.kube import STATEFULSETS

    ref = (raw.get("spec") or {}).get("workloadRef") or {}
    if ref.get("kind") != "StatefulSet":
        return None
    return dict(session.kube.get(STATEFULSETS, session.namespace, str(ref["name"])))


def _daemonset_of(session: Session, raw: dict[str, Any]) -> dict[str, Any] | None:
    """The DaemonSet a Rollout's workloadRef names; None for any other Rollout."""
    from controller.kube import DAEMONSETS

    ref = (raw.get("spec") or {}).get("workloadRef") or {}
    if ref.get("kind") != "DaemonSet":
        return None
    return dict(session.kube.get(DAEMONSETS, session.namespace, str(ref["name"])))


def _write_daemonset_template(
    session: Session, daemonset: dict[str, Any], template: dict[str, Any]
) -> None:
    """The template with OnDelete in the same write (the user's strategy kept for the
    controller to put back): no pod moves before the Rollout's first step asks for it."""
    from controller import daemon

    hold = None
    if daemon.users_strategy(daemonset) is None:
        kept = json.dumps(daemon.strategy_of(daemonset), sort_keys=True)
        hold = {daemon.STRATEGY_ANNOTATION: kept}
    session.kube.patch_daemonset_template(daemonset, template, hold=hold)


def _without_nulls(raw: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    annotations = out.get("metadata", {}).get("annotations") or {}
    out["metadata"]["annotations"] = {k: v for k, v in annotations.items() if v is not None}
    return out


def apply_file(
    session: Session, file: Path, *, reason: str | None, overrides: dict[str, str | None]
) -> dict[str, Any]:
    """Create or update every document of the file; returns the (single) Rollout written."""
    from controller.commands.files import read_files
    from controller.kube import ANALYSIS_TEMPLATES, ROLLOUTS, Conflict, NotFound
    from controller.validation import validate_documents

    docs = read_files([file])
    problems = validate_documents(docs, check_references=False)
    if problems:
        raise fail("the file has problems:\n  " + "\n  ".join(str(p) for p in problems))
    others = sorted({d.kind for d in docs} - {"Rollout", "AnalysisTemplate"})
    if others:
        raise fail(
            f"{file}: `deployctl rollout -f` applies Rollouts and AnalysisTemplates, not "
            f"{', '.join(others)} (a Release: `deployctl release create -f`)"
        )
    rollouts = [d for d in docs if d.kind == "Rollout"]
    if len(rollouts) != 1:
        raise fail(f"{file}: expected exactly one Rollout, found {len(rollouts)}")
    written: dict[str, Any] = {}
    for doc in docs:
        body = copy.deepcopy(dict(doc.raw))
        meta = body.setdefault("metadata", {})
        ns = meta.get("namespace") or session.namespace
        if ns != session.namespace:
            raise fail(
                f"{doc.kind}/{doc.name} is in namespace {ns!r} but the command targets "
                f"{session.namespace!r}; pass -n {ns}"
            )
        meta["namespace"] = ns
        kind = ROLLOUTS if doc.kind == "Rollout" else ANALYSIS_TEMPLATES
        if doc.kind == "Rollout":
            annotations = {**(meta.get("annotations") or {}), **provenance(session, reason=reason)}
            meta["annotations"] = {
                k: v for k, v in {**annotations, **overrides}.items() if v is not None
            }
        for _attempt in range(5):
            try:
                current = session.kube.get(kind, ns, doc.name)
            except NotFound:
                result = session.kube.create_object(kind, ns, body)
                break
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                result = session.kube.replace_object(kind, ns, doc.name, body)
                break
            except Conflict:
                continue
        else:
            raise fail(f"{doc.kind}/{doc.name} kept changing under us; try again", Exit.UNREACHABLE)
        if doc.kind == "Rollout":
            written = result
    return written
