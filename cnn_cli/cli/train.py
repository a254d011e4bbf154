"""``cnn train``: parse, call :func:`cnn_cli.training.train.train`, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import cast

import click

from cnn_cli.cli.group import cli
from cnn_cli.errors import EXIT_FAULT, CnnError

MLFLOW_HELP = 'Also log to MLflow: a tracking URI, or alone a store beside the runs (train.mlflow; pip install ".[mlflow]").'


@cli.command()
@click.option(
    "--config", "-c", "config_name", metavar="CONFIG", help="Config file path, or a built-in name (mnist, mnist.yaml, smoke, ...)."
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set train.epochs=3 (repeatable)."
)
@click.option("--run-dir", type=click.Path(path_type=Path), help="Run folder to create (default runs/<config>-<time>).")
@click.option("--seed", type=int, help="Shorthand for --set train.seed=N.")
@click.option(
    "--resume", type=click.Path(path_type=Path), metavar="RUN_DIR", help="Continue the run in RUN_DIR from its checkpoints/last.npz."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; one line per epoch.")
@click.option("--print-config", is_flag=True, help="Print the resolved config (every default filled in) and exit.")
@click.option(
    "--tensorboard",
    is_flag=True,
    help='Also write TensorBoard logs to RUN_DIR/tensorboard (train.tensorboard; pip install ".[tensorboard]").',
)
@click.option("--mlflow", "mlflow_uri", is_flag=False, flag_value="local", metavar="[URI]", help=MLFLOW_HELP)
@click.option(
    "--init-from",
    type=click.Path(path_type=Path),
    metavar="CKPT",
    help="New run starting from the parameters of CKPT (a .npz, or a run folder's best) that match in name and shape.",
)
@click.option("--freeze", metavar="LAYERS", help="Layers that training leaves unchanged, comma-separated, e.g. conv1,conv2 (train.freeze).")
@click.option(
    "--fast-dev-run",
    is_flag=True,
    help="One batch through train, validation, test, checkpoints and plots; a temporary folder unless --run-dir.",
)
@click.option(
    "--overfit-batches",
    type=click.IntRange(min=1),
    metavar="N",
    help="Train (and validate) on the same N batches every epoch (train.overfit_batches).",
)
def train(
    config_name,
    overrides,
    run_dir,
    seed,
    resume,
    quiet,
    print_config,
    tensorboard,
    mlflow_uri,
    init_from,
    freeze,
    fast_dev_run,
    overfit_batches,
) -> None:
    """Train a model and record the run (config, metrics, checkpoints).

    \b
    Examples:
      cnn train --config mnist.yaml
      cnn train --config mnist --set train.epochs=3 --seed 1
      cnn train --resume runs/mnist-20261123-101500
      cnn train --resume runs/mnist-20261123-101500 --set train.epochs=12
      cnn train --config mnist --tensorboard        # then: tensorboard --logdir runs
      cnn train --config mnist --mlflow --set train.max_time=00:10:00    # or --mlflow http://127.0.0.1:5000
      cnn train --config mnist --init-from runs/mnist-20261123-101500 --freeze conv1,conv2
      cnn train --config mnist --fast-dev-run
      cnn train --config mnist --overfit-batches 2 --set train.epochs=30 --set schedule.name=constant
    """
    from cnn_cli.config.load import config_to_yaml, load_config
    from cnn_cli.config.sections import Config
    from cnn_cli.training.mlflow_log import log_plots
    from cnn_cli.training.progress import ProgressLines
    from cnn_cli.training.train import train as run_training

    if resume is None and config_name is None:
        raise CnnError("give --config CONFIG (e.g. --config mnist.yaml) or --resume RUN_DIR")
    if resume is not None and (config_name or seed is not None):
        raise CnnError("--resume continues a run with its own config; drop --config/--seed (--set may extend it: train.epochs=N)")
    if resume is not None and run_dir is not None and Path(run_dir).resolve() != Path(resume).resolve():
        raise CnnError("--run-dir and --resume name different folders")
    overrides = [
        *overrides,
        *(["train.tensorboard=true"] if tensorboard else []),
        *([f"train.mlflow={json.dumps(mlflow_uri)}"] if mlflow_uri is not None else []),  # quoted: the URI stays a string
        *([f"train.freeze=[{freeze}]"] if freeze is not None else []),
    ]
    overrides += [f"train.overfit_batches={overfit_batches}"] if overfit_batches else []
    if resume is not None and fast_dev_run:
        raise CnnError("--fast-dev-run makes a new throwaway run; drop --resume")
    extends = resume is not None and overrides and (Path(resume) / "config.yaml").is_file()  # else train() names what is missing
    config = load_config(Path(resume) / "config.yaml", list(overrides)) if extends else None
    if resume is None:
        overrides = list(overrides) + ([f"train.seed={seed}"] if seed is not None else [])
        config = load_config(config_name, overrides)
        if print_config:
            click.echo(config_to_yaml(config), nl=False)
            return
        if fast_dev_run:
            return _fast_dev_run(config, run_dir, init_from)
    progress = not quiet and sys.stdout.isatty()  # a bar on a terminal; lines every train.progress_seconds elsewhere
    run_config = cast(Config, config)  # None when resuming: train() then reads the run's own config
    result = run_training(
        run_config,
        run_dir=None if resume else run_dir,
        resume=resume,
        command_line=["cnn", *sys.argv[1:]],
        log=click.echo,
        progress=progress,
        init_from=init_from,
        callbacks=[] if quiet or progress else [ProgressLines()],
    )
    if result.status == "completed" and result.summary:
        _maybe_plot(result.run.root)
        log_plots(result.run.root, log=lambda line: click.echo(line, err=True))
    if result.message:
        prefix = "error: " if result.status == "failed" else ""
        click.echo(prefix + result.message, err=result.exit_code != 0)
    sys.exit(result.exit_code)


def _fast_dev_run(config, run_dir: Path | None, init_from: Path | None) -> None:
    """``cnn train --fast-dev-run``: print what was checked; exit 1 if anything failed."""
    from cnn_cli.training.dry_run import fast_dev_run

    outcome = fast_dev_run(config, run_dir, log=click.echo, init_from=init_from)
    click.echo(f"fast dev run of {config.name}: one batch through each part of a run, in {outcome.run_dir}")
    for check in outcome.checks:
        click.echo("  " + check.line())
    click.echo("all checks passed" + ("; temporary folder removed" if outcome.removed else "") if outcome.passed else "some checks FAILED")
    sys.exit(0 if outcome.passed else EXIT_FAULT)


def _maybe_plot(run_root: Path) -> None:
    """Draw the run's plots when its config asks; a plotting problem never fails a finished run."""
    from cnn_cli.config.load import load_config
    from cnn_cli.pictures.run import plot_run
    from cnn_cli.runs.folders import CONFIG_FILE

    if not load_config(run_root / CONFIG_FILE).train.plots:
        return
    try:
        written = plot_run(run_root)
    except (CnnError, OSError) as exc:
        click.echo(f"warning: plots not written: {exc}", err=True)
        return
    click.echo(f"plots: {', '.join(str(p) for p in written)}")
