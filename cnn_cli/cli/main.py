"""``cnn``: every command registered on the root group, and the console-script entry point ``main``."""

from __future__ import annotations

from cnn_cli import signals
from cnn_cli.cli import evaluate, inspect, train  # noqa: F401 - their commands register on the group
from cnn_cli.cli.completion import completion_command
from cnn_cli.cli.data import data_group
from cnn_cli.cli.exercise import exercise_group
from cnn_cli.cli.explain import DOCS_HINT, docs_command, explain_command
from cnn_cli.cli.group import cli
from cnn_cli.cli.lrfind import lr_find_command
from cnn_cli.cli.pictures import plot_command, viz_command
from cnn_cli.cli.runs import compare_command, export_command
from cnn_cli.cli.serve import serve_command
from cnn_cli.cli.sweep import sweep_command

cli.add_command(data_group, "data")
cli.add_command(explain_command, "explain")
cli.add_command(docs_command, "docs")
cli.add_command(exercise_group, "exercise")
cli.add_command(plot_command, "plot")
cli.add_command(viz_command, "viz")
cli.add_command(export_command, "export")
cli.add_command(compare_command, "compare")
cli.add_command(lr_find_command, "lr-find")
cli.add_command(serve_command, "serve")
cli.add_command(sweep_command, "sweep")
cli.add_command(completion_command, "completion")


# Every command's --help ends by naming the guide that ships with the package.
for _command in [cli, *cli.commands.values()]:
    _command.epilog = _command.epilog or DOCS_HINT


def main() -> None:
    """Console-script entry point."""
    signals.install()  # SIGTERM and SIGHUP take Ctrl-C's path in every command, ending with exit 128 + n
    try:
        cli(prog_name="cnn")
    finally:
        signals.ignore_while_exiting()


if __name__ == "__main__":
    main()
