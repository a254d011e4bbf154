"""The confusion matrix and the most confident mistakes of a checkpoint on the test split."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.colors import PowerNorm

from cnn_cli.learn.visualize import confident_mistakes
from cnn_cli.pictures.common import INK_CMAP, MISCLASSIFIED_COLS, MISCLASSIFIED_ROWS, _figure, _note, _probability
from cnn_cli.pictures.inputs import _pixels
from cnn_cli.runs.checkpoint import Checkpoint


def plot_confusion_matrix(labels: np.ndarray, predicted: np.ndarray, names: list[str], path: Path, title: str = "") -> Path:
    """Counts of (true, predicted) classes on the test split, with per-class accuracy beside each row.

    Cell colour is the fraction of the true class (its row), on a square-root
    scale so that the few mistakes stand out next to the large diagonal.
    """
    k = len(names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    row_totals = counts.sum(axis=1)
    fractions = counts / np.maximum(row_totals, 1)[:, None]
    per_class = counts.diagonal() / np.maximum(row_totals, 1)
    accuracy = counts.diagonal().sum() / max(counts.sum(), 1)
    with _figure("confusion_matrix", path) as fig:
        matrix_ax, acc_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [5, 1.3]})
        fig.suptitle(f"Test confusion matrix: {title}\n{counts.sum():,} images, accuracy {accuracy:.2%}")
        image = matrix_ax.imshow(fractions, cmap="Blues", norm=PowerNorm(gamma=0.5, vmin=0, vmax=1))
        cell_font = 10 if k <= 10 else 7
        for true in range(k):
            for pred in range(k):
                matrix_ax.text(
                    pred,
                    true,
                    f"{counts[true, pred]}",
                    ha="center",
                    va="center",
                    fontsize=cell_font,
                    color="white" if fractions[true, pred] > 0.5 else "black",
                )
        if max(map(len, names), default=0) > 2:  # names, not digits: slanted so that neighbours do not overlap
            matrix_ax.set_xticks(range(k), names, rotation=40, ha="right", rotation_mode="anchor")
        else:
            matrix_ax.set_xticks(range(k), names)
        matrix_ax.set_yticks(range(k), names)
        matrix_ax.set_xlabel("predicted class")
        matrix_ax.set_ylabel("true class")
        matrix_ax.set_title("counts")
        fig.colorbar(image, ax=matrix_ax, shrink=0.8, label="colour: fraction of the true class (row)")

        # A good model has every class above 90%: start the axis at the tens below the worst class
        # so that differences show; the printed percentages carry the exact values.
        low = max(0.0, math.floor((per_class.min() - 0.02) * 10) / 10) if k else 0.0
        span = 1.0 - low
        rows = np.arange(k)
        acc_ax.barh(rows, per_class - low, left=low, color="tab:blue", height=0.7)
        for row, value in zip(rows, per_class, strict=True):
            inside = value - low > 0.45 * span  # the label fits inside the bar
            acc_ax.text(
                value - 0.03 * span if inside else max(value, low) + 0.03 * span,
                row,
                f"{value:.1%}",
                va="center",
                ha="right" if inside else "left",
                color="white" if inside else "black",
                fontsize=cell_font,
            )
        acc_ax.set_ylim(k - 0.5, -0.5)
        acc_ax.set_yticks(range(k), names)
        acc_ax.set_xlim(low, 1)
        acc_ax.set_xticks([low, 1], [f"{low:.0%}", "100%"])
        acc_ax.set_xlabel("accuracy" if low == 0 else f"accuracy (axis from {low:.0%})")
        acc_ax.set_title("per class")
    return path


def plot_misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    predicted: np.ndarray,
    names: list[str],
    ckpt: Checkpoint,
    path: Path,
    title: str = "",
) -> Path:
    """A grid of the test images the model got wrong with the highest confidence.

    Args:
        images: (N, C, H, W) normalised test images; labels, predicted: (N,);
        probabilities: (N, num_classes).
    """
    count = MISCLASSIFIED_ROWS * MISCLASSIFIED_COLS
    chosen = confident_mistakes(probabilities, predicted, labels, count)
    wrong_total = int((predicted != labels).sum())
    with _figure("misclassified", path, grid_top=0.88) as fig:
        fig.suptitle(
            f"Most confidently wrong test images: {title}\n"
            f"{wrong_total:,} of {len(labels):,} wrong; showing the {len(chosen)} with the highest "
            "probability on the wrong class"
        )
        fig.subplots_adjust(right=0.98, hspace=0.4)
        axes = fig.subplots(MISCLASSIFIED_ROWS, MISCLASSIFIED_COLS).ravel()
        for ax in axes:
            ax.set_axis_off()
        if len(chosen) == 0:
            _note(axes[0], "no misclassified\ntest images")
        named = max(map(len, names), default=0) > 2  # names, not digits: one line each, or neighbours' titles overlap
        for ax, index in zip(axes, chosen, strict=False):
            ax.imshow(_pixels(images[index], ckpt), cmap=INK_CMAP, vmin=0, vmax=1)
            guess = predicted[index]
            pair = f"true {names[labels[index]]}" + ("\n" if named else ", ") + f"pred {names[guess]}"
            ax.set_title(f"{pair}\n{_probability(probabilities[index, guess])}  #{index}", fontsize=9 if named else 11)
    return path
