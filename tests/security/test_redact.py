"""The one redaction of credentials in URLs and text (status, Events, logs, notifications)."""

from __future__ import annotations

import doctest
import json

import pytest

from controller import redact
from controller.redact import REDACTED, redact_text, redact_url, scrub


def test_docstring_examples() -> None:
    result = doctest.testmod(redact)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bob:hunter2@h/x", f"https://bob:{REDACTED}@h/x"),
        ("https://ghp_token123@github.com/o/r", f"https://{REDACTED}@github.com/o/r"),
        ("http://h/x?key=abc", f"http://h/x?key={REDACTED}"),
        ("http://h/x?api_key=abc&page=2", f"http://h/x?api_key={REDACTED}&page=2"),
        (
            "http://h/x?access_token=a&token=b",
            f"http://h/x?access_token={REDACTED}&token={REDACTED}",
        ),
        ("http://h/?password=p&secret=s", f"http://h/?password={REDACTED}&secret={REDACTED}"),
        (
            "https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12",
            f"https://b.s3.amazonaws.com/o?X-Amz-Credential={REDACTED}&X-Amz-Signature={REDACTED}",
        ),
        ("http://h/x?sig=abc", f"http://h/x?sig={REDACTED}"),
        ("http://h/cb#access_token=t&state=1", f"http://h/cb#access_token={REDACTED}&state=1"),
        ("http://h/x?page=2&sort=name", "http://h/x?page=2&sort=name"),
        ("http://h:8080/healthz", "http://h:8080/healthz"),
    ],
)
def test_urls(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def", "abc.def"),
        ('{"headers": {"Authorization": "Basic dXNlcjpwdw=="}}', "dXNlcjpwdw=="),
        ('{"X-Api-Key": "k-123456"}', "k-123456"),
        ('{"access_token": "tok-999"}', "tok-999"),
        ("password=hunter2&user=bob", "hunter2"),
        ("x-auth-token: zzz-111", "zzz-111"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln here", "eyJhbGciOiJIUzI1NiJ9"),
        ("key id AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("see https://u:pw1234@h/?token=t0k", "pw1234"),
    ],
)
def test_text(text: str, secret: str) -> None:
    shown = redact_text(text)
    assert secret not in shown and REDACTED in shown


def test_scrub_masks_known_values_raw_and_json_escaped() -> None:
    value = 'tok"en\\with/quotes-☃'
    for body in (
        json.dumps({"echo": value}),
        json.dumps({"echo": value}, ensure_ascii=False),
        f"raw: {value}",
    ):
        assert "quotes" not in scrub(body, [value]), body
    assert scrub(f"x {value} y", [value]) == f"x {REDACTED} y"
    assert scrub("a short one: ab", ["ab"]) == "a short one: ab"


def test_notifications_carry_masked_messages_and_evidence() -> None:
    from datetime import UTC, datetime

    from controller.api import RolloutStatus
    from controller.notify import generic_payload, notification_for
    from tests.policy.helpers import rollout

    status = RolloutStatus.model_validate(
        {
            "phase": "Degraded",
            "message": "probe: GET https://probe:hunter22@api.example/x?access_token=tok9 -> 500",
            "analysisRuns": [
                {
                    "key": "step-1",
                    "revision": "abc",
                    "startedAt": "2026-12-03T12:00:00Z",
                    "phase": "Failed",
                    "metrics": [
                        {
                            "name": "probe",
                            "phase": "Failed",
                            "message": 'probe: -> 401: {"api_key": "k-77777"}',
                        }
                    ],
                }
            ],
        }
    )
    note = notification_for(
        rollout(), status, "aborted", now=datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    )
    sent = json.dumps(generic_payload(note))
    for secret in ("hunter22", "tok9", "k-77777"):
        assert secret not in sent
    assert REDACTED in note.message and REDACTED in note.evidence[0]
