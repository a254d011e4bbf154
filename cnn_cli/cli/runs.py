"""``cnn export`` and ``cnn compare``: parse, call, print."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from cnn_cli.cli.completion import CHECKPOINT, RunFolder


@click.command("export")
@click.argument("checkpoint", type=CHECKPOINT)
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
    from cnn_cli.runs.export_onnx import export_checkpoint

    info = export_checkpoint(checkpoint, onnx_path)
    click.echo(
        f"wrote {info.path}: {info.nodes} nodes, opset {info.opset}; input (N, {', '.join(map(str, info.input_shape))}), "
        f"outputs logits (N, {', '.join(map(str, info.output_shape))}) and probabilities (N, {info.num_classes})"
    )


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=RunFolder())
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    help="Plot file. Default: compare.png in the folder that holds the runs (runs/compare.png).",
)
@click.option("--no-plot", is_flag=True, help="Print the table only.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (runs, differing keys, skipped folders).")
def compare_command(runs: tuple[str, ...], out_path: Path | None, no_plot: bool, as_json: bool) -> None:
    """Compare runs side by side: config differences, accuracy, speed, learning curves.

    Each RUN is a run folder, a glob ('runs/mnist-*') or a folder of runs
    (runs). Folders that are not readable runs are skipped with one line each.

    \b
    Examples:
      cnn compare runs
      cnn compare 'runs/mnist-*' --out mnist-runs.png
      cnn compare runs/a runs/b --json
    """
    from cnn_cli.pictures.compare import plot_comparison
    from cnn_cli.runs.compare import compare_runs, default_plot_path, format_table

    comparison = compare_runs(list(runs))
    plot = None if no_plot else plot_comparison(comparison, out_path or default_plot_path(comparison))
    if as_json:
        click.echo(json.dumps({**comparison.as_dict(), "plot": str(plot) if plot else None}))
    else:
        click.echo(format_table(comparison, shutil.get_terminal_size((80, 24)).columns))  # 80 when piped
        if plot:
            click.echo(f"plot: {plot}")
    for line in comparison.skipped:
        click.echo(f"warning: skipped {line}", err=True)
