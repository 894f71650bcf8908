"""What a pass keeps between passes: parsed models per version, its own status writes.

Fast tests of ``controller.parsed`` and ``controller.status_writes``; what they save is
measured in ``make bench``, and that an echo costs no pass is tested against the real
apiserver (tests/integration/test_passes.py).
"""

from __future__ import annotations

import copy
from typing import Any

from controller.api import Rollout, RolloutStatus
from controller.api.revision import template_hash
from controller.parsed import ParsedObjects
from controller.status_writes import StatusWrites
from tests.engine.fixture import canary_spec, rollout_object

Obj = dict[str, Any]


def rollout(version: str = "1", **spec: Any) -> Obj:
    raw = rollout_object(canary_spec([{"setWeight": 20}, {"pause": {}}]), **spec)
    raw["metadata"]["resourceVersion"] = version
    return raw


def test_a_version_is_parsed_once_and_a_new_version_again() -> None:
    parsed = ParsedObjects()
    first, problems = parsed.rollout(rollout("1"))
    assert first is not None and problems == ()
    assert parsed.rollout(rollout("1"))[0] is first
    second = parsed.rollout(rollout("2", replicas=7))[0]
    assert second is not None and second is not first and second.spec.replicas == 7
    # Only the latest version of an object is kept.
    assert len(parsed.rollouts) == 1


def test_invalid_documents_are_remembered_with_their_problems() -> None:
    parsed = ParsedObjects()
    bad = rollout("3", replicas=-1)
    model, problems = parsed.rollout(bad)
    assert model is None and any("replicas" in str(p) for p in problems)
    assert parsed.rollout(bad) == (None, problems)


def test_documents_without_uid_or_version_are_parsed_every_time() -> None:
    parsed = ParsedObjects()
    raw = rollout()
    del raw["metadata"]["uid"]
    assert parsed.rollout(raw)[0] is not parsed.rollout(raw)[0]
    assert len(parsed.rollouts) == 0


def test_least_recently_used_objects_leave_first() -> None:
    parsed = ParsedObjects(limit=2)
    raws = [rollout() for _ in range(3)]
    for index, raw in enumerate(raws):
        raw["metadata"]["uid"] = f"uid-{index}"
    a = parsed.rollout(raws[0])[0]
    parsed.rollout(raws[1])
    assert parsed.rollout(raws[0])[0] is a  # used again: now the most recent
    parsed.rollout(raws[2])  # pushes out uid-1, the least recently used
    assert len(parsed.rollouts) == 2
    assert parsed.rollout(raws[0])[0] is a


def test_the_revision_is_hashed_once_per_version() -> None:
    parsed = ParsedObjects()
    raw = rollout()
    model = parsed.rollout(raw)[0]
    assert model is not None
    assert parsed.revision(raw, model) == template_hash(model.spec.pod_template)


def test_a_remembered_write_is_what_parsing_the_written_document_gives() -> None:
    """The model seeded after a status write equals a fresh parse of the written object,
    so a pass never sees a difference between the two."""
    parsed = ParsedObjects()
    raw = rollout()
    model = parsed.rollout(raw)[0]
    assert model is not None
    status = RolloutStatus.model_validate(
        {
            "phase": "Progressing",
            "canaryRevision": "abc",
            "stableRevision": "xyz",
            "currentStepIndex": 1,
            "weight": 20,
            "analysisRuns": [
                {"key": "step-1", "revision": "abc", "startedAt": "2026-03-01T12:00:00Z"}
            ],
            "conditions": [{"type": "Progressing", "status": "True", "reason": "StepStarted"}],
        }
    )
    written = copy.deepcopy(raw)
    written["status"] = status.to_wire()
    written["metadata"]["resourceVersion"] = "9"
    parsed.remember(written, model.model_copy(update={"status": status}), revision="abc")
    fresh = Rollout.model_validate(written)
    assert parsed.rollout(written)[0] == fresh
    assert parsed.revision(written, fresh) == "abc"


def test_an_echo_is_exactly_the_written_status_over_the_same_object() -> None:
    writes = StatusWrites()
    raw = rollout("5")
    raw["status"] = {"phase": "Progressing"}
    new = {"phase": "Healthy", "stableRevision": "abc"}
    writes.sending(raw, new)
    echo = copy.deepcopy(raw)
    echo["status"] = dict(new)
    echo["metadata"]["resourceVersion"] = "6"
    echo["metadata"]["managedFields"] = [{"manager": "deployctl", "subresource": "status"}]
    other = copy.deepcopy(echo)
    other["metadata"]["annotations"] = {"deployctl.io/request": '{"action": "promote"}'}
    assert not writes.is_echo(other)  # a request written meanwhile: a real event
    spec_edit = copy.deepcopy(echo)
    spec_edit["metadata"]["generation"] = 2
    assert not writes.is_echo(spec_edit)
    assert writes.is_echo(echo)
    assert not writes.is_echo(echo)  # one write, one echo


def test_a_failed_write_has_no_echo() -> None:
    writes = StatusWrites()
    raw = rollout("5")
    writes.sending(raw, {"phase": "Healthy"})
    writes.failed(raw)
    echo = copy.deepcopy(raw)
    echo["status"] = {"phase": "Healthy"}
    assert not writes.is_echo(echo)
    assert len(writes) == 0


def test_a_pass_before_the_echo_reads_what_the_write_returned() -> None:
    writes = StatusWrites()
    raw = rollout("5")
    writes.sending(raw, {"phase": "Healthy"})
    written = copy.deepcopy(raw)
    written["status"] = {"phase": "Healthy"}
    written["metadata"]["resourceVersion"] = "6"
    writes.sent(raw, written)
    assert writes.latest(raw) == written  # the cache still shows version 5
    newer = copy.deepcopy(written)
    newer["metadata"]["resourceVersion"] = "7"
    assert writes.latest(newer) is newer  # the cache moved on: it wins
