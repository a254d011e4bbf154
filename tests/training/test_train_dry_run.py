"""cnn train --fast-dev-run (one batch through everything) and --overfit-batches N (the same N batches every epoch)."""

from __future__ import annotations

import re
import tempfile
import warnings

import numpy as np
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.runs.folders import read_metrics
from cnn_cli.training.dry_run import initial_loss_check
from cnn_cli.training.state import Callback
from cnn_cli.training.train import train
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, run_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

CHECKS = ("run", "train", "validation", "test", "checkpoints", "records", "plots")


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def config_dict(tmp_path_factory) -> dict:
    return tiny_config(make_idx_dataset(tmp_path_factory.mktemp("dry")), epochs=3)


class Batches(Callback):
    """Every training batch, by step."""

    def __init__(self) -> None:
        self.inputs: dict[int, np.ndarray] = {}

    def on_step_end(self, state) -> None:
        self.inputs[state.step] = state.inputs.copy()


# ---------------------------------------------------------------- --fast-dev-run


def test_fast_dev_run_in_a_given_folder_checks_everything_and_keeps_it(config_dict, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "tiny.yaml", config_dict)
    outcome = invoke_cli(["train", "--config", path, "--fast-dev-run", "--run-dir", tmp_path / "dev"], timeout=120)
    assert outcome.code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert lines[0].startswith(f"run {tmp_path / 'dev'}: tiny") and lines[1].startswith("epoch 1/1")  # the run's own log first
    lines = lines[lines.index(f"fast dev run of tiny: one batch through each part of a run, in {tmp_path / 'dev'}") :]
    assert [line.split()[1].rstrip(":") for line in lines[1:-2]] == list(CHECKS)
    assert all(line.split()[0] == "ok" for line in lines[1:-2])
    assert re.fullmatch(r"initial loss \d\.\d\d ≈ ln 10 ✓", lines[-2])  # the untrained net guesses uniformly
    assert lines[-1] == "all checks passed"
    assert "bit-identical: True" in outcome.stdout and "100 images" in outcome.stdout  # test: one eval batch
    rows = read_metrics(tmp_path / "dev" / "metrics.csv")
    assert [(row["epoch"], row["step"]) for row in rows] == [(1, 1)]  # one epoch of one step, although the config says 3
    assert sorted(p.name for p in (tmp_path / "dev" / "plots").iterdir()) == [
        "confusion_matrix.png",
        "filters.png",
        "gradient_flow.png",
        "learning_curves.png",
        "misclassified.png",
    ]
    assert not (tmp_path / "runs").exists()


def test_fast_dev_run_without_run_dir_uses_a_temporary_folder_and_removes_it(config_dict, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "tiny.yaml", config_dict)
    outcome = invoke_cli(["train", "--config", path, "--fast-dev-run"], timeout=120)
    assert outcome.code == 0, outcome.output
    assert any(line.startswith("fast dev run of tiny") and f"in {scratch}" in line for line in outcome.stdout.splitlines())
    assert outcome.stdout.splitlines()[-1] == "all checks passed; temporary folder removed"
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch", "tiny.yaml"]


def test_fast_dev_run_says_which_check_failed(config_dict, tmp_path, monkeypatch):
    """A run whose loss is not finite fails the fast dev run, and the folder is kept to look at."""
    broken = {**config_dict, "optimizer": {"name": "sgd", "lr": 1e30}}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = write_config(tmp_path / "tiny.yaml", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NaN weights are evaluated and drawn without NumPy warnings
        outcome = invoke_cli(["train", "--config", path, "--fast-dev-run"], timeout=120)
    assert outcome.code == 1, outcome.output
    lines = outcome.stdout.splitlines()
    assert "ok    train: 1 step" in outcome.stdout  # the first step's loss is finite; its update is not
    assert any(line.startswith("  FAIL  validation: one batch, loss nan") for line in lines)
    assert any(line.startswith("  FAIL  test: 100 images") for line in lines)
    assert "ok    checkpoints" in outcome.stdout  # NaN weights still save and load back bit for bit
    assert lines[-1] == "some checks FAILED"
    assert list(scratch.iterdir()), "the folder of a failed fast dev run is kept"


def test_fast_dev_run_warns_when_the_untrained_loss_is_far_from_ln_c(config_dict, tmp_path, monkeypatch):
    """A large output layer (Kaiming on the logits) starts far above ln 10: a warning, not a failed check."""
    monkeypatch.chdir(tmp_path)
    layers = [*config_dict["model"]["layers"][:-1], {**config_dict["model"]["layers"][-1], "init": "kaiming"}]
    loud = {**config_dict, "model": {**config_dict["model"], "layers": layers}}
    path = write_config(tmp_path / "tiny.yaml", loud)
    initial = initial_loss_check(4.82, "softmax_cross_entropy", 10)
    assert initial is not None and not initial.near_ln_c
    assert initial.line().startswith("initial loss 4.82 is not within 10% of ln 10 = 2.30")
    assert "cnn docs initial-loss" in initial.line()
    outcome = invoke_cli(["train", "--config", path, "--fast-dev-run"], timeout=120)
    assert outcome.code == 0, outcome.output
    assert outcome.stdout.splitlines()[-1].startswith("all checks passed")
    assert "≈ ln 10 ✓" not in outcome.stdout
    assert outcome.stderr.startswith("warning: initial loss ") and "is not within 10% of ln 10 = 2.30" in outcome.stderr


@pytest.mark.parametrize(
    ("loss", "name", "classes", "line"),
    [
        (2.31, "softmax_cross_entropy", 10, "initial loss 2.31 ≈ ln 10 ✓"),
        (0.70, "binary_cross_entropy", 2, "initial loss 0.70 ≈ ln 2 ✓"),
        (2.60, "softmax_cross_entropy", 10, None),  # 13% above ln 10
    ],
)
def test_initial_loss_check(loss, name, classes, line):
    initial = initial_loss_check(loss, name, classes)
    assert initial is not None
    assert initial.near_ln_c == (line is not None)
    if line:
        assert initial.line() == line
    assert initial_loss_check(loss, "sum_squared_error", classes) is None


def test_a_diverging_fast_dev_run_prints_no_numpy_warnings(config_dict, tmp_path):
    """A real process: its stderr holds no 'RuntimeWarning: overflow encountered' lines ahead of the outcome."""
    path = write_config(tmp_path / "tiny.yaml", {**config_dict, "optimizer": {"name": "sgd", "lr": 1e30}})
    outcome = run_cli(["train", "--config", path, "--fast-dev-run", "--run-dir", tmp_path / "run"], timeout=120)
    assert outcome.code == 1 and outcome.stdout.splitlines()[-1] == "some checks FAILED", outcome.output
    assert "Warning" not in outcome.stderr, outcome.stderr


def test_fast_dev_run_with_resume_is_refused(tmp_path):
    error_line(invoke_cli(["train", "--resume", tmp_path, "--fast-dev-run"]), EXIT_BAD_INPUT, "--fast-dev-run")


# ---------------------------------------------------------------- --overfit-batches


def test_overfit_batches_trains_on_the_same_batches_every_epoch(config_dict, tmp_path):
    config = config_from_dict({**config_dict, "train": {**config_dict["train"], "overfit_batches": 3}})
    batches, lines = Batches(), []
    result = train(config, run_dir=tmp_path / "run", log=lines.append, callbacks=[batches])
    assert result.status == "completed"
    assert sorted(batches.inputs) == list(range(1, 10))  # 3 epochs of 3 steps
    for step in range(4, 10):
        assert np.array_equal(batches.inputs[step], batches.inputs[(step - 1) % 3 + 1])
    assert len({batches.inputs[step].tobytes() for step in (1, 2, 3)}) == 3
    assert any("overfit-batches: training on the same 3 batch(es) (96 images) every epoch" in line for line in lines)
    assert any("note: the step schedule counts epochs" in line for line in lines)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [row["step"] for row in rows] == [3, 6, 9]
    assert result.summary["test_n"] == 200  # the final test is on the whole test split


def test_overfit_batches_resumes_bit_identically(config_dict, tmp_path):
    config = config_from_dict({**config_dict, "train": {**config_dict["train"], "overfit_batches": 3}})
    assert train(config, run_dir=tmp_path / "whole", log=quiet).status == "completed"
    assert train(config, run_dir=tmp_path / "parts", log=quiet, stop_after_steps=4).status == "interrupted"
    assert train(None, resume=tmp_path / "parts", log=quiet).status == "completed"
    whole, _ = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.npz")
    parts, _ = load_checkpoint(tmp_path / "parts" / "checkpoints" / "last.npz")
    assert all(whole.params[name].tobytes() == parts.params[name].tobytes() for name in whole.params)


OVERFIT_STEPS = 30  # 15 epochs of the same 2 batches (the loss passes 0.05 after about 20 steps)
OVERFIT_LOSS = 0.05


@pytest.mark.slow
def test_the_default_mnist_model_overfits_two_real_batches(mnist_data_dir, tmp_path):
    """The practitioner's first check: the mnist model drives the loss on 2 batches of real MNIST close to 0."""
    config = load_config(
        "mnist",
        [
            f"data.data_dir={mnist_data_dir}",
            "data.limit=1000",  # only to load less; the 2 batches are drawn from these
            "train.overfit_batches=2",
            f"train.epochs={OVERFIT_STEPS // 2}",
            "schedule.name=constant",
            "train.plots=false",
            "train.log_gradients=false",
        ],
    )
    result = train(config, run_dir=tmp_path / "run", log=quiet)
    assert result.status == "completed"
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert rows[-1]["step"] == OVERFIT_STEPS
    assert rows[0]["train_loss"] > 1.0  # it starts far from 0
    assert rows[-1]["train_loss"] < OVERFIT_LOSS and rows[-1]["train_acc"] == 1.0
    assert rows[-1]["val_loss"] < OVERFIT_LOSS  # validation is on the same 2 batches


def test_help_shows_the_dry_run_and_init_options_with_examples():
    outcome = invoke_cli(["train", "--help"])
    assert outcome.code == 0
    for text in ("--fast-dev-run", "--overfit-batches", "--init-from", "--freeze", "cnn train --config mnist --fast-dev-run"):
        assert text in outcome.stdout, text
    assert "--freeze conv1,conv2" in outcome.stdout and "--overfit-batches 2" in outcome.stdout
