"""Builders for the policy tests: a Rollout, a DeliveryPolicy, aware times."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from controller.api import Rollout
from controller.api.policy import DeliveryPolicy

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def rollout(
    *,
    name: str = "checkout",
    namespace: str = "shop",
    image: str = "shop/checkout:1.4.2",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    requires: str | None = None,
) -> Rollout:
    spec: dict[str, Any] = {
        "replicas": 3,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": image}]},
        },
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"approval": {}}]}},
    }
    if requires:
        spec["requires"] = {"rollout": requires}
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return Rollout.model_validate(body)


def policy(
    spec: dict[str, Any], *, name: str = "release", namespace: str = "shop"
) -> DeliveryPolicy:
    return DeliveryPolicy.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )
