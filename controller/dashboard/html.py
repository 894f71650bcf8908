"""A small HTML builder that escapes by construction.

Every string handed to ``el`` as a child or an attribute value is escaped; only
``Markup`` (what ``el`` and ``join`` return) is inserted as it is. Rollout names, status
messages and Event texts come from the cluster, so nothing of theirs can become markup.

>>> el("td", "<b>", class_="x", data_value=1)
'<td class="x" data-value="1">&lt;b&gt;</td>'
>>> el("input", type="checkbox", checked=True, disabled=False)
'<input type="checkbox" checked>'
"""

from __future__ import annotations

import html
from collections.abc import Iterable

VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "col"})

AttributeValue = str | int | float | bool | None


class Markup(str):
    """Text that is already HTML."""


def escape(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def _children(children: Iterable[object]) -> Iterable[str]:
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, str | int | float):
            yield escape(child)
        elif isinstance(child, Iterable):
            yield from _children(child)
        else:
            raise TypeError(f"cannot render {type(child).__name__} as HTML")


def join(*children: object) -> Markup:
    return Markup("".join(_children(children)))


def attributes(attrs: dict[str, AttributeValue]) -> str:
    """``class_`` -> ``class``, ``data_x`` -> ``data-x``; True: bare; None/False: left out."""
    out = []
    for key, value in attrs.items():
        name = key.rstrip("_").replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(f" {name}")
        else:
            out.append(f' {name}="{escape(value)}"')
    return "".join(out)


def el(tag: str, *children: object, **attrs: AttributeValue) -> Markup:
    opening = f"<{tag}{attributes(attrs)}>"
    if tag in VOID:
        return Markup(opening)
    return Markup(f"{opening}{join(*children)}</{tag}>")
