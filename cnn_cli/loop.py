"""The training loop: epochs -> batches -> one step, with hooks for everything else.

:func:`fit` takes the steps and closes each epoch (validation, the metrics row,
the best epoch). Everything around it, such as the records in the run folder,
checkpoints, the progress bar, early stopping and divergence, is a
:class:`cnn_cli.callbacks.Callback` that reads and updates the :class:`TrainState`.
"""

from __future__ import annotations

import math
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_cli.callbacks import HOOKS, Callback
from cnn_cli.errors import EXIT_INTERRUPTED
from cnn_cli.evaluation import EvalResult, evaluate, predictions
from cnn_cli.optim import Optimizer, apply_update, learning_rate

if TYPE_CHECKING:
    from cnn_cli.config import Config
    from cnn_cli.data import DataSplits
    from cnn_cli.model import Model
    from cnn_cli.runs import RunPaths

INTERRUPT_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # Ctrl-C, docker stop / Slurm / Kubernetes, a closed terminal


@dataclass
class RunningTotals:
    """Sums over the batches of the epoch in progress (kept in a checkpoint saved mid-epoch)."""

    loss_sum: float = 0.0
    correct: float = 0.0
    seen: float = 0.0
    seconds: float = 0.0

    def as_list(self) -> list[float]:
        """The order a checkpoint stores them in (``meta/running``)."""
        return [self.loss_sum, self.correct, self.seen, self.seconds]

    @classmethod
    def from_list(cls, values: Sequence[float]) -> RunningTotals:
        loss_sum, correct, seen, seconds = values
        return cls(loss_sum, correct, seen, seconds)


@dataclass
class TrainState:
    """Everything the loop and its callbacks share. ``epoch`` counts finished epochs."""

    config: Config
    model: Model
    optimizer: Optimizer
    paths: RunPaths
    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    lr: float = 0.0
    loss: float = math.nan  # of the latest step
    totals: RunningTotals = field(default_factory=RunningTotals)
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per finished epoch
    best_val_acc: float = -1.0
    best_epoch: int = 0
    status: str = "running"  # running | completed | interrupted | failed
    steps_per_epoch: int = 0
    exit_code: int = 0
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    data_info: dict[str, Any] = field(default_factory=dict)  # normalisation and classes, stored in checkpoints
    log: Callable[[str], None] = print
    stop_training: bool = False  # set by a callback (early stopping): no more epochs, the final test still runs
    # The latest batch, for callbacks that look at a step (gradient logging).
    inputs: np.ndarray | None = None
    labels: np.ndarray | None = None
    logits: np.ndarray | None = None
    # Set at each epoch end, before on_epoch_end.
    val: EvalResult | None = None
    improved: bool = False
    frozen: frozenset[str] = frozenset()  # parameter names the optimizer and weight decay leave alone (train.freeze)

    @property
    def row(self) -> dict[str, Any]:
        """The metrics row of the latest finished epoch."""
        return self.history[-1]

    def fail(self, message: str, exit_code: int = 1) -> None:
        self.status, self.exit_code, self.message = "failed", exit_code, message


def resume_hint(state: TrainState) -> str:
    """The one sentence that tells the user how to continue this run."""
    return f"Resume with: cnn train --resume {shlex.quote(str(state.paths.root))}"


class InterruptFlag:
    """Turns Ctrl-C, SIGTERM and SIGHUP into a flag the loop checks between steps, so a step is never cut in half.

    A second signal while the checkpoint is being saved is noted and ignored: the
    save finishes, then the run exits. :meth:`raise_now` switches to raising
    :class:`KeyboardInterrupt` at once, for work that saves nothing (the final test).
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.requested = False
        self.reason = "Ctrl-C"
        self.exit_code = EXIT_INTERRUPTED
        self.immediate = False
        self._log = log
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            for name in INTERRUPT_SIGNALS:
                signum = getattr(signal, name, None)
                if signum is not None:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def request(self, reason: str, exit_code: int) -> None:
        """Stop at the next step boundary (first request wins: it names the cause)."""
        if not self.requested:
            self.requested, self.reason, self.exit_code = True, reason, exit_code

    def raise_now(self) -> None:
        """From now on a signal raises KeyboardInterrupt; one that already came raises it here."""
        self.immediate = True
        if self.requested:
            raise KeyboardInterrupt

    def _handle(self, signum, frame) -> None:
        if self.requested and not self.immediate:
            self._log("still saving; the run will stop as soon as its checkpoint is safe")
        self.request(signal.Signals(signum).name if signum != signal.SIGINT else "Ctrl-C", 128 + signum)
        if self.immediate:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


class EpochData:
    """The training batches of each epoch and the validation split, as the config says."""

    def __init__(self, config: Config, splits: DataSplits) -> None:
        from cnn_cli.data import Augment, num_batches

        self.config, self.splits = config, splits
        tc, a = config.train, config.data.augment
        self.augment = Augment(translate=a.translate, rotate=a.rotate) if (a.translate or a.rotate) else None
        self.steps_per_epoch = num_batches(len(splits.train.labels), tc.batch_size, tc.drop_last)

    def batches(self, epoch: int, start_batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from cnn_cli.data import iterate_batches

        tc, train = self.config.train, self.splits.train
        return iterate_batches(
            train.images,
            train.labels,
            tc.batch_size,
            seed=tc.seed,
            epoch=epoch,
            shuffle=True,
            drop_last=tc.drop_last,
            augment=self.augment,
            start_batch=start_batch,
            normalize=self.splits.table,
        )

    def validate(self, model: Model) -> EvalResult | None:
        val = self.splits.val
        return evaluate(model, val.images, val.labels, self.config.train.eval_batch_size) if len(val.labels) else None


class CallbackList(Callback):
    """Calls each hook on every callback, in order (its hook methods are made below, one per hook of :class:`Callback`)."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)


def _broadcast(hook: str) -> Callable[[CallbackList, TrainState], None]:
    def call_every_callback(self: CallbackList, state: TrainState) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(state)

    call_every_callback.__name__ = hook
    return call_every_callback


for _hook in HOOKS:
    setattr(CallbackList, _hook, _broadcast(_hook))


def fit(
    state: TrainState,
    data: EpochData,
    hooks: CallbackList,
    interrupt: InterruptFlag,
    stop_after_steps: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Train until the configured epochs are done, a callback stops or fails the run, or a signal interrupts it.

    Leaves ``state.status`` ``running`` when the final test should follow.
    ``stop_after_steps`` behaves as if Ctrl-C came after that many steps (tests); ``should_stop`` is
    asked after every step, and True acts like Ctrl-C (a sweep's trial, stopped from the client).
    """
    hooks.on_fit_start(state)
    while state.epoch < state.config.train.epochs:
        hooks.on_epoch_start(state)
        state.lr = state.config.optimizer.lr
        tick = time.perf_counter()
        for x, y in data.batches(state.epoch, state.batch_in_epoch):
            train_step(state, x, y)
            hooks.on_step_end(state)
            if (stop_after_steps is not None and state.step >= stop_after_steps) or (should_stop is not None and should_stop()):
                interrupt.request("Ctrl-C", EXIT_INTERRUPTED)
            if interrupt.requested or state.status != "running":
                break
        state.totals.seconds += time.perf_counter() - tick
        if state.status != "running":
            return
        if interrupt.requested and state.batch_in_epoch < state.steps_per_epoch:
            return interrupted(state, hooks, interrupt, f"at step {state.step}")
        end_epoch(state, data)
        hooks.on_epoch_end(state)
        if state.stop_training:
            return
        if interrupt.requested:
            return interrupted(state, hooks, interrupt, f"after epoch {state.epoch}")


def train_step(state: TrainState, x: np.ndarray, y: np.ndarray) -> None:
    """One optimizer step on batch (x, y). A step whose loss is not finite is not applied (callbacks report it)."""
    model, optimizer, oc, sc = state.model, state.optimizer, state.config.optimizer, state.config.schedule
    lr = learning_rate(
        oc.lr, state.step, state.steps_per_epoch, state.config.train.epochs, sc.name, sc.step_size, sc.gamma, sc.min_lr, sc.warmup_epochs
    )
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
    state.batch_in_epoch, state.totals = 0, RunningTotals()


def interrupted(state: TrainState, hooks: CallbackList, interrupt: InterruptFlag, where: str) -> None:
    """Mark the run interrupted (by a signal or a closed output) and let the callbacks save it."""
    state.status, state.exit_code = "interrupted", interrupt.exit_code
    by = "" if interrupt.reason == "Ctrl-C" else f" ({interrupt.reason})"
    state.message = f"interrupted{by} {where}; checkpoint saved. {resume_hint(state)}"
    hooks.on_interrupt(state)
