"""structlog configuration: JSON output, context binding, secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from controller.logging import (
    REDACTED,
    bind_revision,
    configure_logging,
    get_logger,
    redact,
    rollout_context,
)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(fmt="json", level="debug", stream=stream)
    yield stream
    configure_logging(fmt="console", level="warning")


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_redact_masks_secret_keys_bearer_strings_and_url_passwords() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "calling https://bob:hunter2@example.com/x with Bearer abc.def-123",
            "token": "abc",
            "Authorization": "Bearer abc",
            "headers": {"X-Api-Key": "k", "Accept": "json"},
            "items": [{"password": "p"}, "http://u:pw@h/"],
            "count": 3,
        },
    )
    assert event["event"] == (
        f"calling https://bob:{REDACTED}@example.com/x with Bearer {REDACTED}"
    )
    assert event["token"] == REDACTED
    assert event["Authorization"] == REDACTED
    assert event["headers"] == {"X-Api-Key": REDACTED, "Accept": "json"}
    assert event["items"] == [{"password": REDACTED}, f"http://u:{REDACTED}@h/"]
    assert event["count"] == 3


def test_json_lines_carry_rollout_context_and_never_a_token(json_log: io.StringIO) -> None:
    log = get_logger("test")
    with rollout_context(namespace="shop", rollout="checkout"):
        bind_revision("abc123")
        log.info("step done", token="s3cr3t", step=2)
    log.info("outside")
    first, second = lines(json_log)
    assert first["namespace"] == "shop"
    assert first["rollout"] == "checkout"
    assert first["revision"] == "abc123"
    assert first["token"] == REDACTED
    assert first["level"] == "info"
    assert "timestamp" in first
    assert "s3cr3t" not in json_log.getvalue()
    assert "namespace" not in second and "revision" not in second


def test_stdlib_loggers_are_rendered_and_redacted_too(json_log: io.StringIO) -> None:
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying https://admin:pw@10.0.0.1/api with Authorization: Bearer tok123"
    )
    (line,) = lines(json_log)
    assert "pw@" not in str(line["event"]) and "tok123" not in str(line["event"])


def test_console_format_and_level_filter() -> None:
    stream = io.StringIO()
    configure_logging(fmt="console", level="warning", stream=stream)
    try:
        get_logger("t").info("hidden")
        get_logger("t").warning("shown", password="x")
    finally:
        configure_logging(fmt="console", level="warning")
    text = stream.getvalue()
    assert "hidden" not in text and "shown" in text and REDACTED in text


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(ValueError):
        configure_logging(fmt="json", level="loud", stream=io.StringIO())
