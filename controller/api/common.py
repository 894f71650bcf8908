"""Building blocks shared by every deployctl.io resource model.

``ApiModel`` fixes the conventions once: camelCase field names on the wire, unknown
fields rejected (a typo such as ``setWieght`` is an error, not silently ignored) and
immutable instances (the controller never edits what it read; it builds new values).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "deployctl.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

# RFC 1123 label: what Kubernetes accepts for Service, template and most object names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

ObjectName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class ApiModel(BaseModel):
    """Base of every spec model: camelCase aliases, strict about unknown fields, frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        ser_json_inf_nan="strings",
    )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no unset optionals, durations as strings."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class OpenModel(ApiModel):
    """A Kubernetes structure we only partly model; fields we do not know are kept."""

    model_config = ConfigDict(extra="allow")


class ObjectMeta(OpenModel):
    """The subset of metadata deployctl reads; the rest (uid, managedFields...) is kept."""

    # DNS labels: the name is also a label value (deployctl.io/rollout) and a prefix of
    # ReplicaSet names, so the 63-character label limit applies, not the 253 of names.
    name: ObjectName | None = None
    namespace: ObjectName | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    resource_version: str | None = None
    uid: str | None = None
    creation_timestamp: str | None = None


SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
ARG_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
# metadata.name, metadata.labels['app'], spec.template.spec.containers[0].image
FIELD_PATH_PATTERN = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\]|\['[^'\]]+'\]|\[\"[^\"\]]+\"\])*$"
)


class SecretKeyRef(ApiModel):
    """One key of a Secret in the Rollout's namespace."""

    name: ObjectName
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]


class FieldRef(ApiModel):
    """A field of the Rollout itself, as Argo Rollouts' ``fieldRef``."""

    field_path: Annotated[str, Field(min_length=1, max_length=512, pattern=FIELD_PATH_PATTERN)]


class ArgValueFrom(ApiModel):
    """Where an argument's value comes from, resolved at each measurement (Argo Rollouts'
    spelling): the stable or the new revision's hash, a field of the Rollout, or a
    Secret (in an AnalysisTemplate only; its value is never shown in status or logs)."""

    pod_template_hash_value: Literal["Stable", "Latest"] | None = None
    field_ref: FieldRef | None = None
    secret_key_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ArgValueFrom:
        given = [
            name
            for name, value in (
                ("podTemplateHashValue", self.pod_template_hash_value),
                ("fieldRef", self.field_ref),
                ("secretKeyRef", self.secret_key_ref),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "valueFrom takes exactly one of podTemplateHashValue, fieldRef, secretKeyRef"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self


class Arg(ApiModel):
    """A named argument for an AnalysisTemplate; ``value`` (or ``valueFrom``) may be left
    for the caller."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=ARG_NAME_PATTERN)]
    value: Annotated[str, Field(max_length=1024)] | None = None
    value_from: ArgValueFrom | None = None

    @model_validator(mode="after")
    def _one_value(self) -> Arg:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"arg {self.name}: set value or valueFrom, not both")
        return self


IntOrPercent = Annotated[
    int | Annotated[str, Field(pattern=r"^(100|[1-9]?[0-9])%$")],
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "description": "A replica count or a percentage of replicas such as '25%'.",
        }
    ),
]
"""maxSurge/maxUnavailable: an absolute number of pods or a percentage string."""


def is_dns_subdomain(value: str) -> bool:
    return len(value) <= 253 and bool(_DNS_SUBDOMAIN.match(value))


CEL_KEY = "x-kubernetes-validations"


@dataclass(frozen=True)
class CelRule:
    """A CRD validation rule (CEL) repeating a cross-field check the model makes in Python.

    The apiserver evaluates it with ``self`` bound to the object the model describes and,
    when it is false, rejects the write with ``message`` at the object's field path
    (plus ``field_path``, e.g. ``.steps``, when given). Clusters without CEL (before
    1.25) drop the rule; the controller's own validation still says InvalidSpec there.
    """

    rule: str
    message: str
    field_path: str | None = None

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def exactly_one(fields: Sequence[str], message: str) -> CelRule:
    """The CEL for "exactly one of these optional fields is set"."""
    present = ", ".join(f"has(self.{name})" for name in fields)
    return CelRule(rule=f"[{present}].filter(x, x).size() == 1", message=message)


def cel(*rules: CelRule) -> ConfigDict:
    """A model_config carrying CEL rules; ``controller.crdgen`` copies them into the CRD.

    Rules sit in the model next to the validator they repeat, so the two are changed
    together.
    """
    schemas: list[JsonValue] = [dict(rule.to_schema()) for rule in rules]
    return ConfigDict(json_schema_extra={CEL_KEY: schemas})
