"""Where the adapter's credentials come from: a kubeconfig file, or the pod's account.

``Kube.from_kubeconfig`` and ``Kube.in_cluster`` build their client configuration here,
``Kube.from_kubeconfig_dict`` from a kubeconfig already read (a member cluster's, from a
ClusterTarget's Secret: ``controller/release/members.py``);
the CLI reads the context's default namespace and user with ``kubeconfig_context``
(what kubectl would use). A kubeconfig that cannot be used is a ``KubeconfigError``
saying which file and why.

A kubeconfig file whose context is of the usual forms (a server, its CA, a token or a
token file, a client certificate and key, a user name and password) is read here
(``plain_kubeconfig``) into the same ``Configuration`` the official loader builds.
Anything else (exec plugins, auth providers, several files in ``$KUBECONFIG``, a key not
listed in ``PLAIN_USER_KEYS``/``PLAIN_CLUSTER_KEYS``, a file reference that does not
resolve) goes to the official loader, as every kubeconfig did before. The official
loader imports an OAuth stack, ``dateutil`` and ``requests`` whatever the kubeconfig
holds (a fifth of a CLI command's start), so it is imported only when used.
"""

from __future__ import annotations

import atexit
import base64
import copy
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
import yaml
from kubernetes.client import api_client as k8s_api_client
from kubernetes.client import configuration as k8s_configuration

from controller.kube.errors import KubeconfigError

# How often a kubeconfig's credentials are looked at again (see _at_most_every).
REFRESH_SECONDS = 1.0
# The user and cluster keys read here; an entry with any other goes to the official loader.
PLAIN_USER_KEYS = frozenset(
    {
        "token",
        "tokenFile",
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "username",
        "password",
    }
)
PLAIN_CLUSTER_KEYS = frozenset(
    {
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "proxy-url",
    }
)


def _official() -> Any:
    """The official kubeconfig loaders (``kubernetes.config``), imported on first use."""
    from kubernetes import config as k8s_config

    return k8s_config


def _unusable() -> tuple[type[BaseException], ...]:
    return (_official().ConfigException, OSError, ValueError, TypeError)


def _kubeconfig_problem(path: str | None, exc: BaseException) -> str:
    where = path or "$KUBECONFIG or ~/.kube/config"
    detail = str(exc).strip() or type(exc).__name__
    return f"cannot load the kubeconfig ({where}): {detail}"


@dataclass(frozen=True)
class KubeconfigContext:
    """What the current (or named) kubeconfig context says, as kubectl would read it."""

    name: str
    namespace: str
    user: str


def kubeconfig_context(path: str | None = None, context: str | None = None) -> KubeconfigContext:
    """The context's name, default namespace (``default`` if unset) and user entry name."""
    document = _plain_document(path)
    if document is not None:
        contexts = document["contexts"]
        active = _named(contexts, document.get("current-context"))
    else:
        try:
            contexts, active = _official().list_kube_config_contexts(config_file=path)
        except _unusable() as exc:
            raise KubeconfigError(_kubeconfig_problem(path, exc)) from None
    chosen = active
    if context is not None:
        by_name = {c.get("name"): c for c in contexts or []}
        if context not in by_name:
            known = ", ".join(sorted(str(n) for n in by_name)) or "none"
            raise KubeconfigError(f"no context {context!r} in the kubeconfig (known: {known})")
        chosen = by_name[context]
    details = (chosen or {}).get("context") or {}
    return KubeconfigContext(
        name=str((chosen or {}).get("name", "")),
        namespace=str(details.get("namespace") or "default"),
        user=str(details.get("user") or ""),
    )


def client_from_kubeconfig(path: str | None = None, context: str | None = None) -> Any:
    """A client (``kubernetes.client.ApiClient``) for a kubeconfig file (``None``:
    ``$KUBECONFIG`` or ``~/.kube/config``)."""
    configuration = k8s_configuration.Configuration()
    try:
        plain = plain_kubeconfig(path, context, configuration)
    except (OSError, ValueError) as exc:  # a token file or inline data that cannot be read
        raise KubeconfigError(_kubeconfig_problem(path, exc)) from None
    if not plain:
        try:
            _official().load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
        except _unusable() as exc:
            raise KubeconfigError(_kubeconfig_problem(path, exc)) from None
    if not configuration.verify_ssl:
        # insecure-skip-tls-verify: urllib3 would warn on every request; the CLI says it
        # once (Transport.tls_verified).
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    hook = configuration.refresh_api_key_hook
    if hook is not None:
        configuration.refresh_api_key_hook = _at_most_every(REFRESH_SECONDS, hook)
    return k8s_api_client.ApiClient(configuration)


def _at_most_every(
    seconds: float,
    hook: Callable[[Any], None],
    *,
    now: Callable[[], float] = time.monotonic,
) -> Callable[[Any], None]:
    """``hook`` called at most once per ``seconds``.

    The kubeconfig loader's refresh hook runs before every request: it reloads a token
    only once it has expired, but copies the whole configuration each time (scanning the
    environment for proxies), which was 4% of the controller's CPU under load. A token
    that expires is picked up within ``seconds`` of its expiry instead of at once. The
    loader installs a fresh hook each time it runs; that one is called next time.
    """
    lock = threading.Lock()
    state: dict[str, Any] = {"hook": hook, "last": float("-inf")}

    def refresh(configuration: Any) -> None:
        at = now()
        with lock:
            if at - state["last"] < seconds:
                return
            state["last"] = at
        state["hook"](configuration)
        fresh = configuration.refresh_api_key_hook
        if fresh is not refresh and fresh is not None:
            state["hook"] = fresh
        configuration.refresh_api_key_hook = refresh

    return refresh


def client_in_cluster() -> Any:
    """A client for the pod's service account (its token re-read as it rotates)."""
    configuration = k8s_configuration.Configuration()
    _official().load_incluster_config(client_configuration=configuration)
    return k8s_api_client.ApiClient(configuration)


def client_from_kubeconfig_dict(config: Mapping[str, Any], context: str | None = None) -> Any:
    """A client for a kubeconfig already read and checked (``controller.release.credentials``
    refuses exec plugins and file references first); inline certificates go to temporary
    files.

    No retries below the transport's (urllib3 retries a timed-out read three times by
    default): a member cluster that does not answer costs one timeout per attempt.
    """
    configuration = k8s_configuration.Configuration()
    configuration.retries = 0
    unusable: tuple[type[BaseException], ...] = (*_unusable(), KeyError)
    try:
        _official().load_kube_config_from_dict(
            config_dict=copy.deepcopy(dict(config)),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except unusable as exc:
        # The type and the loader's own words, which name keys, never their values.
        raise KubeconfigError(
            f"cannot load the kubeconfig: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return k8s_api_client.ApiClient(configuration)


# -- the kubeconfig files read here ------------------------------------------------------

_read_lock = threading.Lock()
_read: dict[tuple[str, int, int], dict[str, Any] | None] = {}
_temp_files: dict[bytes, str] = {}


def _one_file(path: str | None) -> str | None:
    """The one kubeconfig file ``path`` names (``None``: ``$KUBECONFIG`` or
    ``~/.kube/config``, as the official loader picks it); None when ``$KUBECONFIG``
    lists several (merged by the official loader) or is empty."""
    if path is None:
        path = os.environ.get("KUBECONFIG", "~/.kube/config")
    if not path or os.pathsep in path:
        return None
    return os.path.expanduser(path)


def _plain_document(path: str | None) -> dict[str, Any] | None:
    """The kubeconfig file's document when it is one file whose contexts, clusters and
    users are lists of named entries and whose current context exists; else None."""
    chosen = _one_file(path)
    if chosen is None:
        return None
    try:
        stat = os.stat(chosen)
    except OSError:
        return None  # the official loader says what is wrong
    key = (chosen, stat.st_mtime_ns, stat.st_size)
    with _read_lock:
        if key in _read:
            return _read[key]
    document = _parse(chosen)
    with _read_lock:
        _read[key] = document
    return document


def _parse(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(document, dict):
        return None
    for section in ("contexts", "clusters", "users"):
        entries = document.get(section)
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries
        ):
            return None
    if _named(document["contexts"], document.get("current-context")) is None:
        return None
    document["_base"] = os.path.abspath(os.path.dirname(path))
    return document


def _named(entries: list[dict[str, Any]], name: Any) -> dict[str, Any] | None:
    return next((e for e in entries if e.get("name") == name), None) if name else None


def plain_kubeconfig(path: str | None, context: str | None, configuration: Any) -> bool:
    """Fill ``configuration`` (a ``kubernetes.client.Configuration``) from the kubeconfig
    file as the official loader would, when its context is of the usual forms (see the
    module's docstring); False, ``configuration`` untouched, when the official loader
    must read it."""
    document = _plain_document(path)
    if document is None:
        return False
    chosen = _named(document["contexts"], context or document.get("current-context"))
    details = (chosen or {}).get("context")
    if not isinstance(details, dict):
        return False
    cluster = (_named(document["clusters"], details.get("cluster")) or {}).get("cluster")
    user = (_named(document["users"], details.get("user")) or {}).get("user")
    if not isinstance(cluster, dict) or not isinstance(user, dict):
        return False
    if not set(cluster) <= PLAIN_CLUSTER_KEYS or not set(user) <= PLAIN_USER_KEYS:
        return False
    texts = {**cluster, **user}
    texts.pop("insecure-skip-tls-verify", None)
    if "server" not in cluster or not all(isinstance(v, str) for v in texts.values()):
        return False
    base = document["_base"]
    settings: dict[str, Any] = {"host": cluster["server"].rstrip("/")}
    if settings["host"].startswith("https"):
        # Data wins over a file, as in the official loader; a file that is missing is its
        # error to report.
        for attribute, entry, key in (
            ("ssl_ca_cert", cluster, "certificate-authority"),
            ("cert_file", user, "client-certificate"),
            ("key_file", user, "client-key"),
        ):
            if f"{key}-data" in entry:
                if entry[f"{key}-data"]:
                    content = base64.standard_b64decode(entry[f"{key}-data"])
                    settings[attribute] = _temp_file(content)
            elif key in entry:
                named = os.path.normpath(os.path.join(base, entry[key]))
                if not os.path.isfile(named):
                    return False
                settings[attribute] = named
    if "insecure-skip-tls-verify" in cluster:
        settings["verify_ssl"] = not cluster["insecure-skip-tls-verify"]
    if "tls-server-name" in cluster:
        settings["tls_server_name"] = cluster["tls-server-name"]
    if "proxy-url" in cluster:
        settings["proxy"] = cluster["proxy-url"]
    token = user.get("token")
    if "token" not in user and "tokenFile" in user:
        with open(os.path.normpath(os.path.join(base, user["tokenFile"]))) as handle:
            token = handle.read()
    if token:
        settings["api_key"] = {"BearerToken": f"Bearer {token}"}
    elif "username" in user and "password" in user:
        basic = urllib3.util.make_headers(basic_auth=f"{user['username']}:{user['password']}")
        settings["api_key"] = {"BearerToken": basic["authorization"]}
    for attribute, value in settings.items():
        setattr(configuration, attribute, value)
    return True


def _temp_file(content: bytes) -> str:
    """A file holding ``content`` (a certificate or key given inline), readable only by
    this user (``mkstemp``) and removed when the process exits; one per content."""
    with _read_lock:
        known = _temp_files.get(content)
        if known is not None and os.path.isfile(known):
            return known
        if not _temp_files:
            atexit.register(_remove_temp_files)
        handle, name = tempfile.mkstemp(prefix="deployctl-kubeconfig-")
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        _temp_files[content] = name
        return name


def _remove_temp_files() -> None:
    for name in _temp_files.values():
        try:
            os.remove(name)
        except OSError:
            pass
