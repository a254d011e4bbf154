"""What the training loop carries from step to step.

The running totals, the train state, the epoch's data, the callback list and the
interrupt flag: everything both the loop and the callbacks read.
"""

from __future__ import annotations

import math
import shlex
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_cli import signals
from cnn_cli.errors import EXIT_INTERRUPTED
from cnn_cli.nn.optim import Optimizer
from cnn_cli.runs.evaluation import EvalResult, evaluate

if TYPE_CHECKING:
    from cnn_cli.config.sections import Config
    from cnn_cli.data import DataSplits
    from cnn_cli.model.network import Model
    from cnn_cli.runs.folders import RunPaths


HOOKS = ("on_fit_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_interrupt", "on_finish")


class Callback:
    """A hook for each moment of training (:data:`HOOKS`); every hook does nothing unless overridden."""

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_interrupt(self, state: TrainState) -> None: ...

    def on_finish(self, state: TrainState) -> None: ...


INTERRUPT_SIGNALS = signals.STOP_SIGNALS  # Ctrl-C, docker stop / Slurm / Kubernetes, a closed terminal (cnn_cli.signals)


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
    stop_training: bool = False  # set by a callback (early stopping, time budget): no more steps, the final test still runs
    stop_reason: dict[str, Any] | None = None  # why, set with stop_training or by a divergence (training.stopping.stop_record)
    # The latest batch, for callbacks that look at a step (gradient logging).
    inputs: np.ndarray | None = None
    labels: np.ndarray | None = None
    logits: np.ndarray | None = None
    # Set at each epoch end, before on_epoch_end.
    val: EvalResult | None = None
    improved: bool = False
    frozen: frozenset[str] = frozenset()  # parameter names the optimizer and weight decay leave alone (train.freeze)
    resume_args: tuple[str, ...] = ()  # what a resume must repeat besides the folder (--impl FILE)

    @property
    def row(self) -> dict[str, Any]:
        """The metrics row of the latest finished epoch."""
        return self.history[-1]

    def fail(self, message: str, exit_code: int = 1) -> None:
        self.status, self.exit_code, self.message = "failed", exit_code, message


def resume_hint(state: TrainState) -> str:
    """The one sentence that tells the user how to continue this run."""
    return f"Resume with: {shlex.join(['cnn', 'train', '--resume', str(state.paths.root), *state.resume_args])}"


class InterruptFlag:
    """Turns Ctrl-C, SIGTERM and SIGHUP into a flag the loop checks between steps, so a step is never cut in half.

    While it is entered it stands in for :mod:`cnn_cli.signals`' handlers (and tells that module of each signal).

    A second signal while the checkpoint is being saved is noted and ignored: the
    save finishes, then the run exits. :meth:`raise_now` switches to raising
    :class:`KeyboardInterrupt` at once, for work that saves nothing (the final test).
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.requested = False
        self.reason = "Ctrl-C"
        self.exit_code = EXIT_INTERRUPTED
        self.immediate = False
        self.on_signal: Callable[[bool], None] | None = None  # told of each signal (True: a repeat); may raise to stop code
        self._log = log
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            for signum in signals.stop_signals():
                if not signals.keeps_ignoring(signum):  # nohup's SIGHUP stays ignored
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
        repeated = self.requested and not self.immediate
        signals.note(signum)
        self.request(signals.describe(signum), signals.EXIT_BASE + signum)
        if self.on_signal is not None and not self.immediate:
            self.on_signal(repeated)  # cnn train --impl: a repeat stops the learner's code where it is
        if repeated:
            self._log("still saving; the run will stop as soon as its checkpoint is safe")
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
        self.augment = Augment(translate=a.translate, rotate=a.rotate, zoom=a.zoom) if (a.translate or a.rotate or a.zoom) else None
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
