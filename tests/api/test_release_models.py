"""Release and ClusterTarget models: what a person gets told about a wrong file."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.api.release import ClusterTarget, Release


def release(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "r", "namespace": "rel"},
        "spec": {
            "rollout": {"namespace": "shop", "name": "checkout"},
            "images": {"app": "shop:2"},
            "waves": [{"name": "a", "clusters": ["x"]}],
            **spec,
        },
    }


def test_defaults_and_durations() -> None:
    model = Release.model_validate(
        release(waves=[{"name": "a", "clusters": ["x", "y"], "soak": "2m"}])
    )
    spec = model.spec
    assert (
        spec.on_failure == "halt"
        and spec.cluster_timeout == 1800
        and spec.unreachable_timeout == 300
    )
    assert spec.waves[0].soak == 120 and spec.waves[0].parallel == 2
    assert spec.to_dict()["waves"][0]["soak"] == "2m"
    assert spec.clusters() == ["x", "y"] and spec.wave_of("y").name == "a"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"waves": []}, "at least 1 item"),
        ({"waves": [{"name": "a", "clusters": ["x", "x"]}]}, "names a cluster twice"),
        (
            {"waves": [{"name": "a", "clusters": ["x"], "maxParallel": 0}]},
            "greater than or equal to 1",
        ),
        ({"onFailure": "pray"}, "'halt' or 'rollbackAll'"),
        ({"templatePatch": {"kind": "Pod"}}, "templatePatch may hold metadata and spec only"),
        ({"templatePatch": {"spec": []}}, "templatePatch.spec must be a mapping"),
        ({"clusterTimeout": "0s"}, "longer than 0s"),
        ({"waves": [{"name": "a", "clusters": ["Not_A_Name"]}]}, "should match pattern"),
        ({"wavez": []}, "Extra inputs are not permitted"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Release.model_validate(release(**spec))
    assert message in str(caught.value)


def test_a_cluster_target_names_a_secret_key() -> None:
    target = ClusterTarget.model_validate(
        {"metadata": {"name": "eu-1"}, "spec": {"kubeconfigSecretRef": {"name": "eu-1-kc"}}}
    )
    assert target.spec.kubeconfig_secret_ref.key == "kubeconfig" and target.spec.context is None
    with pytest.raises(ValidationError):
        ClusterTarget.model_validate({"metadata": {"name": "x"}, "spec": {"kubeconfig": "inline"}})
