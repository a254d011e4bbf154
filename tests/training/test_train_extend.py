"""``cnn train --resume RUN --set train.epochs=N`` extends a finished or interrupted run (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.errors import ConfigError
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.runs.folders import RunPaths, read_metrics
from cnn_cli.training.train import EXTENDABLE_KEYS, train
from tests.support.cli import error_line, invoke_cli, run_cli
from tests.support.synthetic import make_idx_dataset, tiny_config

TIMING = ("seconds", "images_per_s")


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    """300 images, 8 steps an epoch; a step schedule (the learning rate halves every 3 epochs); dropout."""
    base = tiny_config(make_idx_dataset(tmp_path_factory.mktemp("extend"), n_train=300, n_test=100), epochs=12)
    base["data"]["val_size"] = 50
    base["schedule"] = {"name": "step", "step_size": 3, "gamma": 0.5}
    return base


@pytest.fixture(scope="module")
def twelve(config: dict, tmp_path_factory) -> RunPaths:
    result = train(config_from_dict(config), run_dir=tmp_path_factory.mktemp("twelve") / "run", log=quiet)
    assert result.status == "completed"
    return result.run


def with_epochs(config: dict, epochs: int) -> dict:
    changed = json.loads(json.dumps(config))
    changed["train"]["epochs"] = epochs
    return changed


def rows(run: RunPaths) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(run.metrics)]


def test_an_8_epoch_run_extended_to_12_is_bit_identical_to_a_12_epoch_run(config: dict, twelve: RunPaths, tmp_path: Path) -> None:
    eight = train(config_from_dict(with_epochs(config, 8)), run_dir=tmp_path / "run", log=quiet)
    assert eight.status == "completed"
    outcome = run_cli(["train", "--resume", eight.run.root, "--set", "train.epochs=12", "--quiet"], timeout=120)
    assert outcome.code == 0, outcome.output
    assert f"resuming {eight.run.root} at epoch 9, batch 1" in outcome.stdout
    first, second = load_checkpoint(eight.run.last)[0], load_checkpoint(twelve.last)[0]
    assert (first.epoch, first.step) == (second.epoch, second.step) == (12, 96)
    for name in second.params:
        assert np.array_equal(first.params[name], second.params[name]), name
    for name in second.optimizer_state:
        assert np.array_equal(first.optimizer_state[name], second.optimizer_state[name]), name
    assert rows(eight.run) == rows(twelve)
    text = eight.run.metrics.read_text()
    assert text.count("epoch,step,") == 1 and len(text.splitlines()) == 13
    assert load_config(eight.run.config).train.epochs == 12
    summary = json.loads(eight.run.summary.read_text())
    assert summary["epochs_trained"] == 12 == json.loads(twelve.summary.read_text())["epochs_trained"]
    info = json.loads(eight.run.run_info.read_text())
    assert [i["status"] for i in info["invocations"]] == ["completed", "completed"]


def test_an_interrupted_run_can_be_extended_too(config: dict, twelve: RunPaths, tmp_path: Path) -> None:
    stopped = train(config_from_dict(with_epochs(config, 8)), run_dir=tmp_path / "run", log=quiet, stop_after_steps=30)
    assert stopped.status == "interrupted"
    resumed = train(config_from_dict(with_epochs(config, 12)), resume=stopped.run.root, log=quiet)
    assert resumed.status == "completed"
    assert rows(resumed.run) == rows(twelve)


@pytest.mark.parametrize(
    ("assignment", "key"),
    [("optimizer.lr=0.5", "optimizer.lr"), ("train.batch_size=16", "train.batch_size"), ("data.val_size=10", "data.val_size")],
)
def test_other_keys_are_refused_naming_the_allowed_ones(config: dict, tmp_path: Path, assignment: str, key: str) -> None:
    run = train(config_from_dict(with_epochs(config, 1)), run_dir=tmp_path / "run", log=quiet).run
    before = run.config.read_text()
    outcome = invoke_cli(["train", "--resume", run.root, "--set", "train.epochs=2", "--set", assignment])
    line = error_line(outcome, 2, key)
    assert all(allowed in line for allowed in EXTENDABLE_KEYS), line
    assert run.config.read_text() == before


def test_fewer_epochs_than_trained_is_refused(config: dict, tmp_path: Path) -> None:
    run = train(config_from_dict(with_epochs(config, 2)), run_dir=tmp_path / "run", log=quiet).run
    with pytest.raises(ConfigError, match="train.epochs: 1 is fewer than the 2 epoch"):
        train(config_from_dict(with_epochs(config, 1)), resume=run.root, log=quiet)


def test_extending_a_cosine_schedule_says_the_curve_changes(config: dict, tmp_path: Path) -> None:
    cosine = with_epochs(config, 1)
    cosine["schedule"] = {"name": "cosine"}
    run = train(config_from_dict(cosine), run_dir=tmp_path / "run", log=quiet).run
    lines: list[str] = []
    cosine["train"]["epochs"] = 2
    assert train(config_from_dict(cosine), resume=run.root, log=lines.append).status == "completed"
    assert any("cosine schedule spans train.epochs; from here it follows 2 epochs instead of 1" in line for line in lines), lines
