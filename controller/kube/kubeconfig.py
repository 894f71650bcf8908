"""Where the adapter's credentials come from: a kubeconfig file, or the pod's account.

``Kube.from_kubeconfig`` and ``Kube.in_cluster`` build their client configuration here,
``Kube.from_kubeconfig_dict`` from a kubeconfig already read (a member cluster's, from a
ClusterTarget's Secret: ``controller/release/members.py``);
the CLI reads the context's default namespace and user with ``kubeconfig_context``
(what kubectl would use). A kubeconfig that cannot be used is a ``KubeconfigError``
saying which file and why.
"""

from __future__ import annotations

import copy
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controller.kube.errors import KubeconfigError

# The client's functions carry no annotations; give the few we call a type once, here.
_load_kube_config: Callable[..., None] = k8s_config.load_kube_config
_load_incluster_config: Callable[..., None] = k8s_config.load_incluster_config
_load_kube_config_from_dict: Callable[..., None] = k8s_config.load_kube_config_from_dict
_list_contexts: Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]] = (
    k8s_config.list_kube_config_contexts
)
_UNUSABLE = (k8s_config.ConfigException, OSError, ValueError, TypeError)
# How often a kubeconfig's credentials are looked at again (see _at_most_every).
REFRESH_SECONDS = 1.0


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
    try:
        contexts, active = _list_contexts(config_file=path)
    except _UNUSABLE as exc:
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


def client_from_kubeconfig(path: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """A client for a kubeconfig file (``None``: ``$KUBECONFIG`` or ``~/.kube/config``)."""
    configuration = k8s.Configuration()
    try:
        _load_kube_config(config_file=path, context=context, client_configuration=configuration)
    except _UNUSABLE as exc:
        raise KubeconfigError(_kubeconfig_problem(path, exc)) from None
    if not configuration.verify_ssl:
        # insecure-skip-tls-verify: urllib3 would warn on every request; the CLI says it
        # once (Transport.tls_verified).
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    hook = configuration.refresh_api_key_hook
    if hook is not None:
        configuration.refresh_api_key_hook = _at_most_every(REFRESH_SECONDS, hook)
    return k8s.ApiClient(configuration)


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


def client_in_cluster() -> k8s.ApiClient:
    """A client for the pod's service account (its token re-read as it rotates)."""
    configuration = k8s.Configuration()
    _load_incluster_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


def client_from_kubeconfig_dict(
    config: Mapping[str, Any], context: str | None = None
) -> k8s.ApiClient:
    """A client for a kubeconfig already read and checked (``controller.release.credentials``
    refuses exec plugins and file references first); inline certificates go to temporary
    files.

    No retries below the transport's (urllib3 retries a timed-out read three times by
    default): a member cluster that does not answer costs one timeout per attempt.
    """
    configuration = k8s.Configuration()
    configuration.retries = 0
    try:
        _load_kube_config_from_dict(
            config_dict=copy.deepcopy(dict(config)),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (*_UNUSABLE, KeyError) as exc:
        # The type and the loader's own words, which name keys, never their values.
        raise KubeconfigError(
            f"cannot load the kubeconfig: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return k8s.ApiClient(configuration)
