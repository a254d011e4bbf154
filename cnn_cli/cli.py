"""The ``cnn`` command line: parse, call a plain function, print. No math lives here."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, cast

import click

from cnn_cli import __version__
from cnn_cli.data_cli import data_group
from cnn_cli.errors import EXIT_BAD_INPUT, EXIT_FAULT, EXIT_INTERRUPTED, CnnError, RuntimeFault, os_error_exit_code, os_error_message
from cnn_cli.explain.cli import DOCS_HINT, docs_command, explain_command
from cnn_cli.plots_cli import plot_command, viz_command
from cnn_cli.runs_cli import compare_command, export_command, lr_find_command
from cnn_cli.serve.cli import serve_command
from cnn_cli.sweep.cli import sweep_command


class CnnGroup(click.Group):
    """Turns library errors into one line on stderr and an exit code (no traceback unless --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CnnError as exc:
            self._fail(ctx, exc, EXIT_BAD_INPUT)
        except RuntimeFault as exc:
            self._fail(ctx, exc, EXIT_FAULT)
        except OSError as exc:  # one policy for every path the OS refuses: one line naming it
            self._fail(ctx, exc, os_error_exit_code(exc), os_error_message(exc))
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """click's usage errors (an unknown option, a missing argument) as one ``error:`` line too, exit 2."""
        standalone = kwargs.pop("standalone_mode", True)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]  # click's overloads
        except click.UsageError as exc:
            if not standalone:
                raise
            where = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
            click.echo(f"error: {exc.format_message().rstrip('.')}{where}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as exc:
            if not standalone:
                raise
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            if not standalone:
                raise
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        if not standalone:
            return result
        sys.exit(result if isinstance(result, int) else 0)

    @staticmethod
    def _fail(ctx: click.Context, exc: Exception, code: int, message: str | None = None) -> None:
        if _debug(ctx):
            raise exc
        click.echo(f"error: {message or exc}", err=True)
        ctx.exit(code)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get("CNN_DEBUG") == "1"


@click.group(cls=CnnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnn")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """cnn: a NumPy CNN with hand-written backward passes, trained on MNIST.

    \b
    Examples:
      cnn train --config mnist.yaml
      cnn eval runs/latest/checkpoints/best.npz
      cnn predict digit.png
    """
    ctx.obj = {"debug": debug}


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
    config_name, overrides, run_dir, seed, resume, quiet, print_config, tensorboard, init_from, freeze, fast_dev_run, overfit_batches
) -> None:
    """Train a model and record the run (config, metrics, checkpoints).

    \b
    Examples:
      cnn train --config mnist.yaml
      cnn train --config mnist --set train.epochs=3 --seed 1
      cnn train --resume runs/mnist-20261123-101500
      cnn train --resume runs/mnist-20261123-101500 --set train.epochs=12
      cnn train --config mnist --tensorboard        # then: tensorboard --logdir runs
      cnn train --config mnist --init-from runs/mnist-20261123-101500 --freeze conv1,conv2
      cnn train --config mnist --fast-dev-run
      cnn train --config mnist --overfit-batches 2 --set train.epochs=30 --set schedule.name=constant
    """
    from cnn_cli.config import Config, config_to_yaml, load_config
    from cnn_cli.train import train as run_training

    if resume is None and config_name is None:
        raise CnnError("give --config CONFIG (e.g. --config mnist.yaml) or --resume RUN_DIR")
    if resume is not None and (config_name or seed is not None):
        raise CnnError("--resume continues a run with its own config; drop --config/--seed (--set may extend it: train.epochs=N)")
    if resume is not None and run_dir is not None and Path(run_dir).resolve() != Path(resume).resolve():
        raise CnnError("--run-dir and --resume name different folders")
    overrides = [
        *overrides,
        *(["train.tensorboard=true"] if tensorboard else []),
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
    progress = not quiet and sys.stdout.isatty()
    run_config = cast(Config, config)  # None when resuming: train() then reads the run's own config
    result = run_training(
        run_config,
        run_dir=None if resume else run_dir,
        resume=resume,
        command_line=["cnn", *sys.argv[1:]],
        log=click.echo,
        progress=progress,
        init_from=init_from,
    )
    if result.status == "completed" and result.summary:
        _maybe_plot(result.run.root)
    if result.message:
        prefix = "error: " if result.status == "failed" else ""
        click.echo(prefix + result.message, err=result.exit_code != 0)
    sys.exit(result.exit_code)


def _fast_dev_run(config, run_dir: Path | None, init_from: Path | None) -> None:
    """``cnn train --fast-dev-run``: print what was checked; exit 1 if anything failed."""
    from cnn_cli.dry_run import fast_dev_run

    outcome = fast_dev_run(config, run_dir, log=click.echo, init_from=init_from)
    click.echo(f"fast dev run of {config.name}: one batch through each part of a run, in {outcome.run_dir}")
    for check in outcome.checks:
        click.echo("  " + check.line())
    click.echo("all checks passed" + ("; temporary folder removed" if outcome.removed else "") if outcome.passed else "some checks FAILED")
    sys.exit(0 if outcome.passed else EXIT_FAULT)


def _maybe_plot(run_root: Path) -> None:
    """Draw the run's plots when its config asks; a plotting problem never fails a finished run."""
    from cnn_cli.config import load_config
    from cnn_cli.plots import plot_run
    from cnn_cli.runs import CONFIG_FILE

    if not load_config(run_root / CONFIG_FILE).train.plots:
        return
    try:
        written = plot_run(run_root)
    except (CnnError, OSError) as exc:
        click.echo(f"warning: plots not written: {exc}", err=True)
        return
    click.echo(f"plots: {', '.join(str(p) for p in written)}")


@cli.command("eval")
@click.argument("target", required=False, type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with the split and the checkpoint).")
def eval_command(target, split, as_json) -> None:
    """Evaluate a checkpoint: loss, accuracy, per-class accuracy, confusion matrix.

    TARGET is a checkpoint file or a run folder (its checkpoints/best.npz);
    without it, the newest completed run under runs/ is evaluated.

    \b
    Examples:
      cnn eval
      cnn eval runs/mnist-20261123-101500 --split val
      cnn eval runs/latest/checkpoints/best.npz --json
    """
    from cnn_cli.inference import evaluate_checkpoint, resolve_eval_checkpoint

    checkpoint = resolve_eval_checkpoint(target)
    result = evaluate_checkpoint(checkpoint, split)
    if as_json:
        click.echo(json.dumps({"split": split, "checkpoint": str(checkpoint), **result.as_dict()}))
        return
    click.echo(f"checkpoint {checkpoint}")
    click.echo(f"{split}: accuracy {result.accuracy:.4f}  loss {result.loss:.4f}  n {result.n}")
    k = len(result.per_class_accuracy)
    click.echo("\nper-class accuracy")
    for c, acc in enumerate(result.per_class_accuracy):
        click.echo(f"  class {c}: {acc:.4f}")
    click.echo("\nconfusion matrix (rows: true class, columns: predicted)")
    width = max(5, len(str(max(max(r) for r in result.confusion_matrix))) + 1)
    click.echo("true\\pred" + "".join(f"{c:>{width}}" for c in range(k)))
    for c, row in enumerate(result.confusion_matrix):
        click.echo(f"{c:>9}" + "".join(f"{v:>{width}}" for v in row))


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), help="Default: runs/latest/checkpoints/best.npz.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {path, prediction, probabilities (the top k)}.")
def predict(images, checkpoint, top_k, as_json) -> None:
    """Classify digit images (PNG/JPEG), MNIST-style preprocessed.

    IMAGES are files, folders (every image inside, recursively, sorted) or -
    for one image on stdin. A bad image is reported and the rest still
    predicted (exit 2 if any failed).

    \b
    Examples:
      cnn predict seven.png three.jpg --top-k 3
      cnn predict photos/ --json
      cat seven.png | cnn predict -
    """
    from cnn_cli.inference import predict_images

    results = predict_images([str(p) for p in images], checkpoint, top_k, stdin=getattr(sys.stdin, "buffer", None))
    failed = [r for r in results if r.error]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results]))
    else:
        for r in results:
            if r.error:
                continue
            tops = "  ".join(f"{c}: {p:.3f}" for c, p in r.top_k or [])
            click.echo(f"{r.path}: {r.prediction}   ({tops})")
    for r in results:
        if r.warning:
            click.echo(f"warning: {r.path}: {r.warning}", err=True)
        if r.error:
            click.echo(f"error: {r.error}", err=True)
    if failed:
        sys.exit(EXIT_BAD_INPUT)


@cli.command()
@click.option("--config", "-c", "config_name", required=True, metavar="CONFIG")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
def summary(config_name, overrides) -> None:
    """Layer table: output shapes, parameters and FLOPs (like Keras' model.summary()).

    \b
    Example:
      cnn summary --config mnist.yaml
    """
    from cnn_cli.config import load_config
    from cnn_cli.model import build_model

    config = load_config(config_name, list(overrides))
    model = build_model(config, dtype=config.train.dtype)
    rows = model.summary()
    click.echo(f"{config.name}: input {tuple(model.input_shape)}, loss {model.loss.name}")
    header = f"{'layer':<12}{'type':<12}{'output shape':<18}{'params':>12}{'FLOPs':>15}"
    click.echo(header)
    click.echo("-" * len(header))
    for r in rows:
        click.echo(f"{r.name:<12}{r.type_name:<12}{str(r.output_shape):<18}{r.num_params:>12,}{r.flops:>15,}")
    click.echo("-" * len(header))
    total_flops = sum(r.flops for r in rows)
    click.echo(f"{'total':<42}{model.num_params():>12,}{total_flops:>15,}")
    click.echo(f"forward FLOPs per image {_count(total_flops)}; training (fwd + bwd) about {_count(3 * total_flops)}")


def _count(flops: int) -> str:
    """12,345 stays exact; millions and more get a unit (a tiny net must not print "0.0 M")."""
    if flops < 1_000_000:
        return f"{flops:,}"
    return f"{flops / 1e6:.1f} M" if flops < 1_000_000_000 else f"{flops / 1e9:.2f} G"


@cli.command(epilog="Docs: cnn docs gradcheck (how the check works), cnn docs conv2d (what a backward must compute).")
@click.option("--config", "-c", "config_name", metavar="CONFIG", help="Config file or built-in name (mnist, smoke, ...).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--break", "break_name", metavar="NAME", help="Swap in a deliberately wrong backward (`--break list` shows them).")
@click.option(
    "--show", type=click.IntRange(min=0), default=0, help="Print θ, L(θ±ε), numeric, analytic, rel. error for N entries per tensor."
)
@click.option(
    "--impl",
    type=click.Path(),
    metavar="FILE.py",
    help="Check your own *_backward(grad_out, cache); see `cnn docs gradcheck`, start from `cnn explain --exercise conv`.",
)
def gradcheck(config_name, seed, batch_size, break_name, show, impl) -> None:
    """Compare every hand-written gradient with a numeric one (float64); exit 1 on any failure.

    \b
    Examples:
      cnn gradcheck --config mnist
      cnn gradcheck --config smoke --show 3
      cnn gradcheck --break list
      cnn gradcheck --break col2im-assign
      cnn gradcheck --impl conv_exercise.py
    """
    from cnn_cli.bugzoo import gradcheck_report

    text, passed = gradcheck_report(config_name, seed, batch_size, break_name, show, impl)
    click.echo(text)
    if not passed:
        sys.exit(EXIT_FAULT)


@cli.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of a config file, generated from the same schema the loader checks.

    \b
    Example:
      cnn schema > cnn-config.schema.json
    """
    from cnn_cli.config import config_json_schema

    click.echo(json.dumps(config_json_schema(), indent=2))


cli.add_command(data_group, "data")
cli.add_command(explain_command, "explain")
cli.add_command(docs_command, "docs")
cli.add_command(plot_command, "plot")
cli.add_command(viz_command, "viz")
cli.add_command(export_command, "export")
cli.add_command(compare_command, "compare")
cli.add_command(lr_find_command, "lr-find")
cli.add_command(serve_command, "serve")
cli.add_command(sweep_command, "sweep")

# Every command's --help ends by naming the guide that ships with the package.
for _command in [cli, *cli.commands.values()]:
    _command.epilog = _command.epilog or DOCS_HINT


def main() -> None:
    """Console-script entry point."""
    # A shell starts background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt.
    # cnn's promise is that SIGINT stops a run (or a server, or a sweep) cleanly, however it was started.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    cli(prog_name="cnn")


if __name__ == "__main__":
    main()
