"""Member clusters through a recording double of our own ``Kube`` adapter.

What ``members.py`` promises: reads of many members at once with a bound on the wait, a
hanging member never blocking the others nor piling up threads, credentials checked
before use, clients rebuilt when their Secret changes, and changes sent only over the
template the plan saw.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import yaml

from controller.api import reasons as r
from controller.api.release import ClusterTarget, RolloutRef
from controller.kube import Conflict, Forbidden, NotFound, Transient
from controller.names import TEMPLATE_ANNOTATION
from controller.release.actions import RollBack, SetTemplate
from controller.release.members import MemberClients
from controller.release.observe import MemberRollout, ReadFailure
from tests.release.world import member, revision, template

ROLLOUT = RolloutRef(namespace="app", name="shop")
NS = "releases"


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the apiserver applies a merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


class FakeKube:
    """Records calls; answers with ``rollout``, raises ``error``, or waits on ``gate``."""

    def __init__(self, rollout: dict[str, Any] | None = None) -> None:
        self.rollout = rollout or member()
        self.calls: list[tuple[Any, ...]] = []
        self.error: Exception | None = None
        self.gate: threading.Event | None = None
        self.conflicts = 0
        self.replicasets: list[dict[str, Any]] = []
        self.closed = False

    def get_rollout(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get", namespace, name))
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return copy.deepcopy(self.rollout)

    def patch_rollout(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        self.calls.append(("patch", namespace, name, copy.deepcopy(dict(patch)), resource_version))
        if self.conflicts:
            self.conflicts -= 1
            self.rollout["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
            raise Conflict("409", verb="patch", resource="rollouts")
        self.rollout["spec"] = apply_merge_patch(self.rollout["spec"], patch.get("spec") or {})
        return self.rollout

    def list_replicasets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.calls.append(("list", namespace, selector))
        return self.replicasets

    def close(self) -> None:
        self.closed = True


def kubeconfig(server: str, user: dict[str, Any] | None = None) -> str:
    return yaml.safe_dump(
        {
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": user or {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


class Secrets:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}
        self.reads = 0

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        self.reads += 1
        if name not in self.data:
            raise NotFound("no secret", verb="get", resource="secrets")
        return dict(self.data[name])


def target(name: str, secret: str | None = None, key: str = "kubeconfig") -> ClusterTarget:
    return ClusterTarget.model_validate(
        {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"kubeconfigSecretRef": {"name": secret or f"{name}-kc", "key": key}},
        }
    )


class Setup:
    def __init__(self, *names: str, read_timeout: float = 2.0) -> None:
        self.secrets = Secrets()
        self.kubes: dict[str, FakeKube] = {}
        self.built: list[str] = []
        self.now = 0.0
        for name in names:
            self.kubes[name] = FakeKube()
            self.secrets.data[f"{name}-kc"] = {"kubeconfig": kubeconfig(f"https://{name}")}
        self.clients = MemberClients(
            self.secrets,
            factory=self.factory,
            read_timeout=read_timeout,
            write_timeout=5.0,
            ttl=60.0,
            clock=lambda: self.now,
        )
        self.targets = {name: target(name) for name in names}

    def factory(self, config: Mapping[str, Any], context: str | None) -> Any:
        server = config["clusters"][0]["cluster"]["server"].removeprefix("https://")
        self.built.append(server)
        return self.kubes[server]


def test_members_are_read_at_once_and_a_hanging_one_does_not_hold_the_others() -> None:
    setup = Setup("a", "b", "c", read_timeout=0.5)
    gate = threading.Event()
    setup.kubes["b"].gate = gate
    try:
        began = time.monotonic()
        out = setup.clients.read_all(NS, setup.targets, ROLLOUT, release="rel")
        elapsed = time.monotonic() - began
        assert isinstance(out["a"], MemberRollout) and isinstance(out["c"], MemberRollout)
        assert isinstance(out["b"], ReadFailure) and out["b"].reason == r.CLUSTER_UNREACHABLE
        assert "no answer within 0.5 s" in out["b"].message
        assert elapsed < 5  # bounded by read_timeout, not by the hanging member
        # Still hanging: not asked again (no pile of threads), the others are.
        again = setup.clients.read_all(NS, setup.targets, ROLLOUT, release="rel")
        assert isinstance(again["b"], ReadFailure)
        assert "no answer to the previous read" in again["b"].message
        assert len([c for c in setup.kubes["b"].calls if c[0] == "get"]) == 1
        assert len([c for c in setup.kubes["a"].calls if c[0] == "get"]) == 2
        # Another release reads b for itself.
        other = setup.clients.read_all(NS, {"b": setup.targets["b"]}, ROLLOUT, release="rel-2")
        assert "no answer within" in other["b"].message
    finally:
        gate.set()
    setup.kubes["b"].gate = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = setup.clients.read_all(NS, setup.targets, ROLLOUT, release="rel")
        if isinstance(out["b"], MemberRollout):
            break
    assert isinstance(out["b"], MemberRollout)
    setup.clients.close()


def test_read_errors_are_observations_not_exceptions() -> None:
    setup = Setup("a", "b", "c")
    setup.kubes["a"].error = NotFound("rollouts 'shop' not found", verb="get", resource="rollouts")
    setup.kubes["b"].error = Forbidden("forbidden: get rollouts", verb="get", resource="rollouts")
    setup.kubes["c"].error = Transient("no response", verb="get", resource="rollouts")
    out = setup.clients.read_all(NS, setup.targets, ROLLOUT)
    assert (out["a"].reason, out["a"].permanent) == (r.ROLLOUT_NOT_FOUND, True)  # type: ignore[union-attr]
    assert out["b"].reason == r.CLUSTER_FORBIDDEN and "manifests/member/" in out["b"].message
    assert (out["c"].reason, out["c"].permanent) == (r.CLUSTER_UNREACHABLE, False)  # type: ignore[union-attr]


def test_unusable_credentials_are_reported_and_never_loaded() -> None:
    setup = Setup("a", "b", "c", "d")
    setup.secrets.data["a-kc"] = {
        "kubeconfig": kubeconfig("https://a", {"exec": {"command": "sh"}})
    }
    setup.secrets.data["b-kc"] = {"other": "x"}
    del setup.secrets.data["c-kc"]
    out = setup.clients.read_all(NS, {**setup.targets, "e": None}, ROLLOUT)
    assert "ClusterTarget a: user 'u': 'exec' runs a command" in out["a"].message
    assert "Secret 'b-kc' has no key 'kubeconfig'" in out["b"].message
    assert "no Secret 'c-kc' in namespace releases" in out["c"].message
    assert "no ClusterTarget e" in out["e"].message
    assert isinstance(out["d"], MemberRollout)
    assert setup.built == ["d"]


def test_clients_are_cached_and_rebuilt_when_the_secret_changes() -> None:
    setup = Setup("a")
    for _ in range(3):
        setup.clients.read_all(NS, setup.targets, ROLLOUT)
    assert setup.built == ["a"] and setup.secrets.reads == 1
    setup.now = 61.0  # past the ttl: the Secret is read again, unchanged: same client
    setup.clients.read_all(NS, setup.targets, ROLLOUT)
    assert setup.built == ["a"] and setup.secrets.reads == 2
    old = setup.kubes["a"]
    setup.kubes["a"] = FakeKube()
    setup.secrets.data["a-kc"] = {"kubeconfig": kubeconfig("https://a", {"token": "rotated"})}
    setup.now = 130.0
    setup.clients.read_all(NS, setup.targets, ROLLOUT)
    assert setup.built == ["a", "a"] and old.closed
    setup.clients.forget(NS, keep=set())
    assert setup.kubes["a"].closed


def set_template(expected: str | None, wanted_image: str = "shop:2") -> SetTemplate:
    body = template(wanted_image)
    return SetTemplate(
        cluster="a",
        template=body,
        revision=revision(body),
        expected_revision=expected,
        annotations={"deployctl.io/release": "releases/rel", "deployctl.io/exempt": None},
    )


def test_a_change_is_sent_over_the_template_seen_with_its_resource_version() -> None:
    setup = Setup("a")
    kube = setup.kubes["a"]
    kube.conflicts = 1  # the member's operator wrote status meanwhile
    action = set_template(revision(template("shop:1")))
    (result,) = setup.clients.act(NS, setup.targets, ROLLOUT, [action])
    assert result.error is None
    patches = [c for c in kube.calls if c[0] == "patch"]
    assert [p[4] for p in patches] == ["10", "11"]  # re-read after the conflict
    sent = patches[-1][3]
    assert set(sent["spec"]) == {"template"}  # a merge patch of what changed, nothing else
    assert kube.rollout["spec"]["template"] == template("shop:2")
    assert sent["metadata"]["annotations"]["deployctl.io/release"] == "releases/rel"
    # Applied already: nothing is sent again.
    (again,) = setup.clients.act(NS, setup.targets, ROLLOUT, [action])
    assert again.error is None and len([c for c in kube.calls if c[0] == "patch"]) == 2


def test_a_template_changed_by_someone_else_is_not_overwritten() -> None:
    setup = Setup("a")
    setup.kubes["a"].rollout = member(image="shop:9")
    (result,) = setup.clients.act(
        NS, setup.targets, ROLLOUT, [set_template(revision(template("shop:1")))]
    )
    assert result.error is not None and "is now revision" in result.error
    assert not [c for c in setup.kubes["a"].calls if c[0] == "patch"]


def test_a_rollback_restores_the_exact_template_of_the_previous_revision() -> None:
    setup = Setup("a")
    kube = setup.kubes["a"]
    kube.rollout = member(image="shop:2")
    old = template("shop:1")
    kube.replicasets = [
        {
            "metadata": {
                "name": "shop-old",
                "annotations": {TEMPLATE_ANNOTATION: json.dumps(old)},
            },
            "spec": {"template": {"metadata": {"labels": {"junk": "1"}}}},
        }
    ]
    action = RollBack(
        cluster="a",
        revision=revision(old),
        expected_revision=revision(template("shop:2")),
        annotations={"deployctl.io/request": '{"action": "promoteFull", "id": "x"}'},
    )
    (result,) = setup.clients.act(NS, setup.targets, ROLLOUT, [action])
    assert result.error is None
    (listed,) = [c for c in kube.calls if c[0] == "list"]
    assert listed[2] == f"deployctl.io/rollout=shop,deployctl.io/revision={revision(old)}"
    (patch,) = [c for c in kube.calls if c[0] == "patch"]
    assert kube.rollout["spec"]["template"] == old
    assert "promoteFull" in patch[3]["metadata"]["annotations"]["deployctl.io/request"]
