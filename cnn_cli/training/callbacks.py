"""Callbacks of the training loop, one job each (Keras' callbacks, Lightning's hooks).

:func:`cnn_cli.training.loop.fit` calls every callback's hooks in order:

- ``on_fit_start(state)``: once, before the first step (also when resuming);
- ``on_epoch_start(state)``: before the first batch of each epoch;
- ``on_step_end(state)``: after each optimizer step (``state.loss``, ``state.logits`` hold that batch's);
- ``on_epoch_end(state)``: after validation; ``state.row`` is the new metrics row;
- ``on_interrupt(state)``: when Ctrl-C, SIGTERM, SIGHUP or a closed output stops the run, or a
  callback stops it mid-epoch (``train.max_time``: the state is then still ``running``, the final test follows);
- ``on_finish(state)``: once at the very end, whatever the status.

The order at an epoch end is the commit of that epoch: ``gradients.csv`` (its rows
after the checkpoint's step are dropped on resume), then the checkpoints, ``last.npz``
last of them: it is the commit point and holds the metrics history, from which
``metrics.csv`` is written next (and rewritten on resume). A crash anywhere in between
resumes to exactly the records an uninterrupted run would have.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_cli.nn.optim import l2_penalty
from cnn_cli.nn.thread_policy import adapt_to_load, set_threads, user_chose_threads
from cnn_cli.nn.threads import usable_cpus
from cnn_cli.runs.checkpoint import OPTIMIZER_PREFIX, Checkpoint, nonfinite_entry, save_checkpoint
from cnn_cli.runs.folders import point_latest, read_json_record, run_record, write_json, write_metrics
from cnn_cli.runs.liveness import this_process
from cnn_cli.runs.rng_state import model_rng_state

if TYPE_CHECKING:
    from pathlib import Path

    from cnn_cli.training.state import TrainState
from cnn_cli.training.state import Callback
from cnn_cli.training.stopping import stop_record


def now_text() -> str:
    return datetime.now().isoformat(timespec="seconds")


class RunRecord(Callback):
    """``run.json``: the status of the run and every invocation of it (the first command, then each resume).

    The process training it (PID, host) is recorded at the top and in its invocation, so that a
    reader can tell a run still running from one whose process was killed (cnn_cli.runs.liveness).
    """

    def __init__(self, command_line: list[str], resumed: bool, extra: dict[str, Any] | None = None) -> None:
        self.command_line, self.resumed, self.extra = command_line, resumed, extra or {}  # extra: keys of a new run's record
        self.record: dict[str, Any] = {}

    def on_fit_start(self, state: TrainState) -> None:
        started = now_text()
        process = this_process()
        invocation = {"command": self.command_line, "started": started, "ended": None, "status": "running", **process}
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
        self.record.update(process)
        write_json(state.paths.run_info, self.record)

    def on_finish(self, state: TrainState) -> None:
        ended = now_text()
        outcome = {
            "status": state.status,
            "ended": ended,
            "stopped": stop_record(state),  # why training stopped: training.stopping.STOP_REASONS
            **({"message": state.message} if state.message else {}),
        }
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
            buffers=state.model.buffers,
        )

    def on_fit_start(self, state: TrainState) -> None:
        if not state.paths.last.is_file():  # a new run: even a crash in its first epoch leaves something to resume
            save_checkpoint(state.paths.last, self.checkpoint(state))

    def on_epoch_end(self, state: TrainState) -> None:
        ckpt = self.checkpoint(state)
        bad = nonfinite_entry(ckpt)  # the loader's own check, before the commit
        if bad is not None:
            state.history.pop()  # this epoch is not committed
            diverged(state, f"{bad} contains NaN or infinite values at the end of epoch {state.epoch}", applied=True)
            return
        if state.config.train.save_every_epoch:
            save_checkpoint(state.paths.epoch_checkpoint(state.epoch), ckpt)
        if state.improved or state.val is None:
            save_checkpoint(state.paths.best, ckpt)
        save_checkpoint(state.paths.last, ckpt)  # the commit point: a crash before it re-runs this epoch

    def on_interrupt(self, state: TrainState) -> None:
        if state.batch_in_epoch > 0:  # mid-epoch; at an epoch boundary last.npz is already current
            ckpt = self.checkpoint(state)
            if nonfinite_entry(ckpt) is None:  # else the last good checkpoint stays (the guard has failed the run)
                save_checkpoint(state.paths.last, ckpt)


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
        val = f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}" if state.val is not None else "no validation"
        text = (
            f"epoch {row['epoch']}/{state.config.train.epochs}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}  "
            f"{val}  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  {row['seconds']:.1f}s"
        )
        state.log(text + (f"  l2 {penalty:.4f}" if penalty else ""))


class ThreadPolicy(Callback):
    """Fewer threads when other programs keep the cores busy (``cnn_cli.nn.thread_policy``), chosen once per run.

    The thread count changes how OpenBLAS rounds a product, so it is chosen when the run
    starts, kept for the whole run and recorded in run.json (``threads``); a resume runs on
    the recorded count, so it continues the run exactly. A count the user set
    (``CNN_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``) is never changed or recorded.
    """

    def __init__(self, resumed: bool, record: dict[str, Any]) -> None:
        self.resumed = resumed
        self.record = record  # the keys RunRecord writes into a new run's run.json (it runs after this one)

    def on_fit_start(self, state: TrainState) -> None:
        if user_chose_threads():
            return
        recorded = (read_json_record(state.paths.run_info) or {}).get("threads") if self.resumed else None
        if self.resumed and isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:
            count = min(recorded, usable_cpus())
            set_threads(count)
            if count < usable_cpus():
                state.log(f"threads: {count}, as the run started with (its arithmetic stays the same)")
            return
        chosen = adapt_to_load()
        if chosen is None:
            return
        count, others = chosen
        if count < usable_cpus():
            state.log(
                f"threads: {count} ({others:g} other running process(es) on {usable_cpus()} cores), kept for the whole run "
                "(set CNN_NUM_THREADS to choose)"
            )
        self.record["threads"] = count


class DivergenceGuard(Callback):
    """Fail the run at the first non-finite loss, or weights or optimizer state that are no longer finite (Adam's
    second moment overflows while the loss is still finite); the last good checkpoint stays as it is."""

    def on_step_end(self, state: TrainState) -> None:
        if not math.isfinite(state.loss):
            diverged(state, f"loss is {state.loss}", applied=False)
            return
        bad = first_nonfinite(state)
        if bad is not None:
            diverged(state, f"{bad} is no longer finite (the loss was {state.loss:.4g})", applied=True)


def first_nonfinite(state: TrainState) -> str | None:
    """The first parameter or optimizer array holding NaN or inf, or None: one sum per array (NaN and inf propagate)."""
    arrays = {**state.model.params, **{OPTIMIZER_PREFIX + k: v for k, v in state.optimizer.state_arrays().items()}}
    with np.errstate(over="ignore", invalid="ignore"):
        return next((name for name, value in arrays.items() if not math.isfinite(float(np.sum(value)))), None)


def diverged(state: TrainState, why: str, applied: bool) -> None:
    """Fail the run as diverged, saying which checkpoint is kept; nothing after it is saved.

    ``applied``: the failing step's update was applied (and counted), so it is ``state.step``, not the next.
    """
    step, batch = (state.step, state.batch_in_epoch) if applied else (state.step + 1, state.batch_in_epoch + 1)
    last = state.paths.last
    if state.epoch == 0:
        kept = f"no epoch had finished; {last} holds the run's starting point" if last.is_file() else "no checkpoint was written"
    else:
        kept = f"the last good checkpoint is kept: {last}"
    state.fail(f"training diverged at step {step} (epoch {state.epoch + 1}, batch {batch}): {why}; {kept}")
    state.stop_reason = {"reason": "diverged", "message": state.message, "loss": str(state.loss)}


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
