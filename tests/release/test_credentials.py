"""Kubeconfigs a ClusterTarget may hold: inline credentials to an https server, no more."""

from __future__ import annotations

from typing import Any

import pytest

from controller.release.credentials import CredentialsError, check, parse, problems


def kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "clusters": [
            {
                "name": "c",
                "cluster": cluster
                or {"server": "https://10.0.0.1", "certificate-authority-data": "Q0E="},
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "x", "context": {"cluster": "c", "user": "u"}},
            {"name": "other", "context": {"cluster": "c", "user": "nobody"}},
        ],
        "current-context": "x",
    }


def test_a_token_or_client_certificate_data_is_fine() -> None:
    assert problems(kubeconfig({"token": "t0k3n"}), None) == []
    data = {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}
    assert problems(kubeconfig(data), None) == []
    check(kubeconfig({"token": "t"}), "x")


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"exec": {"command": "aws"}}, "'exec' runs a command"),
        ({"auth-provider": {"name": "gcp"}}, "'auth-provider' runs a command"),
        ({"tokenFile": "/var/run/secrets/token"}, "'tokenFile' reads a local file; use token"),
        ({"client-certificate": "/c", "client-key": "/k"}, "'client-key' reads a local file"),
    ],
)
def test_commands_and_local_files_are_refused(user: dict[str, Any], expected: str) -> None:
    found = problems(kubeconfig(user), None)
    assert any(expected in p for p in found), found


def test_the_server_must_be_https_with_inline_ca() -> None:
    found = problems(kubeconfig({"token": "t"}, {"server": "http://10.0.0.1"}), None)
    assert found == ["cluster 'c': the server must be an https:// URL"]
    found = problems(
        kubeconfig({"token": "t"}, {"server": "https://x", "certificate-authority": "/ca.crt"}),
        None,
    )
    assert found == [
        "cluster 'c': 'certificate-authority' reads a local file; "
        "use certificate-authority-data instead"
    ]


def test_the_server_certificate_must_be_verified() -> None:
    cluster = {"server": "https://10.0.0.1", "insecure-skip-tls-verify": True}
    (found,) = problems(kubeconfig({"token": "t"}, cluster), None)
    assert "insecure-skip-tls-verify would send the token to whoever answers" in found


def test_only_the_context_in_use_is_judged_and_it_must_exist() -> None:
    assert problems(kubeconfig({"token": "t"}), "missing") == [
        "no context 'missing' in the kubeconfig"
    ]
    assert problems(kubeconfig({"token": "t"}), "other") == [
        "context 'other' names user 'nobody', which is not there"
    ]
    no_current = {k: v for k, v in kubeconfig({"token": "t"}).items() if k != "current-context"}
    assert problems(no_current, None) == [
        "no context named and no current-context in the kubeconfig"
    ]


def test_errors_never_echo_the_content() -> None:
    with pytest.raises(CredentialsError) as caught:
        parse("token: [secret-value")
    assert "secret-value" not in str(caught.value)
    with pytest.raises(CredentialsError, match="not a YAML mapping"):
        parse("- a list")
    with pytest.raises(CredentialsError) as denied:
        check(kubeconfig({"exec": {"command": "echo s3cr3t"}}), None)
    assert "s3cr3t" not in str(denied.value)
