"""``deployctl plan`` of a workloadRef Rollout from the files of both objects, and
``deployctl hand-back`` (its request, its end condition, its refusals), through typer's
runner; the hand-back command against a recording double of the ``Kube`` adapter (the
sandbox test is tests/integration/test_workload_ref.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from controller.cli import app
from controller.commands import hand_back as hand_back_module
from controller.commands.common import CliError, Session
from controller.commands.hand_back import handed_back, workload_name
from controller.names import HAND_BACK_ANNOTATION

runner = CliRunner()

ROLLOUT: dict[str, Any] = {
    "apiVersion": "deployctl.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "search", "namespace": "shop"},
    "spec": {
        "workloadRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "search-deploy",
            "scaleDown": "onsuccess",
        },
        "strategy": {"canary": {"steps": [{"setWeight": 25}, {"pause": {"duration": "1m"}}]}},
    },
}

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "search-deploy", "namespace": "shop", "generation": 3},
    "spec": {
        "replicas": 8,
        "selector": {"matchLabels": {"app": "search"}},
        "template": {
            "metadata": {"labels": {"app": "search"}},
            "spec": {"containers": [{"name": "app", "image": "shop/search:5.0"}]},
        },
    },
}


def write(tmp_path: Path, name: str, *docs: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


# ------------------------------------------------------------------------------ plan


def test_plan_reads_the_template_and_replicas_from_the_deployment_file(tmp_path: Path) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "search"}}
    rollout = write(tmp_path, "rollout.yaml", ROLLOUT)
    deployment = write(tmp_path, "deployment.yaml", DEPLOYMENT, service)
    result = runner.invoke(app, ["plan", "-f", rollout, "-f", deployment, "-o", "json"])
    assert result.exit_code == 0, result.output
    [plan] = json.loads(result.stdout)
    # The Rollout sets no replicas: the Deployment's 8, as the controller takes over.
    assert plan["rollout"] == "search" and plan["deployment"] == "search-deploy"
    assert plan["replicas"] == 8
    first = plan["steps"][0]
    assert (first["stable"], first["canary"]) == (6, 2)
    table = runner.invoke(app, ["plan", "-f", rollout, "-f", deployment])
    assert table.exit_code == 0, table.output
    assert "pod template of Deployment search-deploy" in table.stdout


def test_plan_of_both_objects_in_one_file(tmp_path: Path) -> None:
    both = write(tmp_path, "all.yaml", DEPLOYMENT, ROLLOUT)
    result = runner.invoke(app, ["plan", "-f", both, "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["replicas"] == 8


def test_plan_says_to_give_the_deployment_file_when_it_is_missing(tmp_path: Path) -> None:
    other = copy.deepcopy(DEPLOYMENT)
    other["metadata"]["name"] = "another"
    rollout = write(tmp_path, "rollout.yaml", ROLLOUT)
    deployment = write(tmp_path, "deployment.yaml", other)
    result = runner.invoke(app, ["plan", "-f", rollout, "-f", deployment])
    assert result.exit_code == 2
    assert "delivers Deployment 'search-deploy' (spec.workloadRef), which is not in" in (
        result.stderr
    )
    assert "-f deployment.yaml" in result.stderr
    assert "Traceback" not in result.output


def test_plan_refuses_a_deployment_of_another_namespace(tmp_path: Path) -> None:
    elsewhere = copy.deepcopy(DEPLOYMENT)
    elsewhere["metadata"]["namespace"] = "staging"
    both = write(tmp_path, "all.yaml", ROLLOUT, elsewhere)
    result = runner.invoke(app, ["plan", "-f", both])
    assert result.exit_code == 2
    assert "delivers Deployment 'search-deploy'" in result.stderr


def test_plan_names_what_the_rollout_cannot_take_from_the_deployment(tmp_path: Path) -> None:
    expressions = copy.deepcopy(DEPLOYMENT)
    expressions["spec"]["selector"] = {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["search"]}]
    }
    both = write(tmp_path, "all.yaml", ROLLOUT, expressions)
    result = runner.invoke(app, ["plan", "-f", both])
    assert result.exit_code == 2
    assert "matchExpressions" in result.stderr and "Rollout search" in result.stderr


def test_plan_of_an_own_template_rollout_ignores_other_documents(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    result = runner.invoke(
        app,
        [
            "plan",
            "-f",
            str(root / "examples/canary.yaml"),
            "-f",
            write(tmp_path, "d.yaml", DEPLOYMENT),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "checkout" in result.stdout


# ------------------------------------------------------------------------- hand-back


def test_a_rollout_without_workload_ref_has_nothing_to_hand_back() -> None:
    own = {"metadata": {"name": "web"}, "spec": {"template": {}}}
    with pytest.raises(CliError) as refused:
        workload_name(own)
    assert "has its own pod template (no spec.workloadRef)" in refused.value.message
    assert workload_name(ROLLOUT) == "search-deploy"


def available(deployment: dict[str, Any], ready: int, *, replicas: int = 8) -> dict[str, Any]:
    out = copy.deepcopy(deployment)
    out["spec"]["replicas"] = replicas
    out["status"] = {
        "observedGeneration": 3,
        "replicas": ready,
        "updatedReplicas": ready,
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    return out


def with_phase(phase: str) -> dict[str, Any]:
    return {
        **ROLLOUT,
        "status": {"workload": {"deployment": "search-deploy", "replicas": 8, "phase": phase}},
    }


def pods(count: int) -> list[dict[str, Any]]:
    return [{"metadata": {"name": f"search-{i}"}} for i in range(count)]


def test_the_hand_back_is_over_only_with_the_deployment_full_and_no_rollout_pod() -> None:
    assert handed_back(with_phase("HandedBack"), available(DEPLOYMENT, 8), pods(0))[0]
    # The Deployment is not all available yet: the Rollout's pods still serve.
    done, detail = handed_back(with_phase("HandingBack"), available(DEPLOYMENT, 5), pods(8))
    assert not done
    assert detail == "take-over HandingBack; Deployment 5/8 available; 8 pods of the Rollout left"
    # The controller has said HandedBack but the Rollout's pods are still Terminating.
    assert not handed_back(with_phase("HandedBack"), available(DEPLOYMENT, 8), pods(2))[0]
    # Back at 8 replicas in spec but the Deployment controller has not caught up.
    stale = available(DEPLOYMENT, 8)
    stale["status"]["observedGeneration"] = 2
    assert not handed_back(with_phase("HandedBack"), stale, pods(0))[0]


class RecordingKube:
    """Our adapter's seam as the command uses it: reads answer from a script of states,
    writes are recorded."""

    def __init__(self, states: list[tuple[dict[str, Any], dict[str, Any], list[Any]]]) -> None:
        self.states = states
        self.reads = 0
        self.patches: list[tuple[str, dict[str, Any], str]] = []

    def _state(self) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        return self.states[min(self.reads, len(self.states) - 1)]

    def get_rollout(self, namespace: str, name: str) -> dict[str, Any]:
        assert (namespace, name) == ("shop", "search")
        rollout = copy.deepcopy(self._state()[0])
        rollout["metadata"]["resourceVersion"] = "41"
        return rollout

    def patch_rollout(
        self, namespace: str, name: str, body: dict[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        self.patches.append((name, body, resource_version))
        written = self.get_rollout(namespace, name)
        written["metadata"]["annotations"] = body["metadata"]["annotations"]
        return written

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        assert name == "search-deploy"
        return self._state()[1]

    def list_pods(self, namespace: str, selector: str) -> list[Any]:
        assert selector == "deployctl.io/rollout=search"
        state = self._state()
        self.reads += 1
        return state[2]

    def close(self) -> None:
        pass


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> Any:
    holder: dict[str, RecordingKube] = {}

    def connect(*_args: Any) -> Session:
        return Session(kube=holder["kube"], namespace="shop", user="sre")  # type: ignore[arg-type]

    monkeypatch.setattr(hand_back_module, "connect", connect)
    monkeypatch.setattr(hand_back_module, "require_controller", lambda _session: None)
    monkeypatch.setattr(hand_back_module, "POLL_SECONDS", 0.0)

    def install(states: list[tuple[dict[str, Any], dict[str, Any], list[Any]]]) -> RecordingKube:
        holder["kube"] = RecordingKube(states)
        return holder["kube"]

    return install


def test_hand_back_writes_the_annotation_and_waits_for_the_deployment(kube: Any) -> None:
    recording = kube(
        [
            (with_phase("TakenOver"), available(DEPLOYMENT, 0, replicas=0), pods(8)),
            (with_phase("HandingBack"), available(DEPLOYMENT, 4), pods(8)),
            (with_phase("HandedBack"), available(DEPLOYMENT, 8), pods(3)),
            (with_phase("HandedBack"), available(DEPLOYMENT, 8), pods(0)),
        ]
    )
    result = runner.invoke(app, ["hand-back", "search", "-n", "shop", "--wait", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert recording.patches == [
        ("search", {"metadata": {"annotations": {HAND_BACK_ANNOTATION: "true"}}}, "41")
    ]
    document = json.loads(result.stdout)
    assert document == {
        "rollout": "shop/search",
        "deployment": "search-deploy",
        "handedBack": True,
        "readyReplicas": 8,
        "availableReplicas": 8,
        "seconds": document["seconds"],
    }
    assert recording.reads == 4  # it waited for the last Rollout pod to go


def test_hand_back_times_out_with_exit_3_and_says_where_it_stands(kube: Any) -> None:
    kube([(with_phase("HandingBack"), available(DEPLOYMENT, 5), pods(8))])
    result = runner.invoke(app, ["hand-back", "search", "--wait", "--timeout", "0s"])
    assert result.exit_code == 3
    assert "timed out" in result.stderr
    assert "Deployment 5/8 available; 8 pods of the Rollout left" in result.stderr


def test_hand_back_refuses_a_rollout_without_workload_ref_before_writing(kube: Any) -> None:
    own = {"metadata": {"name": "search", "namespace": "shop"}, "spec": {"template": {}}}
    recording = kube([(own, {}, [])])
    result = runner.invoke(app, ["hand-back", "search"])
    assert result.exit_code == 2
    assert "no spec.workloadRef" in result.stderr and "Traceback" not in result.output
    assert recording.patches == []


def test_hand_back_without_wait_only_asks(kube: Any) -> None:
    recording = kube([(with_phase("TakenOver"), available(DEPLOYMENT, 0, replicas=0), [])])
    result = runner.invoke(app, ["hand-back", "search"])
    assert result.exit_code == 0, result.output
    assert "hand-back to Deployment search-deploy requested" in result.stdout
    assert len(recording.patches) == 1 and recording.reads == 0
