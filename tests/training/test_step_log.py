"""steps.csv (StepLog): a row every log_every steps and at each epoch's end, the step's own loss, and exact on resume."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.runs.folders import STEP_COLUMNS
from cnn_cli.training.state import Callback
from cnn_cli.training.train import train
from tests.support.synthetic import make_idx_dataset, tiny_config

LOG_EVERY = 5


def quiet(_line: str) -> None:
    pass


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == STEP_COLUMNS
        return list(reader)


class Losses(Callback):
    """Every step's loss, learning rate and running totals, as the loop left them."""

    def __init__(self) -> None:
        self.by_step: dict[int, tuple[float, float, float, float]] = {}
        self.steps_per_epoch = 0

    def on_step_end(self, state) -> None:
        self.steps_per_epoch = state.steps_per_epoch
        totals = state.totals
        self.by_step[state.step] = (state.loss, state.lr, totals.loss_sum / totals.seen, totals.correct / totals.seen)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    """600 images, 16 steps an epoch, the lr halved each epoch (a step schedule)."""
    return tiny_config(make_idx_dataset(tmp_path_factory.mktemp("steps")), epochs=2, log_every=LOG_EVERY)


def test_rows_every_log_every_steps_and_at_each_epoch_end(config: dict, tmp_path: Path) -> None:
    seen = Losses()
    result = train(config_from_dict(config), run_dir=tmp_path / "run", log=quiet, callbacks=[seen])
    assert result.status == "completed"
    rows = read_rows(result.run.steps)
    steps_per_epoch = seen.steps_per_epoch
    expected = sorted({s for s in seen.by_step if s % LOG_EVERY == 0} | {steps_per_epoch, 2 * steps_per_epoch})
    assert [int(row["step"]) for row in rows] == expected
    for row in rows:
        loss, lr, epoch_loss, epoch_acc = seen.by_step[int(row["step"])]
        assert float(row["loss"]) == pytest.approx(loss, rel=1e-6)
        assert float(row["lr"]) == lr
        assert float(row["epoch_loss"]) == pytest.approx(epoch_loss) and float(row["epoch_acc"]) == pytest.approx(epoch_acc)
        assert int(row["epoch"]) == (1 if int(row["step"]) <= steps_per_epoch else 2)
    assert {float(row["lr"]) for row in rows} == {0.01, 0.005}  # the step schedule's change is in the log
    assert all(math.isfinite(float(row["loss"])) for row in rows)


def test_an_interrupted_and_resumed_run_logs_the_same_rows(config: dict, tmp_path: Path) -> None:
    whole = train(config_from_dict(config), run_dir=tmp_path / "whole", log=quiet)
    stopped = train(config_from_dict(config), run_dir=tmp_path / "cut", log=quiet, stop_after_steps=LOG_EVERY + 2)
    assert stopped.status == "interrupted"
    with stopped.run.steps.open("a") as handle:
        handle.write("1,7,0.01,0.5")  # a row a crash cut short: dropped on resume
    resumed = train(None, resume=stopped.run.root, log=quiet)
    assert resumed.status == "completed"
    assert read_rows(resumed.run.steps) == read_rows(whole.run.steps)
