"""The training loop: epochs -> batches -> one step, with hooks for everything else.

:func:`fit` takes the steps and closes each epoch (validation, the metrics row,
the best epoch). Everything around it, such as the records in the run folder,
checkpoints, the progress bar, early stopping and divergence, is a
:class:`cnn_cli.training.state.Callback` that reads and updates the :class:`TrainState`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from cnn_cli.config.sections import ScheduleConfig
from cnn_cli.errors import EXIT_INTERRUPTED, StepStopped
from cnn_cli.nn.optim import OneCycle, apply_update, learning_rate
from cnn_cli.runs.evaluation import predictions
from cnn_cli.training.state import CallbackList, EpochData, InterruptFlag, RunningTotals, TrainState, resume_hint


def fit(
    state: TrainState,
    data: EpochData,
    hooks: CallbackList,
    interrupt: InterruptFlag,
    stop_after_steps: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    step: Callable[[TrainState, np.ndarray, np.ndarray], None] | None = None,
) -> None:
    """Train until the configured epochs are done, a callback stops or fails the run, or a signal interrupts it.

    Leaves ``state.status`` ``running`` when the final test should follow (all epochs done, or a callback
    set ``state.stop_training``: at an epoch end, or after a step, which is then saved as an interrupt is).
    ``stop_after_steps`` behaves as if Ctrl-C came after that many steps (tests); ``should_stop`` is
    asked after every step, and True acts like Ctrl-C (a sweep's trial, stopped from the client).
    ``step`` takes one step in place of :func:`train_step` (``cnn train --impl`` runs it under a deadline).
    """
    hooks.on_fit_start(state)
    try:
        _epochs(state, data, hooks, interrupt, stop_after_steps, should_stop, step or train_step)
    except StepStopped as stop:  # code inside a step (a learner's, cnn train --impl) failed or was stopped
        if not stop.interrupted:
            return state.fail(stop.message, stop.exit_code)
        interrupt.request(stop.cause, stop.exit_code)  # a Ctrl-C that came first stays the cause
        interrupted(state, hooks, interrupt, f"at step {state.step}: {stop.message}")


def _epochs(
    state: TrainState,
    data: EpochData,
    hooks: CallbackList,
    interrupt: InterruptFlag,
    stop_after_steps: int | None,
    should_stop: Callable[[], bool] | None,
    step: Callable[[TrainState, np.ndarray, np.ndarray], None],
) -> None:
    while state.epoch < state.config.train.epochs:
        hooks.on_epoch_start(state)
        state.lr = state.config.optimizer.lr
        tick = time.perf_counter()
        try:
            for x, y in data.batches(state.epoch, state.batch_in_epoch):
                step(state, x, y)
                hooks.on_step_end(state)
                if (stop_after_steps is not None and state.step >= stop_after_steps) or (should_stop is not None and should_stop()):
                    interrupt.request("Ctrl-C", EXIT_INTERRUPTED)
                if interrupt.requested or state.status != "running" or state.stop_training:
                    break
        finally:
            state.totals.seconds += time.perf_counter() - tick
        if state.status != "running":
            return
        if interrupt.requested and state.batch_in_epoch < state.steps_per_epoch:
            return interrupted(state, hooks, interrupt, f"at step {state.step}")
        if state.stop_training and state.batch_in_epoch < state.steps_per_epoch:
            hooks.on_interrupt(state)  # stopped mid-epoch (a time budget): saved as an interrupt is, then the final test
            return
        end_epoch(state, data)
        hooks.on_epoch_end(state)
        if state.stop_training or state.status != "running":  # a callback stopped, or failed the run (state not finite)
            return
        if interrupt.requested:
            return interrupted(state, hooks, interrupt, f"after epoch {state.epoch}")


def scheduled_lr(lr: float, sc: ScheduleConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The config's schedule at 0-based step ``step``; onecycle peaks at ``schedule.max_lr`` (default ``optimizer.lr``)."""
    cycle = OneCycle(sc.pct_start, sc.div_factor, sc.final_div_factor, sc.anneal)
    base = sc.max_lr if sc.name == "onecycle" and sc.max_lr is not None else lr
    return learning_rate(base, step, steps_per_epoch, epochs, sc.name, sc.step_size, sc.gamma, sc.min_lr, sc.warmup_epochs, cycle)


def train_step(state: TrainState, x: np.ndarray, y: np.ndarray) -> None:
    """One optimizer step on batch (x, y). A step whose loss is not finite is not applied (callbacks report it)."""
    model, optimizer, oc, sc = state.model, state.optimizer, state.config.optimizer, state.config.schedule
    lr = scheduled_lr(oc.lr, sc, state.step, state.steps_per_epoch, state.config.train.epochs)
    optimizer.lr = state.lr = lr
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported by a callback, once
        loss, logits = model.loss_and_backward(x, y)
    state.loss, state.inputs, state.labels, state.logits = loss, x, y, logits
    if not math.isfinite(loss):
        return
    params, grads = model.params, model.grads
    if state.frozen:
        params = {name: value for name, value in params.items() if name not in state.frozen}
        grads = {name: grads[name] for name in params}
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing optimizer state is reported by a callback, once
        apply_update(optimizer, params, grads, oc.weight_decay, oc.clip_grad_norm)
    state.step += 1
    state.batch_in_epoch += 1
    totals = state.totals
    totals.loss_sum += loss * len(y)
    totals.correct += int((predictions(model, logits) == y).sum())
    totals.seen += len(y)


def end_epoch(state: TrainState, data: EpochData) -> None:
    """Validate, append the epoch's metrics row and update the best epoch; the totals start again."""
    val = data.validate(state.model)
    state.epoch += 1
    totals = state.totals
    state.history.append(
        {
            "epoch": state.epoch,
            "step": state.step,
            "lr": state.lr,
            "train_loss": totals.loss_sum / max(totals.seen, 1),
            "train_acc": totals.correct / max(totals.seen, 1),
            "val_loss": val.loss if val else float("nan"),
            "val_acc": val.accuracy if val else float("nan"),
            "seconds": round(totals.seconds, 3),
            "images_per_s": round(totals.seen / max(totals.seconds, 1e-9), 1),
        }
    )
    state.val = val
    state.improved = val is not None and val.accuracy > state.best_val_acc
    if state.improved:
        state.best_val_acc, state.best_epoch = val.accuracy, state.epoch  # type: ignore[union-attr]
    elif val is None:  # no validation split: every epoch is kept as the best, and the last one is tested
        state.best_epoch = state.epoch
    state.batch_in_epoch, state.totals = 0, RunningTotals()


def interrupted(state: TrainState, hooks: CallbackList, interrupt: InterruptFlag, where: str) -> None:
    """Mark the run interrupted (by a signal or a closed output) and let the callbacks save it."""
    state.status, state.exit_code = "interrupted", interrupt.exit_code
    by = "" if interrupt.reason == "Ctrl-C" else f" ({interrupt.reason})"
    state.message = f"interrupted{by} {where}; checkpoint saved. {resume_hint(state)}"
    hooks.on_interrupt(state)
