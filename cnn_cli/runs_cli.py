"""``cnn export``, ``cnn compare`` and ``cnn lr-find``: parse, call a plain function, print.

Errors are :class:`cnn_cli.errors.CnnError` and propagate: the main ``cnn`` group
prints them as one ``error: ...`` line and exits with status 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from cnn_cli.errors import CnnError


@click.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--onnx", "onnx_path", required=True, type=click.Path(path_type=Path), metavar="FILE", help="The .onnx file to write.")
def export_command(checkpoint: Path, onnx_path: Path) -> None:
    """Export a checkpoint's model as an ONNX graph (needs the onnx extra).

    The graph is built from the NumPy weights, one ONNX operator per layer, and
    passes onnx's full checker. Input: (N, C, H, W) float32, normalised as in
    training, (pixels - mean) / std; mean, std and the class list are in the
    model's metadata. Outputs: logits and probabilities.

    \b
    Example:
      cnn export runs/latest/checkpoints/best.npz --onnx model.onnx
    """
    from cnn_cli.export_onnx import export_checkpoint

    info = export_checkpoint(checkpoint, onnx_path)
    click.echo(
        f"wrote {info.path}: {info.nodes} nodes, opset {info.opset}; input (N, {', '.join(map(str, info.input_shape))}), "
        f"outputs logits (N, {', '.join(map(str, info.output_shape))}) and probabilities (N, {info.num_classes})"
    )


@click.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=Path("compare.png"), show_default=True, help="Plot file.")
@click.option("--no-plot", is_flag=True, help="Print the table only.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (runs, differing keys, skipped folders).")
def compare_command(runs: tuple[str, ...], out_path: Path, no_plot: bool, as_json: bool) -> None:
    """Compare runs side by side: config differences, accuracy, speed, learning curves.

    Each RUN is a run folder, a glob ('runs/mnist-*') or a folder of runs
    (runs). Folders that are not readable runs are skipped with one line each.

    \b
    Examples:
      cnn compare runs
      cnn compare 'runs/mnist-*' --out mnist-runs.png
      cnn compare runs/a runs/b --json
    """
    from cnn_cli.compare import compare_runs, format_table, plot_comparison

    comparison = compare_runs(list(runs))
    plot = None if no_plot else plot_comparison(comparison, out_path)
    if as_json:
        click.echo(json.dumps({**comparison.as_dict(), "plot": str(plot) if plot else None}))
    else:
        click.echo(format_table(comparison))
        if plot:
            click.echo(f"plot: {plot}")
    for line in comparison.skipped:
        click.echo(f"warning: skipped {line}", err=True)


@click.command("lr-find")
@click.option("--config", "-c", "config_name", required=True, metavar="CONFIG", help="Config file path or built-in name.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--min-lr", type=click.FloatRange(min=0, min_open=True), default=1e-6, show_default=True)
@click.option("--max-lr", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--steps", type=click.IntRange(min=10), default=200, show_default=True, help="Optimizer steps of the sweep.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=Path("lr_find.png"), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the curve and the suggestion.")
def lr_find_command(config_name, overrides, min_lr, max_lr, steps, out_path, as_json) -> None:
    """The learning-rate range test: sweep lr exponentially, plot loss against lr.

    Trains a fresh model from the config for --steps steps while the lr grows
    from --min-lr to --max-lr (lr_i = min·(max/min)^(i/(steps-1))), and stops
    early once the smoothed loss exceeds 4x its best. The loss is smoothed by an
    exponential moving average (beta 0.9) with bias correction, run forwards
    and then backwards so the curve does not lag to larger lr. The suggestion
    is the lr of the steepest descent of the smoothed curve before its minimum;
    read the plot, not just the number. Nothing is saved but the plot.

    \b
    Example:
      cnn lr-find --config mnist --steps 300 --out lr.png
    """
    from cnn_cli.config import load_config
    from cnn_cli.lrfind import lr_range_test, plot_lr_find

    if min_lr >= max_lr:
        raise CnnError(f"--min-lr {min_lr:g} must be below --max-lr {max_lr:g}")
    config = load_config(config_name, list(overrides))
    result = lr_range_test(config, min_lr=min_lr, max_lr=max_lr, steps=steps)
    plot = plot_lr_find(result, out_path)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "plot": str(plot)}))
        return
    click.echo(result.describe())
    click.echo(f"plot: {plot}")
