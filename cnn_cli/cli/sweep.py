"""``cnn sweep``: parse, validate the sweep file, call :func:`cnn_cli.sweep.engine.new_sweep` (or ``resume_sweep``), exit."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import click

from cnn_cli import signals
from cnn_cli.bounded_read import read_text
from cnn_cli.cli import ranges
from cnn_cli.cli.group import echo_or_stop, stdout_closed, stop_quietly
from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES
from cnn_cli.errors import CnnError, ConfigError

BUILTIN_SWEEP_PACKAGE = "cnn_cli.sweeps"


def resolve_sweep_file(name_or_path: str) -> tuple[str, str]:
    """A sweep file by path, or a shipped one by name (``sweep-lr``). Returns (source, text)."""
    path = Path(name_or_path)
    if path.exists() or path.is_symlink():  # a FIFO or device too: refused without waiting
        return str(path), read_text(path, MAX_CONFIG_BYTES, "sweep file", ConfigError)
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    folder = resources.files(BUILTIN_SWEEP_PACKAGE)
    shipped = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    if path.parent == Path(".") and stem in shipped:
        return f"{stem}.yaml", folder.joinpath(f"{stem}.yaml").read_text(encoding="utf-8")
    raise CnnError(f"{name_or_path}: sweep file not found; give a path or one of the shipped sweeps: {', '.join(shipped)}")


def _check_cluster_options(scheduler: str | None, connect_timeout: float | None, workers: int | None, dashboard: str | None) -> None:
    if scheduler and (workers or dashboard):
        raise CnnError("--workers and --dashboard set up the local cluster; with --scheduler the cluster is yours to size and watch")
    if connect_timeout is not None and not scheduler:
        raise CnnError("--connect-timeout goes with --scheduler ADDRESS")


@click.command("sweep")
@click.argument("sweep_file", required=False, metavar="SWEEP.yaml")
@click.option(
    "--resume", "resume", type=click.Path(path_type=Path), metavar="SWEEP_DIR", help="Finish a sweep's pending and interrupted trials."
)
@click.option("--scheduler", metavar="tcp://HOST:8786", help="Run on an existing Dask cluster instead of a local one.")
@click.option(
    "--connect-timeout",
    type=ranges.CONNECT_TIMEOUT_S,
    default=None,
    metavar="SECONDS",
    help="With --scheduler: how long connecting and the scheduler's handshake may take together (default 10).",
)
@click.option("--workers", type=ranges.WORKERS, help="Local workers (default: one per core, at most one per trial).")
@click.option("--dashboard", metavar="ADDRESS", help="Serve the Dask dashboard of the local cluster, e.g. 127.0.0.1:8787 (default: off).")
@click.option("--ship-data/--no-ship-data", default=None, help="Send the dataset files to the workers (default: with --scheduler only).")
@click.option(
    "--runs-root", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="Where the sweep folder is made."
)
@click.option("--dry-run", is_flag=True, help="Validate the sweep file, list its trials and exit.")
def sweep_command(sweep_file, resume, scheduler, connect_timeout, workers, dashboard, ship_data, runs_root, dry_run) -> None:
    """Train many runs at once on Dask and rank them: a grid or random search over config keys.

    Each trial is a normal run folder under runs/sweep-NAME-TIME/trial-NNN/;
    sweep.csv has one row per trial and sweep.png the metric against each
    parameter. Ctrl-C (or SIGTERM) stops running trials after their current step, saved as
    interrupted; --resume finishes the rest and re-runs no completed trial.

    \b
    A sweep file (the shipped one: cnn sweep sweep-lr):
      name: lr
      base: smoke                  # config path or built-in name
      overrides: {train.epochs: 2}
      method: grid                 # or random, with trials: N and seed: S
      parameters:
        optimizer.lr: [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]
        # random: optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
        #         optimizer.momentum: {uniform: [0.8, 0.99]}
        #         train.batch_size: {choice: [32, 64, 128]}
      metric: val_acc              # val_acc, val_loss, test_accuracy, ...
      parallelism: 2               # trials at once (default: every worker)
      retries: 2                   # re-runs of a trial whose worker died

    \b
    Examples:
      cnn sweep sweep-lr
      cnn sweep my-sweep.yaml --workers 4
      cnn sweep my-sweep.yaml --scheduler tcp://scheduler-host:8786
      cnn sweep --resume runs/sweep-lr-20261201-101500
    """
    from cnn_cli.sweep.cluster import require_dask
    from cnn_cli.sweep.engine import new_sweep, resume_sweep
    from cnn_cli.sweep.options import CONNECT_TIMEOUT_S, EngineOptions
    from cnn_cli.sweep.spec import parse_sweep

    if (sweep_file is None) == (resume is None):
        raise CnnError("give a sweep file (e.g. cnn sweep sweep-lr) or --resume SWEEP_DIR, not both")
    _check_cluster_options(scheduler, connect_timeout, workers, dashboard)
    options = EngineOptions(scheduler, workers, dashboard, ship_data, connect_timeout or CONNECT_TIMEOUT_S)
    if resume is not None:
        result = resume_sweep(resume, options, log=echo_or_stop)
    else:
        source, text = resolve_sweep_file(sweep_file)
        spec = parse_sweep(text, source)
        if dry_run:
            click.echo(f"{spec.name}: {len(spec.trials)} trial(s) of {spec.base.get('name')}, ranked by {spec.metric} ({spec.mode})")
            for t in spec.trials:
                click.echo(f"  {t.folder_name}  " + "  ".join(f"{k}={v}" for k, v in t.params.items()))
            return
        require_dask()
        result = new_sweep(spec, text, options, runs_root, log=echo_or_stop)
    if result.interrupted:
        if stdout_closed():  # stopped because the reader of stdout went away: saved, resumable, and quiet
            stop_quietly()
        sys.exit(signals.exit_code())  # 130 for Ctrl-C, 143 for SIGTERM
    if not any(r.status == "completed" for r in result.rows):
        click.echo(f"error: no trial completed; see the message column of {result.root / 'sweep.csv'}", err=True)
        sys.exit(1)
