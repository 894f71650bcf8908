"""``deployctl analyze``: backtest an AnalysisTemplate against Prometheus history.

Registered on the app by ``controller/cli.py``. Reads a template file, fills its args
from ``--arg k=v``, replays every metric over ``--since`` of history at ``--step``
(``controller.analysis.backtest``) and prints when each metric would have failed or gone
inconclusive, with the evidence, so thresholds can be tuned before they guard a rollout.

Exit codes (``controller.exitcodes``): 0 every metric would have passed; 1 one would
have failed (or had no data / gone inconclusive); 2 bad input (YAML, validation, args,
a query Prometheus rejects); 4 Prometheus unreachable.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from controller.exitcodes import Exit

# The engine (pydantic models, PromQL templating, the Prometheus client) is imported
# inside the functions: `deployctl --help` must not pay for it.
if TYPE_CHECKING:
    from controller.analysis.backtest import BacktestReport, MetricReport
    from controller.api.analysis import AnalysisTemplate

DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"


class AnalyzeOutput(StrEnum):
    table = "table"
    json = "json"


def _fail(message: str, code: Exit) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _templates(file: Path) -> list[AnalysisTemplate]:
    from controller.api.analysis import AnalysisTemplate
    from controller.validation import load_documents

    try:
        text = file.read_text()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}", Exit.USAGE) from None
    docs = load_documents(text, source=str(file))
    problems = [p for d in docs for p in d.problems]
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(Exit.USAGE)
    templates = [d.model for d in docs if isinstance(d.model, AnalysisTemplate)]
    if not templates:
        raise _fail(f"no AnalysisTemplate in {file}", Exit.USAGE)
    return templates


def _args(pairs: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _fail(f"--arg {pair!r}: expected NAME=VALUE", Exit.USAGE)
        args[name] = value
    return args


def _seconds(option: str, value: str) -> float:
    from controller.api.duration import DurationError, parse_duration

    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise _fail(f"{option}: {exc}", Exit.USAGE) from None
    if seconds <= 0:
        raise _fail(f"{option}: must be more than 0", Exit.USAGE)
    return seconds


def analyze(
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="AnalysisTemplate YAML file", show_default=False),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="A Prometheus rules file: backtest its alerting rules for one revision",
            show_default=False,
        ),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option("--rule", help="With --rules: only this alert (repeatable)"),
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", help="Template argument NAME=VALUE (repeatable)"),
    ] = None,
    since: Annotated[str, typer.Option(help="How much history to replay, e.g. 6h")] = "6h",
    step: Annotated[str, typer.Option(help="One measurement per step, e.g. 1m")] = "1m",
    prometheus_url: Annotated[
        str,
        typer.Option(envvar="DEPLOYCTL_PROMETHEUS_URL", help="Prometheus base URL"),
    ] = DEFAULT_PROMETHEUS_URL,
    canary_hash: Annotated[
        str | None, typer.Option(help="Value of {{canary.hash}}: the revision to judge")
    ] = None,
    stable_hash: Annotated[
        str | None, typer.Option(help="Value of {{stable.hash}} (relativeTo: stable)")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Value of {{rollout.namespace}} (presets use it)")
    ] = None,
    rollout: Annotated[str | None, typer.Option(help="Value of {{rollout.name}}")] = None,
    output: Annotated[AnalyzeOutput, typer.Option("--output", "-o")] = AnalyzeOutput.table,
    timeout: Annotated[
        float, typer.Option(help="Seconds to keep retrying an unreachable Prometheus")
    ] = 10.0,
) -> None:
    """Replay an AnalysisTemplate over Prometheus history: when would it have failed?"""
    if (file is None) == (rules is None):
        raise _fail("give -f TEMPLATE.yaml or --rules RULES.yaml (one of them)", Exit.USAGE)
    if rules is not None:
        from controller.commands.analyze_rules import backtest_rules

        backtest_rules(
            rules_file=rules,
            rule_names=rule or [],
            namespace=namespace,
            canary_hash=canary_hash,
            since=_seconds("--since", since),
            step=_seconds("--step", step),
            prometheus_url=prometheus_url,
            timeout=timeout,
            json_output=output is AnalyzeOutput.json,
        )
        return
    assert file is not None
    from controller.analysis.backtest import backtest
    from controller.analysis.prometheus import PrometheusMeasurer, redact_url
    from controller.analysis.templating import QueryContext, TemplateError

    templates = _templates(file)
    args = _args(arg or [])
    since_s = _seconds("--since", since)
    step_s = _seconds("--step", step)
    context = QueryContext(
        canary_hash=canary_hash,
        stable_hash=stable_hash,
        rollout_name=rollout,
        rollout_namespace=namespace,
    )
    end = datetime.now(UTC)
    start = end - timedelta(seconds=since_s)
    fetch = PrometheusMeasurer(default_address=prometheus_url, range_budget=timeout)
    reports: list[tuple[str, BacktestReport]] = []
    for template in templates:
        name = template.metadata.name or str(file)
        try:
            report = backtest(
                template,
                args=args,
                context=context,
                fetch=fetch,
                start=start,
                end=end,
                step=step_s,
            )
        except TemplateError as exc:
            raise _fail(
                f"AnalysisTemplate {name}: {exc} (set values with --arg NAME=VALUE, "
                "--canary-hash, --stable-hash, --namespace, --rollout)",
                Exit.USAGE,
            ) from None
        reports.append((name, report))
    _print(reports, output=output, prometheus=redact_url(prometheus_url))
    for _, report in reports:
        if report.unavailable is not None:
            raise _fail(report.unavailable.message, Exit.UNREACHABLE)
    rejected = [
        m.failure
        for _, r in reports
        for m in r.metrics
        if m.failure is not None and m.failure.kind != "unavailable"
    ]
    for failure in rejected:
        typer.echo(f"error: {failure.message}", err=True)
    if rejected:
        raise typer.Exit(Exit.USAGE)
    if not all(report.passed for _, report in reports):
        raise typer.Exit(Exit.ROLLED_BACK)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment is not None else "-"


def _metric_json(metric: MetricReport) -> dict[str, object]:
    return {
        "metric": metric.name,
        "outcome": metric.outcome,
        "query": metric.query,
        "measurements": metric.measurements,
        "verdicts": dict(metric.verdicts),
        "firstData": _when(metric.first_data) if metric.first_data else None,
        "events": [
            {"at": _when(e.at), "phase": e.phase, "value": e.value, "message": e.message}
            for e in metric.events
        ],
        "error": metric.failure.message if metric.failure is not None else None,
    }


def _print(
    reports: list[tuple[str, BacktestReport]], *, output: AnalyzeOutput, prometheus: str
) -> None:
    from controller.api.duration import format_duration

    if output is AnalyzeOutput.json:
        typer.echo(
            json.dumps(
                [
                    {
                        "template": name,
                        "prometheus": prometheus,
                        "start": _when(r.start),
                        "end": _when(r.end),
                        "step": format_duration(r.step),
                        "passed": r.passed,
                        "metrics": [_metric_json(m) for m in r.metrics],
                    }
                    for name, r in reports
                ],
                indent=2,
            )
        )
        return
    # A fixed width keeps the table readable in CI logs, where there is no terminal.
    console = Console(width=int(os.environ.get("COLUMNS", "140")))
    for name, report in reports:
        table = Table(
            title=f"{name}: {_when(report.start)} .. {_when(report.end)}, "
            f"step {format_duration(report.step)}"
        )
        for column in ("metric", "outcome", "measurements", "first event", "evidence", "events"):
            table.add_column(column)
        for metric in report.metrics:
            event = metric.first_event
            if metric.failure is not None:
                evidence = metric.failure.message
            elif event is not None:
                evidence = event.message
            elif metric.measurements == 0:
                evidence = "no data in this window"
            else:
                evidence = "within threshold throughout"
            table.add_row(
                Text(metric.name),
                Text(metric.outcome),
                str(metric.measurements),
                _when(event.at) if event is not None else "-",
                Text(evidence),  # Prometheus's words: never rich markup
                str(len(metric.events)),
            )
        console.print(table)
