"""Argo Rollouts' ``successCondition``/``failureCondition`` read as deployctl thresholds.

Argo evaluates an expression (expr-lang) against ``result``; deployctl has no
expression language: a threshold is numbers (``min``/``max``), and a web check may
compare one JSON value with ``equals``. ``read`` understands the plain comparisons that
make up most real conditions and says why it cannot read the others:

- ``result[0] >= 0.95``, ``result < 0.05``, ``0.05 > result[0]``, ``max(result) < 0.05``,
  ``default(result, 0) < 5``, ``asFloat(result) <= 2`` (one bound);
- ``result[0] >= 0.9 && result[0] <= 1`` in a successCondition, ``result < 0.5 ||
  result > 2`` in a failureCondition (two bounds);
- ``result.data.ok == true``, ``result.status == 'ok'`` (web: a JSON value and
  ``equals``), ``result.latency < 200`` (web: a JSON value and a threshold).

Where the two differ, ``Reading.notes`` says so: a strict ``<`` becomes ``max`` (which
passes at the bound itself); ``default(result, 0)`` turns missing data into 0 in Argo,
while deployctl counts it Inconclusive; ``result[0]`` judges the first series, deployctl
the worst one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_LITERAL = re.compile(
    rf"^\s*(?:(?P<number>{_NUMBER})|'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\"|(?P<bool>true|false))\s*$"
)
_OPERAND = re.compile(
    r"^\s*(?:(?P<wrap>default|max|asFloat|asInt|float|int)\(\s*)?result"
    r"(?P<index>\[0\])?(?P<path>(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)"
    r"(?:\s*,\s*(?P<default>" + _NUMBER + r"))?(?(wrap)\s*\))\s*$"
)
_COMPARISON = re.compile(r"^(?P<left>.+?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<right>.+)$")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


class Unreadable(ValueError):
    """A condition that is not a plain comparison; the message says which part."""


@dataclass
class Reading:
    """A condition as deployctl spells it: bounds and/or a JSON value to equal."""

    minimum: float | None = None
    maximum: float | None = None
    equals: str | None = None
    path: str = ""  # the JSON path below the result, for web checks: ".data.ok"
    notes: list[str] = field(default_factory=list)

    def threshold(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        return out


@dataclass(frozen=True)
class _Comparison:
    path: str
    op: str
    value: float | str | bool
    wrap: str | None
    indexed: bool


def _literal(text: str) -> float | str | bool | None:
    match = _LITERAL.match(text)
    if match is None:
        return None
    if match.group("number") is not None:
        return float(match.group("number"))
    if match.group("bool") is not None:
        return match.group("bool") == "true"
    return match.group("single") if match.group("single") is not None else match.group("double")


def _comparison(text: str) -> _Comparison:
    match = _COMPARISON.match(text.strip())
    if match is None:
        raise Unreadable(f"{text.strip()!r} is not a comparison")
    left, op, right = match.group("left"), match.group("op"), match.group("right")
    operand = _OPERAND.match(left)
    value = _literal(right)
    if operand is None or value is None:
        flipped_operand, flipped_value = _OPERAND.match(right), _literal(left)
        if flipped_operand is None or flipped_value is None:
            raise Unreadable(
                f"{text.strip()!r} compares something other than result with a constant"
            )
        operand, value, op = flipped_operand, flipped_value, _FLIP[op]
    return _Comparison(
        path=operand.group("path") or "",
        op=op,
        value=value,
        wrap=operand.group("wrap"),
        indexed=bool(operand.group("index")),
    )


def _split(expression: str, joiner: str) -> list[str]:
    words = {"&&": r"\s*(?:&&|\band\b)\s*", "||": r"\s*(?:\|\||\bor\b)\s*"}
    other = "||" if joiner == "&&" else "&&"
    if re.search(words[other], expression):
        kind = "success" if joiner == "&&" else "failure"
        raise Unreadable(
            f"{expression.strip()!r}: a {kind}Condition reads as a threshold only when its "
            f"comparisons are joined by {joiner}, not {other}"
        )
    return [part for part in re.split(words[joiner], expression) if part.strip()]


def _apply(reading: Reading, comparison: _Comparison, *, passing: bool, source: str) -> None:
    """Add one comparison: ``passing`` says whether it describes passing values."""
    op = comparison.op if passing else _NEGATE[comparison.op]
    if reading.path and comparison.path != reading.path:
        raise Unreadable(
            f"{source!r} looks at more than one value ({reading.path}, {comparison.path})"
        )
    reading.path = comparison.path
    value = comparison.value
    if op in ("==", "!="):
        if op == "!=":
            raise Unreadable(
                f"{source!r}: deployctl can require a value (equals) but not forbid one"
            )
        text = ("true" if value else "false") if isinstance(value, bool) else value
        if isinstance(text, float):
            text = f"{text:g}" if math.isfinite(text) else str(text)
        reading.equals = str(text)
        return
    if not isinstance(value, float) or isinstance(value, bool):
        raise Unreadable(f"{source!r} orders a value against {value!r}, which is not a number")
    if op in ("<", "<="):
        if reading.maximum is not None and reading.maximum != value:
            raise Unreadable(f"{source!r} has two upper bounds")
        reading.maximum = value
        if op == "<":
            reading.notes.append(
                f"{source.strip()}: deployctl's max {value:g} also passes at {value:g} itself"
            )
    else:
        if reading.minimum is not None and reading.minimum != value:
            raise Unreadable(f"{source!r} has two lower bounds")
        reading.minimum = value
        if op == ">":
            reading.notes.append(
                f"{source.strip()}: deployctl's min {value:g} also passes at {value:g} itself"
            )


def read(success: str | None, failure: str | None) -> Reading:
    """Both conditions of a metric as one Reading; Unreadable saying why not."""
    if success is None and failure is None:
        raise Unreadable("no successCondition or failureCondition")
    if "{{" in (success or "") + (failure or ""):
        raise Unreadable("a condition with {{args.*}}: thresholds are numbers in deployctl")
    ours = Reading()
    theirs = Reading()
    comparisons: list[_Comparison] = []
    if success is not None:
        for part in _split(success, "&&"):
            comparison = _comparison(part)
            comparisons.append(comparison)
            _apply(ours, comparison, passing=True, source=part)
    if failure is not None:
        for part in _split(failure, "||"):
            comparison = _comparison(part)
            comparisons.append(comparison)
            _apply(theirs, comparison, passing=False, source=part)
    if success is not None and failure is not None:
        if ours.path != theirs.path and theirs.path and ours.path:
            raise Unreadable("successCondition and failureCondition look at different values")
        if (ours.minimum, ours.maximum, ours.equals) != (
            theirs.minimum,
            theirs.maximum,
            theirs.equals,
        ):
            ours.notes.append(
                "values that pass neither condition are Inconclusive in Argo; here they fail "
                "the successCondition's threshold"
            )
        reading = ours
        reading.notes += theirs.notes
    else:
        reading = ours if success is not None else theirs
    wraps = {c.wrap for c in comparisons if c.wrap}
    if "default" in wraps:
        reading.notes.append(
            "default(result, ...): Argo turns missing data into that value; deployctl counts "
            "missing data as Inconclusive and never passes on it"
        )
    if any(c.indexed for c in comparisons):
        reading.notes.append(
            "result[0] is the first series; deployctl judges every series and keeps the worst "
            "(the same for a query that returns one series)"
        )
    if reading.equals is not None and (reading.minimum is not None or reading.maximum is not None):
        raise Unreadable("a condition that both compares with == and orders values")
    return reading
