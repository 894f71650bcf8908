"""``deployctl analyze --rules FILE``: backtest Prometheus alerting rules as canary gates.

Each selected rule's expression is restricted to one revision (``--namespace``,
``--canary-hash``) on its parsed PromQL (``controller.analysis.alertrules``), replayed
over ``--since`` of history at ``--step``, and judged like Prometheus judges it: the
alert fires once its condition held for the rule's own ``for``. Exit 0: no rule would
have fired; 1: one would; 2: a rule cannot be used (named); 4: Prometheus unreachable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from controller.exitcodes import Exit
from controller.times import timestamp


def backtest_rules(
    *,
    rules_file: Path,
    rule_names: list[str],
    namespace: str | None,
    canary_hash: str | None,
    since: float,
    step: float,
    prometheus_url: str,
    timeout: float,
    json_output: bool,
) -> None:
    from controller.analysis.alertrules import (
        Firing,
        RulesError,
        load_rules,
        scope,
        select_rules,
        would_fire,
    )
    from controller.analysis.prometheus import PrometheusMeasurer, redact_url
    from controller.analysis.values import QueryFailure

    if not namespace or not canary_hash:
        typer.echo(
            "error: --rules needs --namespace and --canary-hash: the revision to judge", err=True
        )
        raise typer.Exit(Exit.USAGE)
    try:
        text = rules_file.read_text()
    except OSError as exc:
        typer.echo(f"error: cannot read {rules_file}: {exc.strerror}", err=True)
        raise typer.Exit(Exit.USAGE) from None
    try:
        rules = select_rules(load_rules(text, source=str(rules_file)), rule_names)
        scoped = {
            r.name: scope(r, {"namespace": namespace, "revision": canary_hash}) for r in rules
        }
    except RulesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(Exit.USAGE) from None
    end = datetime.now(UTC)
    start = end - timedelta(seconds=since)
    fetch = PrometheusMeasurer(default_address=prometheus_url, range_budget=timeout)
    results: list[tuple[str, str, float, Firing]] = []
    for rule in rules:
        outcome = fetch.measure_range(
            scoped[rule.name], address=None, start=start, end=end, step=step, timeout=timeout
        )
        if isinstance(outcome, QueryFailure):
            code = Exit.UNREACHABLE if outcome.kind == "unavailable" else Exit.USAGE
            typer.echo(f"error: rule {rule.name}: {outcome.message}", err=True)
            raise typer.Exit(code)
        held: dict[float, float] = {}
        for series in outcome.series:
            for at, value in series.points:
                held[at] = max(held.get(at, value), value)
        samples = []
        moment = start.timestamp()
        while moment <= end.timestamp() + 1e-6:
            key = min(held, key=lambda t: abs(t - moment), default=None)
            hit = key is not None and abs(key - moment) < step / 2
            samples.append((moment, hit, held[key] if hit and key is not None else None))
            moment += step
        results.append(
            (rule.name, scoped[rule.name], rule.for_seconds, would_fire(rule, samples, step=step))
        )

    if json_output:
        typer.echo(
            json.dumps(
                {
                    "prometheus": redact_url(prometheus_url),
                    "rules": [
                        {
                            "rule": name,
                            "query": query,
                            "for": for_s,
                            "firedAt": _iso(f.fired_at),
                            "longestHeldSeconds": f.longest_seconds,
                            "peak": f.peak,
                        }
                        for name, query, for_s, f in results
                    ],
                },
                indent=2,
            )
        )
    else:
        table = Table(title=Text(f"alert rules for revision {canary_hash} in {namespace}"))
        for column in ("RULE", "FOR", "WOULD HAVE FIRED", "LONGEST HELD", "PEAK"):
            table.add_column(column)
        for name, _query, for_s, f in results:
            table.add_row(
                Text(name),
                f"{for_s:g}s",
                _iso(f.fired_at) or "never",
                f"{f.longest_seconds:g}s",
                "-" if f.peak is None else f"{f.peak:.4g}",
            )
        console = Console()
        console.print(table)
        for name, query, _for_s, _f in results:
            console.print(Text(f"{name}: {query}"), highlight=False, soft_wrap=True)
    if any(f.fired_at is not None for *_rest, f in results):
        raise typer.Exit(Exit.ROLLED_BACK)


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return timestamp(datetime.fromtimestamp(moment, UTC))
