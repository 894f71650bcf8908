"""Render the placeholders of analysis checks, escaping every value for where it goes.

Called by the measurement loop (``controller.analysis.run``) and the backtest before a
query is sent, a URL fetched or a Job created. Placeholders are ``{{args.NAME}}``,
``{{canary.hash}}``, ``{{stable.hash}}``, ``{{rollout.name}}`` and
``{{rollout.namespace}}``; whitespace inside the braces is allowed (``{{ args.service }}``).
Each context escapes in its own way (``render`` for PromQL, the rest below it):

- PromQL (``render``): see below.
- URLs (``render_url``): a value in the host part must be a host name or address
  (letters, digits, ``.-:``); anywhere after it, it is percent-encoded whole (``/``,
  ``?``, ``&`` and ``#`` included), so a value is one path segment or one query value
  and can never add a parameter or change the path. A URL that is one placeholder takes
  the value as the URL, which must then be an ``http(s)://`` URL without spaces; a URL
  that starts with one (Argo Rollouts' ``{{args.api-url}}?service={{args.service}}``)
  takes that value as its base URL, checked the same way, and encodes the rest as
  after the host.
- JSON bodies (``render_body``): inside a JSON string a value is JSON-escaped; outside
  any string it must be a JSON number, ``true``, ``false`` or ``null``. A body that is
  not JSON (it does not start with ``{`` or ``[``) takes values as they are.
- Header values (``render_header``): as they are, but never a line break.
- Job specs (``render_job``): every string of the spec, values as plain strings (an
  argument of a command is one argv item; no shell is involved unless the command
  runs one).

Values are data, never PromQL. A placeholder inside a quoted string (the normal case:
``revision="{{canary.hash}}"``) gets its value escaped for that string's quote, so a
value containing ``"``, ``}`` or a newline stays inside the label matcher. A placeholder
outside any string (``[{{args.window}}]``) takes only a plain token (letters, digits,
``_ . :``), because no escaping can make arbitrary text safe there. Values are not
regex-escaped: inside ``=~"..."`` a value is a regular expression, as the author wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from controller.names import BASELINE_SUFFIX

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_BARE_TOKEN = re.compile(r"^[A-Za-z0-9_.:]+$")
_SIMPLE_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTEXT_NAMES = ("canary.hash", "stable.hash", "rollout.name", "rollout.namespace")


class TemplateError(ValueError):
    """A placeholder that cannot be filled; the message names it and what is known."""


@dataclass(frozen=True)
class QueryContext:
    """What a query may refer to besides its args: the revisions and the rollout."""

    canary_hash: str | None = None
    stable_hash: str | None = None
    rollout_name: str | None = None
    rollout_namespace: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    rollout_fields: Callable[[], Mapping[str, Any]] | None = None
    """The Rollout as JSON, for ``valueFrom.fieldRef`` (built only when asked for)."""

    def for_stable(self) -> QueryContext:
        """The same context with the canary's hash replaced by the stable one.

        Used for ``relativeTo: stable``: the very same query, asked about stable.
        """
        if self.stable_hash is None:
            raise TemplateError("relativeTo: stable needs a stable revision; none is known yet")
        return replace(self, canary_hash=self.stable_hash)

    def for_baseline(self) -> QueryContext:
        """The same context with the canary's hash replaced by the baseline's (fresh
        pods of the stable revision with their own revision label value).

        Used for ``compare.against: baseline``: the very same query, asked about the
        baseline.
        """
        if self.stable_hash is None:
            raise TemplateError("against: baseline needs a stable revision; none is known yet")
        return replace(self, canary_hash=f"{self.stable_hash}{BASELINE_SUFFIX}")

    def with_args(self, args: Mapping[str, str]) -> QueryContext:
        return replace(self, args=dict(args))

    def values(self) -> dict[str, str | None]:
        known: dict[str, str | None] = {
            "canary.hash": self.canary_hash,
            "stable.hash": self.stable_hash,
            "rollout.name": self.rollout_name,
            "rollout.namespace": self.rollout_namespace,
        }
        known.update({f"args.{name}": value for name, value in self.args.items()})
        return known


def escape_string(value: str, quote: str = '"') -> str:
    """Escape ``value`` for the inside of a PromQL string delimited by ``quote``.

    PromQL strings use Go's escapes; only the delimiter itself may be escaped as a
    quote (``\\'`` is an error inside ``"..."``), so the quote to escape is a parameter.

    >>> escape_string('x"} or vector(1) #')
    'x\\\\"} or vector(1) #'
    """
    out = []
    for char in value:
        if char == quote:
            out.append("\\" + char)
        elif char in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def render(query: str, context: QueryContext) -> str:
    """``query`` with every placeholder replaced by its escaped value.

    Raises ``TemplateError`` for an unknown placeholder, an argument without a value, or
    a value that is unsafe where it is used; the message lists the names that are known.
    """
    quotes = _quote_context(query)

    def encode(name: str, value: str, position: int) -> str:
        quote = quotes[position]
        if quote == "`":
            # Raw strings have no escapes at all: only values without a backtick fit.
            if "`" in value:
                raise TemplateError(f"value of {{{{{name}}}}} contains ` inside a `raw` string")
            return value
        if quote is not None:
            return escape_string(value, quote)
        if not _BARE_TOKEN.match(value):
            raise TemplateError(
                f"value {value!r} of {{{{{name}}}}} is used outside a quoted string and may "
                "only contain letters, digits, '_', '.' and ':'"
            )
        return value

    return _fill(query, context, encode)


def placeholders(query: str) -> list[str]:
    """The placeholder names a query uses, in order of first appearance."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(query)))


def _known(known: Mapping[str, str | None]) -> str:
    names = [n for n in _CONTEXT_NAMES] + sorted(n for n in known if n.startswith("args."))
    return ", ".join(names)


def _quote_context(query: str) -> list[str | None]:
    """For each character of ``query``, the quote of the string it is inside, or None.

    A small scan of PromQL's lexical rules for strings and comments: enough to know
    whether a placeholder sits inside ``"..."``, ``'...'``, a `` `raw` `` string or not.
    """
    result: list[str | None] = []
    quote: str | None = None
    escaped = False
    in_comment = False
    for char in query:
        if in_comment:
            result.append(None)
            in_comment = char != "\n"
            continue
        if quote is None:
            result.append(None)
            if char in "\"'`":
                quote = char
            elif char == "#":
                in_comment = True
            continue
        result.append(quote)
        if escaped:
            escaped = False
        elif char == "\\" and quote != "`":
            escaped = True
        elif char == quote:
            quote = None
    return result


# --------------------------------------------------------------------------- other contexts

_HOST_TOKEN = re.compile(r"^[A-Za-z0-9.:-]+$")
_JSON_TOKEN = re.compile(r"^(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null)$")
_URL = re.compile(r"^https?://[^\s]+$")


def _fill(text: str, context: QueryContext, encode: Callable[[str, str, int], str]) -> str:
    """``text`` with each placeholder replaced by ``encode(name, value, position)``."""
    known = context.values()
    pieces: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1)
        if name not in known:
            raise TemplateError(f"unknown placeholder {{{{{name}}}}}; known: {_known(known)}")
        value = known[name]
        if value is None:
            what = "no stable revision is known yet" if name == "stable.hash" else "no value"
            raise TemplateError(f"{{{{{name}}}}} has {what}; known: {_known(known)}")
        pieces.append(text[last : match.start()])
        pieces.append(encode(name, value, match.start()))
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)


def render_url(url: str, context: QueryContext) -> str:
    """``url`` with placeholders filled for their part of the URL (module docstring)."""
    leading = _PLACEHOLDER.match(url.strip())
    if leading is not None:
        base = _fill(leading.group(0), context, lambda _n, value, _p: value)
        if not _URL.match(base):
            raise TemplateError(
                f"{{{{{leading.group(1)}}}}} must be an http:// or https:// URL without spaces "
                f"(got {base!r})"
            )
        rest = url.strip()[leading.end() :]
        return base + _fill(rest, context, lambda _n, value, _p: quote(value, safe=""))
    scheme_end = url.find("://")
    host_end = url.find("/", scheme_end + 3) if scheme_end >= 0 else -1
    host_end = len(url) if host_end < 0 else host_end
    for mark in ("?", "#"):
        cut = url.find(mark, scheme_end + 3)
        if 0 <= cut < host_end:
            host_end = cut

    def encode(name: str, value: str, position: int) -> str:
        if position < host_end:
            if not _HOST_TOKEN.match(value):
                raise TemplateError(
                    f"value {value!r} of {{{{{name}}}}} is used in the URL's host and may only "
                    "contain letters, digits, '.', '-' and ':'"
                )
            return value
        return quote(value, safe="")

    return _fill(url, context, encode)


def render_header(value: str, context: QueryContext, *, header: str) -> str:
    """A header value with placeholders filled as they are; never a line break."""
    rendered = _fill(value, context, lambda _n, v, _p: v)
    if any(c in rendered for c in "\r\n"):
        raise TemplateError(f"header {header}: an argument put a line break in its value")
    return rendered


def render_body(body: str, context: QueryContext) -> str:
    """A request body with placeholders filled, JSON-escaped in a JSON body."""
    if not body.lstrip().startswith(("{", "[")):
        return _fill(body, context, lambda _n, v, _p: v)
    inside = _json_strings(body)

    def encode(name: str, value: str, position: int) -> str:
        if inside[position]:
            return json.dumps(value)[1:-1]
        if not _JSON_TOKEN.match(value):
            raise TemplateError(
                f"value {value!r} of {{{{{name}}}}} is used outside a JSON string and must be a "
                'number, true, false or null (put the placeholder in quotes: "{{...}}")'
            )
        return value

    return _fill(body, context, encode)


def render_job(spec: Any, context: QueryContext) -> Any:
    """A copy of a Job spec (JSON) with placeholders filled in every string value."""
    if isinstance(spec, str):
        return _fill(spec, context, lambda _n, v, _p: v) if "{{" in spec else spec
    if isinstance(spec, Mapping):
        return {key: render_job(value, context) for key, value in spec.items()}
    if isinstance(spec, list):
        return [render_job(item, context) for item in spec]
    return spec


def _json_strings(text: str) -> list[bool]:
    """For each character of ``text``, whether it is inside a JSON string literal."""
    result: list[bool] = []
    inside = False
    escaped = False
    for char in text:
        result.append(inside)
        if not inside:
            inside = char == '"'
        elif escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            inside = False
            result[-1] = False
    return result


# --------------------------------------------------------------------------- fieldRef

_FIELD_STEP = re.compile(
    r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]|\['([^'\]]+)'\]|\[\"([^\"\]]+)\"\]"
)


def field_value(document: Mapping[str, Any], path: str) -> str:
    """The value at ``path`` (``metadata.labels['app']``) in ``document``, as text."""
    current: Any = document
    walked = ""
    for match in _FIELD_STEP.finditer(path):
        key = match.group(1) or match.group(3) or match.group(4)
        if key is not None:
            if not isinstance(current, Mapping) or key not in current:
                raise TemplateError(
                    f"fieldRef {path}: the Rollout has no {key!r} at {walked or '.'}"
                )
            current = current[key]
            walked += f".{key}" if walked else key
        else:
            index = int(match.group(2))
            if not isinstance(current, list) or index >= len(current):
                raise TemplateError(f"fieldRef {path}: the Rollout has no [{index}] at {walked}")
            current = current[index]
            walked += f"[{index}]"
    if isinstance(current, str):
        return current
    if isinstance(current, Mapping | list):
        raise TemplateError(f"fieldRef {path}: is an object, not a value")
    return json.dumps(current)
