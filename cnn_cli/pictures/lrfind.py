"""lr_find.png: smoothed loss against learning rate, with the suggestions marked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnn_cli.runs.lrfind import BETA, MIN_DIVISOR, LrFindResult


def plot_lr_find(result: LrFindResult, path: str | Path) -> Path:
    """loss vs lr on a log axis: raw losses faint, the smoothed curve bold, the suggestion and the config's lr marked."""
    from cnn_cli.pictures.common import out_figure

    path = Path(path)
    with out_figure(path, (10.0, 6.0), "lr_find.png") as fig:
        ax = fig.subplots()
        finite = np.isfinite(result.losses)
        ax.plot(result.lrs[finite], result.losses[finite], color="0.7", linewidth=0.8, label="loss per step (raw)")
        smoothing = f"smoothed (EMA β={BETA}, bias-corrected, forwards + backwards)"
        ax.plot(result.lrs, result.smoothed, color="tab:blue", linewidth=2.2, label=smoothing)
        if result.suggestion is not None:
            at = int(np.argmin(np.abs(result.lrs - result.suggestion)))
            ax.axvline(result.suggestion, color="tab:red", linestyle="--", linewidth=1.2)
            label = f"suggested lr {result.suggestion:.2e}"
            ax.plot([result.suggestion], [result.smoothed[at]], "o", color="tab:red", markersize=10, label=label)
        if math.isfinite(result.min_loss_lr):
            tenth = result.min_loss_lr / MIN_DIVISOR
            ax.axvline(tenth, color="tab:orange", linestyle="-.", linewidth=1.2, label=f"lr at the minimum / {MIN_DIVISOR:g}: {tenth:.2e}")
        ax.axvline(result.config_lr, color="tab:green", linestyle=":", linewidth=1.5, label=f"config's lr {result.config_lr:g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        top = np.nanmax(result.smoothed) if np.isfinite(result.smoothed).any() else 1.0
        bottom = np.nanmin(result.smoothed) if np.isfinite(result.smoothed).any() else 0.0
        ax.set_ylim(bottom - 0.1 * (top - bottom + 1e-9), top + 0.25 * (top - bottom + 1e-9))  # raw spikes may leave the frame
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left")
        title = f"LR range test: {result.config_name}, {len(result.lrs)} steps"
        ax.set_title(title + (f"\nstopped early: {result.stopped_early}" if result.stopped_early else ""))
    return path
