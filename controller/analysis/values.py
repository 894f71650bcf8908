"""Value objects passed between the analysis modules: what a query returned, or why not.

``controller.analysis.prometheus`` builds them from Prometheus's answers,
``controller.analysis.verdict`` judges them, ``controller.analysis.run`` (the
measurement loop) and ``controller.analysis.backtest`` carry them. They live apart
from the provider so that the pure modules never import the HTTP client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector (or the single value of a scalar result)."""

    labels: Mapping[str, str]
    value: float

    def describe(self) -> str:
        """``{code="500",instance="..."}``: enough to find the series again."""
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return "{" + inner + "}"


@dataclass(frozen=True)
class QueryResult:
    """The answer to one instant query: zero or more samples (empty means no data)."""

    query: str
    samples: tuple[Sample, ...] = ()
    at: datetime | None = None


@dataclass(frozen=True)
class Series:
    """One series of a range query: (unix time, value) points in time order."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class RangeResult:
    """The answer to one range query."""

    query: str
    series: tuple[Series, ...] = ()


FailureKind = Literal["unavailable", "rejected", "unexpected"]


@dataclass(frozen=True)
class QueryFailure:
    """Why a query gave no answer, as a value (the measurement loop never sees exceptions).

    ``unavailable``: connection refused, timeout or 5xx after retries (transient; the
    loop counts it as Inconclusive). ``rejected``: Prometheus refused the query (bad
    PromQL, 400/422); retrying cannot help. ``unexpected``: an answer we cannot read.
    """

    kind: FailureKind
    query: str
    message: str
    attempts: int = 1
    status_code: int | None = field(default=None)

    @property
    def permanent(self) -> bool:
        return self.kind != "unavailable"


@dataclass(frozen=True)
class SamplePair:
    """Every value each side's range query returned over a step, at the query's step:
    the canary's and its comparison's (stable or baseline), for the comparison judge
    (``controller.analysis.compare``). NaN and +/-Inf are kept; the judge drops and
    counts them."""

    canary: tuple[float, ...]
    comparison: tuple[float, ...]


QueryOutcome = QueryResult | QueryFailure
RangeOutcome = RangeResult | QueryFailure
SamplesOutcome = SamplePair | QueryFailure


_SHORT_QUERY = 160


def short_query(query: str) -> str:
    """A query on one line, cut to a readable length, for evidence and messages."""
    flat = " ".join(query.split())
    return flat if len(flat) <= _SHORT_QUERY else flat[: _SHORT_QUERY - 1] + "…"
