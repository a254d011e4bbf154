"""Why training stops before ``train.epochs``, and the record of why it stopped at all.

Two callbacks may end training early; each says why in ``state.stop_reason``:

- :class:`EarlyStopping` (``train.early_stopping``, Keras' ``EarlyStopping``, Lightning's
  ``EarlyStopping``) watches ``val_loss`` or ``val_acc`` at each epoch end. It stops when the
  metric has not improved for ``patience`` epochs (an improvement beats the best by more than
  ``min_delta``, absolute or relative to the best; the first ``start_from_epoch`` epochs are a
  warm-up it does not watch), when it reaches the target ``stop_at``, or when it is not finite.
  Its count is rebuilt from the metrics history, so a resumed run carries on counting exactly.
- :class:`TimeBudget` (``train.max_time``, Lightning's ``max_time``) stops after the step in
  progress once this invocation has trained that long. The loop saves the step as an interrupt
  would (``checkpoints/last.npz`` mid-epoch), the final test follows, and ``--resume`` continues
  exactly, with a fresh budget.

Either way the best checkpoint is tested and the run is ``completed``. :func:`stop_record`
turns the state into the record ``run.json`` and ``summary.json`` keep: one of
:data:`STOP_REASONS`, with the numbers behind it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cnn_cli.config.sections import EarlyStoppingConfig
from cnn_cli.training.state import Callback, resume_hint

if TYPE_CHECKING:
    from cnn_cli.config.sections import Config
    from cnn_cli.training.state import TrainState

STOP_REASONS = ("epochs_done", "early_stop", "target_reached", "time_budget", "interrupted", "diverged", "failed")

# The config keys a resumed run may change (training.train's EXTENDABLE_KEYS): how and when to stop.
STOPPING_KEYS = (
    *(f"train.early_stopping.{field.name}" for field in dataclasses.fields(EarlyStoppingConfig)),
    "train.max_time",
)


def stop_record(state: TrainState) -> dict[str, Any]:
    """Why training stopped (one of :data:`STOP_REASONS`), where (epoch, step), and the numbers of the rule that fired."""
    if state.stop_reason is not None:
        record = dict(state.stop_reason)
    elif state.status == "interrupted":
        record = {"reason": "interrupted", "message": state.message}
    elif state.status == "failed":
        record = {"reason": "failed", "message": state.message}
    else:
        record = {"reason": "epochs_done", "message": f"all {state.config.train.epochs} epoch(s) trained"}
    return {"reason": record.pop("reason"), "epoch": state.epoch, "step": state.step, **record}


def stopping_callbacks(config: Config) -> list[Callback]:
    """The early-stopping and time-budget callbacks the config asks for (none by default)."""
    tc = config.train
    settings = tc.early_stopping
    if tc.early_stopping_patience is not None and settings.patience is None:
        settings = dataclasses.replace(settings, patience=tc.early_stopping_patience)
    early = [EarlyStopping(settings)] if settings.patience is not None or settings.stop_at is not None else []
    return [*early, *([TimeBudget(tc.max_time)] if tc.max_time is not None else [])]


def clock_text(seconds: float) -> str:
    """4000.5 -> "1:06:40" (whole seconds; "0:00:00.5" under one second, so a tiny budget still reads)."""
    if seconds < 1:
        return f"0:00:{seconds:04.1f}"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class EarlyStopping(Callback):
    """Stop when the monitored validation metric stops improving, reaches its target, or is not finite."""

    def __init__(self, settings: EarlyStoppingConfig) -> None:
        self.settings = settings
        self.monitor = settings.monitor
        self.mode = settings.mode if settings.mode != "auto" else ("min" if settings.monitor == "val_loss" else "max")
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0  # watched epochs since the best
        self._warned = False

    def improves(self, value: float, best: float) -> bool:
        """Whether ``value`` beats ``best`` by more than min_delta (absolute, or a fraction of |best|) in the monitor's direction."""
        s = self.settings
        margin = s.min_delta if s.min_delta_mode == "absolute" else s.min_delta * abs(best)
        return value < best - margin if self.mode == "min" else value > best + margin

    def watch(self, row: dict[str, Any]) -> None:
        """Count one finished epoch's metrics row towards patience (warm-up and non-finite values are not counted)."""
        value = row[self.monitor]
        if row["epoch"] <= self.settings.start_from_epoch or not math.isfinite(value):
            return
        if self.best is None or self.improves(value, self.best):
            self.best, self.best_epoch, self.wait = value, row["epoch"], 0
        else:
            self.wait += 1

    def on_fit_start(self, state: TrainState) -> None:
        self.best, self.best_epoch, self.wait = None, 0, 0
        for row in state.history:  # a resumed run: the count the earlier epochs left
            self.watch(row)

    def on_epoch_end(self, state: TrainState) -> None:
        if state.val is None:
            if not self._warned:
                state.log(f"note: early stopping watches {self.monitor}, but this run has no validation split; it will not stop early")
                self._warned = True
            return
        value = state.row[self.monitor]
        self.watch(state.row)
        if state.stop_training:  # another rule stopped this epoch first (the time budget)
            return
        if not math.isfinite(value):
            self._stop(state, "diverged", f"{self.monitor} is {value} after epoch {state.epoch}; stopping (the best checkpoint is tested)")
        elif self._target_reached(value):
            sign = ">=" if self.mode == "max" else "<="
            stop_at = self.settings.stop_at
            text = f"target reached after epoch {state.epoch}: {self.monitor} {value:.4f} {sign} {stop_at:g} (train.early_stopping.stop_at)"
            self._stop(state, "target_reached", text, value=value, stop_at=stop_at)
        elif self.settings.patience is not None and self.wait >= self.settings.patience:
            self._stop(state, "early_stop", self._patience_text(state), value=value, **self._patience_numbers())

    def _target_reached(self, value: float) -> bool:
        stop_at = self.settings.stop_at
        return stop_at is not None and (value >= stop_at if self.mode == "max" else value <= stop_at)

    def _patience_numbers(self) -> dict[str, Any]:
        s = self.settings
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.wait,
            "patience": s.patience,
            "min_delta": s.min_delta,
            "min_delta_mode": s.min_delta_mode,
            "start_from_epoch": s.start_from_epoch,
        }

    def _patience_text(self, state: TrainState) -> str:
        s = self.settings
        by = (
            ""
            if not s.min_delta
            else f" by more than {s.min_delta:g}"
            if s.min_delta_mode == "absolute"
            else f" by more than {s.min_delta:.2%}"
        )
        return (
            f"early stopping after epoch {state.epoch}: {self.monitor} has not improved on {self.best:.4f} (epoch {self.best_epoch}){by} "
            f"for {self.wait} epoch(s) (patience {s.patience})"
        )

    def _stop(self, state: TrainState, reason: str, text: str, **numbers: Any) -> None:
        state.log(text)
        state.stop_training = True
        state.stop_reason = {"reason": reason, "message": text, "monitor": self.monitor, "mode": self.mode, **numbers}
        if reason == "diverged":
            state.stop_reason["value"] = str(state.row[self.monitor])  # NaN and inf have no JSON spelling


class TimeBudget(Callback):
    """Stop once this invocation has trained for ``seconds`` (checked after every step and at each epoch end)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.start = 0.0

    def on_fit_start(self, state: TrainState) -> None:
        self.start = self.clock()

    def on_step_end(self, state: TrainState) -> None:
        self._check(state)

    def on_epoch_end(self, state: TrainState) -> None:
        self._check(state)

    def _check(self, state: TrainState) -> None:
        used = self.clock() - self.start
        if used < self.seconds or state.stop_training or state.status != "running":
            return
        boundary = state.batch_in_epoch in (0, state.steps_per_epoch)  # after a step that closes an epoch, or at its end
        finished = state.epoch + int(state.batch_in_epoch == state.steps_per_epoch)
        if boundary and finished >= state.config.train.epochs:
            return  # the last epoch is done: the budget cuts nothing short
        if boundary:
            where = f"after epoch {finished}"
        else:
            where = f"at step {state.step} (epoch {state.epoch + 1}, batch {state.batch_in_epoch}/{state.steps_per_epoch})"
        budget = clock_text(self.seconds)
        text = (
            f"stopped by the time budget (train.max_time {budget}) {where}; checkpoint saved. "
            f"{resume_hint(state)} (a resume gets a fresh budget of {budget})"
        )
        state.log(f"time budget of {budget} used up {where}; saving and testing the best checkpoint")
        state.stop_training = True
        state.stop_reason = {"reason": "time_budget", "message": text, "max_time_seconds": self.seconds, "used_seconds": round(used, 3)}
        state.message = text
