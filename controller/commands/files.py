"""``deployctl validate`` and ``deployctl plan``: work on files, need no cluster."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controller.commands.console import console
from controller.exitcodes import Exit

if TYPE_CHECKING:  # the models load inside the commands: `deployctl --help` stays fast
    from controller.api import Rollout
    from controller.validation import Parsed


class Output(StrEnum):
    table = "table"
    json = "json"


def read_files(paths: list[Path]) -> list[Parsed]:
    """All documents of the given files ('-' reads stdin); unreadable files exit 2."""
    from controller.validation import load_documents

    docs: list[Parsed] = []
    for path in paths:
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text()
        except OSError as exc:
            typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
            raise typer.Exit(Exit.USAGE) from None
        docs += load_documents(text, source=str(path))
    return docs


def validate(
    file: Annotated[
        list[Path], typer.Option("--file", "-f", help="YAML file(s); multi-document ok; - = stdin")
    ],
    check_references: Annotated[
        bool,
        typer.Option(
            "--check-references/--no-check-references",
            help="Require every analysis template a Rollout names to be in the given files",
        ),
    ] = True,
) -> None:
    """Check Rollouts and AnalysisTemplates; print every problem with its field path."""
    from controller.validation import is_other_kind, validate_documents

    everything = read_files(file)
    # Services, Deployments... beside the Rollouts (a converted Argo file has them): not ours.
    others = [d for d in everything if is_other_kind(d)]
    docs = [d for d in everything if not is_other_kind(d)]
    problems = validate_documents(docs, check_references=check_references)
    if not docs:
        typer.echo("error: no Rollout or AnalysisTemplate found", err=True)
        raise typer.Exit(Exit.ROLLED_BACK)
    skipped = (
        f" ({len(others)} other document(s) skipped: "
        + ", ".join(sorted({f"{d.raw.get('apiVersion')} {d.kind}" for d in others}))
        + ")"
        if others
        else ""
    )
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {len(docs)} document(s){skipped}", err=True)
        raise typer.Exit(Exit.ROLLED_BACK)
    typer.echo(f"ok: {len(docs)} document(s) valid{skipped}")


def plan(
    file: Annotated[
        list[Path],
        typer.Option(
            "--file",
            "-f",
            help="A Rollout YAML file; repeat for more files, e.g. the Deployment a "
            "workloadRef Rollout delivers",
        ),
    ],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Print the steps the strategy will take, without any cluster."""
    from controller.api import Rollout
    from controller.validation import is_other_kind, validate_documents
    from strategies.preview import preview

    everything = read_files(file)
    # A Deployment (or a Service) beside the Rollout: read, not validated as ours.
    others = [d for d in everything if is_other_kind(d)]
    docs = [d for d in everything if not is_other_kind(d)]
    problems = validate_documents(docs, check_references=False)
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(Exit.USAGE)
    rollouts = [with_workload(d.model, others, file) for d in docs if isinstance(d.model, Rollout)]
    if not rollouts:
        typer.echo(f"error: no Rollout in {', '.join(map(str, file))}", err=True)
        raise typer.Exit(Exit.USAGE)
    plans = [(r, preview(r)) for r in rollouts]
    if output is Output.json:
        typer.echo(
            json.dumps(
                [
                    {
                        "rollout": r.metadata.name,
                        "strategy": r.spec.strategy.name,
                        "replicas": r.spec.replicas,
                        **(
                            {_ref_key(r.spec.workload_ref.kind): r.spec.workload_ref.name}
                            if r.spec.workload_ref is not None
                            else {}
                        ),
                        "steps": [row.to_dict() for row in rows],
                    }
                    for r, rows in plans
                ],
                indent=2,
            )
        )
        return
    from rich.table import Table
    from rich.text import Text

    out = console()
    for rollout, rows in plans:
        ref = rollout.spec.workload_ref
        source = f", pod template of {ref.kind} {ref.name}" if ref is not None else ""
        size = "Nodes" if ref is not None and ref.kind == "DaemonSet" else "replicas"
        table = Table(
            title=f"{rollout.metadata.name} ({rollout.spec.strategy.name}, "
            f"{rollout.spec.replicas} {size}{source})"
        )
        data = [row.to_dict() for row in rows]
        columns = list(data[0]) if data else []
        for column in columns:
            table.add_column(column)
        for item in data:
            table.add_row(*(Text(_cell(item[c])) for c in columns))
        out.print(table)


def _ref_key(kind: str) -> str:
    """``deployment``, ``statefulSet``, ``daemonSet``: the JSON key naming the workload."""
    return kind[0].lower() + kind[1:]


def with_workload(rollout: Rollout, others: list[Parsed], files: list[Path]) -> Rollout:
    """A ``workloadRef`` Rollout with the pod template, selector and (when it sets none)
    the replicas of its Deployment, found among the other documents of the files; a
    Rollout with its own template as it is. Exits 2 when the Deployment is not there."""
    from controller.workload import resolve

    ref = rollout.spec.workload_ref
    if ref is None:
        return rollout
    if ref.kind in ("StatefulSet", "DaemonSet"):
        # The plan needs only the strategy and the size: spec.replicas (a DaemonSet's
        # Node count) as given in the Rollout's file.
        return rollout
    namespace = rollout.metadata.namespace
    found = [
        d.raw
        for d in others
        if d.kind == "Deployment"
        and str(d.raw.get("apiVersion", "")) == "apps/v1"
        and d.name == ref.name
        and (
            not namespace
            or not (d.raw.get("metadata") or {}).get("namespace")
            or (d.raw.get("metadata") or {}).get("namespace") == namespace
        )
    ]
    if not found:
        typer.echo(
            f"error: Rollout {rollout.metadata.name!r} delivers Deployment {ref.name!r} "
            f"(spec.workloadRef), which is not in {', '.join(map(str, files))}: the pod "
            "template and the replicas are the Deployment's, so give its file too, e.g. "
            f"deployctl plan -f rollout.yaml -f deployment.yaml",
            err=True,
        )
        raise typer.Exit(Exit.USAGE)
    resolved, problems = resolve(rollout, found[0])
    if resolved is None:
        for problem in problems:
            typer.echo(f"error: Rollout {rollout.metadata.name}: {problem}", err=True)
        raise typer.Exit(Exit.USAGE)
    return resolved


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)
