"""gradients.csv: per-layer gradient norms, update ratios and dead ReLU fractions during training."""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_cli.bounded_read import RECORD_BYTES, read_text
from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import write_text
from cnn_cli.runs.gradients import GRADIENT_COLUMNS

if TYPE_CHECKING:
    from pathlib import Path

    from cnn_cli.training.state import TrainState
from cnn_cli.training.state import Callback


def _norm(array: np.ndarray) -> float:
    """L2 (Frobenius) norm, accumulated in float64."""
    flat = array.reshape(-1).astype(np.float64, copy=False)
    return math.sqrt(float(flat @ flat))


class GradientLogger(Callback):
    """``gradients.csv``: per layer, ||dL/dW||, ||dL/db||, ||dL/d(input)||, ||Δw||/||w|| and the ReLUs' dead fraction.

    Logged at every ``log_every``-th step and at the last step of each epoch (event
    ``step`` / ``epoch``), on that step's batch. The gradients are those of the
    loss on the batch before weight decay and clipping, with the weights the
    step started from: the logger keeps a copy of the weights just before a logged
    step, and after the step reruns the backward pass (:meth:`Model.backward_trace`)
    on the forward caches of that step with those weights, which also gives every
    layer's input gradient. Training itself is untouched: the weights are put back
    bit for bit and the next step recomputes every gradient.

    ``dead_fraction`` (ReLU layers): the fraction of the layer's units (one per
    element of a sample's activation) whose input gradient was 0 for every sample
    of the batch, i.e. that passed no gradient at all.
    Rows are kept in memory and the file is rewritten (atomically) at each epoch end,
    interrupt and finish; on resume rows after the checkpoint's step are dropped,
    since those steps are trained (and logged) again.
    """

    def __init__(self, log_every: int) -> None:
        self.log_every = log_every
        self.rows: list[dict[str, Any]] = []
        self._before: dict[str, np.ndarray] | None = None
        self._unwritten = False

    # -------------------------------------------------------------- when

    def _logs_step(self, state: TrainState, step: int, batch_in_epoch: int) -> bool:
        """Whether step number ``step`` (1-based), batch ``batch_in_epoch`` (1-based) of its epoch is logged."""
        return step % self.log_every == 0 or batch_in_epoch == state.steps_per_epoch

    def _remember_weights_if_next_is_logged(self, state: TrainState) -> None:
        next_batch = state.batch_in_epoch + 1 if state.batch_in_epoch < state.steps_per_epoch else 1
        if self._logs_step(state, state.step + 1, next_batch):
            self._before = {name: value.copy() for name, value in state.model.params.items()}
        else:
            self._before = None

    def on_fit_start(self, state: TrainState) -> None:
        path = state.paths.gradients
        if path.is_file() and state.step > 0:
            self.rows = [row for row in _read_gradients(path) if int(row["step"]) <= state.step]
        self._remember_weights_if_next_is_logged(state)

    def on_step_end(self, state: TrainState) -> None:
        if self._before is not None and state.status == "running":
            events = ["step"] if state.step % self.log_every == 0 else []
            if state.batch_in_epoch == state.steps_per_epoch:
                events.append("epoch")
            measured = self.measure(state, self._before)
            for event in events:
                self.rows.extend({"epoch": state.epoch + 1, "step": state.step, "event": event, **row} for row in measured)
            self._unwritten = True
        self._remember_weights_if_next_is_logged(state)

    # -------------------------------------------------------------- what

    def measure(self, state: TrainState, before: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """One row per layer (input side first) for the step just taken from weights ``before``."""
        model = state.model
        if state.logits is None or state.labels is None:
            raise RuntimeError("GradientLogger.measure needs the logits and labels of the step just taken")
        after = {name: value.copy() for name, value in model.params.items()}
        for name, value in model.params.items():
            value[...] = before[name]
        try:
            _, grad_logits = model.loss(state.logits, state.labels)
            backward = model.backward_trace(grad_logits, nested=True)  # a block's inner layers get rows too
        finally:
            for name, value in model.params.items():
                value[...] = after[name]
        rows = []
        for entry in backward:
            layer = entry.layer
            weight, bias = layer.grads.get("weight"), layer.grads.get("bias")
            update: float | str = ""
            key = f"{layer.name}.weight"
            if key in before:
                size = _norm(before[key])
                update = _norm(after[key] - before[key]) / size if size > 0 else ""
            dead: float | str = ""
            if layer.type_name == "relu":
                passed = np.any(entry.grad_input != 0, axis=0)
                dead = float(1.0 - np.count_nonzero(passed) / passed.size)
            rows.append(
                {
                    "layer": layer.name,
                    "type": layer.type_name,
                    "weight_grad_norm": _norm(weight) if weight is not None else "",
                    "bias_grad_norm": _norm(bias) if bias is not None else "",
                    "input_grad_norm": _norm(entry.grad_input),
                    "update_ratio": update,
                    "dead_fraction": dead,
                }
            )
        return rows

    # -------------------------------------------------------------- where

    def write(self, state: TrainState) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=GRADIENT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: repr(value) if isinstance(value, float) else value for key, value in row.items()})
        write_text(state.paths.gradients, buffer.getvalue())
        self._unwritten = False

    def on_epoch_end(self, state: TrainState) -> None:
        self.write(state)

    def on_interrupt(self, state: TrainState) -> None:
        self.write(state)

    def on_finish(self, state: TrainState) -> None:
        if self._unwritten or not state.paths.gradients.is_file():  # e.g. the steps before a divergence
            self.write(state)


def _read_gradients(path: Path) -> list[dict[str, str]]:
    try:
        text = read_text(path, RECORD_BYTES, "gradients file")
        return [row for row in csv.DictReader(io.StringIO(text, newline="")) if (row.get("step") or "").isdigit()]
    except (CnnError, csv.Error):
        return []
