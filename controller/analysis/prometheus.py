"""The Prometheus provider: the only module that talks to Prometheus (via prometheus-api-client).

Called by the measurement loop through ``PrometheusMeasurer`` (the reconciler injects it
into ``AnalysisEngine``), by ``deployctl analyze`` for backtests (``query_range``), and
for the comparison judge's samples (``measure_samples``: a range query per side).
Retries live here and only here: connection errors, timeouts and 5xx/429 are retried
with exponential backoff inside a bounded budget (the metric's interval at most); a
query Prometheus rejects (400/422, bad PromQL) is never retried.

Foreign errors (requests, urllib3, prometheus-api-client) are mapped once, here::

    AnalysisError                  base of everything this module raises
    ├── PrometheusUnavailable      refused, timed out, 5xx/429 after retries, 401/403/404
    ├── QueryRejected              400/422: Prometheus's message and the query
    └── UnexpectedResponse         an answer we cannot read (string or range-vector result)

``query`` and ``query_range`` raise those; ``PrometheusMeasurer`` turns them into
``QueryFailure`` values, so the measurement loop never sees an exception. Nothing is
logged here: the failure value carries the message and the engine logs the measurement
(so ``deployctl analyze --output json`` keeps a clean stdout).

Every call is bounded (a metric's ``address`` may point at a hostile server): the
whole call, retries included, ends within its ``budget`` (``BoundedSession``: socket
timeouts and a watchdog on each connection), and an answer is read streamed, inflated
in steps and refused past ``prometheusBody`` bytes after decompression
(``controller.limits``). Error texts taken from Prometheus's answers are cut to
``statusMessage``.

Credentials in an address (``http://user:password@host``) never reach a message or a
log line: addresses are shown through ``redact_url``.

An instant query whose parameters would make a URL longer than ``POST_OVER`` bytes (a
grouped preset query naming many revisions: about 40 bytes each, 40 KB for 1,000) is
sent as a form-encoded POST, which Prometheus's query API accepts, so no request-line
limit of a proxy in front of it (nginx's default buffers: 8 KiB) cuts it off; shorter
ones stay GETs. prometheus-api-client's ``method="POST"`` still puts the parameters in
the URL, so the form is posted through the same (bounded) session the client holds; a
server that answers 405 to the POST is asked with a GET, as Prometheus's own Go client
does.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from urllib3.util.retry import Retry

from controller.analysis.values import (
    QueryFailure,
    QueryOutcome,
    QueryResult,
    RangeOutcome,
    RangeResult,
    Sample,
    SamplePair,
    SamplesOutcome,
    Series,
    short_query,
)
from controller.bounded_http import BodyRefused, BoundedSession, DeadlineExceeded
from controller.limits import PROMETHEUS_BODY, RANGE_BODY, STATUS_MESSAGE, Limit, truncate

DEFAULT_ADDRESS = "http://127.0.0.1:9090"
# URL-encoded query parameters longer than this go in a POST body (module docstring).
POST_OVER = 2048
DEFAULT_BUDGET = 10.0
MAX_ATTEMPTS = 5
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_REJECT_STATUS = frozenset({400, 422})
_STATUS_MESSAGE = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)


class AnalysisError(Exception):
    """Base of the provider's errors."""


class PrometheusUnavailable(AnalysisError):
    """Prometheus could not answer: connection, timeout, 5xx (after retries) or 401/403/404."""

    def __init__(self, message: str, *, attempts: int = 1, status_code: int | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.status_code = status_code


class QueryRejected(AnalysisError):
    """Prometheus refused the query (bad PromQL); retrying cannot help."""

    def __init__(self, *, query: str, reason: str, status_code: int):
        super().__init__(
            f"Prometheus rejected the query ({status_code}): {reason}; query: {short_query(query)}"
        )
        self.query = query
        self.reason = reason
        self.status_code = status_code


class UnexpectedResponse(AnalysisError):
    """An answer that is not a number or an instant vector of numbers."""


class _Retryable(Exception):
    """Internal: one attempt failed in a way worth another try."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def redact_url(url: str) -> str:
    """``url`` with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if user else f"***@{host}"))


def query(
    address: str,
    promql: str,
    *,
    timeout: float,
    at: datetime | None = None,
    budget: float = DEFAULT_BUDGET,
) -> QueryResult:
    """An instant query at ``at`` (default: now). Raises ``AnalysisError`` subclasses."""
    timeout = min(timeout, max(budget, 0.1))
    params: dict[str, str] = {"timeout": _prometheus_duration(timeout)}
    if at is not None:
        params["time"] = f"{at.timestamp():.3f}"

    def call(client: PrometheusConnect, attempt_timeout: float) -> Any:
        form = {"query": promql, **params}
        if len(urlencode(form)) > POST_OVER:
            return _posted_query(client, form, timeout=attempt_timeout)
        return client.custom_query(promql, params=params, timeout=attempt_timeout)

    raw = _with_retries(
        address, promql, call, timeout=timeout, budget=budget, body_limit=PROMETHEUS_BODY
    )
    return QueryResult(query=promql, samples=_instant_samples(promql, raw), at=at)


def _posted_query(client: PrometheusConnect, form: dict[str, str], *, timeout: float) -> Any:
    """``custom_query`` as a form POST: the same answer, and the same errors for ``_attempt``
    to map (a 405 is asked again as a GET)."""
    session: requests.Session = client._session  # ours: a BoundedSession (``_attempt``)
    with session.post(f"{client.url}/api/v1/query", data=form, timeout=timeout) as response:
        status, content = response.status_code, response.content
    if status == 405:
        params = {k: v for k, v in form.items() if k != "query"}
        return client.custom_query(form["query"], params=params, timeout=timeout)
    if status != 200:
        # The client's own message format, which ``_parse_status`` unpacks.
        raise PrometheusApiClientException(f"HTTP Status Code {status} ({content!r})")
    return json.loads(content)["data"]["result"]


def query_range(
    address: str,
    promql: str,
    *,
    start: datetime,
    end: datetime,
    step: float,
    timeout: float,
    budget: float = DEFAULT_BUDGET,
) -> RangeResult:
    """A range query (the backtest's history). Raises ``AnalysisError`` subclasses."""
    timeout = min(timeout, max(budget, 0.1))
    params = {"timeout": _prometheus_duration(timeout)}

    def call(client: PrometheusConnect, attempt_timeout: float) -> Any:
        return client.custom_query_range(
            promql,
            start_time=start,
            end_time=end,
            step=f"{step:g}s",
            params=params,
            timeout=attempt_timeout,
        )

    raw = _with_retries(
        address, promql, call, timeout=timeout, budget=budget, body_limit=RANGE_BODY
    )
    return RangeResult(query=promql, series=_range_series(promql, raw))


@dataclass(frozen=True)
class PrometheusMeasurer:
    """The ``Measurer`` the reconciler injects: queries become values, never exceptions.

    ``default_address`` is the controller's ``--prometheus-url``, used by presets and by
    providers that do not name an address.
    """

    default_address: str = DEFAULT_ADDRESS
    range_budget: float = DEFAULT_BUDGET

    def measure(
        self, promql: str, *, address: str | None, timeout: float, budget: float
    ) -> QueryOutcome:
        try:
            return query(address or self.default_address, promql, timeout=timeout, budget=budget)
        except AnalysisError as exc:
            return failure_of(exc, promql)

    def measure_range(
        self,
        promql: str,
        *,
        address: str | None,
        start: datetime,
        end: datetime,
        step: float,
        timeout: float,
    ) -> RangeOutcome:
        try:
            return query_range(
                address or self.default_address,
                promql,
                start=start,
                end=end,
                step=step,
                timeout=timeout,
                budget=self.range_budget,
            )
        except AnalysisError as exc:
            return failure_of(exc, promql)

    def measure_samples(
        self,
        canary_promql: str,
        comparison_promql: str,
        *,
        address: str | None,
        start: datetime,
        end: datetime,
        step: float,
        timeout: float,
    ) -> SamplesOutcome:
        """The comparison judge's samples: one range query per side over the step, at
        ``step`` (the scrape interval), every point of every series flattened."""
        sides: list[tuple[float, ...]] = []
        for promql in (canary_promql, comparison_promql):
            outcome = self.measure_range(
                promql, address=address, start=start, end=end, step=step, timeout=timeout
            )
            if isinstance(outcome, QueryFailure):
                return outcome
            sides.append(tuple(value for series in outcome.series for _, value in series.points))
        return SamplePair(canary=sides[0], comparison=sides[1])


def failure_of(exc: AnalysisError, promql: str) -> QueryFailure:
    """Our error as the value the measurement loop records."""
    if isinstance(exc, QueryRejected):
        return QueryFailure(
            kind="rejected", query=promql, message=str(exc), status_code=exc.status_code
        )
    if isinstance(exc, PrometheusUnavailable):
        return QueryFailure(
            kind="unavailable",
            query=promql,
            message=str(exc),
            attempts=exc.attempts,
            status_code=exc.status_code,
        )
    return QueryFailure(kind="unexpected", query=promql, message=str(exc))


def _with_retries(
    address: str,
    promql: str,
    call: Any,
    *,
    timeout: float,
    budget: float,
    body_limit: Limit,
) -> Any:
    shown = redact_url(address)
    started = time.monotonic()
    budget = max(budget, 0.1)
    retrying = Retrying(
        retry=retry_if_exception_type(_Retryable),
        stop=_BudgetSpent(budget) | stop_after_attempt(MAX_ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
        reraise=False,
    )
    attempts = 0
    try:
        for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                # Never let one attempt outlive the budget the caller gave us.
                remaining = budget - (time.monotonic() - started)
                attempt_timeout = max(0.1, min(timeout, remaining))
                # The attempt's own deadline (at least 0.1 s, as its timeout), so the last
                # attempt fails for its own reason, not because the budget ran out.
                session = BoundedSession(
                    deadline=time.monotonic() + attempt_timeout, body_limit=body_limit
                )
                return _attempt(address, shown, promql, call, attempt_timeout, session)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        elapsed = time.monotonic() - started
        status = last.status_code if isinstance(last, _Retryable) else None
        raise PrometheusUnavailable(
            f"Prometheus at {shown} unavailable: {truncate(str(last), 300)} "
            f"(after {attempts} attempt(s) in {elapsed:.1f}s; the measurement's budget "
            f"is {_tenths(budget):g}s)",
            attempts=attempts,
            status_code=status,
        ) from None
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


class _BudgetSpent(stop_base):
    """Stop when too little of the budget is left for another attempt to mean anything
    (after the coming backoff): a sliver of a second would only replace the real reason
    (a timeout, a refused connection) with "no answer in 0.1 s"."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.least = min(0.5, budget / 4)

    def __call__(self, retry_state: Any) -> bool:
        sleep = retry_state.upcoming_sleep or 0.0
        elapsed = retry_state.seconds_since_start or 0.0
        return bool(self.budget - elapsed - sleep < self.least)


def _attempt(
    address: str, shown: str, promql: str, call: Any, timeout: float, session: BoundedSession
) -> Any:
    # The client's own urllib3 retries would run outside our budget: switch them off.
    client = PrometheusConnect(
        url=address, retry=Retry(total=0, raise_on_status=False), session=session
    )
    try:
        return call(client, timeout)
    except DeadlineExceeded as exc:
        raise _Retryable(f"no complete answer within {_tenths(exc.seconds)}s") from None
    except BodyRefused as exc:
        raise UnexpectedResponse(f"Prometheus at {shown}: {exc}") from None
    except requests.exceptions.Timeout:
        raise _Retryable(f"timed out after {timeout:.1f}s") from None
    except requests.exceptions.ConnectionError as exc:
        raise _Retryable(f"cannot connect ({_root_cause(exc)})") from None
    except PrometheusApiClientException as exc:
        status, reason = _parse_status(str(exc))
        if status in _REJECT_STATUS:
            raise QueryRejected(query=promql, reason=reason, status_code=status) from None
        if status in _RETRY_STATUS or status is None:
            raise _Retryable(f"HTTP {status}: {reason}", status) from None
        raise PrometheusUnavailable(
            f"Prometheus at {shown} answered HTTP {status}: {reason}", status_code=status
        ) from None
    except requests.exceptions.RequestException as exc:
        raise PrometheusUnavailable(f"request to {shown} failed: {_root_cause(exc)}") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the parser's stack.
        detail = truncate(str(exc) or type(exc).__name__, 300)
        raise UnexpectedResponse(f"unreadable answer from {shown}: {detail}") from None
    finally:
        client.close()


def _tenths(seconds: float) -> float:
    """Seconds rounded up to a tenth: a budget of 4.9996 s reads as the 5 s it was."""
    return math.ceil(round(seconds * 10, 3)) / 10


def _prometheus_duration(seconds: float) -> str:
    """Seconds as Prometheus reads a duration: whole units only, so milliseconds."""
    return f"{max(1, int(seconds * 1000))}ms"


def _root_cause(exc: BaseException) -> str:
    # requests nests urllib3's errors; the innermost one says "Connection refused".
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return match.group(1).strip() if match else type(inner).__name__


def _parse_status(message: str) -> tuple[int | None, str]:
    """prometheus-api-client packs the status and body into its message; unpack them."""
    match = _STATUS_MESSAGE.match(message)
    if match is None:
        return None, message
    status = int(match.group(1))
    body: Any = match.group(2)
    try:
        body = ast.literal_eval(body)
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        decoded = json.loads(body)
        if isinstance(decoded, dict) and "error" in decoded:
            kind = decoded.get("errorType")
            text = f"{kind}: {decoded['error']}" if kind else str(decoded["error"])
            return status, truncate(text, STATUS_MESSAGE.int // 2)
    except (ValueError, SyntaxError, RecursionError):
        pass
    return status, truncate(str(body), 500)


def _number(promql: str, raw: object) -> float:
    try:
        return float(str(raw))
    except ValueError:
        raise UnexpectedResponse(
            f"query returned {truncate(repr(raw), 200)}, not a number; query: {short_query(promql)}"
        ) from None


def _instant_samples(promql: str, raw: Any) -> tuple[Sample, ...]:
    if not isinstance(raw, list):
        raise UnexpectedResponse(
            f"unreadable result {truncate(repr(raw), 200)}; query: {short_query(promql)}"
        )
    # A scalar (or string) result is [time, "value"]; a vector is a list of objects.
    if len(raw) == 2 and not isinstance(raw[0], dict) and isinstance(raw[0], int | float):
        return (Sample(labels={}, value=_number(promql, raw[1])),)
    samples = []
    for item in raw:
        if not isinstance(item, dict) or "value" not in item:
            raise UnexpectedResponse(
                "query returns a range vector; wrap it in rate(), avg_over_time() or similar; "
                f"query: {short_query(promql)}"
            )
        samples.append(
            Sample(labels=dict(item.get("metric", {})), value=_number(promql, item["value"][1]))
        )
    return tuple(samples)


def _range_series(promql: str, raw: Any) -> tuple[Series, ...]:
    if not isinstance(raw, list):
        raise UnexpectedResponse(
            f"unreadable result {truncate(repr(raw), 200)}; query: {short_query(promql)}"
        )
    series = []
    for item in raw:
        if not isinstance(item, dict) or "values" not in item:
            raise UnexpectedResponse(f"unreadable range result; query: {short_query(promql)}")
        points: Sequence[Sequence[object]] = item["values"]
        series.append(
            Series(
                labels=dict(item.get("metric", {})),
                points=tuple((float(str(t)), _number(promql, v)) for t, v in points),
            )
        )
    return tuple(series)


__all__ = [
    "AnalysisError",
    "PrometheusMeasurer",
    "PrometheusUnavailable",
    "QueryRejected",
    "UnexpectedResponse",
    "query",
    "query_range",
    "redact_url",
]
