"""One-shot requests to a controller, and the commands that send them.

Rollouts (promote, abort, retry, approve) and Releases (promote, abort) take requests the
same way: the CLI writes the request annotation (``controller/requests.py``) with the
object's resourceVersion as a precondition, retrying on a conflict, and waits until the
controller records the request's id in ``status.lastHandledRequest``, so "exit 0" means
it happened. This module is that protocol, once; ``Target`` says which kind of object
and which controller acts on it. ``wait_for`` polls an object until a condition holds,
and ``request_command`` builds the typer command each request is, with the options
every request command takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from controller.commands.common import (
    Kubeconfig,
    KubeContext,
    Namespace,
    Output,
    OutputOpt,
    Session,
    fail,
    handle_errors,
)
from controller.exitcodes import Exit

AckTimeout = Annotated[
    float, typer.Option("--ack-timeout", help="Seconds to wait for the controller to act")
]
# How often an object is read again while waiting for its controller.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Target:
    """A kind of object that takes requests, and who acts on them."""

    kind: str  # "Rollout", "Release": in messages
    actor: str  # "the controller", "the release controller": in messages
    read: Callable[[Session, str], dict[str, Any]]
    # (session, name, merge patch, resourceVersion precondition)
    patch: Callable[[Session, str, dict[str, Any], str], object]
    # The name a request is recorded with. Rollouts: the user the API server knows
    # (``Session.who``), which the admission policy checks approvals against. Releases:
    # the CI actor or local user with the kubeconfig user (``Session.user``), as no
    # policy checks it and it says more in the release's history.
    requester: Callable[[Session], str] = Session.who


def wait_for(
    session: Session,
    read: Callable[[Session, str], dict[str, Any]],
    name: str,
    ok: Callable[[dict[str, Any]], object],
    *,
    timeout: float,
    what: str,
) -> dict[str, Any]:
    """Read ``name`` until ``ok`` holds for it; exit code TIMEOUT after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        current = read(session, name)
        if ok(current):
            return current
        if time.monotonic() >= deadline:
            raise fail(f"timed out after {timeout:.0f} s waiting for {what}", Exit.TIMEOUT)
        time.sleep(POLL_SECONDS)


def send_request(
    session: Session, target: Target, name: str, action: str, *, ack_timeout: float
) -> dict[str, Any]:
    """Write the request annotation; wait until status.lastHandledRequest carries its id."""
    from controller.kube import Conflict
    from controller.names import REQUEST_ANNOTATION
    from controller.requests import new_request

    request = new_request(action, by=target.requester(session))  # type: ignore[arg-type]
    body = {"metadata": {"annotations": {REQUEST_ANNOTATION: request.to_annotation()}}}
    for _attempt in range(5):
        current = target.read(session, name)
        try:
            target.patch(session, name, body, current["metadata"]["resourceVersion"])
            break
        except Conflict:
            continue
    else:
        raise fail(f"the {target.kind} kept changing under us; try again", Exit.UNREACHABLE)
    return wait_for(
        session,
        target.read,
        name,
        lambda obj: (obj.get("status") or {}).get("lastHandledRequest") == request.id,
        timeout=ack_timeout,
        what=f"{target.actor} to act on {action}",
    )


# What a request command does once typer has parsed its options:
# (action, verb, name, ack_timeout=, output=, kubeconfig=, context=, namespace=).
Runner = Callable[..., None]


def request_command(
    run: Runner, action: str, verb: str, *, doc: str, name_help: str
) -> Callable[..., None]:
    """A typer command ``NAME [--ack-timeout] [-o] [--kubeconfig] [--context] [-n]`` that
    hands its options to ``run`` with ``action`` and the past-tense ``verb``."""

    def command(
        name: str,
        ack_timeout: float = 30.0,
        output: Output = Output.text,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
    ) -> None:
        run(
            action,
            verb,
            name,
            ack_timeout=ack_timeout,
            output=output,
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
        )

    # Typer reads the options from the annotations: set them as objects (this module's
    # annotations are strings, and the argument's help differs per kind).
    command.__annotations__ = {
        "name": Annotated[str, typer.Argument(help=name_help, show_default=False)],
        "ack_timeout": AckTimeout,
        "output": OutputOpt,
        "kubeconfig": Kubeconfig,
        "context": KubeContext,
        "namespace": Namespace,
        "return": None,
    }
    command.__doc__ = doc
    command.__name__ = command.__qualname__ = action
    return handle_errors(command)
