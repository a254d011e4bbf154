"""Early stopping, target values and the time budget, through ``cnn train``; run.json and summary.json say why training stopped."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cnn_cli.config.sections import EarlyStoppingConfig
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.runs.folders import read_metrics
from cnn_cli.training.stopping import STOP_REASONS, EarlyStopping, TimeBudget, clock_text
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

TIMEOUT = 120  # seconds for one tiny run through the CLI on a busy machine
STEPS_PER_EPOCH = 16  # 500 training images in batches of 32


@pytest.fixture(scope="module")
def idx_paths(tmp_path_factory) -> dict[str, str]:
    return make_idx_dataset(tmp_path_factory.mktemp("idx"))


def cnn_train(tmp_path: Path, config: dict, name: str, *args: str):
    """``cnn train --config FILE --run-dir tmp/NAME ARGS``; the outcome and the run folder."""
    path = write_config(tmp_path / f"{name}.yaml", config)
    outcome = invoke_cli(["train", "--config", path, "--run-dir", tmp_path / name, *args], timeout=TIMEOUT)
    return outcome, tmp_path / name


def records(run: Path) -> tuple[dict, dict]:
    """run.json's and summary.json's ``stopped``."""
    info = json.loads((run / "run.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert info["invocations"][-1]["stopped"] == info["stopped"]
    return info["stopped"], summary["stopped"]


def stuck(idx_paths: dict[str, str], **early_stopping) -> dict:
    """A config whose learning rate is too small for anything to improve by 0.01."""
    config = tiny_config(idx_paths, epochs=8)
    config["optimizer"]["lr"] = 1e-9
    config["train"]["early_stopping"] = {"min_delta": 0.01, **early_stopping}
    return config


def test_patience_on_val_loss_stops_and_records_the_numbers(idx_paths, tmp_path):
    outcome, run = cnn_train(tmp_path, stuck(idx_paths, monitor="val_loss", patience=2), "loss")
    assert outcome.code == 0, outcome.output
    assert [row["epoch"] for row in read_metrics(run / "metrics.csv")] == [1, 2, 3]
    assert "early stopping after epoch 3: val_loss has not improved on" in outcome.stdout
    in_run, in_summary = records(run)
    assert in_run == in_summary
    assert in_run["reason"] == "early_stop" and in_run["epoch"] == 3 and in_run["step"] == 3 * STEPS_PER_EPOCH
    assert (in_run["monitor"], in_run["mode"], in_run["best_epoch"], in_run["patience"]) == ("val_loss", "min", 1, 2)
    assert in_run["epochs_without_improvement"] == 2 and in_run["min_delta"] == 0.01
    assert in_run["best"] == pytest.approx(read_metrics(run / "metrics.csv")[0]["val_loss"])


def test_start_from_epoch_leaves_the_warm_up_unwatched(idx_paths, tmp_path):
    outcome, run = cnn_train(tmp_path, stuck(idx_paths, patience=1, start_from_epoch=2), "warm")
    assert outcome.code == 0, outcome.output
    stopped, _ = records(run)
    assert (stopped["reason"], stopped["epoch"], stopped["best_epoch"], stopped["mode"]) == ("early_stop", 4, 3, "max")


def test_target_value_stops_at_once(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=6, early_stopping={"monitor": "val_acc", "stop_at": 0.5})
    outcome, run = cnn_train(tmp_path, config, "target")
    assert outcome.code == 0, outcome.output
    rows = read_metrics(run / "metrics.csv")
    assert len(rows) == 1 and rows[0]["val_acc"] >= 0.5  # the synthetic classes are learnt in one epoch
    stopped, _ = records(run)
    assert stopped["reason"] == "target_reached" and stopped["stop_at"] == 0.5 and stopped["value"] == rows[0]["val_acc"]
    assert "target reached after epoch 1: val_acc" in outcome.stdout


def test_older_patience_key_still_works_and_may_not_disagree(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=8, early_stopping_patience=1)
    config["optimizer"]["lr"] = 1e-9  # nothing changes: the best stays epoch 1's
    outcome, run = cnn_train(tmp_path, config, "old")
    assert outcome.code == 0, outcome.output
    stopped, _ = records(run)
    assert (stopped["reason"], stopped["monitor"], stopped["patience"], stopped["epoch"]) == ("early_stop", "val_acc", 1, 2)
    config = tiny_config(idx_paths, early_stopping_patience=1, early_stopping={"patience": 3})
    outcome, _ = cnn_train(tmp_path, config, "both")
    error_line(outcome, EXIT_BAD_INPUT, "train.early_stopping_patience: 1 disagrees with train.early_stopping.patience: 3")


def test_all_epochs_done_is_a_reason_too(idx_paths, tmp_path):
    outcome, run = cnn_train(tmp_path, tiny_config(idx_paths, epochs=1), "done")
    assert outcome.code == 0, outcome.output
    stopped, _ = records(run)
    assert stopped == {"reason": "epochs_done", "epoch": 1, "step": STEPS_PER_EPOCH, "message": "all 1 epoch(s) trained"}


def test_divergence_is_recorded_in_run_json(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=2)
    config["optimizer"] = {"name": "sgd", "lr": 1e6}
    outcome, run = cnn_train(tmp_path, config, "boom")
    assert outcome.code == 1
    stopped = json.loads((run / "run.json").read_text())["stopped"]
    assert stopped["reason"] == "diverged" and "diverged at step" in stopped["message"]


def test_max_time_stops_after_a_step_saves_tests_and_resumes_exactly(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=2)
    full, full_run = cnn_train(tmp_path, config, "full")
    assert full.code == 0, full.output
    config["train"]["max_time"] = 1e-6  # used up by the first step of every invocation
    first, run = cnn_train(tmp_path, config, "budget")
    assert first.code == 0, first.output
    assert "time budget of 0:00:00.0 used up at step 1 (epoch 1, batch 1/16)" in first.stdout
    assert "a resume gets a fresh budget" in first.stdout
    stopped, in_summary = records(run)
    assert stopped["reason"] == "time_budget" and stopped["step"] == 1 and stopped["max_time_seconds"] == 1e-6
    assert json.loads((run / "run.json").read_text())["status"] == "completed"  # the best checkpoint was tested
    ckpt, _ = load_checkpoint(run / "checkpoints" / "last.npz")
    assert (ckpt.epoch, ckpt.step, ckpt.batch_in_epoch) == (0, 1, 1)
    second = invoke_cli(["train", "--resume", run], timeout=TIMEOUT)  # the same budget again, fresh
    assert second.code == 0 and "used up at step 2 (epoch 1, batch 2/16)" in second.stdout, second.output
    last = invoke_cli(["train", "--resume", run, "--set", "train.max_time=null"], timeout=TIMEOUT)
    assert last.code == 0, last.output
    info = json.loads((run / "run.json").read_text())
    assert [i["stopped"]["reason"] for i in info["invocations"]] == ["time_budget", "time_budget", "epochs_done"]
    expected, got = load_checkpoint(full_run / "checkpoints" / "last.npz")[0], load_checkpoint(run / "checkpoints" / "last.npz")[0]
    for name in expected.params:
        np.testing.assert_array_equal(expected.params[name], got.params[name], err_msg=name)


def test_max_time_at_an_epoch_end_stops_before_the_next_epoch(idx_paths, tmp_path):
    clock = iter([0.0, *[1.0] * STEPS_PER_EPOCH, 100.0]).__next__  # fit start, the steps of epoch 1, its end
    budget = TimeBudget(10.0, clock=clock)
    state = SimpleNamespace(
        epoch=0,
        step=0,
        batch_in_epoch=0,
        steps_per_epoch=STEPS_PER_EPOCH,
        status="running",
        stop_training=False,
        stop_reason=None,
        resume_args=(),
    )
    state.config = SimpleNamespace(train=SimpleNamespace(epochs=3))
    state.paths, state.log, state.message = SimpleNamespace(root=tmp_path), lambda line: None, ""
    budget.on_fit_start(state)
    for _ in range(STEPS_PER_EPOCH):
        state.step += 1
        state.batch_in_epoch += 1
        budget.on_step_end(state)
    assert not state.stop_training
    state.epoch, state.batch_in_epoch = 1, 0
    budget.on_epoch_end(state)
    assert state.stop_training and state.stop_reason["reason"] == "time_budget" and "after epoch 1" in state.message


@pytest.mark.parametrize("value, seconds", [("00:10:00", 600.0), ("1:30:00", 5400.0), ("90", 90.0), ("'00:00:01.5'", 1.5)])
def test_max_time_reads_seconds_or_a_clock(idx_paths, tmp_path, value, seconds):
    path = write_config(tmp_path / "c.yaml", tiny_config(idx_paths))
    outcome = invoke_cli(["train", "--config", path, "--set", f"train.max_time={value}", "--print-config"], timeout=TIMEOUT)
    assert outcome.code == 0, outcome.output
    assert f"max_time: {seconds}" in outcome.stdout


@pytest.mark.parametrize("value", ["0", "-5", "1:61", "soon", "true"])
def test_max_time_refuses_what_is_no_duration(idx_paths, tmp_path, value):
    path = write_config(tmp_path / "c.yaml", tiny_config(idx_paths))
    outcome = invoke_cli(["train", "--config", path, "--set", f"train.max_time={value}"], timeout=TIMEOUT)
    error_line(outcome, EXIT_BAD_INPUT, "train.max_time: expected a number of seconds > 0 or a duration like", "(HH:MM:SS)")


def row(epoch: int, value: float, monitor: str = "val_loss") -> dict:
    return {"epoch": epoch, monitor: value}


@pytest.mark.parametrize(
    "settings, best, value, improves",
    [
        (EarlyStoppingConfig(monitor="val_loss"), 1.0, 0.999, True),
        (EarlyStoppingConfig(monitor="val_loss"), 1.0, 1.0, False),
        (EarlyStoppingConfig(monitor="val_loss", min_delta=0.1), 1.0, 0.91, False),
        (EarlyStoppingConfig(monitor="val_loss", min_delta=0.1), 1.0, 0.89, True),
        (EarlyStoppingConfig(monitor="val_loss", min_delta=0.1, min_delta_mode="relative"), 2.0, 1.81, False),  # needs < 1.8
        (EarlyStoppingConfig(monitor="val_loss", min_delta=0.1, min_delta_mode="relative"), 2.0, 1.79, True),
        (EarlyStoppingConfig(monitor="val_acc", min_delta=0.1, min_delta_mode="relative"), 0.5, 0.54, False),  # needs > 0.55
        (EarlyStoppingConfig(monitor="val_acc", min_delta=0.1, min_delta_mode="relative"), 0.5, 0.56, True),
        (EarlyStoppingConfig(monitor="val_acc", mode="min"), 0.5, 0.4, True),  # an explicit mode wins over the monitor's
    ],
)
def test_improvement_by_min_delta(settings, best, value, improves):
    assert EarlyStopping(settings).improves(value, best) is improves


def test_patience_count_is_rebuilt_from_the_history_on_resume():
    rule = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=3, start_from_epoch=1))
    history = [row(1, 0.1), row(2, 0.9), row(3, 0.8), row(4, float("nan")), row(5, 0.85)]
    rule.on_fit_start(SimpleNamespace(history=history))
    assert (rule.best, rule.best_epoch, rule.wait) == (0.8, 3, 1)  # epoch 1 is warm-up, NaN is not counted


def test_a_non_finite_monitored_value_stops_the_run():
    lines: list[str] = []
    state = SimpleNamespace(
        history=[row(1, 0.5), row(2, float("nan"))], val=object(), epoch=2, stop_training=False, stop_reason=None, log=lines.append
    )
    state.row = state.history[-1]
    rule = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=5))
    rule.on_fit_start(SimpleNamespace(history=state.history[:1]))
    rule.on_epoch_end(state)
    assert state.stop_training and state.stop_reason["reason"] == "diverged" and state.stop_reason["value"] == "nan"
    assert lines == ["val_loss is nan after epoch 2; stopping (the best checkpoint is tested)"]


def test_every_reason_is_named_once():
    assert len(set(STOP_REASONS)) == len(STOP_REASONS) == 7
    assert clock_text(4000.4) == "1:06:40" and clock_text(0.25) == "0:00:00.2"
