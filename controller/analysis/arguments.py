"""Analysis arguments: their values from the Rollout, the template, or where ``valueFrom``
points, and the Secret values that must never be shown.

Called by the measurement loop (``controller.analysis.run``) when it resolves an
analysis: the Rollout's ``args`` override the template's; a ``valueFrom`` is read from the
revisions being compared (``podTemplateHashValue: Stable | Latest``), from the Rollout
itself (``fieldRef``) or, in an AnalysisTemplate, from a Secret of the Rollout's
namespace (``secretKeyRef``). Secrets are read only when a measurement is taken
(``with_secrets``), never to schedule one, and their values are masked (``hide``) in
everything written to status, Events and logs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from controller.analysis.templating import QueryContext, TemplateError, field_value
from controller.api.common import Arg, SecretKeyRef

SecretReader = Callable[[str, str], Mapping[str, str]]
MASK = "*****"


@dataclass(frozen=True)
class ArgValues:
    """A template's arguments: the values known now, and those a Secret holds."""

    values: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, SecretKeyRef] = field(default_factory=dict)


def from_value_source(arg: Arg, context: QueryContext) -> str | None:
    """The value of ``arg`` unless it comes from a Secret (None then, and when unset)."""
    if arg.value is not None:
        return arg.value
    source = arg.value_from
    if source is None or source.secret_key_ref is not None:
        return None
    if source.pod_template_hash_value is not None:
        if source.pod_template_hash_value == "Stable":
            if context.stable_hash is None:
                raise TemplateError(
                    f"arg {arg.name}: podTemplateHashValue Stable has no value yet (no stable "
                    "revision: the first deploy has nothing to compare with)"
                )
            return context.stable_hash
        if context.canary_hash is None:
            raise TemplateError(f"arg {arg.name}: podTemplateHashValue Latest has no value yet")
        return context.canary_hash
    assert source.field_ref is not None
    if context.rollout_fields is None:
        raise TemplateError(f"arg {arg.name}: fieldRef needs the Rollout, which is not known here")
    return field_value(context.rollout_fields(), source.field_ref.field_path)


def rollout_args(args: Iterable[Arg], context: QueryContext) -> dict[str, str]:
    """The values a Rollout's analysis passes (``value`` or ``valueFrom``)."""
    out: dict[str, str] = {}
    for arg in args:
        value = from_value_source(arg, context)
        if value is not None:
            out[arg.name] = value
    return out


def template_args(
    template_name: str, declared: Iterable[Arg], given: Mapping[str, str], context: QueryContext
) -> ArgValues:
    """``given`` over the template's own values; TemplateError for an arg with neither."""
    declared = list(declared)
    values: dict[str, str] = {}
    secrets: dict[str, SecretKeyRef] = {}
    for arg in declared:
        if arg.name in given:
            values[arg.name] = given[arg.name]
            continue
        if arg.value_from is not None and arg.value_from.secret_key_ref is not None:
            secrets[arg.name] = arg.value_from.secret_key_ref
            continue
        value = from_value_source(arg, context)
        if value is None:
            raise TemplateError(
                f"AnalysisTemplate {template_name!r} needs argument {arg.name!r}, which has no "
                "default and was not given; pass it in the analysis args "
                f"(template args: {', '.join(a.name for a in declared)})"
            )
        values[arg.name] = value
    return ArgValues(values, secrets)


def with_secrets(
    args: ArgValues, *, namespace: str, reader: SecretReader | None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Every argument's value, Secrets read now; and the Secret values to hide."""
    values = dict(args.values)
    hidden: list[str] = []
    for name, ref in args.secrets.items():
        where = f"arg {name}: Secret {namespace}/{ref.name}"
        if reader is None:
            raise TemplateError(f"{where}: this controller cannot read Secrets")
        try:
            data = reader(namespace, ref.name)
        except Exception as exc:  # noqa: BLE001 - mapped to a message a person can act on
            code = getattr(exc, "code", None)
            if code == 403:
                raise TemplateError(
                    f"{where}: the controller may not read it; grant its ServiceAccount `get` "
                    "on that Secret with a Role and RoleBinding in this namespace "
                    "(docs/analysis.md)"
                ) from None
            if code == 404:
                raise TemplateError(f"{where} does not exist") from None
            raise TemplateError(f"{where} cannot be read: {type(exc).__name__}") from None
        if ref.key not in data:
            raise TemplateError(f"{where} has no key {ref.key!r}")
        values[name] = data[ref.key].strip()
        hidden.append(values[name])
    return values, tuple(v for v in hidden if v)


def hide(text: str, hidden: Iterable[str]) -> str:
    """``text`` with every Secret value replaced by ``*****`` (longest first)."""
    for value in sorted(set(hidden), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
