"""A run without a validation split (``data.val_size: 0``, as mnist-best trains on all 60,000 images):
every epoch is the "best", the final test is of the last epoch, and nothing shows a NaN that is not one."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.training.train import train
from tests.support.cli import invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

EPOCHS = 3


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    config = tiny_config(make_idx_dataset(tmp_path_factory.mktemp("idx")), epochs=EPOCHS, plots=True)
    config["data"]["val_size"] = 0
    return config


def test_the_run_reports_no_validation_and_tests_the_last_epoch(config, tmp_path):
    root = tmp_path / "run"
    config_file = write_config(tmp_path / "noval.yaml", config)
    outcome = invoke_cli(["train", "--config", config_file, "--run-dir", root, "--tensorboard"], timeout=120)
    assert outcome.code == 0, outcome.output
    assert "600 training / 0 validation" in outcome.output
    epochs = [line for line in outcome.output.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == EPOCHS and all("no validation" in line for line in epochs), epochs
    assert "nan" not in outcome.output.lower()
    assert f"with the last epoch, as there is no validation split ({EPOCHS})" in outcome.output
    summary = json.loads((root / "summary.json").read_text())
    assert summary["best_epoch"] == EPOCHS and "best_val_accuracy" not in summary
    best, _ = load_checkpoint(root / "checkpoints" / "best.npz")
    last, _ = load_checkpoint(root / "checkpoints" / "last.npz")
    for name, value in last.params.items():
        np.testing.assert_array_equal(best.params[name], value, err_msg=name)
    with (root / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == list(range(1, EPOCHS + 1))
    assert (root / "plots" / "learning_curves.png").stat().st_size > 0
    assert any((root / "tensorboard").iterdir())  # its hparams hold no validation accuracy
    evaluated = invoke_cli(["eval", root, "--json"], timeout=60)
    assert evaluated.code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] == summary["test_accuracy"]


def test_a_resume_without_validation_continues_exactly(config, tmp_path):
    full = train(config_from_dict(config), run_dir=tmp_path / "full", log=lambda _: None)
    cut = train(config_from_dict(config), run_dir=tmp_path / "cut", log=lambda _: None, stop_after_steps=25)
    assert cut.status == "interrupted"
    assert train(None, resume=cut.run.root, log=lambda _: None).status == "completed"
    a, _ = load_checkpoint(full.run.root / "checkpoints" / "last.npz")
    b, _ = load_checkpoint(cut.run.root / "checkpoints" / "last.npz")
    for name, value in a.params.items():
        np.testing.assert_array_equal(b.params[name], value, err_msg=name)
    summaries = [json.loads((run / "summary.json").read_text()) for run in (full.run.root, cut.run.root)]
    assert summaries[0]["test_accuracy"] == summaries[1]["test_accuracy"]
