"""``deployctl``: the command line, for SREs at a terminal and for CI pipelines.

The app is assembled here from the command modules in ``controller/commands/``. Heavy
imports (the Kubernetes client, Prometheus client) happen inside the commands that need
them, so ``deployctl --help`` and shell completion start fast.
"""

from __future__ import annotations

import typer

from controller.commands.analyze import analyze
from controller.commands.control import abort, approve, pause, promote, resume, retry, undo
from controller.commands.controller import controller
from controller.commands.dashboard import dashboard
from controller.commands.files import plan, validate
from controller.commands.release import release_app
from controller.commands.release_controller import release_controller
from controller.commands.rollout import rollout
from controller.commands.view import history, list_rollouts, status
from controller.exitcodes import HELP

app = typer.Typer(
    name="deployctl",
    help="Progressive delivery for Kubernetes: canary, blue-green and rolling rollouts "
    "judged by Prometheus, with automatic rollback.\n\n\b\n" + HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

app.command("rollout")(rollout)
app.command("status")(status)
app.command("list")(list_rollouts)
app.command("history")(history)
app.command("promote")(promote)
app.command("abort")(abort)
app.command("retry")(retry)
app.command("pause")(pause)
app.command("resume")(resume)
app.command("undo")(undo)
app.command("approve")(approve)
app.command("validate")(validate)
app.command("plan")(plan)
app.command("analyze")(analyze)
app.command("controller")(controller)
app.command("dashboard")(dashboard)
app.add_typer(release_app, name="release")
app.command("release-controller")(release_controller)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
