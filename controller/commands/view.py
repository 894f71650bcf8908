"""``deployctl status | list | history``: read-only views of Rollouts.

``status`` exits 1 when the rollout is Degraded or RolledBack (so a script can write
``deployctl status x || page``), 0 otherwise; ``--watch`` redraws every second until
Ctrl-C.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from controller.commands.common import (
    Kubeconfig,
    KubeContext,
    Namespace,
    Output,
    OutputOpt,
    Session,
    connect,
    controller_state,
    get_rollout,
    handle_errors,
    print_document,
)
from controller.commands.console import console
from controller.exitcodes import Exit
from controller.names import ROLLOUT_LABEL

Name = Annotated[str, typer.Argument(help="The Rollout", show_default=False)]


def _replicasets(session: Session, name: str) -> list[dict[str, Any]]:
    return session.kube.list_replicasets(session.namespace, f"{ROLLOUT_LABEL}={name}")


@handle_errors
def status(
    name: Name,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw every second")] = False,
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Phase, step, weight, replicas per revision, latest measurements, why it paused or aborted."""
    from controller.commands.render import status_document, status_view

    session = connect(kubeconfig, context, namespace)
    try:
        rollout = get_rollout(session, name)
        if output is not Output.text:
            print_document(status_document(rollout, _replicasets(session, name)), output)
        elif not watch:
            out = console()
            out.print(status_view(rollout, _replicasets(session, name)))
            state = controller_state(session)
            if not state.running:
                from rich.text import Text

                out.print(
                    Text.assemble(
                        ("warning:", "yellow"), f" no controller is running ({state.detail})"
                    )
                )
        else:
            from rich.live import Live

            view = status_view(rollout, _replicasets(session, name))
            try:
                with Live(view, console=console(), auto_refresh=False) as live:
                    while True:
                        time.sleep(1.0)  # a redraw interval, not synchronisation
                        rollout = get_rollout(session, name)
                        live.update(status_view(rollout, _replicasets(session, name)), refresh=True)
            except KeyboardInterrupt:
                return  # Ctrl-C is how a watch ends
        if (rollout.get("status") or {}).get("phase") in ("Degraded", "RolledBack"):
            raise typer.Exit(Exit.ROLLED_BACK)
    finally:
        session.close()


@handle_errors
def list_rollouts(
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every namespace")
    ] = False,
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """All Rollouts of the namespace (or of all namespaces) with phase, step and revisions."""
    from controller.commands.render import list_table, summary_row

    session = connect(kubeconfig, context, namespace)
    try:
        rollouts = session.kube.list_rollouts(None if all_namespaces else session.namespace)
        rollouts.sort(key=lambda r: (r["metadata"].get("namespace", ""), r["metadata"]["name"]))
        if output is not Output.text:
            print_document([summary_row(r) for r in rollouts], output)
        elif not rollouts:
            where = "any namespace" if all_namespaces else f"namespace {session.namespace!r}"
            typer.echo(f"no rollouts in {where}", err=True)
        else:
            console().print(list_table(rollouts, all_namespaces=all_namespaces))
    finally:
        session.close()


@handle_errors
def history(
    name: Name,
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Revisions, versions, strategy, who, why, outcome and duration, oldest first."""
    from controller.commands.render import (
        history_rows,
        history_table,
        plain,
        workload_document,
        workload_line,
    )

    session = connect(kubeconfig, context, namespace)
    try:
        rollout = get_rollout(session, name)
        rows = history_rows(rollout)
        requires = (rollout.get("spec") or {}).get("requires")
        workload = workload_document(rollout)
        if output is not Output.text:
            document = {"requires": requires, "history": rows}
            print_document({**document, "workload": workload} if workload else document, output)
            return
        out = console()
        if requires:
            out.print(plain(f"promotion gate: requires {requires}"))
        if workload:
            out.print(plain(f"workload: {workload_line(workload)}"))
        if not rows:
            out.print("no history yet")
            return
        out.print(history_table(rows))
        for row in rows:
            for event in row["events"]:
                out.print(plain(f"  #{row['number']}: {event}"))
            if row["outcome"] in ("RolledBack", "Aborted") and row["message"]:
                out.print(plain(f"  #{row['number']} {row['outcome']}: {row['message']}"))
    finally:
        session.close()
