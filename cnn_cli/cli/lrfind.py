"""``cnn lr-find``: parse, call the range test, print."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cnn_cli.cli import ranges
from cnn_cli.cli.completion import CONFIG
from cnn_cli.errors import CnnError


@click.command("lr-find")
@click.option("--config", "-c", "config_name", required=True, type=CONFIG, help="Config file path or built-in name.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--min-lr", type=ranges.LR, default=1e-6, show_default=True)
@click.option("--max-lr", type=ranges.LR, default=1.0, show_default=True)
@click.option("--steps", type=ranges.LR_FIND_STEPS, default=200, show_default=True, help="Optimizer steps of the sweep.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), help="Plot file. Default: runs/lr_find-<config name>.png.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the curve and the suggestion.")
def lr_find_command(config_name, overrides, min_lr, max_lr, steps, out_path, as_json) -> None:
    """The learning-rate range test: sweep lr exponentially, plot loss against lr.

    Trains a fresh model from the config for --steps steps while the lr grows
    from --min-lr to --max-lr (lr_i = min·(max/min)^(i/(steps-1))), and stops
    early once the smoothed loss exceeds 4x its best. The loss is smoothed by an
    exponential moving average (beta 0.9) with bias correction, run forwards
    and then backwards so the curve does not lag to larger lr. The suggestion
    is the lr of the steepest descent of the smoothed curve before its minimum;
    read the plot, not just the number. Nothing is saved but the plot
    (runs/lr_find-<config>.png unless --out).

    \b
    Example:
      cnn lr-find --config mnist --steps 300 --out lr.png
    """
    from cnn_cli.config.load import load_config
    from cnn_cli.pictures.lrfind import plot_lr_find
    from cnn_cli.runs.folders import DEFAULT_RUNS_ROOT
    from cnn_cli.runs.lrfind import LR_FIND_PLOT
    from cnn_cli.training.lrfind import lr_range_test

    if min_lr >= max_lr:
        raise CnnError(f"--min-lr {min_lr:g} must be below --max-lr {max_lr:g}")
    config = load_config(config_name, list(overrides))
    result = lr_range_test(config, min_lr=min_lr, max_lr=max_lr, steps=steps)
    plot = plot_lr_find(result, out_path or Path(DEFAULT_RUNS_ROOT) / LR_FIND_PLOT.format(config=config.name))
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "plot": str(plot)}))
        return
    click.echo(result.describe())
    click.echo(f"plot: {plot}")
