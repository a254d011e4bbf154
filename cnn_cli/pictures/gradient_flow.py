"""gradient_flow.png: per-layer gradient norms, update ratios and dead ReLUs over training, from gradients.csv."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from cnn_cli.pictures.common import _figure, _note


def _layer_colours(count: int) -> list[Any]:
    """One colour per layer, dark (input side) to light (output side)."""
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.9 * i / max(count - 1, 1)) for i in range(count)]


def _moments(rows: list[dict[str, Any]]) -> tuple[str, list[int]]:
    """Which logged event to draw over time (``step`` if any, else ``epoch``) and its steps in order."""
    event = "step" if any(r["event"] == "step" for r in rows) else "epoch"
    return event, sorted({r["step"] for r in rows if r["event"] == event})


STEP_AXIS = {"step": "training step (logged every train.log_every steps)", "epoch": "training step (logged at each epoch end)"}


def _profile_steps(steps: list[int]) -> list[int]:
    """The first, middle and last logged step (fewer when fewer were logged)."""
    return sorted({steps[0], steps[len(steps) // 2], steps[-1]}) if steps else []


def plot_gradient_flow(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Per-layer gradient norms across training, from ``gradients.csv`` rows, on log scales.

    Four panels: ‖dL/dW‖ of each layer over the logged steps; the same norms as a
    profile across the layers (input side left, output side right) at the first,
    middle and last logged step; ‖dL/d(layer input)‖, the backpropagated signal
    reaching every layer, as a profile; and the update ratio ‖Δw‖/‖w‖ (how fast each
    layer learns). Vanishing gradients show as profiles that fall toward the input.

    Args:
        rows: :func:`cnn_cli.gradient_flow.read_gradients` rows; may be empty.
    """
    from cnn_cli.runs.gradients import layer_order

    layers = layer_order(rows)
    event, steps = _moments(rows)
    by_key = {(r["event"], r["step"], r["layer"]): r for r in rows}
    weighted = [name for name, _ in layers if any(math.isfinite(r["weight_grad_norm"]) for r in rows if r["layer"] == name)]
    colours = dict(zip(weighted, _layer_colours(len(weighted)), strict=True))
    profile_steps = _profile_steps(steps)
    profile_styles = dict(zip(profile_steps, ("o:", "s--", "D-"), strict=False))

    def values(key: str, names: list[str], step: int) -> np.ndarray:
        return np.array([by_key[(event, step, n)][key] if (event, step, n) in by_key else math.nan for n in names], dtype=float)

    with _figure("gradient_flow", path) as fig:
        (time_ax, profile_ax), (signal_ax, update_ax) = fig.subplots(2, 2)
        ratio_line = ""
        if steps and len(weighted) >= 2:
            last = values("weight_grad_norm", weighted, steps[-1])
            ratio_line = (
                f"\nat step {steps[-1]}: ‖dL/dW‖ of the input-side layer {weighted[0]} is "
                f"{last[0] / last[-1]:.2g}× that of the output-side layer {weighted[-1]}"
            )
        fig.suptitle((f"Gradient flow: {title}" if title else "Gradient flow") + ratio_line)
        if not rows:
            for ax in (time_ax, profile_ax, signal_ax, update_ax):
                _note(ax, "gradients.csv has no complete row yet:\nthe run stopped before its first logged step")
            return path

        time_ax.set_title("‖dL/dW‖ of each layer during training")
        for name in weighted:
            norms = np.array([values("weight_grad_norm", [name], s)[0] for s in steps])
            time_ax.plot(steps, norms, "-", color=colours[name], label=name, linewidth=1.6)
        time_ax.set_xlabel(STEP_AXIS[event])
        time_ax.set_ylabel("L2 norm of the weight gradient (log)")

        profile_ax.set_title("‖dL/dW‖ across the layers: input side → output side")
        positions = np.arange(len(weighted))
        for step in profile_steps:
            profile_ax.plot(
                positions, values("weight_grad_norm", weighted, step), profile_styles[step], color="tab:red", label=f"step {step}"
            )
        profile_ax.set_xticks(positions, weighted, rotation=30 if len(weighted) > 6 else 0)
        profile_ax.set_xlabel(
            "layer with weights, input side on the left\n(dL/dW = δ·inputᵀ: a layer fed the raw image gets a larger one)", fontsize=10
        )
        profile_ax.set_ylabel("L2 norm of the weight gradient (log)")

        names = [name for name, _ in layers]
        types = dict(layers)
        signal_ax.set_title("‖dL/d(layer input)‖: the gradient signal that reaches each layer")
        positions_all = np.arange(len(names))
        for step in profile_steps:
            signal_ax.plot(
                positions_all, values("input_grad_norm", names, step), profile_styles[step], color="tab:blue", label=f"step {step}"
            )
        if profile_steps:
            dead = values("dead_fraction", names, profile_steps[-1])
            top = values("input_grad_norm", names, profile_steps[-1])
            for pos, (fraction, height) in enumerate(zip(dead, top, strict=True)):
                if math.isfinite(fraction) and math.isfinite(height) and height > 0:
                    signal_ax.annotate(
                        f"dead {fraction:.0%}", (pos, height), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8
                    )
        signal_ax.set_xticks(
            positions_all, [f"{n}\n{types[n]}" if len(names) <= 8 else n for n in names], rotation=0 if len(names) <= 8 else 60
        )
        has_relu = any(t == "relu" for t in types.values())
        signal_ax.set_xlabel(
            "every layer, input side on the left" + (" (dead: ReLU units that passed no gradient for the whole batch)" if has_relu else "")
        )
        signal_ax.set_ylabel("L2 norm over the batch (log)")

        update_ax.set_title("update ratio ‖Δw‖ / ‖w‖: how fast each layer learns")
        drawn = False
        for name in weighted:
            ratios = np.array([values("update_ratio", [name], s)[0] for s in steps])
            if np.isfinite(ratios).any():
                update_ax.plot(steps, ratios, "-", color=colours[name], label=name, linewidth=1.6)
                drawn = True
        if not drawn:
            _note(update_ax, "no update ratios logged")
        update_ax.set_xlabel(STEP_AXIS[event])
        update_ax.set_ylabel("‖Δw‖ / ‖w‖ of that step's update (log)")

        for ax in (time_ax, profile_ax, signal_ax, update_ax):
            if ax.has_data():
                finite = [line.get_ydata() for line in ax.get_lines()]
                if any((np.asarray(y, dtype=float) > 0).any() for y in finite):
                    ax.set_yscale("log")
                ax.grid(True, which="both", alpha=0.25)
                if ax in (time_ax, update_ax):  # one line per layer: the legend goes beside the lines
                    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, title="layer")
                else:
                    ax.legend(loc="best", fontsize=9)
    return path
