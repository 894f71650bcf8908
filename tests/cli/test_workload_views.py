"""``deployctl status`` and ``history`` name the Deployment a Rollout delivers and where
its take-over stands; ``deployctl rollout --image`` refuses a workloadRef Rollout and
says to change the Deployment, and why (pure: a Rollout as read from the API)."""

from __future__ import annotations

import pytest
from rich.console import Console

from controller.commands.common import CliError
from controller.commands.render import status_document, status_view, workload_document
from controller.commands.rollout import revision_of, set_images

ROLLOUT = {
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "replicas": 6,
        "workloadRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web-deploy",
            "scaleDown": "onsuccess",
        },
        "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
    },
    "status": {
        "phase": "Healthy",
        "workload": {"deployment": "web-deploy", "replicas": 6, "phase": "TakenOver"},
    },
}


def test_status_shows_the_deployment_and_the_take_over() -> None:
    assert status_document(ROLLOUT, [])["workload"] == {
        "deployment": "web-deploy",
        "scaleDown": "onsuccess",
        "phase": "TakenOver",
        "replicas": 6,
    }
    console = Console(width=200, record=True)
    console.print(status_view(ROLLOUT, []))
    text = console.export_text()
    assert "Deployment web-deploy (scaleDown onsuccess): TakenOver, 6 replicas to give back" in text


def test_a_rollout_with_its_own_template_shows_no_workload() -> None:
    own = {**ROLLOUT, "spec": {"template": {}, "strategy": {}}}
    assert workload_document(own) is None


def test_rollout_image_refuses_a_workloadref_rollout_and_says_where_to_change_it() -> None:
    with pytest.raises(CliError) as refused:
        set_images({**ROLLOUT, "status": {}}, {"app": "shop/web:2"})
    message = str(refused.value)
    assert "change the image in the Deployment" in message
    assert "kubectl set image deployment/web-deploy" in message
    assert "the next sync would undo it" in message


def test_undo_of_a_workloadref_rollout_refuses_before_writing() -> None:
    # The template to go back to is the Deployment's: revert it where it is kept.
    with pytest.raises(CliError) as refused:
        revision_of({**ROLLOUT, "status": {}})
    assert "change or revert the template in the Deployment" in str(refused.value)
