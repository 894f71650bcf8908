"""``deployctl convert``: rewrite Argo Rollouts manifests as deployctl ones (no cluster).

The converted file goes to stdout (or ``--output-file``); every finding goes to stderr
as ``FILE:LINE: PATH: KIND: what and why``. Exit 0 when everything was converted (notes
included), 1 when something was not (the output then needs a person's decision, and
``deployctl validate`` says what is missing), 2 for a file that cannot be read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from controller.exitcodes import Exit


def convert(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="Argo Rollouts YAML (multi-document ok); - = stdin")
    ],
    output_file: Annotated[
        Path | None,
        typer.Option("--output-file", "-o", help="Write the result here instead of stdout"),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only what could not be converted")
    ] = False,
) -> None:
    """Rewrite Argo Rollouts manifests as deployctl ones; name what could not be converted."""
    import yaml

    from controller.argo.convert import convert_text

    source = "<stdin>" if str(file) == "-" else str(file)
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(Exit.USAGE) from None
    try:
        result = convert_text(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}: " if mark else f"{source}: "
        typer.echo(f"error: {where}invalid YAML: {getattr(exc, 'problem', None) or exc}", err=True)
        raise typer.Exit(Exit.USAGE) from None
    if output_file is not None:
        output_file.write_text(result.text)
    else:
        sys.stdout.write(result.text)
    for finding in result.findings:
        if not quiet or finding.kind == "not converted":
            typer.echo(finding.text(source), err=True)
    missing = sum(f.kind == "not converted" for f in result.findings)
    summary = (
        f"converted {result.converted} document(s), passed {result.passed_through} through"
        + (
            f"; {missing} construct(s) not converted (see above and docs/argo.md)"
            if missing
            else ""
        )
    )
    typer.echo(summary, err=True)
    if missing:
        raise typer.Exit(Exit.ROLLED_BACK)
