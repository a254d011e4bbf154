"""Progress as lines, for an output that is no terminal (a log file, ``nohup``, CI).

tqdm's bar redraws one line in place, which a log file cannot show; without a
terminal ``cnn train`` used to print nothing until an epoch ended. :class:`ProgressLines`
prints one line every ``train.progress_seconds`` (30 s by default) instead::

    progress: epoch 2/8  step 1234/6880  batch 374/860  loss 0.0712  2043 img/s  elapsed 0:00:30  ETA 0:02:41

``loss`` is the running mean over the epoch so far (what the epoch's line will
report), ``img/s`` the speed since the previous line, and ``ETA`` the steps still
to train at the pace of this invocation so far (validation included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cnn_cli.training.state import Callback
from cnn_cli.training.stopping import clock_text

if TYPE_CHECKING:
    from cnn_cli.training.state import TrainState


class ProgressLines(Callback):
    """One progress line every ``seconds`` (default: the config's ``train.progress_seconds``), checked after each step."""

    def __init__(self, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.interval = 0.0
        self.start = self.last = 0.0
        self.first_step = 0
        self.images = 0  # images trained since the previous line

    def on_fit_start(self, state: TrainState) -> None:
        self.interval = self.seconds if self.seconds is not None else state.config.train.progress_seconds
        self.start = self.last = self.clock()
        self.first_step, self.images = state.step, 0

    def on_step_end(self, state: TrainState) -> None:
        self.images += 0 if state.labels is None else len(state.labels)
        now = self.clock()
        if now - self.last < self.interval or state.status != "running":
            return
        state.log(self.line(state, now))
        self.last, self.images = now, 0

    def line(self, state: TrainState, now: float) -> str:
        """The progress line at time ``now``."""
        epochs, per_epoch = state.config.train.epochs, state.steps_per_epoch
        total = epochs * per_epoch
        totals = state.totals
        loss = totals.loss_sum / totals.seen if totals.seen else float("nan")
        speed = self.images / max(now - self.last, 1e-9)
        elapsed = now - self.start
        done = state.step - self.first_step
        eta = clock_text((total - state.step) * elapsed / done) if done else "?"
        return (
            f"progress: epoch {state.epoch + 1}/{epochs}  step {state.step}/{total}  batch {state.batch_in_epoch}/{per_epoch}  "
            f"loss {loss:.4f}  {speed:.0f} img/s  elapsed {clock_text(elapsed)}  ETA {eta}"
        )
