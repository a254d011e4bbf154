"""Learning curves: loss and accuracy per epoch from metrics.csv."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from cnn_cli.pictures.common import _figure, _note


def plot_learning_curves(rows: list[dict[str, Any]], best_epoch: int, path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train vs validation, with the best epoch marked.

    Args:
        rows: metrics.csv rows (:func:`cnn_cli.runs.folders.read_metrics`); may be empty.
        best_epoch: the epoch with the best validation accuracy (0: none); without validation, the last (the one tested).
    """
    epochs = np.array([r["epoch"] for r in rows], dtype=float)
    has_val = np.isfinite(np.array([r["val_loss"] for r in rows], dtype=float))
    notes = []
    if len(rows) == 1:
        notes.append("one finished epoch only: each curve is a single point")
    if rows and not has_val.any():
        notes.append("no validation split (data.val_size is 0)")
    with _figure("learning_curves", path) as fig:
        loss_ax, acc_ax = fig.subplots(1, 2)
        fig.suptitle("\n".join([f"Learning curves: {title}" if title else "Learning curves", *notes]))
        for ax, key, label in ((loss_ax, "loss", "loss (mean over the epoch)"), (acc_ax, "acc", "accuracy")):
            ax.set_title(label.split(" ")[0].capitalize())
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            if not rows:
                _note(ax, "no finished epoch yet:\nthe run stopped before its first epoch ended,\nso there is no curve to draw")
                continue
            train = np.array([r[f"train_{key}"] for r in rows], dtype=float)
            val = np.array([r[f"val_{key}"] for r in rows], dtype=float)
            ax.plot(epochs, train, "o-", color="tab:blue", label="train")
            if has_val.any():
                ax.plot(epochs[has_val], val[has_val], "s-", color="tab:orange", label="validation")
            if best_epoch in epochs:
                marked = f"best epoch ({best_epoch})" if has_val.any() else f"tested epoch ({best_epoch}, the last)"
                ax.axvline(best_epoch, color="tab:green", linestyle="--", linewidth=1.2, label=marked)
                best_row = rows[int(np.flatnonzero(epochs == best_epoch)[0])]
                if math.isfinite(best_row[f"val_{key}"]):
                    ax.plot([best_epoch], [best_row[f"val_{key}"]], "*", color="tab:green", markersize=16)
            if len(epochs) <= 20:
                ax.set_xticks(epochs, [str(int(e)) for e in epochs])
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
            ax.grid(True, alpha=0.3)
            ax.legend(loc="best")
        acc_ax.set_ylim(top=1.0)
    return path
