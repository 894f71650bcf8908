"""The DeliveryPolicy resource: freezes, deployment windows, approvals, notifications.

A DeliveryPolicy is namespaced. One in a Rollout's namespace applies to the Rollouts
there (narrowed by ``selector``); one in the controller's own namespace is the
cluster-wide default and applies to every Rollout, narrowed by ``namespaceSelector``
(the labels of the Namespace object, which a Rollout's author cannot drop) and
``selector`` (the Rollout's own labels). All applicable policies count: any
freeze holds a new rollout, every policy that lists ``windows`` must have one open,
approval rules and notification targets add up. ``controller.policy.evaluate`` turns
them into a decision; this module only describes and validates them.

Times are read in each entry's ``timeZone`` (an IANA name such as ``Europe/Berlin``),
so "09:00" stays 09:00 on the wall clock across daylight-saving changes:

* a **freeze** is absolute (``start``/``end``: RFC 3339, or a local date-time read in
  ``timeZone``) or recurring (``schedule``: a 5-field cron expression giving the local
  start, plus ``duration``). Changes labelled or annotated ``deployctl.io/exempt`` with
  a kind listed in ``exemptions`` may go ahead with a ``deployctl.io/override-reason``.
* a **window** allows new rollouts on ``days`` from ``start`` to ``end`` (local wall
  times); an ``end`` at or before ``start`` crosses midnight into the next day.
* an **approval rule** makes matching rollouts wait for ``deployctl approve``.
* a **notification target** is a webhook whose URL is read from a Secret in the
  controller's namespace, never from the policy itself; a policy of another namespace
  may use only a Secret annotated ``deployctl.io/notification-namespaces`` with its
  namespace (``controller.notify``).
* ``overrideApproval``: an override of this policy's freezes or windows also waits for
  ``deployctl approve``.
* ``promotionGateReaders``: Rollouts of which other namespaces may name this policy's
  Rollouts in ``requires.rollout`` (a gate reveals the promoted revisions).
* ``errorBudget``: the error-budget release freeze; a new rollout waits while the
  service's error budget left over the SLO window is below ``minRemaining``, unless
  exempt (see ``exemptions``).
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from controller.api.common import ApiModel, CelRule, ObjectMeta, ObjectName, cel
from controller.api.cron import CronError, CronSchedule
from controller.api.duration import Duration
from controller.api.rollout import LabelSelector

Exemption = Literal["hotfix", "security", "regression", "release-blocker"]
EXEMPTION_KINDS: tuple[Exemption, ...] = ("hotfix", "security", "regression", "release-blocker")

NotificationEvent = Literal[
    "started", "paused", "promoted", "aborted", "rolledBack", "hookFinished"
]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = (
    "started",
    "paused",
    "promoted",
    "aborted",
    "rolledBack",
    "hookFinished",
)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
MAX_ENTRIES = 64


def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name; ValueError with a helpful message otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin, "
            "America/New_York or UTC"
        ) from None


def _check_zone(name: str) -> str:
    zone(name)
    return name


TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Berlin"),
    AfterValidator(_check_zone),
]
Text = Annotated[str, Field(max_length=1024)]


def parse_instant(value: str, tz: ZoneInfo) -> datetime:
    """An RFC 3339 time, or a local date(-time) read in ``tz``; ValueError when neither."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time; use RFC 3339 such as 2026-12-20T00:00:00+01:00, "
            "or a local time such as 2026-12-20T00:00 read in timeZone"
        ) from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def parse_clock(value: str) -> tuple[int, int]:
    """'09:30' -> (9, 30); '24:00' -> (24, 0)."""
    hours, _, minutes = value.partition(":")
    return int(hours), int(minutes)


def parse_days(values: list[str]) -> frozenset[int]:
    """['Mon-Fri', 'Sun'] -> {0, 1, 2, 3, 4, 6} (Monday is 0); ranges may wrap (Fri-Mon)."""
    days: set[int] = set()
    for value in values:
        first, dash, last = value.strip().lower().partition("-")
        try:
            start = DAY_NAMES.index(first[:3]) if len(first) >= 3 else -1
            end = DAY_NAMES.index(last[:3]) if dash and len(last) >= 3 else start
        except ValueError:
            start = end = -1
        if start < 0 or end < 0:
            raise ValueError(
                f"day {value!r} is not a day name or range; use Mon..Sun such as 'Mon-Fri' or 'Sat'"
            )
        span = (end - start) % 7
        days.update((start + offset) % 7 for offset in range(span + 1))
    return frozenset(days)


class Freeze(ApiModel):
    """A period in which new rollouts wait, unless exempt (see ``exemptions``)."""

    model_config = cel(
        CelRule(
            "(has(self.start) || has(self.end)) != (has(self.schedule) || has(self.duration))",
            "give either start and end (one period) or schedule and duration (recurring), "
            "not both and not neither",
        ),
        CelRule("has(self.start) == has(self.end)", "an absolute freeze needs both start and end"),
        CelRule(
            "has(self.schedule) == has(self.duration)",
            "a recurring freeze needs both schedule and duration",
        ),
    )

    name: ObjectName
    reason: Text = Field(default="", description="Shown to people, e.g. 'Christmas release'")
    time_zone: TimeZone = "UTC"
    start: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Absolute freeze: RFC 3339, or a local time in timeZone"
    )
    end: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Absolute freeze: when it ends (exclusive)"
    )
    schedule: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description="Recurring freeze: cron expression of the local start time"
    )
    duration: Duration | None = Field(
        default=None, description="Recurring freeze: how long each occurrence lasts"
    )
    exemptions: list[Exemption] | None = Field(
        default=None,
        description="Exempt kinds that may override this freeze; default: the policy's",
    )

    @model_validator(mode="after")
    def _check(self) -> Freeze:
        where = f"freeze {self.name!r}"
        absolute = self.start is not None or self.end is not None
        recurring = self.schedule is not None or self.duration is not None
        if absolute == recurring:
            raise ValueError(
                f"{where}: give either start and end (one period) or schedule and "
                "duration (recurring), not both and not neither"
            )
        tz = zone(self.time_zone)
        if absolute:
            if self.start is None or self.end is None:
                raise ValueError(f"{where}: an absolute freeze needs both start and end")
            try:
                start, end = parse_instant(self.start, tz), parse_instant(self.end, tz)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if end <= start:
                raise ValueError(
                    f"{where}: end {self.end} is not after start {self.start}; "
                    "the freeze would never be in force"
                )
        else:
            if self.schedule is None or self.duration is None:
                raise ValueError(f"{where}: a recurring freeze needs both schedule and duration")
            try:
                CronSchedule.parse(self.schedule)
            except CronError as exc:
                raise ValueError(f"{where}: bad schedule: {exc}") from None
            if self.duration <= 0:
                raise ValueError(f"{where}: duration must be longer than 0s")
        return self

    def cron(self) -> CronSchedule:
        if self.schedule is None:
            raise ValueError(f"freeze {self.name!r} is not recurring")
        return CronSchedule.parse(self.schedule)


class Window(ApiModel):
    """When new rollouts may start: on ``days``, from ``start`` to ``end`` local time."""

    name: Annotated[str, Field(max_length=63)] = ""
    days: Annotated[list[Annotated[str, Field(max_length=16)]], Field(min_length=1, max_length=7)]
    start: Annotated[str, Field(description="HH:MM, local time in timeZone")]
    end: Annotated[str, Field(description="HH:MM or 24:00; at or before start: next day")]
    time_zone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _check(self) -> Window:
        where = f"window {self.name!r}" if self.name else f"window {self.start}-{self.end}"
        for label, value in (("start", self.start), ("end", self.end)):
            if not _CLOCK.match(value):
                raise ValueError(f"{where}: {label} {value!r} is not a time of day HH:MM")
        if self.start == "24:00":
            raise ValueError(f"{where}: start 24:00 is not a time of day; use 00:00")
        if parse_clock(self.start) == parse_clock(self.end):
            raise ValueError(
                f"{where}: end {self.end} equals start {self.start}, so the window "
                "would be empty; use start 00:00 and end 24:00 for whole days"
            )
        try:
            parse_days(self.days)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return self

    def weekdays(self) -> frozenset[int]:
        return parse_days(self.days)

    def start_time(self) -> time:
        hours, minutes = parse_clock(self.start)
        return time(hours, minutes)

    def end_offset_minutes(self) -> int:
        """Minutes from the start day's midnight to the end (beyond 1440: next day)."""
        start_h, start_m = parse_clock(self.start)
        end_h, end_m = parse_clock(self.end)
        start, end = start_h * 60 + start_m, end_h * 60 + end_m
        return end if end > start else end + 24 * 60


class ApprovalRule(ApiModel):
    """Matching rollouts wait for ``deployctl approve`` before a new revision starts.

    A rule matches when the Rollout's labels match ``selector`` (no selector: all), its
    namespace is in ``namespaces`` (empty: all) and, with ``majorVersionChange``, the
    new images change a major version compared with the last promoted ones.
    ``groups`` and ``requireDifferentApprover`` are enforced by the API server through
    ``manifests/admission/`` (the approver's real user name and groups); the controller
    also refuses an approval written under the requester's own name.
    """

    name: ObjectName
    selector: LabelSelector | None = None
    namespaces: list[ObjectName] = Field(default_factory=list, max_length=MAX_ENTRIES)
    major_version_change: bool = Field(
        default=False, description="Only when an image's major version changes"
    )
    groups: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=16,
        description="Who may approve; enforced by the API server where deployctl's "
        "admission policy is installed (docs/security.md#approvals)",
    )
    require_different_approver: bool = Field(
        default=False,
        description="Four eyes: the person who requested the rollout may not approve it",
    )
    message: Text = ""


class SecretKeyRef(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9.-]+$")]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class UrlSource(ApiModel):
    secret_key_ref: SecretKeyRef


class NotificationTarget(ApiModel):
    """A webhook: a generic JSON POST or a Slack-compatible message."""

    name: ObjectName
    type: Literal["generic", "slack"] = "generic"
    url_from: UrlSource = Field(description="The URL is a secret: read from a Secret key")
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(NOTIFICATION_EVENTS), min_length=1, max_length=6
    )
    timeout: Duration = Field(default=5.0, description="Per attempt")
    retries: Annotated[int, Field(ge=0, le=10)] = 3

    @model_validator(mode="after")
    def _check(self) -> NotificationTarget:
        if not 0 < self.timeout <= 60:
            raise ValueError(
                f"notification {self.name!r}: timeout must be between 0s and 60s, "
                "so that a slow webhook cannot hold deliveries up"
            )
        return self


def _unique(kind: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise ValueError(f"{kind} names must be unique; repeated: {', '.join(repeated)}")


class OverrideApproval(ApiModel):
    """An override (``deployctl.io/exempt``) of this policy also needs ``deployctl approve``."""

    groups: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Who should approve (shown to people)"
    )


class ErrorBudgetFreeze(ApiModel):
    """Hold new rollouts while the error budget left over ``window`` is below
    ``minRemaining`` (a share: 0.1 = 10% of the budget left)."""

    objective: float = Field(description="The SLO in percent, e.g. 99.9")
    window: Duration = Field(default=30 * 86400.0, description="The SLO window (30d)")
    min_remaining: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.0,
        description="Budget share that must be left (0: hold only once it is spent)",
    )
    error_query: Annotated[str, Field(min_length=1, max_length=8192)] | None = Field(
        default=None,
        description="PromQL of the service's error ratio (0..1) over {{slo.window}}; "
        "{{rollout.namespace}} and {{rollout.name}} are filled in, escaped. Default: the "
        "5xx share of http_requests_total in the Rollout's namespace",
    )
    requests_metric: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")] = (
        "http_requests_total"
    )
    error_codes: Annotated[str, Field(max_length=64)] = "5.."
    code_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "code"
    namespace_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "namespace"

    @model_validator(mode="after")
    def _check(self) -> ErrorBudgetFreeze:
        if not 0 < self.objective < 100:
            raise ValueError(
                f"errorBudget: objective is a percentage above 0 and below 100 "
                f"(got {self.objective})"
            )
        return self


class DeliveryPolicySpec(ApiModel):
    selector: LabelSelector | None = Field(
        default=None,
        description="Which Rollouts it applies to, by the Rollout's labels; default: all",
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description=(
            "Which namespaces it applies to, by the labels of the Namespace object "
            "(a Rollout's author cannot remove those); default: all"
        ),
    )
    override_approval: OverrideApproval | None = Field(
        default=None,
        description="Overriding this policy's freezes or windows also needs deployctl approve",
    )
    promotion_gate_readers: list[ObjectName] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description=(
            "Namespaces whose Rollouts may name the Rollouts this policy applies to in "
            "requires.rollout; the Rollout's own namespace always may"
        ),
    )
    exemptions: list[Exemption] = Field(
        default_factory=list,
        description="Exempt kinds that may override windows and, by default, freezes",
    )
    freezes: list[Freeze] = Field(default_factory=list, max_length=MAX_ENTRIES)
    windows: list[Window] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="Allowed deployment windows; none listed: any time",
    )
    approvals: list[ApprovalRule] = Field(default_factory=list, max_length=MAX_ENTRIES)
    notifications: list[NotificationTarget] = Field(default_factory=list, max_length=16)
    error_budget: ErrorBudgetFreeze | None = Field(
        default=None,
        description="Hold new rollouts while the service's error budget left is below a floor",
    )

    @model_validator(mode="after")
    def _check(self) -> DeliveryPolicySpec:
        _unique("freeze", [f.name for f in self.freezes])
        _unique("window", [w.name for w in self.windows])
        _unique("approval rule", [a.name for a in self.approvals])
        _unique("notification", [n.name for n in self.notifications])
        return self


class DeliveryPolicy(ApiModel):
    api_version: Literal["deployctl.io/v1alpha1"] = "deployctl.io/v1alpha1"
    kind: Literal["DeliveryPolicy"] = "DeliveryPolicy"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DeliveryPolicySpec = Field(default_factory=DeliveryPolicySpec)
