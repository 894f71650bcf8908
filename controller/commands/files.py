"""``deployctl validate`` and ``deployctl plan``: work on files, need no cluster."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from controller.exitcodes import Exit

if TYPE_CHECKING:  # the models load inside the commands: `deployctl --help` stays fast
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
    from controller.validation import validate_documents

    docs = read_files(file)
    problems = validate_documents(docs, check_references=check_references)
    if not docs:
        typer.echo("error: no documents found", err=True)
        raise typer.Exit(Exit.ROLLED_BACK)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {len(docs)} document(s)", err=True)
        raise typer.Exit(Exit.ROLLED_BACK)
    typer.echo(f"ok: {len(docs)} document(s) valid")


def plan(
    file: Annotated[Path, typer.Option("--file", "-f", help="A Rollout YAML file")],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Print the steps the strategy will take, without any cluster."""
    from controller.api import Rollout
    from controller.validation import validate_documents
    from strategies.preview import preview

    docs = read_files([file])
    problems = validate_documents(docs, check_references=False)
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(Exit.USAGE)
    rollouts = [d.model for d in docs if isinstance(d.model, Rollout)]
    if not rollouts:
        typer.echo(f"error: no Rollout in {file}", err=True)
        raise typer.Exit(Exit.USAGE)
    plans = [(r, preview(r)) for r in rollouts]
    if output is Output.json:
        typer.echo(
            json.dumps(
                [
                    {
                        "rollout": r.metadata.name,
                        "strategy": r.spec.strategy.name,
                        "steps": [row.to_dict() for row in rows],
                    }
                    for r, rows in plans
                ],
                indent=2,
            )
        )
        return
    console = Console()
    for rollout, rows in plans:
        table = Table(
            title=f"{rollout.metadata.name or 'rollout'} ({rollout.spec.strategy.name}, "
            f"{rollout.spec.replicas} replicas)"
        )
        data = [row.to_dict() for row in rows]
        columns = list(data[0]) if data else []
        for column in columns:
            table.add_column(column)
        for item in data:
            table.add_row(*(Text(_cell(item[c])) for c in columns))
        console.print(table)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)
