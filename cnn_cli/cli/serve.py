"""The ``cnn serve`` command: parse, call :func:`cnn_cli.serve.serve`, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cnn_cli import signals
from cnn_cli.cli import ranges
from cnn_cli.cli.completion import CheckpointFile
from cnn_cli.runs.folders import DEFAULT_RUNS_ROOT


@click.command("serve")
@click.option(
    "--runs",
    "runs_root",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_RUNS_ROOT,
    show_default=True,
    help="Runs folder to show.",
)
@click.option(
    "--checkpoint", type=CheckpointFile(path_type=Path, dir_okay=False), help="Draw-pad model (default: the newest completed run's best)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; not loopback: runs visible on the network.")
@click.option("--port", type=ranges.PORT, default=8000, show_default=True, help="Port (0 picks a free one).")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests addressed to NAME (repeatable), e.g. this machine's LAN name; others are refused (DNS rebinding).",
)
def serve_command(runs_root: Path, checkpoint: Path | None, host: str, port: int, allow_hosts: tuple[str, ...]) -> None:
    """Open a local web app: draw a digit and watch the network answer; watch runs train live.

    Needs the serve extra: pip install ".[serve]". Ctrl-C (or SIGTERM) stops the server: exit 128 + the signal.

    \b
    Examples:
      cnn serve
      cnn serve --runs runs --port 8080
      cnn serve --checkpoint runs/latest/checkpoints/best.npz
      cnn serve --host 0.0.0.0 --allow-host mybox.local
    """
    from cnn_cli.serve import serve

    serve(runs_root, checkpoint, host, port, log=click.echo, warn=lambda line: click.echo(line, err=True), allow_hosts=allow_hosts)
    sys.exit(signals.exit_code())  # the server stops only on a signal; it ends as every command does then (cnn_cli.signals)
