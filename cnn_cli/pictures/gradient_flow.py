"""gradient_flow.png: per-layer gradient norms, update ratios and dead ReLUs over training, from gradients.csv."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from cnn_cli.pictures.common import _figure, _note

STEP_AXIS = {"step": "training step (logged every train.log_every steps)", "epoch": "training step (logged at each epoch end)"}


EMA_BETA = 0.8  # smoothing of the lines over time: each point is 0.8 × the average so far + 0.2 × the new value


MIN_POINTS_TO_SMOOTH = 10  # fewer logged steps are drawn as they are


MAX_LR_LABELS = 8  # more schedule changes than this (a cosine schedule) are drawn without a label each


@dataclass(frozen=True)
class LrChange:
    """The learning rate changed between two epochs: ``step`` is the boundary (between the last step of one and the first of the next)."""

    step: float
    before: float
    after: float


def lr_changes(metric_rows: list[dict[str, Any]]) -> list[LrChange]:
    """Where metrics.csv's ``lr`` column changes from one epoch to the next (a step schedule's drops, a cosine's every epoch)."""
    return [
        LrChange(before["step"] + 0.5, before["lr"], after["lr"])
        for before, after in zip(metric_rows, metric_rows[1:], strict=False)
        if not math.isclose(before["lr"], after["lr"], rel_tol=1e-9)
    ]


def ema(values: np.ndarray, beta: float = EMA_BETA) -> np.ndarray:
    """Bias-corrected exponential moving average of ``values`` (N,); a NaN is skipped (the average carries over it).

    average ← β·average + (1 − β)·value, divided by 1 − β^n (the weight the n values seen so far carry),
    so the first points are not pulled toward 0.
    """
    smoothed = np.full(len(values), math.nan)
    average = weight = 0.0
    for index, value in enumerate(np.asarray(values, dtype=float)):
        if math.isfinite(value):
            average, weight = beta * average + (1 - beta) * value, beta * weight + (1 - beta)
        if weight > 0:
            smoothed[index] = average / weight
    return smoothed


@dataclass
class _Flow:
    """gradients.csv rows, indexed: which event is drawn over time, its steps, and the layers (input side first)."""

    event: str
    steps: list[int]
    by_key: dict[tuple[str, int, str], dict[str, Any]]
    layers: list[tuple[str, str]]
    weighted: list[str]  # the layers that have a weight gradient

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> _Flow:
        from cnn_cli.runs.gradients import layer_order

        event = "step" if any(r["event"] == "step" for r in rows) else "epoch"
        steps = sorted({r["step"] for r in rows if r["event"] == event})
        layers = layer_order(rows)
        weighted = [name for name, _ in layers if any(math.isfinite(r["weight_grad_norm"]) for r in rows if r["layer"] == name)]
        return cls(event, steps, {(r["event"], r["step"], r["layer"]): r for r in rows}, layers, weighted)

    def values(self, key: str, names: list[str], step: int) -> np.ndarray:
        """``key`` of each named layer at one logged step (NaN where it was not logged)."""
        rows = [self.by_key.get((self.event, step, name)) for name in names]
        return np.array([math.nan if row is None else row[key] for row in rows], dtype=float)

    def series(self, key: str, name: str) -> np.ndarray:
        """``key`` of one layer at every logged step."""
        return np.array([self.values(key, [name], step)[0] for step in self.steps])

    @property
    def profile_steps(self) -> list[int]:
        """The first, middle and last logged step (fewer when fewer were logged)."""
        return sorted({self.steps[0], self.steps[len(self.steps) // 2], self.steps[-1]}) if self.steps else []


PROFILE_STYLES = ("o:", "s--", "D-")


def _input_vs_output(flow: _Flow) -> tuple[str, str]:
    """The headline line and the profile's caption, both from the same ratio: ‖dL/dW‖ of the first weighted layer / the last's.

    Empty strings when there is no ratio to state (fewer than two weighted layers, nothing logged).
    """
    if not flow.steps or len(flow.weighted) < 2:
        return "", ""
    first, last = flow.weighted[0], flow.weighted[-1]
    norms = flow.values("weight_grad_norm", [first, last], flow.steps[-1])
    if not (np.isfinite(norms).all() and norms[1] > 0):
        return "", ""
    ratio = norms[0] / norms[1]
    side = "smaller" if ratio < 1 else "larger"
    headline = f"at step {flow.steps[-1]}: ‖dL/dW‖ of the input-side layer {first} is {ratio:.2g}× that of the output-side layer {last}"
    caption = (
        f"at the last step {first} gets {ratio:.2g}× the ‖dL/dW‖ of {last}: {side} on the input side\n"
        "(dL/dW = δ·inputᵀ: the δ that reaches a layer and the size of its input both set it)"
    )
    return headline, caption


def _mark_lr_changes(ax: Any, changes: list[LrChange]) -> None:
    """A dotted vertical line at each epoch boundary where the learning rate changed, labelled with the new lr when few."""
    for index, change in enumerate(changes):
        ax.axvline(change.step, color="0.35", linestyle=":", linewidth=1.2, label="lr changed" if index == 0 else None)
        if len(changes) <= MAX_LR_LABELS:
            ax.annotate(
                f"lr {change.after:.2g}",
                (change.step, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10),
                textcoords="offset points",
                fontsize=8,
            )


def _draw_over_time(ax: Any, flow: _Flow, key: str, colours: dict[str, Any], changes: list[LrChange]) -> bool:
    """One faint raw line and one bold EMA-smoothed line per weighted layer; False when ``key`` was never logged.

    Fewer than :data:`MIN_POINTS_TO_SMOOTH` logged steps are drawn raw only: an average over
    a handful of points lags far behind them and would misstate the last values.
    """
    smooth = len(flow.steps) >= MIN_POINTS_TO_SMOOTH
    drawn, marker = False, "o" if len(flow.steps) <= 3 else None  # a line through one point draws nothing: mark the points
    for name in flow.weighted:
        raw = flow.series(key, name)
        if not np.isfinite(raw).any():
            continue
        if smooth:
            ax.plot(flow.steps, raw, "-", color=colours[name], linewidth=0.8, alpha=0.3)
        ax.plot(flow.steps, ema(raw) if smooth else raw, "-", marker=marker, color=colours[name], label=name, linewidth=1.8)
        drawn = True
    if drawn:
        _mark_lr_changes(ax, changes)
    how = f"faint: each logged value; bold: its moving average (EMA, β = {EMA_BETA})" if smooth else "each logged value (too few to smooth)"
    ax.set_xlabel(f"{STEP_AXIS[flow.event]}\n{how}")
    return drawn


def _draw_profiles(ax: Any, flow: _Flow, key: str, names: list[str], colour: str) -> None:
    """``key`` across the named layers at the first, middle and last logged step."""
    positions = np.arange(len(names))
    for step, style in zip(flow.profile_steps, PROFILE_STYLES, strict=False):
        ax.plot(positions, flow.values(key, names, step), style, color=colour, label=f"step {step}")


def _mark_dead_units(ax: Any, flow: _Flow, names: list[str]) -> None:
    """``dead N%`` above each ReLU's point at the last profile step."""
    if not flow.profile_steps:
        return
    dead = flow.values("dead_fraction", names, flow.profile_steps[-1])
    top = flow.values("input_grad_norm", names, flow.profile_steps[-1])
    for position, (fraction, height) in enumerate(zip(dead, top, strict=True)):
        if math.isfinite(fraction) and math.isfinite(height) and height > 0:
            ax.annotate(f"dead {fraction:.0%}", (position, height), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)


def _finish(axes: list[Any], beside: list[Any]) -> None:
    """Log y scales where the data is positive, grids, and legends (beside the axes for the one-line-per-layer panels)."""
    for ax in axes:
        if not ax.has_data():
            continue
        if any((np.asarray(line.get_ydata(), dtype=float) > 0).any() for line in ax.get_lines()):
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.25)
        if ax in beside:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, title="layer")
        else:
            ax.legend(loc="best", fontsize=9)


def plot_gradient_flow(rows: list[dict[str, Any]], path: Path, title: str = "", metric_rows: list[dict[str, Any]] | None = None) -> Path:
    """Per-layer gradient norms across training, from ``gradients.csv`` rows, on log scales.

    Four panels: ‖dL/dW‖ of each layer over the logged steps; the same norms as a
    profile across the layers (input side left, output side right) at the first,
    middle and last logged step; ‖dL/d(layer input)‖, the backpropagated signal
    reaching every layer, as a profile; and the update ratio ‖Δw‖/‖w‖ (how fast each
    layer learns). Lines over time are drawn raw (faint) and EMA-smoothed (bold); the
    epoch boundaries where the learning rate changed are marked. Vanishing gradients
    show as profiles that fall toward the input.

    Args:
        rows: :func:`cnn_cli.runs.gradients.read_gradients` rows; may be empty.
        metric_rows: the run's metrics.csv rows (:func:`cnn_cli.runs.folders.read_metrics`), for the lr changes.
    """
    flow = _Flow.of(rows)
    cmap = matplotlib.colormaps["viridis"]  # dark (input side) to light (output side)
    colours = {name: cmap(0.9 * i / max(len(flow.weighted) - 1, 1)) for i, name in enumerate(flow.weighted)}
    changes = lr_changes(metric_rows or [])
    headline, caption = _input_vs_output(flow)
    with _figure("gradient_flow", path) as fig:
        (time_ax, profile_ax), (signal_ax, update_ax) = fig.subplots(2, 2)
        fig.suptitle(f"Gradient flow (from gradients.csv){': ' + title if title else ''}" + (f"\n{headline}" if headline else ""))
        if not rows:
            for ax in (time_ax, profile_ax, signal_ax, update_ax):
                _note(ax, "gradients.csv has no complete row yet:\nthe run stopped before its first logged step")
            return path

        time_ax.set_title("‖dL/dW‖ of each layer during training")
        _draw_over_time(time_ax, flow, "weight_grad_norm", colours, changes)
        time_ax.set_ylabel("L2 norm of the weight gradient (log)")

        profile_ax.set_title("‖dL/dW‖ across the layers: input side → output side")
        _draw_profiles(profile_ax, flow, "weight_grad_norm", flow.weighted, "tab:red")
        profile_ax.set_xticks(np.arange(len(flow.weighted)), flow.weighted, rotation=30 if len(flow.weighted) > 6 else 0)
        profile_ax.set_xlabel("layer with weights, input side on the left" + (f"\n{caption}" if caption else ""), fontsize=10)
        profile_ax.set_ylabel("L2 norm of the weight gradient (log)")

        names, types = [name for name, _ in flow.layers], dict(flow.layers)
        signal_ax.set_title("‖dL/d(layer input)‖: the gradient signal that reaches each layer")
        _draw_profiles(signal_ax, flow, "input_grad_norm", names, "tab:blue")
        _mark_dead_units(signal_ax, flow, names)
        few = len(names) <= 8
        signal_ax.set_xticks(np.arange(len(names)), [f"{n}\n{types[n]}" if few else n for n in names], rotation=0 if few else 60)
        dead_note = "\n(dead: ReLU units that passed no gradient for the whole batch)" if "relu" in types.values() else ""
        signal_ax.set_xlabel("every layer, input side on the left" + dead_note)
        signal_ax.set_ylabel("L2 norm over the batch (log)")

        update_ax.set_title("update ratio ‖Δw‖ / ‖w‖: how fast each layer learns")
        if not _draw_over_time(update_ax, flow, "update_ratio", colours, changes):
            _note(update_ax, "no update ratios logged")
        update_ax.set_ylabel("‖Δw‖ / ‖w‖ of that step's update (log)")
        _finish([time_ax, profile_ax, signal_ax, update_ax], beside=[time_ax, update_ax])
    return path
