"""Callbacks of the training loop, one job each (Keras' callbacks, Lightning's hooks).

:func:`cnn_cli.loop.fit` calls every callback's hooks in order:

- ``on_fit_start(state)``: once, before the first step (also when resuming);
- ``on_epoch_start(state)``: before the first batch of each epoch;
- ``on_step_end(state)``: after each optimizer step (``state.loss``, ``state.logits`` hold that batch's);
- ``on_epoch_end(state)``: after validation; ``state.row`` is the new metrics row;
- ``on_interrupt(state)``: when Ctrl-C, SIGTERM, SIGHUP or a closed output stops the run;
- ``on_finish(state)``: once at the very end, whatever the status.

The order at an epoch end is the commit of that epoch: ``gradients.csv`` (its rows
after the checkpoint's step are dropped on resume), then the checkpoints, ``last.npz``
last of them: it is the commit point and holds the metrics history, from which
``metrics.csv`` is written next (and rewritten on resume). A crash anywhere in between
resumes to exactly the records an uninterrupted run would have.
"""

from __future__ import annotations

import csv
import io
import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_cli.checkpoint import Checkpoint, model_rng_state, save_checkpoint
from cnn_cli.gradient_flow import GRADIENT_COLUMNS
from cnn_cli.optim import l2_penalty
from cnn_cli.runs import point_latest, read_json_record, run_record, write_json, write_metrics, write_text

if TYPE_CHECKING:
    from pathlib import Path

    from cnn_cli.loop import TrainState


HOOKS = ("on_fit_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_interrupt", "on_finish")


class Callback:
    """A hook for each moment of training (:data:`HOOKS`); every hook does nothing unless overridden."""

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_interrupt(self, state: TrainState) -> None: ...

    def on_finish(self, state: TrainState) -> None: ...


def now_text() -> str:
    return datetime.now().isoformat(timespec="seconds")


class RunRecord(Callback):
    """``run.json``: the status of the run and every invocation of it (the first command, then each resume)."""

    def __init__(self, command_line: list[str], resumed: bool, extra: dict[str, Any] | None = None) -> None:
        self.command_line, self.resumed, self.extra = command_line, resumed, extra or {}  # extra: keys of a new run's record
        self.record: dict[str, Any] = {}

    def on_fit_start(self, state: TrainState) -> None:
        started = now_text()
        invocation = {"command": self.command_line, "started": started, "ended": None, "status": "running"}
        previous = read_json_record(state.paths.run_info) if self.resumed else None
        if previous is not None and "command" in previous and "started" in previous:
            earlier = previous.get("invocations") or [
                {key: previous.get(key) for key in ("command", "started", "ended", "status", "message") if key in previous}
            ]
            self.record = {key: value for key, value in previous.items() if key != "message"}
            self.record.update(status="running", ended=None, invocations=[*earlier, invocation])
        else:
            if self.resumed:
                state.log(f"warning: {state.paths.run_info}: missing or unreadable; starting a new record of this run")
            self.record = run_record(
                self.command_line,
                state.config.train.seed,
                "running",
                started,
                run_dir=str(state.paths.root),
                invocations=[invocation],
                **self.extra,
            )
        write_json(state.paths.run_info, self.record)

    def on_finish(self, state: TrainState) -> None:
        ended = now_text()
        outcome = {"status": state.status, "ended": ended, **({"message": state.message} if state.message else {})}
        self.record = {key: value for key, value in self.record.items() if key != "message"}
        self.record.update(outcome)
        if self.record.get("invocations"):
            self.record["invocations"][-1].update(outcome)
        write_json(state.paths.run_info, self.record)


class LatestLink(Callback):
    """``<runs root>/latest`` points at this run (a ``latest`` that is not a link is the user's and is kept)."""

    def __init__(self, runs_root: str | Path) -> None:
        self.runs_root = runs_root

    def on_fit_start(self, state: TrainState) -> None:
        blocked = point_latest(state.paths, self.runs_root)
        if blocked is not None:
            state.log(f"note: {blocked} is not a link made by cnn; left as it is")


class Checkpointer(Callback):
    """``checkpoints/``: last.npz of the initial weights at the start of a new run; epoch-NNN.npz and best.npz,
    then last.npz (the commit) at each epoch end; last.npz on interrupt."""

    def checkpoint(self, state: TrainState) -> Checkpoint:
        return Checkpoint(
            params=state.model.params,
            config=state.config.as_dict(),
            optimizer_state=state.optimizer.state_arrays(),
            epoch=state.epoch,
            step=state.step,
            batch_in_epoch=state.batch_in_epoch,
            running=state.totals.as_list(),
            best_val_acc=state.best_val_acc,
            best_epoch=state.best_epoch,
            rng=model_rng_state(state.model),
            data=state.data_info,
            history=state.history,
        )

    def on_fit_start(self, state: TrainState) -> None:
        if not state.paths.last.is_file():  # a new run: even a crash in its first epoch leaves something to resume
            save_checkpoint(state.paths.last, self.checkpoint(state))

    def on_epoch_end(self, state: TrainState) -> None:
        ckpt = self.checkpoint(state)
        if state.config.train.save_every_epoch:
            save_checkpoint(state.paths.epoch_checkpoint(state.epoch), ckpt)
        if state.improved or state.val is None:
            save_checkpoint(state.paths.best, ckpt)
        save_checkpoint(state.paths.last, ckpt)  # the commit point: a crash before it re-runs this epoch

    def on_interrupt(self, state: TrainState) -> None:
        if state.batch_in_epoch > 0:  # mid-epoch; at an epoch boundary last.npz is already current
            save_checkpoint(state.paths.last, self.checkpoint(state))


class MetricsWriter(Callback):
    """``metrics.csv``: one row per finished epoch, rewritten from the history once its checkpoint is safe."""

    def on_fit_start(self, state: TrainState) -> None:
        write_metrics(state.paths.metrics, state.history)

    def on_epoch_end(self, state: TrainState) -> None:
        write_metrics(state.paths.metrics, state.history)


class EpochLogger(Callback):
    """One line per epoch through ``state.log``."""

    def on_epoch_end(self, state: TrainState) -> None:
        row, penalty = state.row, l2_penalty(state.model.params, state.config.optimizer.weight_decay)
        text = (
            f"epoch {row['epoch']}/{state.config.train.epochs}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}  "
            f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}  lr {row['lr']:.2e}  "
            f"{row['images_per_s']:.0f} img/s  {row['seconds']:.1f}s"
        )
        state.log(text + (f"  l2 {penalty:.4f}" if penalty else ""))


class EarlyStopping(Callback):
    """Stop once validation accuracy has not improved for ``patience`` epochs."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, state: TrainState) -> None:
        if state.val is not None and state.epoch - state.best_epoch >= self.patience:
            state.log(f"early stopping: no better validation accuracy for {self.patience} epoch(s)")
            state.stop_training = True


class DivergenceGuard(Callback):
    """Fail the run at the first non-finite loss; the last good checkpoint stays as it is."""

    def on_step_end(self, state: TrainState) -> None:
        if math.isfinite(state.loss):
            return
        last = state.paths.last
        if state.epoch == 0:
            kept = f"no epoch had finished; {last} holds the run's starting point" if last.is_file() else "no checkpoint was written"
        else:
            kept = f"the last good checkpoint is kept: {last}"
        state.fail(
            f"training diverged at step {state.step + 1} (epoch {state.epoch + 1}, batch {state.batch_in_epoch + 1}): "
            f"loss is {state.loss}; {kept}"
        )


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss, accuracy and speed (for terminals)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self._tick = 0.0
        self._seconds = 0.0

    def on_epoch_start(self, state: TrainState) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped]

        epochs = state.config.train.epochs
        self.bar = tqdm(
            total=state.steps_per_epoch,
            initial=state.batch_in_epoch,
            desc=f"epoch {state.epoch + 1}/{epochs}",
            unit="batch",
            leave=False,
            dynamic_ncols=True,
        )
        self._tick, self._seconds = time.perf_counter(), state.totals.seconds

    def on_step_end(self, state: TrainState) -> None:
        if self.bar is None or state.status != "running":
            return self.close()
        totals = state.totals
        elapsed = self._seconds + time.perf_counter() - self._tick
        self.bar.update(1)
        self.bar.set_postfix(
            loss=f"{totals.loss_sum / totals.seen:.4f}",
            acc=f"{totals.correct / totals.seen:.4f}",
            img_s=f"{totals.seen / max(elapsed, 1e-9):.0f}",
            refresh=False,
        )
        if state.batch_in_epoch >= state.steps_per_epoch:
            self.close()  # before validation, which has no bar

    def close(self, state: TrainState | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    on_interrupt = on_finish = close


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
            backward = model.backward_trace(grad_logits)
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
        with path.open(newline="", encoding="utf-8") as handle:
            return [row for row in csv.DictReader(handle) if (row.get("step") or "").isdigit()]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
