"""Hostile input: generated and hand-written bad Rollouts and AnalysisTemplates.

Every one gets a clear problem with a field path (``deployctl validate``, exit 1, one
``error:`` line each, no traceback) or, through the real apiserver and a running
controller, a 422 or an InvalidSpec condition, while a healthy rollout beside them keeps
being served and the running version of the one edited badly is never touched. Values
that are legal but nasty (quotes, braces, unicode in args) are kept as data: the rendered
PromQL cannot be changed by them.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.analysis.templating import QueryContext, TemplateError, render
from controller.validation import parse_document
from tests.integration.harness import GROUP, VERSION, Cluster, demo_rollout
from tests.waiting import wait_until

BASE_ROLLOUT: dict[str, Any] = demo_rollout(
    "shop",
    version="v1",
    replicas=2,
    strategy={
        "canary": {
            "steps": [
                {"setWeight": 20},
                {"pause": {"duration": "30s"}},
                {"analysis": {"templates": [{"name": "errors"}]}},
            ]
        }
    },
)
BASE_TEMPLATE: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "errors"},
    "spec": {
        "args": [{"name": "service"}],
        "metrics": [
            {
                "name": "error-rate",
                "interval": "30s",
                "count": 3,
                "failureLimit": 0,
                "provider": {
                    "prometheus": {
                        "query": 'sum(rate(http_requests_total{service="{{args.service}}"}[1m]))'
                    }
                },
                "threshold": {"max": 0.05},
            }
        ],
    },
}

# (path, invalid values): each replaces the value at path in a valid document.
BAD_ROLLOUT_VALUES: list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]] = [
    (("spec", "replicas"), st.integers(max_value=-1) | st.integers(min_value=10**7)),
    (("spec", "replicas"), st.text(max_size=5) | st.floats(allow_nan=True) | st.none()),
    (("spec", "strategy"), st.just({}) | st.just({"canary": {}, "rolling": {}})),
    (
        ("spec", "strategy"),
        st.dictionaries(st.sampled_from(["linear", "shadow"]), st.just({}), min_size=1),
    ),
    (
        ("spec", "strategy", "canary", "steps", 0, "setWeight"),
        st.integers(min_value=101) | st.integers(max_value=-1),
    ),
    (
        ("spec", "strategy", "canary", "steps", 1, "pause", "duration"),
        st.sampled_from(["-5s", "soon", "1y", "99999999999999999999h", "", "5 s"]),
    ),
    (
        ("spec", "strategy", "canary", "steps", 2),
        st.just({}) | st.just({"setWeight": 10, "pause": {}}),
    ),
    (("spec", "selector", "matchLabels"), st.just({}) | st.just({"app": "other"})),
    (("spec", "progressDeadlineSeconds"), st.integers(max_value=0) | st.text(max_size=3)),
    (("metadata", "name"), st.sampled_from(["", "UPPER", "a" * 300, "bad name", "-x", "x/y"])),
    (("spec", "template", "spec", "containers"), st.just([])),
    (
        ("spec", "strategy", "canary", "steps"),
        st.lists(st.just({"setWeight": 5}), min_size=1001, max_size=1001),
    ),
]
BAD_TEMPLATE_VALUES: list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]] = [
    (("spec", "metrics"), st.just([])),
    (("spec", "metrics", 0, "interval"), st.sampled_from(["0s", "-1m", "forever", "1e309s"])),
    (("spec", "metrics", 0, "count"), st.integers(max_value=0)),
    (("spec", "metrics", 0, "failureLimit"), st.integers(max_value=-1)),
    (("spec", "metrics", 0, "provider"), st.just({}) | st.just({"prometheus": {}})),
    (("spec", "metrics", 0, "name"), st.sampled_from(["", "Bad Name", "x" * 200])),
    (("spec", "metrics", 0, "provider", "prometheus", "query"), st.just("")),
    (("spec", "args"), st.just([{"name": "a"}, {"name": "a"}])),
]


def mutate(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(document)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@st.composite
def bad_documents(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Rollout", "AnalysisTemplate"]))
    base, table = (
        (BASE_ROLLOUT, BAD_ROLLOUT_VALUES)
        if kind == "Rollout"
        else (BASE_TEMPLATE, BAD_TEMPLATE_VALUES)
    )
    path, values = draw(st.sampled_from(table))
    return mutate(base, path, draw(values))


def test_the_valid_bases_are_valid() -> None:
    for doc in (BASE_ROLLOUT, BASE_TEMPLATE):
        assert parse_document(doc).problems == (), parse_document(doc).problems


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_documents())
def test_generated_invalid_documents_get_a_problem_with_a_path(document: dict[str, Any]) -> None:
    parsed = parse_document(document)
    assert parsed.problems, f"accepted: {json.dumps(document)[:300]}"
    for problem in parsed.problems:
        text = str(problem)
        assert text and len(text) < 2000 and "Traceback" not in text


NASTY_ARGS = [
    'x"} or vector(1) #',
    'x"}[5m])) or up{job=~".*',
    "}}{{args.service}}",
    "ünïcødé ✓ 日本",
    "line\nbreak",
    "back\\slash\\",
    "'single'",
]


@pytest.mark.parametrize("value", NASTY_ARGS)
def test_nasty_args_stay_inside_their_label_matcher(value: str) -> None:
    query = BASE_TEMPLATE["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    rendered = render(query, QueryContext(args={"service": value}))
    head, tail = 'sum(rate(http_requests_total{service="', '"}[1m]))'
    assert rendered.startswith(head) and rendered.endswith(tail)
    inner = rendered[len(head) : -len(tail)]
    # Unescaped, the inner literal is exactly the value: nothing leaked into PromQL.
    decoded = json.loads(f'"{inner}"')
    assert decoded == value


def test_a_nasty_arg_in_a_bare_position_is_refused() -> None:
    with pytest.raises(TemplateError):
        render("rate(x[{{args.window}}])", QueryContext(args={"window": "1m]) or vector(1"}))


HAND_WRITTEN: dict[str, dict[str, Any]] = {
    "huge-replicas": mutate(BASE_ROLLOUT, ("spec", "replicas"), 10**12),
    "ten-thousand-steps": mutate(
        BASE_ROLLOUT, ("spec", "strategy", "canary", "steps"), [{"setWeight": 1}] * 10_000
    ),
    "negative-duration": mutate(
        BASE_ROLLOUT, ("spec", "strategy", "canary", "steps", 1, "pause", "duration"), "-30s"
    ),
    "overflowing-duration": mutate(
        BASE_ROLLOUT,
        ("spec", "strategy", "canary", "steps", 1, "pause", "duration"),
        "9" * 400 + "h",
    ),
    "injection-in-query-position": mutate(
        BASE_TEMPLATE, ("spec", "metrics", 0, "interval"), '30s"} or vector(1)'
    ),
    "unknown-strategy": mutate(BASE_ROLLOUT, ("spec", "strategy"), {"shadow": {}}),
    "unicode-name": mutate(BASE_ROLLOUT, ("metadata", "name"), "shöp"),
}


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_hand_written_nasty_documents_fail_validate_clearly(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(HAND_WRITTEN[name]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "validate",
            "-f",
            str(path),
            "--no-check-references",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and "Traceback" not in result.stderr
    assert all(len(line) < 2000 for line in errors)


def test_bad_specs_through_the_apiserver_leave_everything_else_running(
    cluster: Cluster, start_controller: Any
) -> None:
    start_controller()
    steps = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    good = demo_rollout("good", version="v1", replicas=2, strategy={"canary": {"steps": steps}})
    live = demo_rollout("live", version="v1", replicas=2, strategy={"canary": {"steps": steps}})
    cluster.apply_rollout(good)
    cluster.apply_rollout(live)
    for name in ("good", "live"):
        wait_until(
            lambda: cluster.status(name),  # noqa: B023 - polled before the next turn
            ok=lambda s: s.get("phase") == "Healthy",
            timeout=60,
            what=f"{name} healthy",
        )
    live_stable = cluster.status("live")["stableRevision"]

    rejected = accepted = 0
    for index, name in enumerate(sorted(HAND_WRITTEN)):
        body = HAND_WRITTEN[name]
        if body["kind"] != "Rollout" or name == "unicode-name":
            continue
        body = mutate(body, ("metadata", "name"), f"bad-{index}")
        try:
            cluster.apply_rollout(body)
            accepted += 1
        except Exception as exc:  # noqa: BLE001 - the apiserver's 422 is the expected answer
            assert getattr(exc, "status", None) == 422, exc
            rejected += 1
            continue
        bad_name = body["metadata"]["name"]
        wait_until(
            lambda: cluster.status(bad_name),  # noqa: B023 - polled before the next turn
            ok=lambda s: any(
                c["type"] == "InvalidSpec" and c["status"] == "True"
                for c in s.get("conditions", [])
            ),
            timeout=30,
            what=f"InvalidSpec on {name}",
        )
    # An invalid edit of a running Rollout: the model (not the schema) refuses it.
    broken_edit = copy.deepcopy(live)
    broken_edit["spec"]["template"]["spec"]["containers"][0]["image"] = "deployctl/demo-app:v2"
    broken_edit["spec"]["strategy"] = {
        "blueGreen": {"activeService": "same", "previewService": "same"}
    }
    cluster.apply_rollout(broken_edit)
    invalid = wait_until(
        lambda: cluster.status("live"),
        ok=lambda s: s.get("reason") == "InvalidSpec",
        timeout=30,
        what="InvalidSpec on the running rollout",
    )
    assert invalid["stableRevision"] == live_stable
    revisions = {
        rs.metadata.labels["deployctl.io/revision"]: rs.spec.replicas
        for rs in cluster.apps.list_namespaced_replica_set(cluster.namespace).items
        if rs.metadata.labels.get("deployctl.io/rollout") == "live"
    }
    assert revisions == {live_stable: 2}, revisions  # nothing of v2 was created

    # Meanwhile the good one is still served: a new revision goes through.
    cluster.apply_rollout(
        demo_rollout("good", version="v2", replicas=2, strategy={"canary": {"steps": steps}})
    )
    wait_until(
        lambda: cluster.status("good"),
        ok=lambda s: s.get("phase") == "Healthy" and s.get("observedGeneration") == 2,
        timeout=60,
        what="good v2 promoted beside the bad ones",
    )
    assert rejected + accepted >= 4
