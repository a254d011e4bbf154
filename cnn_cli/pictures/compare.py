"""compare.png: the validation curves of several runs on one set of axes; below them, when the runs logged them,
their per-step losses and gradient flow (:mod:`cnn_cli.pictures.compare_steps`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnn_cli.runs.compare import Comparison
from cnn_cli.runs.run_record import RunRecord

MAX_PLOTTED_RUNS = 10  # one colour each (tab10); more curves are a tangle, and a legend of thousands takes minutes to lay out


def plotted_runs(comparison: Comparison) -> list[RunRecord]:
    """The runs compare.png draws: all of them, or the :data:`MAX_PLOTTED_RUNS` best by validation accuracy (the table lists all)."""
    if len(comparison.runs) <= MAX_PLOTTED_RUNS:
        return comparison.runs
    ranked = sorted(comparison.runs, key=lambda run: -1.0 if run.best_val_acc is None else run.best_val_acc, reverse=True)
    return ranked[:MAX_PLOTTED_RUNS]


def plot_comparison(comparison: Comparison, path: Path) -> Path:
    """compare.png: the learning curves of the runs (at most :data:`MAX_PLOTTED_RUNS`, the best) overlaid, loss left, accuracy right.

    One colour per run; training curves solid, validation dashed; a star marks each run's best validation epoch.
    Runs with steps.csv or gradients.csv get a second row: the loss per logged step, and ‖dL/dW‖ across the layers.
    """
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    from cnn_cli.pictures.common import out_figure
    from cnn_cli.pictures.compare_steps import draw_steps_and_flow, has_steps_or_gradients

    path = Path(path)
    shown = plotted_runs(comparison)
    second_row = has_steps_or_gradients(shown)
    with out_figure(path, (13.0, 11.0 if second_row else 5.5), "compare.png") as fig:
        axes = fig.subplots(2 if second_row else 1, 2, squeeze=False)
        loss_ax, acc_ax = axes[0]
        palette = matplotlib.colormaps["tab10"]
        if second_row:
            draw_steps_and_flow(axes[1][0], axes[1][1], shown, [palette(i % 10) for i in range(len(shown))])
        for index, run in enumerate(shown):
            colour = palette(index % 10)
            rows = run.rows
            label = run.name if rows else f"{run.name} (no finished epoch)"
            epochs = np.array([r["epoch"] for r in rows])
            for ax, key in ((loss_ax, "loss"), (acc_ax, "acc")):
                train = np.array([r[f"train_{key}"] for r in rows])
                val = np.array([r[f"val_{key}"] for r in rows])
                ax.plot(epochs, train, "-", marker="o", markersize=5, color=colour, label=f"{label} train" if rows else label)
                has_val = np.isfinite(val)
                if has_val.any():
                    ax.plot(epochs[has_val], val[has_val], "--", marker="s", markersize=5, color=colour, label=f"{label} val")
            if run.best_epoch:
                acc_ax.plot([run.best_epoch], [run.best_val_acc], "*", color=colour, markersize=14)
        loss_ax.set_title("Loss (train solid, validation dashed)")
        acc_ax.set_title("Accuracy (★ best validation epoch)")
        for ax, ylabel in ((loss_ax, "loss"), (acc_ax, "accuracy")):
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        acc_ax.legend(loc="best", fontsize=8)
        differ = ", ".join(comparison.differing_keys)
        differ = differ if len(differ) <= 100 else differ[:97] + "..."
        count = f"{len(comparison.runs)} run(s)"
        if len(shown) < len(comparison.runs):
            count = f"the {len(shown)} best of {len(comparison.runs)} runs by validation accuracy (the table lists all)"
        fig.suptitle(count + (f"; their configs differ in {differ}" if differ else ""))
    return path
