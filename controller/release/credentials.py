"""Which kubeconfigs a ClusterTarget may hold: self-contained, and nothing that runs code.

A kubeconfig is more than an address and a token. Loaded as it comes, ``exec`` and
``auth-provider`` entries would run commands inside the release controller, and file
references (``certificate-authority``, ``client-certificate``, ``client-key``,
``tokenFile``) would read files of the controller's own pod — its ServiceAccount token,
for one, sent to whatever ``server`` the Secret names. Anyone who may write a Secret in
a Release namespace could then act as the release controller. So only the context in
use is loaded, and only with inline credentials (``token``,
``client-certificate-data``/``client-key-data``, ``certificate-authority-data``) to an
``https`` server whose certificate is verified. Pure: ``members.py`` checks here before
handing the dict to the adapter.

>>> problems({"clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1"}}],
...           "users": [{"name": "u", "user": {"exec": {"command": "sh"}}}],
...           "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
...           "current-context": "x"}, None)
["user 'u': 'exec' runs a command; use a token or client certificate data instead"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

RUNS_CODE = ("exec", "auth-provider")
READS_FILES_USER = ("tokenFile", "client-certificate", "client-key")
READS_FILES_CLUSTER = ("certificate-authority",)


class CredentialsError(ValueError):
    """The kubeconfig cannot be used; the message says why, never what it holds."""


def parse(text: str) -> dict[str, Any]:
    """The kubeconfig document, or CredentialsError (without echoing its content)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        raise CredentialsError("the kubeconfig is not valid YAML") from None
    if not isinstance(document, dict):
        raise CredentialsError("the kubeconfig is not a YAML mapping")
    return document


def _named(config: Mapping[str, Any], section: str, name: str) -> Mapping[str, Any] | None:
    for entry in config.get(section) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            inner = entry.get(section[:-1])  # clusters -> cluster, users -> user
            return inner if isinstance(inner, Mapping) else {}
    return None


def problems(config: Mapping[str, Any], context: str | None) -> list[str]:
    """Why ``config`` may not be used with ``context`` ([] when it may)."""
    chosen = context or config.get("current-context")
    if not chosen:
        return ["no context named and no current-context in the kubeconfig"]
    ctx = _named(config, "contexts", str(chosen))
    if ctx is None:
        return [f"no context {chosen!r} in the kubeconfig"]
    found: list[str] = []
    cluster_name, user_name = str(ctx.get("cluster") or ""), str(ctx.get("user") or "")
    cluster = _named(config, "clusters", cluster_name)
    if cluster is None:
        found.append(f"context {chosen!r} names cluster {cluster_name!r}, which is not there")
    else:
        server = str(cluster.get("server") or "")
        if not server.startswith("https://"):
            found.append(f"cluster {cluster_name!r}: the server must be an https:// URL")
        if cluster.get("insecure-skip-tls-verify"):
            found.append(
                f"cluster {cluster_name!r}: insecure-skip-tls-verify would send the token to "
                "whoever answers; give certificate-authority-data instead"
            )
        for key in READS_FILES_CLUSTER:
            if key in cluster:
                found.append(
                    f"cluster {cluster_name!r}: {key!r} reads a local file; use {key}-data instead"
                )
    user = _named(config, "users", user_name) if user_name else {}
    if user is None:
        found.append(f"context {chosen!r} names user {user_name!r}, which is not there")
    else:
        for key in RUNS_CODE:
            if key in user:
                found.append(
                    f"user {user_name!r}: {key!r} runs a command; use a token or client "
                    "certificate data instead"
                )
        for key in READS_FILES_USER:
            if key in user:
                inline = "token" if key == "tokenFile" else f"{key}-data"
                found.append(
                    f"user {user_name!r}: {key!r} reads a local file; use {inline} instead"
                )
    return found


def check(config: Mapping[str, Any], context: str | None) -> None:
    found = problems(config, context)
    if found:
        raise CredentialsError("; ".join(found))
