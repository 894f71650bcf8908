"""DeliveryPolicy validation: every mistake is refused with a message that says which."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.api.policy import DeliveryPolicy
from tests.policy.helpers import policy, rollout


def error_of(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        DeliveryPolicy.model_validate({"metadata": {"name": "p"}, "spec": spec})
    return str(info.value)


XMAS = {"name": "xmas", "start": "2026-12-20T00:00:00+01:00", "end": "2026-12-27T00:00:00+01:00"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"freezes": [{**XMAS, "timeZone": "Europe/Berln"}]},
            "unknown time zone 'Europe/Berln'; use an IANA name such as Europe/Berlin",
        ),
        (
            {"freezes": [{**XMAS, "end": "2026-12-19T00:00:00+01:00"}]},
            "freeze 'xmas': end 2026-12-19T00:00:00+01:00 is not after start",
        ),
        (
            {"freezes": [{"name": "xmas", "start": "2026-12-20T00:00:00+01:00"}]},
            "freeze 'xmas': an absolute freeze needs both start and end",
        ),
        (
            {"freezes": [{"name": "xmas", "start": "next tuesday", "end": "2026-12-27"}]},
            "freeze 'xmas': 'next tuesday' is not a time",
        ),
        (
            {"freezes": [{"name": "weekend", "schedule": "0 18 * * fri"}]},
            "freeze 'weekend': a recurring freeze needs both schedule and duration",
        ),
        (
            {"freezes": [{"name": "weekend", "schedule": "0 25 * * fri", "duration": "62h"}]},
            "freeze 'weekend': bad schedule: hour: 25 is out of range 0-23",
        ),
        (
            {"freezes": [{"name": "weekend", "schedule": "0 18 * *", "duration": "1h"}]},
            "freeze 'weekend': bad schedule: cron expression '0 18 * *' has 4 field(s)",
        ),
        (
            {"freezes": [{**XMAS, "schedule": "0 18 * * fri", "duration": "1h"}]},
            "give either start and end (one period) or schedule and duration",
        ),
        (
            {"freezes": [{"name": "weekend", "schedule": "0 18 * * fri", "duration": 0}]},
            "freeze 'weekend': duration must be longer than 0s",
        ),
        (
            {"freezes": [XMAS, XMAS]},
            "freeze names must be unique; repeated: xmas",
        ),
        (
            {"freezes": [{**XMAS, "exemptions": ["yolo"]}]},
            "'hotfix', 'security', 'regression' or 'release-blocker'",
        ),
        (
            {"windows": [{"days": ["Mon-Fri"], "start": "09:00", "end": "09:00"}]},
            "window 09:00-09:00: end 09:00 equals start 09:00, so the window would be empty",
        ),
        (
            {"windows": [{"days": ["Mon-Fri"], "start": "9am", "end": "16:00"}]},
            "start '9am' is not a time of day HH:MM",
        ),
        (
            {"windows": [{"days": ["Mon-Fri"], "start": "24:00", "end": "04:00"}]},
            "start 24:00 is not a time of day; use 00:00",
        ),
        (
            {
                "windows": [
                    {"name": "office", "days": ["Mon-Fry"], "start": "09:00", "end": "16:00"}
                ]
            },
            "window 'office': day 'Mon-Fry' is not a day name or range",
        ),
        (
            {
                "windows": [
                    {"days": ["Mon"], "start": "09:00", "end": "16:00", "timeZone": "Mars/Base"}
                ]
            },
            "unknown time zone 'Mars/Base'",
        ),
        (
            {
                "notifications": [
                    {
                        "name": "chat",
                        "urlFrom": {"secretKeyRef": {"name": "s", "key": "url"}},
                        "timeout": "5m",
                    }
                ]
            },
            "notification 'chat': timeout must be between 0s and 60s",
        ),
        (
            {"notifications": [{"name": "chat", "url": "https://hooks.slack.com/x"}]},
            "Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_policies_are_refused_with_a_clear_message(
    spec: dict[str, Any], message: str
) -> None:
    assert message in error_of(spec)


def test_a_full_policy_reads_and_round_trips() -> None:
    spec = {
        "exemptions": ["hotfix", "security"],
        "freezes": [
            {**XMAS, "reason": "Christmas", "exemptions": ["security", "release-blocker"]},
            {
                "name": "weekend",
                "schedule": "0 18 * * fri",
                "duration": "62h",
                "timeZone": "Europe/Berlin",
            },
        ],
        "windows": [
            {"days": ["Mon-Fri"], "start": "09:00", "end": "16:00", "timeZone": "Europe/Berlin"},
            {"name": "night", "days": ["Sat"], "start": "22:00", "end": "04:00"},
        ],
        "approvals": [{"name": "prod", "namespaces": ["prod"], "groups": ["sre"]}],
        "notifications": [
            {
                "name": "chat",
                "type": "slack",
                "urlFrom": {"secretKeyRef": {"name": "slack", "key": "url"}},
                "events": ["promoted", "rolledBack"],
            }
        ],
    }
    parsed = policy(spec)
    assert parsed.spec.freezes[1].duration == 62 * 3600
    assert parsed.spec.windows[1].end_offset_minutes() == 28 * 60  # into Sunday
    again = DeliveryPolicy.model_validate(parsed.to_dict())
    assert again == parsed
    assert parsed.to_dict()["spec"]["freezes"][1]["duration"] == "62h"


def test_requires_is_namespace_slash_name() -> None:
    assert rollout(requires="staging/checkout").spec.requires is not None
    with pytest.raises(ValidationError, match="must be namespace/name, e.g. staging/checkout"):
        rollout(requires="checkout")
    with pytest.raises(ValidationError, match="must be namespace/name"):
        rollout(requires="Staging/checkout")
