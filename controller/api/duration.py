"""Kubernetes-style durations ("30s", "2m", "1h30m", or a plain number of seconds).

Used by every model field that holds a time span. A ``Duration`` keeps whole or
fractional seconds and always serialises back to the short string form, so a spec
read from YAML and written again reads the same to a person.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
# A year is far beyond any pause or analysis window; larger values are typos or attacks.
MAX_SECONDS = 366 * 86400.0


class DurationError(ValueError):
    """A duration string that cannot be read; the message says what is allowed."""


def parse_duration(value: object) -> float:
    """Return the number of seconds in ``value``.

    >>> parse_duration("1m30s"), parse_duration(45), parse_duration("250ms")
    (90.0, 45.0, 0.25)
    """
    if isinstance(value, bool):
        raise DurationError("a duration must be a string like '30s', '2m', '1h' or seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise DurationError("empty duration; use a value like '30s', '2m' or '1h'")
        if text.startswith("-"):
            raise DurationError(f"duration {value!r} must not be negative")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            pos = 0
            seconds = 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text):
                raise DurationError(
                    f"invalid duration {value!r}; use digits with units ms, s, m, h, d "
                    "(e.g. '30s', '2m', '1h30m')"
                )
    else:
        raise DurationError(f"invalid duration {value!r}; use a string like '30s' or seconds")
    if seconds != seconds or seconds < 0:
        raise DurationError(f"duration {value!r} must not be negative")
    if seconds > MAX_SECONDS:
        raise DurationError(f"duration {value!r} is longer than the maximum of 366d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact string for ``seconds``: 90 -> '90s', 120 -> '2m', 0.5 -> '500ms'."""
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


class _DurationAnnotation:
    """Pydantic hooks: accept strings or numbers, hold float seconds, emit the string form."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: object) -> float:
            try:
                return parse_duration(value)
            except DurationError as exc:
                # pydantic reports ValueError messages with the field's location.
                raise ValueError(str(exc)) from None

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                format_duration, when_used="json"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: core_schema.CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Structural CRD schemas express "string or integer" with this extension.
        return {
            "x-kubernetes-int-or-string": True,
            "description": "Duration: seconds, or a string such as 30s, 2m, 1h.",
        }


Duration = Annotated[float, _DurationAnnotation]
"""Seconds as a float; written as '30s'/'2m'/'1h' in YAML and JSON."""
