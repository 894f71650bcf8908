"""Alert rules as gates: scoping a rule's parsed PromQL to one revision, judging it
like Prometheus does, and ``deployctl analyze --rules`` against the real Prometheus."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from typer.testing import CliRunner

from controller.analysis.alertrules import (
    AlertRule,
    RulesError,
    judge_alert,
    load_rules,
    presence_queries,
    scope,
    scoped,
    select_rules,
    would_fire,
)
from controller.analysis.values import QueryResult, Sample
from controller.cli import app
from tests.analysis.test_prometheus_real import load as load  # noqa: F401 - the fixture
from tests.waiting import wait_until

SEED_RULES = """
groups:
  - name: service-health
    rules:
      - record: job:http_requests:rate1m
        expr: sum(rate(http_requests_total[1m]))
      - alert: HighErrorRate
        expr: |
          sum(rate(http_requests_total{code=~"5.."}[1m]))
            / sum(rate(http_requests_total[1m])) > 0.05
        for: 2m
        labels: {severity: page}
      - alert: SlowResponses
        expr: |
          histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 2
        for: 5m
"""
CANARY = {"namespace": "shop", "revision": "x7k2m9qpdr"}


def rule(expr: str, name: str = "R", for_seconds: float = 0) -> AlertRule:
    return AlertRule(name, expr, for_seconds, "g")


def selectors(expr: str) -> list[dict[str, tuple[str, str]]]:
    found: list[dict[str, tuple[str, str]]] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append({m.name: (str(m.op), m.value) for m in node.matchers.matchers})
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_the_seed_rules_file_loads_alerts_only_with_their_for() -> None:
    rules = load_rules(SEED_RULES)
    assert [(r.name, r.for_seconds) for r in rules] == [
        ("HighErrorRate", 120.0),
        ("SlowResponses", 300.0),
    ]
    with pytest.raises(RulesError, match="no alerting rule named Nope"):
        select_rules(rules, ["Nope"])


@pytest.mark.parametrize(
    "expr",
    [
        'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))',
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m]))) > 2",
        "up == 0 and on(job) (count by (job) (up) > 1)",
        "max_over_time(rate(x[1m])[5m:30s]) > 1",
        "rate(x[5m] offset 10m) > 2 * rate(x[5m])",
        'absent(up{job="api"})',
        '{__name__=~"http_.*_total",code="500"} > 0',
    ],
)
def test_every_selector_gets_the_revision_and_nothing_else_changes(expr: str) -> None:
    scoped = scope(rule(expr), CANARY)
    found = selectors(scoped)
    assert found and all(
        s["namespace"] == ("MatchOp.Equal", "shop")
        and s["revision"] == ("MatchOp.Equal", "x7k2m9qpdr")
        for s in found
    )
    # The structure is the same: removing our matchers gives back the original selectors.
    original = selectors(expr)
    assert [{k: v for k, v in s.items() if k not in CANARY} for s in found] == original
    assert ("offset" in scoped) == ("offset" in expr)


def test_braces_survive_and_quotes_in_existing_values_are_refused_not_reprinted() -> None:
    scoped = scope(rule('sum(rate(x{path="/a}b{c"}[1m])) > 1'), CANARY)
    assert selectors(scoped)[0]["path"] == ("MatchOp.Equal", "/a}b{c")
    with pytest.raises(RulesError, match="rule R: the value of path holds a quote"):
        scope(rule('sum(rate(x{path="/a\\"b"}[1m])) > 1'), CANARY)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("vector(1) > 0", "no series selector"),
        ("sum(rate(x[1m]", "does not parse"),
        ('rate(x{revision="abc"}[1m]) > 1', "already sets revision"),
    ],
)
def test_a_rule_that_cannot_be_scoped_is_a_clear_error_naming_it(expr: str, message: str) -> None:
    with pytest.raises(RulesError, match=f"rule Broken: .*{message}"):
        scope(rule(expr, name="Broken"), CANARY)


def test_an_unsafe_revision_value_is_refused_not_pasted() -> None:
    with pytest.raises(RulesError, match="cannot restrict"):
        scope(rule("up > 0"), {"revision": 'x"} or vector(1) #'})


def test_would_fire_only_after_the_condition_held_for_its_for() -> None:
    r = rule("x", for_seconds=3)
    held = [(float(t), 2 <= t <= 6, 0.3 if 2 <= t <= 6 else None) for t in range(10)]
    firing = would_fire(r, held, step=1)
    assert firing.fired_at == 5.0 and firing.longest_seconds == 4.0 and firing.peak == 0.3
    blip = [(float(t), t in (2, 3, 5, 6), 1.0) for t in range(10)]
    assert would_fire(r, blip, step=1).fired_at is None  # never held 3 s in a row


@pytest.mark.prometheus
def test_analyze_rules_backtests_the_seed_rules_for_one_revision(
    prometheus,
    demo_app,
    load,
    tmp_path: Path,  # noqa: F811
) -> None:
    bad, good = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    ns = "t-rules"
    load.start(demo_app({"DEMO_ERROR_RATE": "0.3"}, labels={"namespace": ns, "revision": bad}).url)
    load.start(demo_app(labels={"namespace": ns, "revision": good}).url)
    began = time.time()
    for rev in (bad, good):
        prometheus.wait_for_series(
            f'http_requests_total{{namespace="{ns}",revision="{rev}"}}', deadline=30
        )
    # The seed rules with short windows and `for`, as a test can afford.
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        SEED_RULES.replace("[1m]", "[5s]").replace("for: 2m", "for: 3s").replace("[5m]", "[5s]")
    )
    wait_until(lambda: time.time() - began > 12 or None, timeout=30, interval=0.2, what="history")

    def analyze(rev: str) -> tuple[int, dict[str, object]]:
        result = CliRunner().invoke(
            app,
            [
                "analyze",
                "--rules",
                str(rules),
                "--rule",
                "HighErrorRate",
                "--namespace",
                ns,
                "--canary-hash",
                rev,
                "--since",
                "15s",
                "--step",
                "1s",
                "--prometheus-url",
                prometheus.url,
                "-o",
                "json",
            ],
        )
        return result.exit_code, json.loads(result.output)

    code, report = analyze(bad)
    assert code == 1, report
    entry: dict[str, Any] = report["rules"][0]  # type: ignore[index]
    assert entry["firedAt"] and f'revision="{bad}"' in entry["query"] and entry["peak"] > 0.05
    code, report = analyze(good)
    assert code == 0, report
    assert report["rules"][0]["firedAt"] is None  # type: ignore[index]

    result = CliRunner().invoke(
        app,
        [
            "analyze",
            "--rules",
            str(rules),
            "--rule",
            "Nope",
            "--namespace",
            ns,
            "--canary-hash",
            bad,
            "--prometheus-url",
            prometheus.url,
        ],
    )
    assert result.exit_code == 2 and "no alerting rule named Nope" in result.output


T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_an_alert_is_judged_pending_until_its_for_then_failed() -> None:
    slow = rule("x > 2", name="SlowResponses", for_seconds=60)
    firing = QueryResult("q", (Sample({"le": "+Inf"}, 2.7),))
    quiet = QueryResult("q")
    first = judge_alert("alerts/SlowResponses", slow, firing, breach_since=None, now=T0)
    assert first.phase == "Pending" and first.breach_since == T0
    later = T0 + timedelta(seconds=61)
    fired = judge_alert("alerts/SlowResponses", slow, firing, breach_since=T0, now=later)
    assert fired.phase == "Failed" and fired.value == "2.7"
    assert "alert SlowResponses would fire" in fired.message and "held 61s" in fired.message
    passed = judge_alert("alerts/SlowResponses", slow, quiet, breach_since=T0, now=later)
    assert passed.phase == "Successful" and passed.breach_since is None
    empty = judge_alert("a", slow, quiet, breach_since=None, now=T0, has_data=False)
    assert empty.phase == "Inconclusive" and "none of its series" in empty.message


def test_presence_queries_are_the_rules_selectors_alone_scoped() -> None:
    [high] = select_rules(load_rules(SEED_RULES), ["HighErrorRate"])
    # As far back as the rule's rate window: a revision younger than that is not judged.
    assert presence_queries(high, CANARY) == [
        'http_requests_total{code=~"5..",namespace="shop",revision="x7k2m9qpdr"} offset 1m',
        'http_requests_total{namespace="shop",revision="x7k2m9qpdr"} offset 1m',
    ]
    assert presence_queries(rule("up == 0"), CANARY) == [
        'up{namespace="shop",revision="x7k2m9qpdr"}'
    ]


def test_scoped_queries_are_parsed_once_per_rule_and_revision() -> None:
    [high] = select_rules(load_rules(SEED_RULES), ["HighErrorRate"])
    first = scoped(high, CANARY)
    assert first.query == scope(high, CANARY)
    assert first.presence == tuple(presence_queries(high, CANARY))
    assert scoped(high, dict(CANARY)) is first  # the cached answer, not a second parse
    other = scoped(high, {**CANARY, "revision": "other1"})
    assert other is not first and 'revision="other1"' in other.query


def alias_bomb(levels: int = 8, fan_out: int = 10) -> str:
    """A rules file of a few hundred bytes standing for fan_out**levels rules."""
    lines = ['r0: &r0 {alert: X, expr: "up > 0"}']
    for level in range(1, levels + 1):
        lines.append(f"r{level}: &r{level} [" + ", ".join([f"*r{level - 1}"] * fan_out) + "]")
    return "\n".join(lines) + f"\ngroups: [{{name: g, rules: *r{levels}}}]\n"


def test_yaml_aliases_are_refused_before_they_are_expanded() -> None:
    text = alias_bomb()
    assert len(text) < 1024  # 10**8 rules once expanded
    with pytest.raises(RulesError) as refused:
        load_rules(text, source="ConfigMap shop/alerts key rules.yaml")
    assert str(refused.value) == (
        "ConfigMap shop/alerts key rules.yaml: line 2: YAML aliases (*name) are not accepted "
        "in rules files (limit yamlAliases: 0); write the rules out"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: []\n# " + "x" * (600 * 1024), r"is 600 KiB \(limit alertRulesFile: 512 KiB\)"),
        (
            "groups: [{name: g, rules: [" + ", ".join(["{record: r, expr: up}"] * 1001) + "]}]",
            r"has 1001 rules \(limit alertRulesPerFile: 1000\)",
        ),
        (
            "groups: [{name: g, rules: [{alert: Long, expr: '" + "1+" * 5000 + "1'}]}]",
            r"rule Long: the expression has 10001 characters "
            r"\(limit alertRuleExpression: 8192 chars\)",
        ),
        ("[" * 100 + "]" * 100, "nest"),
    ],
    ids=["file-size", "rule-count", "expression-length", "nesting"],
)
def test_rules_files_are_bounded_and_the_error_names_the_limit(text: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        load_rules(text)
