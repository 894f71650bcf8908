"""Pure parts of the Kubernetes adapter: error mapping, paths, patches, time formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from controller.kube import (
    EVENTS,
    HTTPROUTES,
    LEASES,
    REPLICASETS,
    ROLLOUTS,
    SERVICES,
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    KindRef,
    NamespaceTerminating,
    NotFound,
    Permanent,
    RetryPolicy,
    Transient,
    backend_weights,
    error_from_status,
    merge_patch,
    object_key,
    owner_reference,
    retryable,
    reweighted,
)
from controller.times import micro_timestamp


def status(code: int, reason: str, message: str = "m", **details: object) -> bytes:
    body = {"kind": "Status", "code": code, "reason": reason, "message": message}
    if details:
        body["details"] = details
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (400, "BadRequest", Permanent),
        (401, "Unauthorized", Permanent),
        (403, "Forbidden", Forbidden),
        (404, "NotFound", NotFound),
        (409, "Conflict", Conflict),
        (409, "AlreadyExists", AlreadyExists),
        (410, "Expired", Gone),
        (422, "Invalid", Permanent),
        (429, "TooManyRequests", Transient),
        (500, "InternalError", Transient),
        (503, "ServiceUnavailable", Transient),
        (504, "Timeout", Transient),
    ],
)
def test_status_codes_map_onto_the_error_tree(code: int, reason: str, expected: type) -> None:
    error = error_from_status(
        code, body=status(code, reason), headers=None, verb="get", kind=ROLLOUTS, name="x"
    )
    assert type(error) is expected
    assert error.code == code
    assert error.reason == reason
    assert error.verb == "get"


def test_conflict_is_transient_but_not_retried_and_not_found_is_its_own_branch() -> None:
    conflict = error_from_status(
        409, body=status(409, "Conflict"), headers=None, verb="patch", kind=ROLLOUTS
    )
    busy = error_from_status(
        429, body=status(429, "TooManyRequests"), headers=None, verb="get", kind=ROLLOUTS
    )
    assert isinstance(conflict, Transient) and not retryable(conflict)
    assert retryable(busy)
    assert not issubclass(NotFound, Permanent) and not issubclass(Gone, Transient)


def test_retry_after_comes_from_the_header_or_the_status_details() -> None:
    from_header = error_from_status(
        429,
        body=status(429, "TooManyRequests"),
        headers={"Retry-After": "3"},
        verb="get",
        kind=SERVICES,
    )
    from_details = error_from_status(
        500,
        body=status(500, "InternalError", retryAfterSeconds=2),
        headers=None,
        verb="get",
        kind=SERVICES,
    )
    assert isinstance(from_header, Transient) and from_header.retry_after == 3
    assert isinstance(from_details, Transient) and from_details.retry_after == 2


def test_forbidden_message_names_verb_and_resource() -> None:
    error = error_from_status(
        403,
        body=status(403, "Forbidden", 'replicasets.apps is forbidden: User "alice" cannot list'),
        headers=None,
        verb="list",
        kind=REPLICASETS,
        namespace="shop",
    )
    assert "cannot list replicasets.apps in namespace 'shop'" in str(error)


def test_status_subresource_in_message_and_resource() -> None:
    error = error_from_status(
        422,
        body=status(422, "Invalid"),
        headers=None,
        verb="patch",
        kind=ROLLOUTS,
        namespace="n",
        name="r",
        subresource="status",
    )
    assert error.resource == "rollouts.deployctl.io/status"
    assert "patch rollouts.deployctl.io/status 'r'" in str(error)


def test_junk_error_body_still_maps() -> None:
    error = error_from_status(
        502, body=b"<html>bad gateway</html>", headers=None, verb="get", kind=PODS_LIKE
    )
    assert isinstance(error, Transient)
    assert "bad gateway" in str(error)


PODS_LIKE = KindRef("", "v1", "pods", "Pod")


def test_paths() -> None:
    assert ROLLOUTS.path(namespace="n", name="r", subresource="status") == (
        "/apis/deployctl.io/v1alpha1/namespaces/n/rollouts/r/status"
    )
    assert SERVICES.path(namespace="n") == "/api/v1/namespaces/n/services"
    assert REPLICASETS.path() == "/apis/apps/v1/replicasets"
    assert HTTPROUTES.api_version == "gateway.networking.k8s.io/v1"
    assert LEASES.resource == "leases.coordination.k8s.io"
    assert EVENTS.resource == "events"
    cluster_scoped = KindRef("", "v1", "namespaces", "Namespace", namespaced=False)
    assert cluster_scoped.path(namespace="ignored", name="x") == "/api/v1/namespaces/x"


def test_micro_time_always_has_six_fraction_digits() -> None:
    assert micro_timestamp(datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)) == (
        "2024-05-01T12:00:00.000000Z"
    )
    assert micro_timestamp(datetime(2024, 5, 1, 12, 0, 0, 1234, tzinfo=UTC)) == (
        "2024-05-01T12:00:00.001234Z"
    )


def test_merge_patch_sets_changes_and_nulls_removals() -> None:
    old = {
        "phase": "Progressing",
        "weight": 10,
        "conditions": [{"type": "A"}],
        "x": {"a": 1, "b": 2},
    }
    new = {"phase": "Paused", "weight": 10, "conditions": [{"type": "B"}], "x": {"a": 1}}
    assert merge_patch(old, new) == {
        "phase": "Paused",
        "conditions": [{"type": "B"}],
        "x": {"b": None},
    }
    assert merge_patch(new, new) == {}


def test_owner_reference_and_object_key() -> None:
    rollout = {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "r", "namespace": "n", "uid": "u-1"},
    }
    assert owner_reference(rollout) == {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Rollout",
        "name": "r",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert object_key(rollout) == "n/r"
    assert object_key({"metadata": {"name": "cluster-thing"}}) == "cluster-thing"


def test_retry_delay_grows_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(initial=0.1, maximum=1.0, jitter=0.0, max_retry_after=5.0)
    assert [policy.delay(n, None) for n in (1, 2, 3, 4, 5, 6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    assert policy.delay(1, 3.0) == 3.0
    assert policy.delay(1, 60.0) == 5.0


def test_a_403_with_the_namespace_terminating_cause_is_its_own_error() -> None:
    body = status(
        403,
        "Forbidden",
        "unable to create new content in namespace shop because it is being terminated",
        causes=[{"reason": "NamespaceTerminating", "message": "namespace shop is terminating"}],
    )
    error = error_from_status(403, body=body, headers=None, verb="create", kind=EVENTS)
    assert type(error) is NamespaceTerminating
    plain = error_from_status(
        403, body=status(403, "Forbidden"), headers=None, verb="create", kind=EVENTS
    )
    assert type(plain) is Forbidden


def test_route_weights_are_read_and_rewritten_only_when_they_differ() -> None:
    route = {
        "metadata": {"resourceVersion": "7"},
        "spec": {
            "rules": [
                {"backendRefs": [{"name": "stable", "weight": 90}, {"name": "canary"}]},
                {"backendRefs": [{"name": "other", "weight": 5}]},
            ]
        },
    }
    assert backend_weights(route) == {"stable": 90, "canary": 1, "other": 5}
    rules = reweighted(route, {"stable": 50, "canary": 50})
    assert rules is not None
    assert [r["backendRefs"] for r in rules] == [
        [{"name": "stable", "weight": 50}, {"name": "canary", "weight": 50}],
        [{"name": "other", "weight": 5}],
    ]
    assert backend_weights(route) == {"stable": 90, "canary": 1, "other": 5}  # not edited
    assert reweighted(route, {"stable": 90, "canary": 1}) is None
