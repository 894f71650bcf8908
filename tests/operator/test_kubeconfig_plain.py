"""The kubeconfig reader of ``controller.kube.kubeconfig`` against the official loader.

For each usual form (token, token file, CA file or data, client certificate data,
insecure, TLS server name, proxy, user name and password) the ``Configuration`` it
builds must be the one ``kubernetes.config.load_kube_config`` builds; every other form
must be left to the official loader. A subprocess checks what a connection imports.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controller.kube import kubeconfig_context
from controller.kube.kubeconfig import plain_kubeconfig

CA = b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"


def b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode()


def write(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], **extra: Any) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u", "namespace": "shop"}},
            {"name": "other", "context": {"cluster": "c", "user": "u"}},
        ],
        "current-context": "main",
        **extra,
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(document))
    return path


def seen(configuration: Any) -> dict[str, Any]:
    """What a request is built from; files compared by content (temporary names differ)."""
    out: dict[str, Any] = {
        name: getattr(configuration, name)
        for name in ("host", "verify_ssl", "tls_server_name", "proxy", "api_key")
    }
    for name in ("ssl_ca_cert", "cert_file", "key_file"):
        path = getattr(configuration, name)
        out[name] = Path(path).read_bytes() if path else None
    return out


def official(path: Path, context: str | None = None) -> dict[str, Any]:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(path), context=context, client_configuration=configuration
    )
    return seen(configuration)


def ours(path: Path, context: str | None = None) -> dict[str, Any]:
    configuration = k8s.Configuration()
    assert plain_kubeconfig(str(path), context, configuration), "left to the official loader"
    return seen(configuration)


@pytest.mark.parametrize(
    ("cluster", "user"),
    [
        (
            {"server": "https://api.example:6443/", "certificate-authority": "ca.crt"},
            {"token": "t0k"},
        ),
        (
            {"server": "https://api.example", "certificate-authority-data": b64(CA)},
            {"tokenFile": "tok"},
        ),
        (
            {"server": "https://api.example", "certificate-authority-data": b64(CA)},
            {"client-certificate-data": b64(CERT), "client-key-data": b64(KEY)},
        ),
        (
            {"server": "https://api.example", "certificate-authority": "ca.crt"},
            {"client-certificate": "client.crt", "client-key": "client.key"},
        ),
        (
            {"server": "https://api.example", "insecure-skip-tls-verify": True},
            {"username": "ann", "password": "s3cret"},
        ),
        (
            {
                "server": "https://10.0.0.1",
                "certificate-authority-data": b64(CA),
                "tls-server-name": "api.example",
                "proxy-url": "http://proxy.example:3128",
            },
            {"token": "t0k", "tokenFile": "tok"},
        ),
        ({"server": "http://127.0.0.1:8080", "certificate-authority": "ca.crt"}, {}),
    ],
    ids=[
        "token-ca-file",
        "token-file-ca-data",
        "cert-data",
        "cert-files",
        "basic-insecure",
        "server-name-proxy",
        "plain-http",
    ],
)
def test_the_usual_forms_build_what_the_official_loader_builds(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any]
) -> None:
    (tmp_path / "ca.crt").write_bytes(CA)
    (tmp_path / "client.crt").write_bytes(CERT)
    (tmp_path / "client.key").write_bytes(KEY)
    (tmp_path / "tok").write_text("from-a-file")
    path = write(tmp_path, cluster, user)
    assert ours(path) == official(path)
    assert ours(path, "other") == official(path, "other")


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "get-token"}},
        {"auth-provider": {"name": "oidc", "config": {"id-token": "x"}}},
        {"token": "t0k", "as": "someone-else"},
    ],
    ids=["exec", "auth-provider", "impersonation"],
)
def test_other_forms_are_left_to_the_official_loader(tmp_path: Path, user: dict[str, Any]) -> None:
    path = write(tmp_path, {"server": "https://api.example"}, user)
    configuration = k8s.Configuration()
    assert not plain_kubeconfig(str(path), None, configuration)
    assert configuration.host == k8s.Configuration().host  # untouched


def test_a_missing_file_reference_and_several_files_are_left_to_the_official_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, {"server": "https://a", "certificate-authority": "gone.crt"}, {})
    assert not plain_kubeconfig(str(path), None, k8s.Configuration())
    fine = write(tmp_path, {"server": "https://a"}, {"token": "t"})
    monkeypatch.setenv("KUBECONFIG", f"{fine}:{tmp_path / 'second'}")
    assert not plain_kubeconfig(None, None, k8s.Configuration())
    monkeypatch.setenv("KUBECONFIG", str(fine))
    assert plain_kubeconfig(None, None, k8s.Configuration())


def test_the_context_is_read_as_the_official_loader_reads_it(tmp_path: Path) -> None:
    path = write(tmp_path, {"server": "https://a"}, {"token": "t"})
    assert kubeconfig_context(str(path)).namespace == "shop"
    assert kubeconfig_context(str(path), "other").namespace == "default"
    contexts, active = k8s_config.list_kube_config_contexts(config_file=str(path))  # type: ignore[no-untyped-call]
    assert kubeconfig_context(str(path)).name == active["name"] == "main"
    assert kubeconfig_context(str(path)).user == active["context"]["user"] == "u"
    assert [c["name"] for c in contexts] == ["main", "other"]


def test_connecting_with_a_usual_kubeconfig_does_not_import_the_official_loader(
    tmp_path: Path,
) -> None:
    """The import budget of a CLI command, structurally: the official kubeconfig loader
    (and the OAuth stack it brings) and the package's other subpackages stay out."""
    (tmp_path / "ca.crt").write_bytes(CA)
    path = write(
        tmp_path,
        {"server": "https://127.0.0.1:1", "certificate-authority": "ca.crt"},
        {"token": "t"},
    )
    code = (
        "import sys\n"
        "from controller.kube import Kube, kubeconfig_context\n"
        f"kubeconfig_context({str(path)!r})\n"
        f"Kube.from_kubeconfig({str(path)!r})\n"
        "heavy = [m for m in ('kubernetes.config', 'oauthlib', 'requests_oauthlib', 'requests',"
        " 'kubernetes.dynamic', 'kubernetes.stream', 'kubernetes.leaderelection',"
        " 'kubernetes.informer', 'websocket') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
