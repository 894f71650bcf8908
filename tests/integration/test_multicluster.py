"""Releases across three real clusters, driven from the management one.

Three sandbox control planes run at once (the management cluster is also the member
``staging``; ``prod-1`` and ``prod-2`` are started here), each with its own node agent
and its own ``deployctl controller``; one real Prometheus judges every member's
analysis. ``deployctl release-controller`` runs as a user holding only the Role of
manifests/release-controller/, and reaches each member with a kubeconfig (in a Secret)
of a user holding only the member Role of manifests/member/. The scenarios share the
clusters (module scope); each uses a fresh application namespace in every member.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.controlplane import ControlPlane
from tests.fixtures_cluster import CRD_DIR
from tests.integration.fleet import (
    BackgroundPlane,
    Fleet,
    Member,
    add_target,
    create_release_namespace,
    healthy,
    install_member_role,
    start_member,
)
from tests.integration.harness import GROUP, VERSION, running_controller
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

V2 = {"app": "deployctl/demo-app:v2"}


def env_patch(**env: str) -> dict[str, Any]:
    return {
        "spec": {
            "containers": [
                {"name": "app", "env": [{"name": k, "value": v} for k, v in env.items()]}
            ]
        }
    }


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def fleet(
    control_plane: ControlPlane,
    node_agent: Any,
    prometheus: Any,
    file_sd_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    log_dir = tmp_path_factory.mktemp("fleet")
    with ExitStack() as stack:
        # Both member control planes start at once, while the management side gets going.
        planes = {name: BackgroundPlane(CRD_DIR).start() for name in ("prod-1", "prod-2")}
        for background in planes.values():
            stack.callback(background.stop)
        staging = Member("staging", control_plane, control_plane.api_client())
        fleet = Fleet(
            {"staging": staging},
            staging,
            create_release_namespace(staging),
            prometheus.url,
            log_dir,
            stack,
        )
        fleet.start_release_controller()
        for name in ("staging", "prod-1", "prod-2"):
            if name == "staging":
                member = staging
            else:
                member = start_member(
                    name,
                    planes[name].ready(timeout=300),
                    file_sd_dir=file_sd_dir,
                    log_dir=log_dir,
                    stack=stack,
                )
                fleet.members[name] = member
            install_member_role(member)
            member.operator = stack.enter_context(
                running_controller(
                    kubeconfig=str(member.plane.kubeconfig),
                    prometheus_url=prometheus.url,
                    log_dir=log_dir,
                )
            )
            add_target(staging, fleet.releases_ns, member)
        try:
            yield fleet
        finally:
            fleet.clear_apps()


@pytest.fixture(autouse=True)
def one_scenario_at_a_time(fleet: Fleet) -> Iterator[None]:
    yield
    fleet.clear_apps()


def write(tmp_path: Path, body: dict[str, Any]) -> Path:
    path = tmp_path / f"{body['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def test_a_healthy_release_goes_wave_by_wave_with_its_soak_times(
    fleet: Fleet, tmp_path: Path
) -> None:
    namespace = fleet.new_app(analysed=("prod-1",))
    before = fleet.stable_revisions(namespace)
    body = fleet.release(
        "shop-v2",
        namespace,
        images=V2,
        templatePatch=env_patch(DEMO_VERSION="v2"),
        waves=[
            {"name": "staging", "clusters": ["staging"], "soak": "3s"},
            {"name": "canary", "clusters": ["prod-1"], "soak": "3s"},
            {"name": "rest", "clusters": ["prod-2"]},
        ],
    )
    done = fleet.cli(
        "release", "create", "-f", str(write(tmp_path, body)), "--wait", "-o", "json",
        "--timeout", "150s",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr + fleet.release_controller_log()
    document = json.loads(done.stdout)
    assert document["outcome"] == "Succeeded" and document["phase"] == "Succeeded"

    status = fleet.release_status("shop-v2")
    clusters, waves = by_name(status["clusters"]), by_name(status["waves"])
    for name, member in fleet.members.items():
        rollout = member.cluster(namespace).status("shop")
        asked = clusters[name]["revision"]
        assert rollout["phase"] == "Healthy" and rollout["stableRevision"] == asked, name
        assert asked != before[name] and clusters[name]["previousRevision"] == before[name]
        assert clusters[name]["phase"] == "Healthy"
        entry = rollout["history"][-1]
        assert entry["revision"] == asked and "release" in entry["requestedBy"]
    # Each wave started only once the one before was Healthy and had soaked.
    assert at(waves["staging"]["soakUntil"]) - at(clusters["staging"]["healthyAt"]) == (
        at("2000-01-01T00:00:03Z") - at("2000-01-01T00:00:00Z")
    )
    assert at(clusters["prod-1"]["startedAt"]) >= at(waves["staging"]["soakUntil"])
    assert at(waves["canary"]["soakUntil"]) >= at(clusters["prod-1"]["healthyAt"])
    assert at(clusters["prod-2"]["startedAt"]) >= at(waves["canary"]["soakUntil"])

    shown = fleet.cli("release", "status", "shop-v2")
    assert shown.returncode == 0, shown.stderr
    for word in ("staging", "canary", "rest", "prod-1", "prod-2", "Succeeded", "Healthy"):
        assert word in shown.stdout


def test_a_version_breaking_in_the_canary_cluster_halts_and_rolls_back(
    fleet: Fleet, tmp_path: Path
) -> None:
    namespace = fleet.new_app(analysed=("prod-1",))
    v1 = fleet.stable_revisions(namespace)
    untouched = fleet.members["prod-2"].cluster(namespace).rollout("shop")
    body = fleet.release(
        "shop-v3",
        namespace,
        images={"app": "deployctl/demo-app:v3"},
        templatePatch=env_patch(DEMO_VERSION="v3", DEMO_ERROR_RATE="0.5"),
        waves=[
            {"name": "staging", "clusters": ["staging"], "soak": "1s"},
            {"name": "canary", "clusters": ["prod-1"], "soak": "1m"},
            {"name": "rest", "clusters": ["prod-2"]},
        ],
        onFailure="rollbackAll",
    )
    done = fleet.cli(
        "release", "create", "-f", str(write(tmp_path, body)), "--wait", "-o", "json",
        "--timeout", "150s",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr + fleet.release_controller_log()
    status = fleet.release_status("shop-v3")
    assert status["phase"] == "RolledBack", status
    assert status["reason"] == "ClusterFailed" and "prod-1" in status["message"]
    clusters = by_name(status["clusters"])

    # The canary cluster's own operator rolled it back by analysis; its evidence is copied.
    canary = clusters["prod-1"]
    assert "AnalysisFailed" in canary["message"]
    assert any(e["metric"] == "error-rate" and e["phase"] == "Failed" for e in canary["evidence"])
    history = fleet.members["prod-1"].cluster(namespace).status("shop")["history"]
    assert any(
        h["revision"] == canary["revision"] and h["outcome"] == "RolledBack" for h in history
    )
    warnings = [e for e in fleet.release_events("shop-v3") if e.reason == "ClusterFailed"]
    assert warnings and "error-rate" in warnings[0].message and warnings[0].type == "Warning"

    # rollbackAll: staging (promoted) and the canary cluster are back on v1, fast-tracked.
    for name in ("staging", "prod-1"):
        assert clusters[name]["phase"] == "RolledBack", clusters[name]
        rollout = healthy(fleet.members[name].cluster(namespace))
        assert rollout["stableRevision"] == v1[name], name
    # The third cluster was never changed.
    after = fleet.members["prod-2"].cluster(namespace).rollout("shop")
    assert clusters["prod-2"].get("phase", "Pending") == "Pending"
    assert "revision" not in clusters["prod-2"]
    assert after["metadata"]["generation"] == untouched["metadata"]["generation"]
    assert after["spec"]["template"] == untouched["spec"]["template"]
    shown = fleet.cli("release", "status", "shop-v3", "-o", "json")
    assert shown.returncode == 1  # a script can write `deployctl release status x || page`
    assert json.loads(shown.stdout)["phase"] == "RolledBack"


def test_a_release_controller_killed_mid_soak_resumes_without_touching_done_clusters(
    fleet: Fleet,
) -> None:
    namespace = fleet.new_app()
    fleet.create_release(
        fleet.release(
            "shop-kill",
            namespace,
            images=V2,
            waves=[
                {"name": "staging", "clusters": ["staging"]},
                {"name": "canary", "clusters": ["prod-1"], "soak": "10s"},
                {"name": "rest", "clusters": ["prod-2"]},
            ],
        )
    )
    soaking = fleet.wait_release(
        "shop-kill",
        lambda s: by_name(s.get("waves") or []).get("canary", {}).get("phase") == "Soaking",
        timeout=90,
        what="the canary wave to soak",
    )
    generations = {n: fleet.members[n].generation(namespace) for n in ("staging", "prod-1")}
    assert fleet.release_controller is not None
    fleet.release_controller.kill()
    fleet.start_release_controller()

    done = fleet.wait_release(
        "shop-kill", lambda s: s.get("phase") == "Succeeded", timeout=120, what="success"
    )
    # The finished clusters were not touched again, and the soak resumed where it was.
    assert {n: fleet.members[n].generation(namespace) for n in generations} == generations
    waves, clusters = by_name(done["waves"]), by_name(done["clusters"])
    assert waves["canary"]["soakUntil"] == by_name(soaking["waves"])["canary"]["soakUntil"]
    assert at(clusters["prod-2"]["startedAt"]) >= at(waves["canary"]["soakUntil"])
    started = [e for e in fleet.release_events("shop-kill") if e.reason == "ClusterStarted"]
    assert sorted(e.message.split()[1] for e in started) == ["prod-1", "prod-2", "staging"]
    assert all(e.count == 1 for e in started)


def test_a_freeze_in_one_member_holds_the_wave_with_its_reason(fleet: Fleet) -> None:
    namespace = fleet.new_app()
    prod1 = fleet.members["prod-1"].cluster(namespace)
    prod1.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "deliverypolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DeliveryPolicy",
            "metadata": {"name": "incident"},
            "spec": {
                "freezes": [
                    {
                        "name": "incident-4711",
                        "reason": "incident 4711 in eu-1",
                        "start": "2020-01-01T00:00:00Z",
                        "end": "2099-01-01T00:00:00Z",
                    }
                ]
            },
        },
    )
    untouched = fleet.members["prod-2"].generation(namespace)
    fleet.create_release(
        fleet.release(
            "shop-frozen",
            namespace,
            images=V2,
            waves=[
                {"name": "staging", "clusters": ["staging"]},
                {"name": "canary", "clusters": ["prod-1"]},
                {"name": "rest", "clusters": ["prod-2"]},
            ],
            onFailure="rollbackAll",
        )
    )
    held = fleet.wait_release(
        "shop-frozen",
        lambda s: s.get("phase") == "Waiting" and s.get("reason") == "ClusterHeld",
        timeout=90,
        what="the canary wave held by prod-1's freeze",
    )
    assert "prod-1" in held["message"] and "FrozenUntil" in held["message"]
    assert "incident 4711" in held["message"]
    cluster = by_name(held["clusters"])["prod-1"]
    assert cluster["phase"] == "Held" and cluster["reason"] == "FrozenUntil"
    assert fleet.members["prod-2"].generation(namespace) == untouched

    # A person gives up on it: abort; rollbackAll returns staging and the held prod-1.
    aborted = fleet.cli("release", "abort", "shop-frozen")
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    done = fleet.wait_release(
        "shop-frozen", lambda s: s.get("phase") == "RolledBack", timeout=90, what="rolled back"
    )
    assert done["reason"] == "Aborted" and "aborted by ci" in done["message"]
    assert fleet.members["prod-2"].generation(namespace) == untouched


def test_a_stopped_member_apiserver_holds_the_wave_then_fails_it(fleet: Fleet) -> None:
    namespace = fleet.new_app()
    fleet.create_release(
        fleet.release(
            "shop-partition",
            namespace,
            images=V2,
            waves=[
                {"name": "staging", "clusters": ["staging"]},
                {"name": "prod", "clusters": ["prod-1", "prod-2"]},
            ],
            unreachableTimeout="20s",
        )
    )
    fleet.wait_release(
        "shop-partition",
        lambda s: by_name(s.get("clusters") or []).get("prod-2", {}).get("phase") == "Progressing",
        timeout=90,
        what="prod-2 asked for the new revision",
    )
    plane = fleet.members["prod-2"].plane
    apiserver = plane.pids()["kube-apiserver"]
    reads_before = staging_reads(fleet)
    os.kill(apiserver, signal.SIGSTOP)  # accepts connections, answers nothing: a partition
    try:
        waiting = fleet.wait_release(
            "shop-partition",
            lambda s: s.get("reason") == "ClusterUnreachable",
            timeout=60,
            what="the wave waiting on the unreachable prod-2",
        )
        assert waiting["phase"] == "Waiting", waiting
        assert "prod-2 unreachable since" in waiting["message"], waiting
        # The others are read throughout: prod-1 finishes while prod-2 still hangs.
        fleet.wait_release(
            "shop-partition",
            lambda s: by_name(s["clusters"])["prod-1"]["phase"] == "Healthy",
            timeout=120,
            what="prod-1 Healthy while prod-2 hangs",
        )
        failed = fleet.wait_release(
            "shop-partition", lambda s: s.get("phase") == "Failed", timeout=90, what="failure"
        )
        assert staging_reads(fleet) > reads_before
    finally:
        os.kill(apiserver, signal.SIGCONT)
    assert failed["reason"] == "ClusterUnreachable" and "prod-2" in failed["message"]
    prod2 = by_name(failed["clusters"])["prod-2"]
    assert at(prod2["finishedAt"]) - at(prod2["unreachableSince"]) >= (
        at("2000-01-01T00:00:20Z") - at("2000-01-01T00:00:00Z")
    )
    warnings = [
        e for e in fleet.release_events("shop-partition") if e.reason == "ClusterUnreachable"
    ]
    assert any("cannot read cluster prod-2" in e.message for e in warnings)
    wait_until(
        lambda: fleet.members["prod-2"].cluster(namespace).status("shop").get("phase"),
        ok=lambda phase: phase is not None,
        timeout=60,
        what="prod-2's apiserver answering again",
    )


def staging_reads(fleet: Fleet) -> float:
    """Successful reads of the staging member, from the release controller's /metrics."""
    assert fleet.release_controller is not None
    url = fleet.release_controller.metrics_url() + "/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    wanted = f'cluster="{fleet.releases_ns}/staging",outcome="ok"'
    for line in text.splitlines():
        if line.startswith("deployctl_release_member_reads_total{") and wanted in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0
