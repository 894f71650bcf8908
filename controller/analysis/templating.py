"""Render the placeholders of an analysis query, escaping every value for PromQL.

Called by the measurement loop (``controller.analysis.run``) and the backtest before a
query is sent. Placeholders are ``{{args.NAME}}``, ``{{canary.hash}}``,
``{{stable.hash}}``, ``{{rollout.name}}`` and ``{{rollout.namespace}}``; whitespace
inside the braces is allowed (``{{ args.service }}``).

Values are data, never PromQL. A placeholder inside a quoted string (the normal case:
``revision="{{canary.hash}}"``) gets its value escaped for that string's quote, so a
value containing ``"``, ``}`` or a newline stays inside the label matcher. A placeholder
outside any string (``[{{args.window}}]``) takes only a plain token (letters, digits,
``_ . :``), because no escaping can make arbitrary text safe there. Values are not
regex-escaped: inside ``=~"..."`` a value is a regular expression, as the author wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

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

    def for_stable(self) -> QueryContext:
        """The same context with the canary's hash replaced by the stable one.

        Used for ``relativeTo: stable``: the very same query, asked about stable.
        """
        if self.stable_hash is None:
            raise TemplateError("relativeTo: stable needs a stable revision; none is known yet")
        return replace(self, canary_hash=self.stable_hash)

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
    known = context.values()
    quotes = _quote_context(query)
    pieces: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(query):
        name = match.group(1)
        if name not in known:
            raise TemplateError(f"unknown placeholder {{{{{name}}}}}; known: {_known(known)}")
        value = known[name]
        if value is None:
            what = "no stable revision is known yet" if name == "stable.hash" else "no value"
            raise TemplateError(f"{{{{{name}}}}} has {what}; known: {_known(known)}")
        quote = quotes[match.start()]
        if quote == "`":
            # Raw strings have no escapes at all: only values without a backtick fit.
            if "`" in value:
                raise TemplateError(f"value of {{{{{name}}}}} contains ` inside a `raw` string")
            rendered = value
        elif quote is not None:
            rendered = escape_string(value, quote)
        else:
            if not _BARE_TOKEN.match(value):
                raise TemplateError(
                    f"value {value!r} of {{{{{name}}}}} is used outside a quoted string and may "
                    "only contain letters, digits, '_', '.' and ':'"
                )
            rendered = value
        pieces.append(query[last : match.start()])
        pieces.append(rendered)
        last = match.end()
    pieces.append(query[last:])
    return "".join(pieces)


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
