"""Judging an HTTP check's reply: status code first, then an optional value in the JSON.

Pure: ``controller.analysis.web`` sends the request and hands over a ``WebReply``; this
module turns it into a ``Judgement``. The rules:

- a status code outside ``successCodes`` (default: any 2xx) is **Failed**, with the
  method, URL, code, time and an excerpt of the body as the evidence;
- without ``jsonPath`` that is all: any success code is **Successful**;
- with ``jsonPath`` the value found there is judged: against ``equals`` (compared as
  text, so ``equals: "ok"`` and ``equals: "true"`` both read naturally) or against the
  metric's ``threshold`` (``min``/``max``, numbers, with the metric's ``for``). A body
  that is not JSON, or a path that is not there, is **Inconclusive**: missing data never
  promotes.

``jsonPath`` is a dotted path with list indexes, optionally starting with ``$``:
``$.status``, ``checks[0].healthy``, ``data.latency_ms``.

Evidence is what goes into status, Events, notifications and ``deployctl status``, so it
says only what judging needs: status code, time, the value at ``jsonPath`` (at most
``MAX_VALUE`` characters). The body appears only when the status code failed the check:
at most ``MAX_EXCERPT`` bytes of it, after the header values read from Secrets (also in
their JSON-escaped form) and anything that looks like a credential
(``controller.redact``) are masked. URLs are shown with credentials masked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.analysis.verdict import Judgement, evaluate
from controller.api.analysis import Metric, WebProvider
from controller.redact import redact_url, scrub

MAX_EXCERPT = 256
MAX_VALUE = 256
_REDACT_WINDOW = 4096
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class WebReply:
    """What a check's request got back."""

    method: str
    url: str
    status: int
    body: str
    elapsed: float = 0.0
    """Seconds from sending to the end of the (capped) body."""
    sensitive: tuple[str, ...] = ()
    """Values that must never be shown: headers read from Secrets, credentials sent."""

    def shown(self, text: str) -> str:
        """``text`` with the sensitive values and credential-looking parts masked."""
        return scrub(text, self.sensitive)


class PathError(ValueError):
    """The reply has nothing at the path."""


def lookup(document: Any, path: str) -> Any:
    """The value at ``path`` in ``document``; PathError naming the step that is missing.

    >>> lookup({"checks": [{"ok": True}]}, "$.checks[0].ok")
    True
    """
    rest = path.strip()
    rest = rest[1:] if rest.startswith("$") else rest
    current = document
    walked = "$"
    for match in _STEP.finditer(rest):
        key, index = match.group(1), match.group(2)
        if key is not None:
            if not isinstance(current, dict) or key not in current:
                raise PathError(f"no {key!r} at {walked}")
            current = current[key]
            walked += f".{key}"
        else:
            position = int(index)
            if not isinstance(current, list) or position >= len(current):
                raise PathError(f"no [{position}] at {walked}")
            current = current[position]
            walked += f"[{position}]"
    return current


def excerpt(body: str, sensitive: tuple[str, ...] = ()) -> str:
    """At most ``MAX_EXCERPT`` bytes of ``body`` on one line, masked (see the docstring).

    Masked before it is cut, so a credential cut in half is still recognised.
    """
    flat = scrub(" ".join(body[:_REDACT_WINDOW].split()), sensitive)
    data = flat.encode()
    if len(data) <= MAX_EXCERPT:
        return flat
    return data[:MAX_EXCERPT].decode("utf-8", "ignore") + "..."


def _value_text(reply: WebReply, text: str) -> str:
    shown = reply.shown(text)
    return shown if len(shown) <= MAX_VALUE else shown[:MAX_VALUE] + "..."


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _number(value: Any) -> float | None:
    """A JSON number, or a string holding one; None for anything else (true is not 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def judge_reply(
    metric: Metric,
    web: WebProvider,
    reply: WebReply,
    *,
    breach_since: datetime | None,
    now: datetime,
) -> Judgement:
    """The verdict on one reply (see the module docstring)."""
    name = metric.name
    said = f"{reply.method} {redact_url(reply.url)} -> {reply.status} in {_ms(reply.elapsed)}"
    ok_codes = web.success_codes
    code_ok = reply.status in ok_codes if ok_codes else 200 <= reply.status < 300
    if not code_ok:
        wanted = ", ".join(map(str, ok_codes)) if ok_codes else "2xx"
        return Judgement(
            "Failed",
            str(reply.status),
            f"{name}: {said} (wanted {wanted}): {excerpt(reply.body, reply.sensitive)}".rstrip(
                ": "
            ),
        )
    if web.json_path is None:
        return Judgement("Successful", str(reply.status), f"{name}: {said}")
    try:
        value = lookup(json.loads(reply.body), web.json_path)
    except json.JSONDecodeError:
        # No excerpt: only a failed status code shows the body (see the docstring).
        return Judgement(
            "Inconclusive", None, f"{name}: {said}, body is not JSON ({len(reply.body)} chars)"
        )
    except PathError as exc:
        return Judgement("Inconclusive", None, f"{name}: {said}, {web.json_path}: {exc}")
    raw = _text(value)
    text = _value_text(reply, raw)
    if web.equals is not None:
        message = f"{name}: {said}, {web.json_path} = {text!r} (want {web.equals!r})"
        return Judgement("Successful" if raw == web.equals else "Failed", text, message)
    number = _number(value)
    if number is None:
        return Judgement(
            "Inconclusive", text, f"{name}: {said}, {web.json_path} = {text!r} is not a number"
        )
    assert metric.threshold is not None  # the model requires equals or a threshold
    judged = evaluate(
        name,
        number,
        metric.threshold,
        for_=metric.effective_for,
        breach_since=breach_since,
        now=now,
    )
    return Judgement(
        judged.phase,
        judged.value,
        f"{judged.message} ({said}, {web.json_path})",
        judged.breach_since,
    )
