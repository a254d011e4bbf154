"""``cnn train``: parse, call :func:`cnn_cli.training.train.train`, print."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import click

from cnn_cli.cli import ranges
from cnn_cli.cli.completion import CONFIG, RUN_FOLDER, RUN_OR_CHECKPOINT
from cnn_cli.cli.group import cli
from cnn_cli.errors import EXIT_FAULT, CnnError

_TRAIN_OPTIONS = [
    click.option(
        "--config", "-c", "config_name", type=CONFIG, help="Config file path, or a built-in name (mnist, mnist.yaml, smoke, ...)."
    ),
    click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set train.epochs=3 (repeatable)."
    ),
    click.option("--run-dir", type=click.Path(path_type=Path), help="Run folder to create (default runs/<config>-<time>)."),
    click.option("--seed", type=int, help="Shorthand for --set train.seed=N."),  # checked as train.seed is (ranges.py)
    click.option("--resume", type=RUN_FOLDER, metavar="RUN_DIR", help="Continue the run in RUN_DIR from its checkpoints/last.npz."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar; one line per epoch."),
    click.option("--print-config", is_flag=True, help="Print the resolved config (every default filled in) and exit."),
    click.option(
        "--tensorboard",
        is_flag=True,
        help='Also write TensorBoard logs to RUN_DIR/tensorboard (train.tensorboard; pip install ".[tensorboard]").',
    ),
    click.option(
        "--mlflow",
        "mlflow_uri",
        is_flag=False,
        flag_value="local",
        metavar="[URI]",
        help='Also log to MLflow: a tracking URI, or alone a store beside the runs (train.mlflow; pip install ".[mlflow]").',
    ),
    click.option(
        "--init-from",
        type=RUN_OR_CHECKPOINT,
        metavar="CKPT",
        help="New run starting from the parameters of CKPT (a .npz, or a run folder's best) that match in name and shape.",
    ),
    click.option(
        "--freeze", metavar="LAYERS", help="Layers that training leaves unchanged, comma-separated, e.g. conv1,conv2 (train.freeze)."
    ),
    click.option(
        "--fast-dev-run",
        is_flag=True,
        help="One batch through train, validation, test, checkpoints and plots, and the untrained loss beside ln C; "
        "a temporary folder unless --run-dir.",
    ),
    click.option(
        "--overfit-batches",
        type=ranges.OVERFIT_BATCHES,
        metavar="N",
        help="Train (and validate) on the same N batches every epoch (train.overfit_batches).",
    ),
    click.option(
        "--impl",
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="Train with your own layer functions from FILE (CS231n-style NAME_forward/NAME_backward pairs): "
        "every layer whose type FILE defines runs your code; the run is checked against cnn's own code.",
    ),
    click.option(
        "--impl-check-steps",
        type=ranges.IMPL_CHECK_STEPS,
        default=None,
        metavar="N",
        help="With --impl: a reference model with cnn's own code takes the same first N steps; "
        "the report compares the weights (default 50, 0: off).",
    ),
    click.option(
        "--reference",
        type=click.Path(path_type=Path),
        metavar="RUN",
        help="With --impl: the run with cnn's own code whose test accuracy to compare with (default: one of the same config and seed).",
    ),
    click.option(
        "--impl-deadline",
        type=ranges.IMPL_DEADLINE_S,
        default=None,
        metavar="SECONDS",
        help="With --impl: stop and save the run when one step takes longer (default 600).",
    ),
]


def _train_options(command: Callable[..., None]) -> Callable[..., None]:
    """Every option of ``cnn train``, in the order ``--help`` lists them."""
    for option in reversed(_TRAIN_OPTIONS):
        command = option(command)
    return command


@cli.command()
@_train_options
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
    **learner_args,
) -> None:
    """Train a model and record the run (config, metrics, checkpoints).

    \b
    Examples:
      cnn train --config mnist.yaml
      cnn train --config mnist --set train.epochs=3 --seed 1
      cnn train --resume runs/mnist-20261123-101500
      cnn train --resume runs/mnist-20261123-101500 --set train.epochs=12
      cnn train --config mnist --tensorboard        # then: tensorboard --logdir runs
      cnn train --config mnist --mlflow             # or --mlflow http://127.0.0.1:5000
      cnn train --config mnist --set train.max_time=00:10:00 --set train.early_stopping.patience=3
      cnn train --config mnist --init-from runs/mnist-20261123-101500 --freeze conv1,conv2
      cnn train --config mnist --fast-dev-run
      cnn train --config mnist --overfit-batches 2 --set train.epochs=30 --set schedule.name=constant
      cnn train --config mnist --impl my_layers.py   # your conv2d_forward/_backward, relu_..., train it

    \b
    With --impl FILE, each layer type (and loss) FILE defines a pair for runs your code:
    conv2d_forward(x, w, b, stride=1, pad=0) -> (out, cache), conv2d_backward(grad_out, cache) -> (dx, dw, db),
    likewise relu, maxpool2d, avgpool2d, leaky_relu, sigmoid, tanh, flatten, dense, dropout, and
    softmax_cross_entropy(logits, labels) -> (loss, grad_logits). At the end the run reports how far
    your weights moved from cnn's own after the first steps, where they first parted and which of
    your functions differs, and your test accuracy against a run of cnn's own code.
    """
    from cnn_cli.config.load import config_to_yaml
    from cnn_cli.config.sections import Config
    from cnn_cli.training.progress import ProgressLines
    from cnn_cli.training.train import train as run_training

    _check_combination(config_name, seed, resume, run_dir)
    learner = _learner_options(fast_dev_run, **learner_args)
    overrides = [*overrides, *_option_overrides(tensorboard, mlflow_uri, freeze, overfit_batches)]
    if resume is not None and fast_dev_run:
        raise CnnError("--fast-dev-run makes a new throwaway run; drop --resume")
    config = _load_train_config(config_name, overrides, seed, resume)
    if resume is None and print_config:
        click.echo(config_to_yaml(config), nl=False)
        return
    if resume is None and fast_dev_run:
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
        learner=learner,
        callbacks=[] if quiet or progress else [ProgressLines()],
    )
    _finish(result)


def _option_overrides(tensorboard: bool, mlflow_uri: str | None, freeze: str | None, overfit_batches: int | None) -> list[str]:
    """The ``--set`` assignments that the shorthand options stand for."""
    return [
        *(["train.tensorboard=true"] if tensorboard else []),
        *([f"train.mlflow={json.dumps(mlflow_uri)}"] if mlflow_uri is not None else []),  # quoted: the URI stays a string
        *([f"train.freeze=[{freeze}]"] if freeze is not None else []),
        *([f"train.overfit_batches={overfit_batches}"] if overfit_batches else []),
    ]


def _finish(result) -> None:
    """After the run: its pictures (and MLflow's copy of them), the closing message, the exit code."""
    from cnn_cli.training.mlflow_log import log_plots

    if result.status == "completed" and result.summary:
        _maybe_plot(result.run.root)
        log_plots(result.run.root, log=lambda line: click.echo(line, err=True))
    if result.message:
        prefix = "error: " if result.status == "failed" else ""
        click.echo(prefix + result.message, err=result.exit_code != 0)
    sys.exit(result.exit_code)


def _check_combination(config_name: str | None, seed: int | None, resume: Path | None, run_dir: Path | None) -> None:
    """A new run needs a config; a resumed run keeps its own config, seed and folder."""
    if resume is None and config_name is None:
        raise CnnError("give --config CONFIG (e.g. --config mnist.yaml) or --resume RUN_DIR")
    if resume is not None and (config_name or seed is not None):
        raise CnnError("--resume continues a run with its own config; drop --config/--seed (--set may extend it: train.epochs=N)")
    if resume is not None and run_dir is not None and Path(run_dir).resolve() != Path(resume).resolve():
        raise CnnError("--run-dir and --resume name different folders")


def _learner_options(
    fast_dev_run: bool, impl: Path | None, impl_check_steps: int | None, reference: Path | None, impl_deadline: float | None
):
    """``--impl FILE`` and the options that go with it (only with it)."""
    from cnn_cli.training.learner_run import DEFAULT_CHECK_STEPS, DEFAULT_DEADLINE, LearnerOptions

    if impl is None:
        extras = {"--impl-check-steps": impl_check_steps, "--reference": reference, "--impl-deadline": impl_deadline}
        given = [name for name, value in extras.items() if value is not None]
        if given:
            raise CnnError(f"{given[0]} goes with --impl FILE")
        return None
    if fast_dev_run:
        raise CnnError("--fast-dev-run checks cnn's own code; drop --impl (or --fast-dev-run)")
    steps = DEFAULT_CHECK_STEPS if impl_check_steps is None else impl_check_steps
    return LearnerOptions(impl, steps, reference, DEFAULT_DEADLINE if impl_deadline is None else impl_deadline)


def _load_train_config(config_name: str | None, overrides: list[str], seed: int | None, resume: Path | None):
    """The config of a new run (with --seed), a resumed run's config extended by --set, or None (resume as it is)."""
    from cnn_cli.config.load import load_config

    if resume is not None:
        extends = overrides and (Path(resume) / "config.yaml").is_file()  # else train() names what is missing
        return load_config(Path(resume) / "config.yaml", list(overrides)) if extends else None
    return load_config(cast(str, config_name), [*overrides, *([f"train.seed={seed}"] if seed is not None else [])])


def _fast_dev_run(config, run_dir: Path | None, init_from: Path | None) -> None:
    """``cnn train --fast-dev-run``: print what was checked; exit 1 if anything failed."""
    from cnn_cli.training.dry_run import fast_dev_run

    outcome = fast_dev_run(config, run_dir, log=click.echo, init_from=init_from)
    click.echo(f"fast dev run of {config.name}: one batch through each part of a run, in {outcome.run_dir}")
    for check in outcome.checks:
        click.echo("  " + check.line())
    if outcome.initial_loss is not None:  # a warning, not a failed check: the run itself works
        initial = outcome.initial_loss
        click.echo(initial.line() if initial.near_ln_c else "warning: " + initial.line(), err=not initial.near_ln_c)
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
