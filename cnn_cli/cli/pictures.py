"""``cnn plot`` and ``cnn viz``: parse, call :mod:`cnn_cli.pictures`, print the files written.

Errors are :class:`cnn_cli.errors.CnnError` and propagate: the main ``cnn`` group
prints them as one ``error: ...`` line and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from cnn_cli.cli.completion import CHECKPOINT, RUN_FOLDER


@click.command("plot")
@click.argument("run_dir", type=RUN_FOLDER)
def plot_command(run_dir: Path) -> None:
    """Draw a run's pictures into RUN_DIR/plots/.

    Writes learning_curves.png (loss and accuracy per epoch, best epoch
    marked), confusion_matrix.png (test split, with per-class accuracy),
    misclassified.png (the most confidently wrong test digits) and filters.png
    (the first conv layer's kernels). Uses checkpoints/best.npz, else last.npz.
    A run that logged gradients.csv also gets gradient_flow.png: per-layer
    gradient norms across training, input side to output side, log scale.

    \b
    Example:
      cnn plot runs/latest
    """
    from cnn_cli.pictures.run import plot_run

    for path in plot_run(run_dir):
        click.echo(str(path))


@click.command("viz")
@click.argument("checkpoint", type=CHECKPOINT)
@click.argument("image")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Folder for the PNGs. Default: RUN/plots/viz/<image> for a checkpoint in RUN/checkpoints/, else ./viz/<image>.",
)
@click.option(
    "--backward",
    is_flag=True,
    help="Also draw the backward pass of the predicted class score: every layer's dScore/d(output), "
    "the ReLU masks, the max-pool winners and each conv layer's col2im overlap count beside the saliency map.",
)
def viz_command(checkpoint: Path, image: str, out_dir: Path | None, backward: bool) -> None:
    """Show what the network computes for one digit: feature maps and a saliency map.

    CHECKPOINT is a .npz file or a run folder (its checkpoints/best.npz, as
    `cnn eval` takes). IMAGE is a PNG/JPEG file (prepared as `cnn predict` does) or test:INDEX
    for an image of the checkpoint's test split. Writes
    feature_maps_<layer>.png for every conv layer and saliency.png: the
    gradient of the predicted class score with respect to the input pixels,
    from the model's own backward pass.

    With --backward also backward_NN_<layer>.png (dScore/d(output) of every
    layer, input side first), relu_mask_<layer>.png (which units let the
    gradient through), maxpool_winners_<layer>.png (where a max-pool sends
    its gradient) and col2im_overlap.png (how many windows read each pixel:
    whether the net's strides draw a checkerboard on the saliency map).

    \b
    Examples:
      cnn viz runs/latest/checkpoints/best.npz test:0
      cnn viz runs/latest/checkpoints/best.npz seven.png --out viz/seven
      cnn viz runs/latest/checkpoints/best.npz test:0 --backward
      cnn viz runs/mnist-20261123-101500 test:7
    """
    from cnn_cli.pictures.viz import default_viz_dir, visualize_image
    from cnn_cli.runs.inference import checkpoint_in

    checkpoint = checkpoint_in(checkpoint)
    target = out_dir if out_dir is not None else default_viz_dir(checkpoint, image)
    for path in visualize_image(checkpoint, image, target, backward=backward):
        click.echo(str(path))
