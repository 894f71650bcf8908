"""Prometheus alerting rules as rollout gates: read a standard rules file and restrict
each rule's expression to one revision, then judge it over history.

The same rules file that pages people (``HighErrorRate``: 5xx ratio above 5% for 2m;
``SlowResponses``: p90 above 2 s for 5m) decides whether a canary is healthy. A rule's
expression is about the whole service; to judge only the canary, every series selector
in it gets the matchers ``namespace="<ns>"`` and ``revision="<hash>"``. That is done on
the **parsed** PromQL, never by pasting strings into the query: the expression is parsed
with ``promql-parser`` (Python bindings of the Rust parser used by GreptimeDB: a
complete PromQL grammar, wheels for CPython 3.11, and a ``transform`` over the syntax
tree; the alternative, a grammar of our own, would lag behind PromQL), each
``VectorSelector`` is replaced by one carrying the extra matchers, and the result is
parsed again and checked: every selector must carry exactly our matchers. Its printer
(0.12) does not escape quotes or backslashes inside label values, so the values we add
are restricted to label-safe characters, and a rule whose existing values hold a quote,
backslash or newline is refused rather than re-printed wrongly. An expression that
cannot be scoped (it does not parse, it has no selector at all such as ``vector(1)``,
it already pins ``revision``, or such a value) is an error naming the rule.

Rules files may come from any ConfigMap author, so reading one is bounded
(``controller.limits``): YAML aliases are refused before they are expanded (an 11 KiB
file of aliases stands for millions of rules), and the file's size, its number of rules
and each expression's length are capped; the error names the limit.

Called by ``deployctl analyze --rules FILE`` (backtest) and, for ``alertRules`` metrics,
by the measurement loop (``judge_alert``); pure except for the parser.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import promql_parser
import yaml

from controller.analysis.values import QueryResult
from controller.analysis.verdict import Judgement, fmt
from controller.api.duration import DurationError, parse_duration
from controller.limits import RULE_EXPRESSION, RULES_FILE, RULES_PER_FILE, YAML_ALIASES

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")
_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


class RulesError(ValueError):
    """A rules file or rule that cannot be used; the message names the rule."""


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    for_seconds: float
    group: str


# libyaml where PyYAML has it: an order of magnitude faster on a large file.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Real rules files nest five deep (groups, a group, rules, a rule, labels); the
# composer recurses per level, in C with libyaml, so depth is checked before composing.
_MAX_DEPTH = 64


def _parse_yaml(text: str, source: str) -> Any:
    """The document, after one pass over its events that refuses aliases (before they
    are expanded) and absurd nesting."""
    size = len(text.encode("utf-8", "replace"))
    if size > RULES_FILE.value:
        raise RulesError(f"{source}: the file is {size // 1024} KiB ({RULES_FILE})")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise RulesError(
                    f"{source}: line {line}: YAML aliases (*name) are not accepted in rules "
                    f"files ({YAML_ALIASES}); write the rules out"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _MAX_DEPTH:
                    raise RulesError(f"{source}: the YAML nests more than {_MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not YAML: {exc}") from None


def load_rules(text: str, *, source: str = "rules") -> list[AlertRule]:
    """The alerting rules (not recording rules) of a Prometheus rules file."""
    document = _parse_yaml(text, source)
    if not isinstance(document, Mapping) or not isinstance(document.get("groups"), list):
        raise RulesError(f"{source}: a Prometheus rules file has a top-level 'groups' list")
    groups = [g for g in document["groups"] if isinstance(g, Mapping)]
    total = sum(len(g.get("rules") or []) for g in groups if isinstance(g.get("rules"), list))
    if total > RULES_PER_FILE.value:
        raise RulesError(f"{source}: the file has {total} rules ({RULES_PER_FILE})")
    rules: list[AlertRule] = []
    for group in groups:
        group_name = str(group.get("name", "?"))[:253]
        listed = group.get("rules")
        for raw in listed if isinstance(listed, list) else []:
            if not isinstance(raw, Mapping) or "alert" not in raw:
                continue  # recording rules are not gates
            name = str(raw["alert"])[:253]
            if not isinstance(raw.get("expr"), str | int | float):
                raise RulesError(f"{source}: rule {name}: no 'expr'")
            if len(str(raw["expr"])) > RULE_EXPRESSION.value:
                raise RulesError(
                    f"{source}: rule {name}: the expression has {len(str(raw['expr']))} "
                    f"characters ({RULE_EXPRESSION})"
                )
            try:
                for_seconds = parse_duration(raw.get("for", "0s"))
            except DurationError as exc:
                raise RulesError(f"{source}: rule {name}: for: {exc}") from None
            rules.append(AlertRule(name, str(raw["expr"]), for_seconds, group_name))
    return rules


def select_rules(rules: Sequence[AlertRule], names: Sequence[str]) -> list[AlertRule]:
    """The rules named (all when ``names`` is empty), in the order given."""
    if not names:
        return list(rules)
    by_name = {r.name: r for r in rules}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(sorted(by_name)) or "none"
        raise RulesError(f"no alerting rule named {', '.join(missing)} (rules: {known})")
    return [by_name[n] for n in names]


def _matcher_text(name: str, op: str, value: str) -> str:
    return f"{name}{op}{json.dumps(value)}"


def _selector_text(
    node: Any, extra: Mapping[str, str], *, lookback: timedelta | None = None
) -> str:
    """The selector ``node`` with the ``extra`` matchers added, printed as PromQL.

    With ``lookback`` the selector looks that far back (``offset``; nothing for zero)
    instead of keeping its own ``offset`` and ``@``.
    """
    parts: list[str] = []
    for matcher in node.matchers.matchers:
        if node.name and matcher.name == "__name__":
            continue  # the name is written in front; the parser refuses it twice
        parts.append(_matcher_text(matcher.name, _OPS[str(matcher.op)], matcher.value))
    parts += [_matcher_text(k, "=", v) for k, v in extra.items()]
    text = f"{node.name or ''}{{{','.join(parts)}}}"
    if lookback is not None:
        return text + (f" offset {promql_parser.display_duration(lookback)}" if lookback else "")
    if node.offset is not None:
        offset: timedelta = node.offset
        seconds = offset.total_seconds()
        if seconds < 0:
            text += f" offset -{promql_parser.display_duration(-offset)}"
        else:
            text += f" offset {promql_parser.display_duration(offset)}"
    if node.at is not None:
        text += f" {node.at}"
    return text


def _selectors(expr: Any) -> list[Any]:
    found: list[Any] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(expr, visit)
    return found


def scope(rule: AlertRule, matchers: Mapping[str, str]) -> str:
    """``rule.expr`` with ``matchers`` added to every series selector (parsed, checked)."""
    for key, value in matchers.items():
        if not _SAFE_VALUE.match(value):
            raise RulesError(f"rule {rule.name}: cannot restrict to {key}={value!r}")
    try:
        parsed = promql_parser.parse(rule.expr)
    except (ValueError, TypeError) as exc:
        raise RulesError(f"rule {rule.name}: expression does not parse: {exc}") from None
    selectors = _selectors(parsed)
    if not selectors:
        raise RulesError(
            f"rule {rule.name}: its expression has no series selector, so it cannot be "
            f"restricted to one revision: {rule.expr.strip()}"
        )
    for node in selectors:
        awkward = [m.name for m in node.matchers.matchers if set(m.value) & {'"', "\\", "\n"}]
        if awkward:
            # promql-parser prints label values without escaping them; re-printing such
            # a value would change the query, so refuse rather than guess.
            raise RulesError(
                f"rule {rule.name}: the value of {', '.join(awkward)} holds a quote, "
                "backslash or newline, which the PromQL rewriter cannot carry safely; "
                "simplify the matcher (e.g. a character class instead of an escape)"
            )
        pinned = sorted(m.name for m in node.matchers.matchers if m.name in matchers)
        if pinned:
            raise RulesError(
                f"rule {rule.name}: a selector already sets {', '.join(pinned)}, so it "
                "cannot be restricted to the revision under test"
            )

    def replace(node: Any) -> Any:
        if isinstance(node, promql_parser.VectorSelector):
            return promql_parser.parse(_selector_text(node, matchers))
        return None

    try:
        rewritten = str(promql_parser.transform(parsed, replace))
        check = promql_parser.parse(rewritten)
    except (ValueError, TypeError) as exc:
        raise RulesError(f"rule {rule.name}: cannot be restricted: {exc}") from None
    for node in _selectors(check):
        have = {m.name: (str(m.op), m.value) for m in node.matchers.matchers}
        for key, value in matchers.items():
            if have.get(key) != ("MatchOp.Equal", value):
                raise RulesError(f"rule {rule.name}: rewriting lost the {key} matcher")
    return rewritten


def _longest_range(expr: Any) -> timedelta:
    longest = timedelta(0)

    def visit(node: Any) -> bool:
        nonlocal longest
        if isinstance(node, promql_parser.MatrixSelector):
            longest = max(longest, node.range)
        return True

    promql_parser.walk(expr, visit)
    return longest


def presence_queries(rule: AlertRule, matchers: Mapping[str, str]) -> list[str]:
    """Each series selector of the rule alone, restricted by ``matchers`` and looking as
    far back as the rule's longest range (``offset``): whether the revision has had any
    of the rule's series for a whole window. An alert that is not firing because the
    revision is too new for its rate windows must not pass a canary (missing data never
    promotes): a 5xx counter that has not yet been scraped twice makes no rate at all."""
    parsed = promql_parser.parse(rule.expr)
    window = _longest_range(parsed)
    queries: list[str] = []
    for node in _selectors(parsed):
        text = _selector_text(node, matchers, lookback=window)
        promql_parser.parse(text)  # our own output must parse
        if text not in queries:
            queries.append(text)
    return queries


@dataclass(frozen=True)
class ScopedRule:
    """A rule restricted to one revision: its query, and its series' presence queries."""

    query: str
    presence: tuple[str, ...]


def scoped(rule: AlertRule, matchers: Mapping[str, str]) -> ScopedRule:
    """``scope`` and ``presence_queries`` of ``rule`` for ``matchers``, parsed once.

    The measurement loop asks for the same rules and revision on every pass (and again
    for the requeue time); the parsing and rewriting are done once per rule and
    revision. RulesError as ``scope`` raises it (never cached).
    """
    return _scoped(rule, tuple(matchers.items()))


@functools.lru_cache(maxsize=1024)
def _scoped(rule: AlertRule, matchers: tuple[tuple[str, str], ...]) -> ScopedRule:
    by_name = dict(matchers)
    return ScopedRule(scope(rule, by_name), tuple(presence_queries(rule, by_name)))


@dataclass(frozen=True)
class Firing:
    """When a scoped rule would have fired (its condition held for its ``for``)."""

    rule: str
    fired_at: float | None  # unix time, None: never
    longest_seconds: float  # the longest stretch the condition held
    peak: float | None  # the highest value the expression returned


def would_fire(
    rule: AlertRule, points: Sequence[tuple[float, bool, float | None]], *, step: float
) -> Firing:
    """Judge ``(unix time, condition held, value)`` samples at ``step`` like Prometheus'
    rule evaluation: pending while held, firing once held for ``for``."""
    since: float | None = None
    longest = 0.0
    peak: float | None = None
    fired: float | None = None
    previous: float | None = None
    for at, held, value in points:
        if value is not None:
            peak = value if peak is None else max(peak, value)
        gap = previous is not None and at - previous > step * 1.5
        previous = at
        if not held or gap:
            since = at if held else None
            continue
        since = at if since is None else since
        longest = max(longest, at - since)
        if fired is None and at - since >= rule.for_seconds:
            fired = at
    return Firing(rule.name, fired, longest, peak)


def judge_alert(
    name: str,
    rule: AlertRule,
    result: QueryResult,
    *,
    breach_since: datetime | None,
    now: datetime,
    has_data: bool = True,
) -> Judgement:
    """One evaluation of a scoped rule, judged as Prometheus judges an alert.

    An alert expression returns series only while its condition holds: no series is
    Successful (the rule would not fire); series are a breach, Pending until it has held
    for the rule's ``for``, then Failed (the rule would fire for this revision).
    """
    if not result.samples:
        if not has_data:
            return Judgement(
                "Inconclusive",
                None,
                f"{name}: alert {rule.name} is not firing, but this revision has none of "
                "its series yet",
            )
        return Judgement("Successful", "0", f"{name}: alert {rule.name} is not firing")
    worst = max(result.samples, key=lambda s: s.value if math.isfinite(s.value) else math.inf)
    value = fmt(worst.value)
    since = breach_since or now
    held = (now - since).total_seconds()
    where = worst.describe() if worst.labels else ""
    if held >= rule.for_seconds:
        return Judgement(
            "Failed",
            value,
            f"{name}: alert {rule.name} would fire for this revision: {where} = {value}, "
            f"held {held:.0f}s (for: {rule.for_seconds:g}s)",
            since,
        )
    return Judgement(
        "Pending",
        value,
        f"{name}: alert {rule.name} pending: {where} = {value} for {held:.0f}s of "
        f"{rule.for_seconds:g}s",
        since,
    )
