"""steps.csv: the training loss between epochs, for per-step curves (``cnn serve``'s run page draws them live).

metrics.csv has one row per finished epoch; a run of a few long epochs shows little there
while it trains. :class:`StepLog` appends one row every ``train.log_every`` steps and at each
epoch's last step, with the columns of :data:`cnn_cli.runs.folders.STEP_COLUMNS`:

- ``loss``: the loss of that step's batch (noisy; a reader smooths it);
- ``epoch_loss``, ``epoch_acc``: the running means over the epoch so far, as the progress bar shows them;
- ``lr``: the learning rate of that step, so that a schedule's changes can be marked.

Each row is appended as one short write and the file is never rewritten while training,
so a reader polling it sees every row as soon as it is written (a half-written last
line has no newline yet, and a reader drops it). On resume, rows after the checkpoint's
step are dropped, since those steps are trained (and logged) again.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from cnn_cli.bounded_read import RECORD_BYTES, read_text
from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import STEP_COLUMNS, write_text
from cnn_cli.training.state import Callback

if TYPE_CHECKING:
    from pathlib import Path

    from cnn_cli.training.state import TrainState


class StepLog(Callback):
    """Append a row of ``steps.csv`` every ``log_every`` steps and at the last step of each epoch."""

    def __init__(self, log_every: int) -> None:
        self.log_every = log_every

    def on_fit_start(self, state: TrainState) -> None:
        path = state.paths.steps
        kept = [line for line in _rows(path) if int(line.split(",", 2)[1]) <= state.step] if state.step > 0 else []
        write_text(path, ",".join(STEP_COLUMNS) + "\n" + "".join(kept))

    def on_step_end(self, state: TrainState) -> None:
        if state.status != "running" or (state.step % self.log_every != 0 and state.batch_in_epoch != state.steps_per_epoch):
            return  # a failed step (non-finite loss) took no step: nothing new to log
        totals = state.totals
        values = (
            state.epoch + 1,
            state.step,
            state.lr,
            state.loss,
            totals.loss_sum / max(totals.seen, 1),
            totals.correct / max(totals.seen, 1),
        )
        line = ",".join(repr(float(v)) if isinstance(v, float) else str(v) for v in values) + "\n"
        with state.paths.steps.open("a", encoding="utf-8", newline="") as handle:
            handle.write(line)


def _rows(path: Path) -> list[str]:
    """The complete data lines of an existing steps.csv (a line cut short by a crash is dropped)."""
    try:
        text = read_text(path, RECORD_BYTES, "steps file")
    except CnnError:
        return []
    lines = []
    for row in csv.reader(io.StringIO(text[: text.rfind("\n") + 1])):
        if len(row) == len(STEP_COLUMNS) and row[1].isdigit() and row[0] != STEP_COLUMNS[0]:
            lines.append(",".join(row) + "\n")
    return lines
