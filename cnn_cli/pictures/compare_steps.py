"""compare.png's second row: the runs' per-step training loss (steps.csv) and their gradient flow (gradients.csv).

Two runs that differ in one thing (``deep-plain`` and ``deep-residual`` differ in their
skips) are read side by side: the loss step by step, even when each ran one epoch, and
‖dL/dW‖ across each run's layers with weights at its last logged step, input side at 0
and output side at 1, so runs with different numbers of layers share the axis.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.runs.compare import RunRecord
from cnn_cli.runs.folders import GRADIENTS_FILE, STEPS_FILE
from cnn_cli.runs.gradients import layer_order, read_gradients


def step_losses(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, training loss) from a run's steps.csv; empty arrays when it has none or it cannot be read."""
    try:
        with (run / STEPS_FILE).open(newline="", encoding="utf-8") as handle:
            pairs = [(int(row["step"]), float(row["loss"])) for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError):
        return np.zeros(0), np.zeros(0)
    return np.array([s for s, _ in pairs], dtype=float), np.array([loss for _, loss in pairs], dtype=float)


def weight_gradient_profile(run: Path) -> tuple[list[str], np.ndarray, int] | None:
    """(layers with weights, input side first; their ‖dL/dW‖; the step) at the last logged step, or None."""
    path = run / GRADIENTS_FILE
    rows = read_gradients(path) if path.is_file() else []
    if not rows:
        return None
    step = max(row["step"] for row in rows)
    last = {row["layer"]: row["weight_grad_norm"] for row in rows if row["step"] == step}
    names = [name for name, _ in layer_order(rows) if math.isfinite(last.get(name, math.nan))]
    if len(names) < 2:
        return None
    return names, np.array([last[name] for name in names]), step


def has_steps_or_gradients(runs: list[RunRecord]) -> bool:
    return any((run.path / STEPS_FILE).is_file() or (run.path / GRADIENTS_FILE).is_file() for run in runs)


def draw_steps_and_flow(loss_ax: Any, flow_ax: Any, runs: list[RunRecord], colours: list[Any]) -> None:
    """The training loss per logged step of each run, and each run's ‖dL/dW‖ profile (log scale) with its
    first-to-last ratio in the legend."""
    for run, colour in zip(runs, colours, strict=True):
        steps, losses = step_losses(run.path)
        if len(steps):
            loss_ax.plot(steps, losses, "-", color=colour, label=run.name, linewidth=1.5)
        profile = weight_gradient_profile(run.path)
        if profile is not None:
            names, norms, step = profile
            ratio = norms[0] / norms[-1] if norms[-1] > 0 else math.nan
            where = np.linspace(0.0, 1.0, len(names))
            label = f"{run.name}: {names[0]} / {names[-1]} = {ratio:.2g} (step {step})"
            flow_ax.plot(where, norms, "o-", color=colour, label=label, markersize=4)
    loss_ax.set_title("Training loss per logged step (steps.csv)")
    loss_ax.set_xlabel("training step")
    loss_ax.set_ylabel("loss on the step's batch")
    flow_ax.set_title("‖dL/dW‖ across each run's weighted layers (last logged step)")
    flow_ax.set_xlabel("layer position: 0 = input side, 1 = output side")
    flow_ax.set_ylabel("L2 norm of the weight gradient (log)")
    for ax in (loss_ax, flow_ax):
        ax.grid(True, which="both", alpha=0.3)
        if ax.has_data():
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no run logged steps.csv or gradients.csv", ha="center", va="center", transform=ax.transAxes)
    if flow_ax.has_data():
        flow_ax.set_yscale("log")
