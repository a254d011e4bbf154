"""``cnn summary``, ``cnn gradcheck`` and ``cnn schema``: parse, call, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cnn_cli.cli.completion import CONFIG
from cnn_cli.cli.group import cli
from cnn_cli.errors import EXIT_FAULT, CnnError


@cli.command()
@click.option(
    "--config",
    "-c",
    "config_name",
    required=True,
    type=CONFIG,
    help="Config file path or built-in name.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    metavar="N",
    help="Show layers nested in blocks down to N levels (1: the model's own; default: all).",
)
@click.option("--print-config", is_flag=True, help="Print the resolved config (extends followed, every default filled in) and exit.")
def summary(config_name, overrides, depth, print_config) -> None:
    """Layer table: kernel, stride, padding, output shapes, receptive fields, parameters, memory and FLOPs
    (like Keras' model.summary()).

    \b
    Examples:
      cnn summary --config mnist.yaml
      cnn summary --config lenet5 --depth 1
      cnn summary --config my-config.yaml --print-config
    """
    from cnn_cli.config.load import config_to_yaml, load_config
    from cnn_cli.model.network import build_model
    from cnn_cli.model.summary import summary_table

    config = load_config(config_name, list(overrides))
    if print_config:
        click.echo(config_to_yaml(config), nl=False)
        return
    model = build_model(config, dtype=config.train.dtype)
    rows = model.summary(depth)
    click.echo(f"{config.name}: input {tuple(model.input_shape)}, loss {model.loss.name}")
    for line in summary_table(rows, model.input_shape, model.dtype):
        click.echo(line)
    total_flops = sum(r.flops for r in rows if r.depth == 0)
    click.echo(f"forward FLOPs per image {_count(total_flops)}; training (fwd + bwd) about {_count(3 * total_flops)}")


def _count(flops: int) -> str:
    """12,345 stays exact; millions and more get a unit (a tiny net must not print "0.0 M")."""
    if flops < 1_000_000:
        return f"{flops:,}"
    return f"{flops / 1e6:.1f} M" if flops < 1_000_000_000 else f"{flops / 1e9:.2f} G"


@cli.command(epilog="Docs: cnn docs gradcheck (how the check works), cnn docs conv2d (what a backward must compute).")
@click.option("--config", "-c", "config_name", type=CONFIG, help="Config file or built-in name (mnist, smoke, ...).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), help="N of the random batch (default 2; 8 in training mode).")
@click.option(
    "--mode",
    type=click.Choice(["auto", "train", "eval"]),
    default="auto",
    show_default=True,
    help="train: batch norm on the batch's statistics (the whole batch checked at once); auto: train when the model has batch norm.",
)
@click.option(
    "--break", "break_name", metavar="NAME", help="Swap in a deliberately wrong backward (`--break list`); exit 1 if the check catches it."
)
@click.option(
    "--show", type=click.IntRange(min=0), default=0, help="Print θ, L(θ±ε), numeric, analytic, rel. error for N entries per tensor."
)
@click.option(
    "--impl",
    type=click.Path(),
    metavar="FILE.py",
    help="Check your own *_backward(grad_out, cache) in its own process; start from `cnn exercise start NAME`.",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0.0),
    metavar="A",
    help="The absolute floor: an entry passes when |a − n| ≤ A + 1e-5·(|a| + |n|) (default 1e-9; 0 turns it off).",
)
def gradcheck(config_name, seed, batch_size, mode, break_name, show, impl, atol) -> None:
    """Compare every hand-written gradient with a numeric one (float64); exit 1 on any failure.

    An entry passes when |a − n| ≤ atol + rtol·(|a| + |n|) (rtol 1e-5, atol 1e-9): a tensor whose
    gradients have all but vanished (deep-sigmoid's first layers) passes on the absolute floor,
    marked PASS* with the reason.

    \b
    Examples:
      cnn gradcheck --config mnist
      cnn gradcheck --config smoke --show 3
      cnn gradcheck --config deep-sigmoid             # PASS*: gradients vanished to ~1e-6
      cnn gradcheck --config deep-sigmoid --atol 0    # the same check without the floor
      cnn gradcheck --break list
      cnn gradcheck --break col2im-assign
      cnn gradcheck --impl conv2d_exercise.py
    """
    from cnn_cli.learn.bugzoo import gradcheck_report
    from cnn_cli.learn.impl_check import check_learner_file, format_impl

    if impl is not None:  # the learner's own functions, not a model
        if config_name or break_name:
            raise CnnError("--impl checks your own functions; drop --config/--break")
        results = check_learner_file(Path(impl), seed=seed)
        text, passed = format_impl(results), all(r.passed for r in results)
    else:
        text, passed = gradcheck_report(config_name, seed, batch_size, break_name, show, atol, mode)
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
    from cnn_cli.config.sections import config_json_schema

    click.echo(json.dumps(config_json_schema(), indent=2))
