"""What every cluster command shares: kubectl-style connection options, one session,
errors a person can act on (mapped to the stable exit codes), the controller check.

The Kubernetes client is imported lazily, inside the functions that connect, so that
``deployctl --help`` and shell completion never pay for it.
"""

from __future__ import annotations

import difflib
import functools
import getpass
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from controller.exitcodes import Exit

if TYPE_CHECKING:
    from controller.kube import Kube

P = ParamSpec("P")
R = TypeVar("R")

CONTROLLER_NAMESPACE_ENV = "DEPLOYCTL_CONTROLLER_NAMESPACE"
CONTROLLER_LEASE_ENV = "DEPLOYCTL_CONTROLLER_LEASE"
DEFAULT_CONTROLLER_NAMESPACE = "deployctl-system"
DEFAULT_CONTROLLER_LEASE = "deployctl-controller"
INSTALL_HINT = "install it with `kubectl apply -k manifests/` (see docs/install.md)"

Kubeconfig = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)",
        show_default=False,
    ),
]
KubeContext = Annotated[
    str | None, typer.Option("--context", help="Kubeconfig context", show_default=False)
]
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", help="Namespace (default: the context's)", show_default=False
    ),
]


class Output(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text, json or yaml")]


class CliError(Exception):
    """A failure with a message for the person at the terminal and an exit code."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: Exit = Exit.USAGE) -> CliError:
    return CliError(message, code)


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn our exceptions into one ``error:`` line on stderr and the documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from controller.kube import KubeconfigError, KubeError

        try:
            return command(*args, **kwargs)
        except CliError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(exc.code) from None
        except KubeconfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(Exit.UNREACHABLE) from None
        except KubeError as exc:
            message, code = describe_kube_error(exc)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def describe_kube_error(exc: Exception) -> tuple[str, Exit]:
    from controller.kube import Forbidden, KubeError, NotFound, Transient

    assert isinstance(exc, KubeError)
    if isinstance(exc, Forbidden):
        return (
            f"forbidden: your credentials may not {exc.verb} {exc.resource} "
            f"({exc.message}); ask for a Role granting it, e.g. the one in docs/install.md",
            Exit.UNREACHABLE,
        )
    if isinstance(exc, Transient) and exc.code is None:
        return (
            f"cannot reach the cluster: {exc.message}; check --kubeconfig/--context and that "
            "the API server is up",
            Exit.UNREACHABLE,
        )
    if isinstance(exc, NotFound) and exc.resource in ("rollouts", "analysistemplates"):
        return (
            f"the deployctl CRDs are not installed in this cluster ({exc.message}); "
            + INSTALL_HINT,
            Exit.UNREACHABLE,
        )
    if isinstance(exc, Transient):
        return f"the cluster failed the request: {exc.message}", Exit.UNREACHABLE
    return f"the cluster refused the request: {exc.message}", Exit.USAGE


@dataclass
class Session:
    """A connection to the cluster as the kubeconfig context says, and who we are.

    ``requests`` counts the HTTP requests sent, by (verb, resource, code): what a
    command costs the apiserver (tests pin ``status`` at two, three with the Lease).
    """

    kube: Kube
    namespace: str
    user: str
    """Who is asking as far as the client can tell (CI actor or local user, kubeconfig)."""
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    _who: str | None = field(default=None, init=False, repr=False)

    def who(self) -> str:
        """The name written as approver or requester: the user name the API server knows
        us by (SelfSubjectReview, Kubernetes 1.28+), which deployctl's admission policy
        compares with; else ``user``. Asked once per command, only by commands that
        write a name."""
        if self._who is None:
            self._who = self.kube.whoami() or self.user
        return self._who

    def close(self) -> None:
        self.kube.close()


_insecure_said = False


def connect(kubeconfig: Path | None, context: str | None, namespace: str | None) -> Session:
    from controller.kube import Kube, RetryPolicy, kubeconfig_context
    from controller.lazylog import quiet

    # The adapter logs its retries; a person at a terminal wants only the outcome. (Not
    # configure_logging(): structlog would cost the command's start a tenth of a second.)
    quiet("error")
    for library in ("urllib3", "kubernetes"):
        logging.getLogger(library).setLevel(logging.ERROR)
    path = str(kubeconfig) if kubeconfig is not None else None
    ctx = kubeconfig_context(path, context)
    requests: Counter[tuple[str, str, str]] = Counter()

    def count(verb: str, resource: str, code: str) -> None:
        requests[(verb, resource, code)] += 1

    kube = Kube.from_kubeconfig(
        path,
        context,
        retry=RetryPolicy(attempts=3, initial=0.2, maximum=1.0),
        request_timeout=20.0,
        connect_timeout=3.0,
        count_request=count,
    )
    global _insecure_said
    if not kube.tls_verified and not _insecure_said:
        _insecure_said = True
        typer.echo(
            f"warning: not verifying the API server's certificate (insecure-skip-tls-verify in "
            f"context {ctx.name or 'current'!r})",
            err=True,
        )
    return Session(
        kube=kube, namespace=namespace or ctx.namespace, user=identity(ctx.user), requests=requests
    )


def identity(kube_user: str, environ: Mapping[str, str] | None = None) -> str:
    """Who is asking: the CI actor if any, else the local user; with the kubeconfig user."""
    env = os.environ if environ is None else environ
    person = (
        env.get("DEPLOYCTL_USER")
        or env.get("GITHUB_ACTOR")
        or env.get("GITLAB_USER_LOGIN")
        or env.get("BUILDKITE_BUILD_CREATOR")
        or _local_user()
    )
    return f"{person} (kubeconfig user {kube_user})" if kube_user else person


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def get_rollout(session: Session, name: str) -> dict[str, Any]:
    """The Rollout, or an error suggesting close names when it does not exist."""
    from controller.kube import NotFound

    try:
        return session.kube.get_rollout(session.namespace, name)
    except NotFound as exc:
        if "rollouts" not in exc.message or "the server could not find" in exc.message.lower():
            raise
        names = [str(r["metadata"]["name"]) for r in session.kube.list_rollouts(session.namespace)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        if not close and names:
            hint = f"; rollouts here: {', '.join(sorted(names)[:10])}"
        raise fail(f"rollout {name!r} not found in namespace {session.namespace!r}{hint}") from None


@dataclass(frozen=True)
class ControllerState:
    running: bool
    detail: str


def controller_state(
    session: Session, *, now: datetime | None = None, lease: tuple[str, str] | None = None
) -> ControllerState:
    """Is a controller holding its leader Lease? (What ``--wait`` and requests rely on.)

    ``lease`` is (namespace, name); by default the operator's, as the environment says.
    """
    from controller.kube import Forbidden, NotFound
    from controller.times import parse_timestamp

    namespace, name = lease or (
        os.environ.get(CONTROLLER_NAMESPACE_ENV, DEFAULT_CONTROLLER_NAMESPACE),
        os.environ.get(CONTROLLER_LEASE_ENV, DEFAULT_CONTROLLER_LEASE),
    )
    try:
        found = session.kube.get_lease(namespace, name, timeout=10)
    except NotFound:
        return ControllerState(False, f"no leader Lease {namespace}/{name}")
    except Forbidden:
        # Cannot tell; a CLI user without lease access must still be able to deploy.
        return ControllerState(True, "lease not readable with these credentials")
    spec = found.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    renewed = spec.get("renewTime")
    duration = float(spec.get("leaseDurationSeconds") or 15)
    if not holder or not renewed:
        return ControllerState(False, f"Lease {namespace}/{name} is not held")
    age = ((now or datetime.now(UTC)) - parse_timestamp(str(renewed))).total_seconds()
    # Twice the duration: a leader between renewals, or a clock a little off, is alive.
    if age > 2 * duration:
        return ControllerState(
            False, f"Lease {namespace}/{name} held by {holder} was last renewed {age:.0f} s ago"
        )
    return ControllerState(True, f"leader {holder}")


def require_controller(session: Session) -> None:
    state = controller_state(session)
    if not state.running:
        raise fail(
            f"no deployctl controller is running ({state.detail}); nothing would act on this "
            f"request: {INSTALL_HINT}. If it runs in another namespace, set "
            f"{CONTROLLER_NAMESPACE_ENV}.",
            Exit.UNREACHABLE,
        )


def print_document(document: Any, output: Output) -> None:
    """One JSON or YAML document on stdout, for scripts."""
    if output is Output.yaml:
        import yaml

        sys.stdout.write(yaml.safe_dump(document, sort_keys=False))
    else:
        import json

        sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
