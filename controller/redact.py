"""Masking credentials in text that leaves the controller: status, Events, logs, notifications.

One place decides what looks like a credential, so every way out masks the same things:

- ``redact_url(url)``: the userinfo of ``scheme://user:password@host`` (the password, or
  a lone user part, which is often a token) and the values of query or fragment
  parameters whose names look like credentials (``key``, ``api_key``, ``token``,
  ``access_token``, ``password``, ``secret``, ``signature``, ``X-Amz-Signature``, ...);
- ``redact_text(text)``: every URL in ``text`` as above, plus ``Bearer``/``Basic``
  credentials, echoed credential headers (``Authorization: ...``, ``X-Api-Key: ...``,
  ``Cookie: ...``), ``"token": "..."`` and ``password=...`` pairs, JWTs and AWS access
  key ids;
- ``scrub(text, values)``: exact values known to be secret (a header read from a
  Secret), also in their JSON-escaped form, before ``redact_text``.

Callers: ``controller.logging`` (a structlog processor), the web provider and its judge
(status messages, Events), ``controller.notify`` (webhook errors). Masking errs on the
side of hiding: a parameter named ``monkey`` is masked too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

CREDENTIAL_NAME = re.compile(
    r"key|token|passw(?:or)?d|pwd|secret|signature|sig|credential|auth|session|cookie|bearer",
    re.IGNORECASE,
)
"""A parameter, field or header name whose value is probably a credential."""

_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<rest>[^\s\"'<>`]+)")
_USERINFO = re.compile(r"^(?P<userinfo>[^/?#@\s]*)@")
_PARAM = re.compile(r"(?P<name>[^&=;#?]+)=(?P<value>[^&;#]*)")
_SCHEME_CREDENTIAL = re.compile(
    r"(?P<prefix>\b(?:Bearer|Basic|Token|Digest|Negotiate)\s+)[A-Za-z0-9._~+/=:-]+",
    re.IGNORECASE,
)
_CREDENTIAL_HEADER = re.compile(
    r"(?P<prefix>\b(?:proxy-)?authorization|\bcookie|\bset-cookie|\bx-[a-z0-9-]*(?:key|token|auth)"
    r"[a-z0-9-]*|\bapi-?key)(?P<sep>\"?\s*[:=]\s*\"?)(?P<value>[^\r\n\"}]+)",
    re.IGNORECASE,
)
_JSON_PAIR = re.compile(
    r"(?P<prefix>\"(?P<name>[^\"\\]{1,64})\"\s*:\s*)\"(?P<value>(?:[^\"\\]|\\.)*)\""
)
_FORM_PAIR = re.compile(r"(?P<prefix>\b(?P<name>[A-Za-z0-9_.-]{1,64})=)(?P<value>[^&\s\"',;]+)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def _params(text: str) -> str:
    """``a=1&token=x`` -> ``a=1&token=[REDACTED]``; other parameters as they were."""

    def one(match: re.Match[str]) -> str:
        if CREDENTIAL_NAME.search(match["name"]) and match["value"]:
            return f"{match['name']}={REDACTED}"
        return match[0]

    return _PARAM.sub(one, text)


def redact_url(url: str) -> str:
    """``url`` with its userinfo and credential-looking parameters masked.

    >>> redact_url("https://bob:hunter2@api.example.com/v1?key=abc&page=2#access_token=t")
    'https://bob:[REDACTED]@api.example.com/v1?key=[REDACTED]&page=2#access_token=[REDACTED]'
    >>> redact_url("https://ghp_abc@github.com/x")
    'https://[REDACTED]@github.com/x'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _params(url) if "=" in url else url
    userinfo = _USERINFO.match(rest)
    if userinfo is not None:
        user, colon, _password = userinfo["userinfo"].partition(":")
        masked = f"{user}:{REDACTED}" if colon else REDACTED
        rest = f"{masked}@{rest[userinfo.end() :]}"
    head, question, query = rest.partition("?")
    if not question:
        head, hash_, fragment = rest.partition("#")
        return f"{scheme}://{head}{hash_}{_params(fragment) if hash_ else ''}"
    query, hash_, fragment = query.partition("#")
    tail = f"{hash_}{_params(fragment)}" if hash_ else ""
    return f"{scheme}://{head}?{_params(query)}{tail}"


def redact_text(text: str) -> str:
    """``text`` with URLs, bearer tokens and credential-looking pairs masked.

    >>> redact_text('GET https://h/x?token=abc -> 401: {"error": "bad", "api_key": "k1"}')
    'GET https://h/x?token=[REDACTED] -> 401: {"error": "bad", "api_key": "[REDACTED]"}'
    """
    if not text:
        return text
    text = _URL.sub(lambda m: redact_url(m[0]), text)
    text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m['prefix']}{REDACTED}", text)
    text = _CREDENTIAL_HEADER.sub(lambda m: f"{m['prefix']}{m['sep']}{REDACTED}", text)

    def json_pair(match: re.Match[str]) -> str:
        if CREDENTIAL_NAME.search(match["name"]) and match["value"]:
            return f'{match["prefix"]}"{REDACTED}"'
        return match[0]

    def form_pair(match: re.Match[str]) -> str:
        if CREDENTIAL_NAME.search(match["name"]) and match["value"] != REDACTED:
            return f"{match['prefix']}{REDACTED}"
        return match[0]

    text = _JSON_PAIR.sub(json_pair, text)
    text = _FORM_PAIR.sub(form_pair, text)
    text = _JWT.sub(REDACTED, text)
    return _AWS_KEY_ID.sub(REDACTED, text)


def scrub(text: str, values: Iterable[str]) -> str:
    """``text`` without any of ``values`` (known secrets, raw or JSON-escaped), then
    ``redact_text``. Values shorter than 4 characters are left alone: masking every
    ``a`` in a message would hide the message, not a secret."""
    for value in sorted({v for v in values if len(v) >= 4}, key=len, reverse=True):
        forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
        for form in forms:
            text = text.replace(form, REDACTED)
    return redact_text(text)
