"""Every picture of a run folder (``cnn plot``): curves, gradient flow, confusion matrix, mistakes and filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnn_cli.config.build import config_from_dict
from cnn_cli.pictures.common import CONFUSION_MATRIX_FILE, FILTERS_FILE, GRADIENT_FLOW_FILE, LEARNING_CURVES_FILE, MISCLASSIFIED_FILE
from cnn_cli.pictures.confusion import plot_confusion_matrix, plot_misclassified
from cnn_cli.pictures.curves import plot_learning_curves
from cnn_cli.pictures.filters import plot_filters
from cnn_cli.pictures.gradient_flow import plot_gradient_flow
from cnn_cli.pictures.inputs import _class_names, _run_status, _test_split, run_checkpoint
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.runs.evaluation import predictions
from cnn_cli.runs.folders import existing_run, read_metrics


def plot_run(run_dir: str | Path) -> list[Path]:
    """Draw a run's learning curves, test confusion matrix, misclassified digits and first-layer filters,
    and its gradient flow when the run logged ``gradients.csv``.

    Uses ``checkpoints/best.npz`` if present, else ``last.npz``. A run with no
    finished epoch (interrupted early) or a single one still gets every picture;
    the learning curves then say what is missing.

    Returns:
        the four PNG paths (five with ``gradient_flow.png``), inside ``RUN_DIR/plots/``.
    Raises:
        CnnError: the folder is not a run, or it holds no checkpoint (one line).
    """
    paths = existing_run(run_dir)
    checkpoint = run_checkpoint(paths)
    gradient_rows = None
    if paths.gradients.is_file():  # read first: a broken file fails before the slow pictures
        from cnn_cli.runs.gradients import read_gradients

        gradient_rows = read_gradients(paths.gradients)
    ckpt, model = load_checkpoint(checkpoint)
    paths.plots.mkdir(parents=True, exist_ok=True)
    run_title = f"run {paths.root.resolve().name} ({_run_status(paths)})"
    title = f"{run_title}, {checkpoint.name}"  # the pictures drawn from the checkpoint's weights
    metric_rows = read_metrics(paths.metrics)

    written = [plot_learning_curves(metric_rows, ckpt.best_epoch, paths.plots / LEARNING_CURVES_FILE, title)]
    images, labels = _test_split(ckpt)
    batch = config_from_dict(ckpt.config).train.eval_batch_size
    with np.errstate(over="ignore", invalid="ignore"):  # the weights of a diverged step are inf/NaN: its pictures show NaN
        chunks = [model.forward(images[i : i + batch], keep_cache=False) for i in range(0, len(images), batch)]
    logits = np.concatenate(chunks) if chunks else np.zeros((0, *model.output_shape), model.dtype)
    probabilities = model.loss.probabilities(logits)
    predicted = predictions(model, logits)
    names = _class_names(ckpt, model)
    written.append(plot_confusion_matrix(labels, predicted, names, paths.plots / CONFUSION_MATRIX_FILE, title))
    written.append(plot_misclassified(images, labels, probabilities, predicted, names, ckpt, paths.plots / MISCLASSIFIED_FILE, title))
    written.append(plot_filters(model, paths.plots / FILTERS_FILE, title))
    if gradient_rows is not None:
        written.append(plot_gradient_flow(gradient_rows, paths.plots / GRADIENT_FLOW_FILE, run_title, metric_rows))
    return written
