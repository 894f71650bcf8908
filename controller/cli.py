"""``deployctl``: the command line, for SREs at a terminal and for CI pipelines.

The app is assembled here from the command modules in ``controller/commands/``, and
each module is imported only when its command runs (or its own ``--help`` is asked
for): ``COMMANDS`` names the module, the function and the one-line help that
``deployctl --help`` lists, so the top-level help, ``--version`` and shell completion of
command names load nothing but typer. Heavy imports (the Kubernetes client, the models,
rich) happen inside the commands that need them. ``tests/cli`` checks that each
one-line help here is the first line of its command's docstring.
"""

from __future__ import annotations

import importlib
import os
from typing import Annotated, Any

# deployctl uses no pydantic plugins; looking for them scans every installed package's
# entry points, the first time any model or typer parameter is built (10-40 ms a start).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer  # noqa: E402 - after the environment above, which pydantic reads
from typer.core import TyperGroup  # noqa: E402

from controller.exitcodes import HELP  # noqa: E402

# name -> (module, function, the one-line help `deployctl --help` lists)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "rollout": (
        "controller.commands.rollout",
        "rollout",
        "Roll out a new revision: set images (and strategy/steps), or apply a file.",
    ),
    "status": (
        "controller.commands.view",
        "status",
        "Phase, step, weight, replicas per revision, latest measurements, why it paused "
        "or aborted.",
    ),
    "list": (
        "controller.commands.view",
        "list_rollouts",
        "All Rollouts of the namespace (or of all namespaces) with phase, step and revisions.",
    ),
    "history": (
        "controller.commands.view",
        "history",
        "Revisions, versions, strategy, who, why, outcome and duration, oldest first.",
    ),
    "promote": (
        "controller.commands.control",
        "promote",
        "Move past the current step (a pause, an approval), or with --full to the end.",
    ),
    "abort": (
        "controller.commands.control",
        "abort",
        "Send all traffic back to stable and scale the canary to zero.",
    ),
    "retry": (
        "controller.commands.control",
        "retry",
        "Start an aborted revision again from its first step.",
    ),
    "pause": (
        "controller.commands.control",
        "pause",
        "Hold the rollout where it is (spec.paused=true); timers stop.",
    ),
    "resume": (
        "controller.commands.control",
        "resume",
        "Continue a paused rollout (spec.paused=false); timers resume where they stopped.",
    ),
    "undo": (
        "controller.commands.control",
        "undo",
        "Go back to an earlier revision's pod template (default: the previous promoted one).",
    ),
    "approve": (
        "controller.commands.control",
        "approve",
        "Grant a pending approval (a policy rule or an approval step), recorded with who.",
    ),
    "hand-back": (
        "controller.commands.hand_back",
        "hand_back",
        "Give a workloadRef Rollout's pods back to its Deployment, with no gap.",
    ),
    "validate": (
        "controller.commands.files",
        "validate",
        "Check Rollouts and AnalysisTemplates; print every problem with its field path.",
    ),
    "convert": (
        "controller.commands.convert",
        "convert",
        "Rewrite Argo Rollouts manifests as deployctl ones; name what could not be converted.",
    ),
    "plan": (
        "controller.commands.files",
        "plan",
        "Print the steps the strategy will take, without any cluster.",
    ),
    "analyze": (
        "controller.commands.analyze",
        "analyze",
        "Replay an AnalysisTemplate over Prometheus history: when would it have failed?",
    ),
    "version": (
        "controller.commands.version",
        "version",
        "This client's version and, when the cluster answers, the controller's.",
    ),
    "dashboard": (
        "controller.commands.dashboard",
        "dashboard",
        "Serve a web dashboard of the Rollouts: steps, traffic, measurements against their "
        "thresholds, history and Events, live; with promote, abort and the other actions as "
        "the CLI sends them.",
    ),
    "controller": (
        "controller.commands.controller",
        "controller",
        "Run the operator: watch Rollouts and roll them out.",
    ),
    "release": (
        "controller.commands.release",
        "release_app",
        "Roll one version through waves of clusters (a Release in the management cluster).",
    ),
    "release-controller": (
        "controller.commands.release_controller",
        "release_controller",
        "Run the release controller: roll Releases through their waves of clusters.",
    ),
}


def load_command(name: str) -> Any:
    """The click command for ``name``, built from its function (imports its module)."""
    module, function, _ = COMMANDS[name]
    callback = getattr(importlib.import_module(module), function)
    if isinstance(callback, typer.Typer):  # a group of subcommands (`deployctl release ...`)
        group = typer.main.get_command(callback)
        group.name = name
        return group
    single = typer.Typer(
        add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None
    )
    single.command(name)(callback)
    return typer.main.get_command(single)


class LazyCommands(TyperGroup):
    """A command group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # The listed one-liners come from COMMANDS: listing must not import every module.
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="deployctl",
    cls=LazyCommands,
    help="Progressive delivery for Kubernetes: canary, blue-green and rolling rollouts "
    "judged by Prometheus, with automatic rollback.\n\n\b\n" + HELP + "\n\n\b\n"
    "Shell completion (bash, zsh, fish, PowerShell): deployctl --install-completion\n"
    "  or print it with --show-completion; see the README.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from controller.version import client_version

        typer.echo(f"deployctl {client_version()}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the client's version and exit (`deployctl version` asks the cluster too)",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Progressive delivery for Kubernetes."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
