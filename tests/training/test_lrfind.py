"""``cnn lr-find``: the learning-rate range test on a tiny synthetic dataset, and its smoothing and suggestion on known curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.data.idx import read_labels
from cnn_cli.runs.lrfind import BETA
from cnn_cli.training.lrfind import ema, lr_range_test, lr_schedule, smooth, suggest_lr
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config, write_idx_labels


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lrfind")
    paths = make_idx_dataset(folder / "idx", n_train=400, n_test=50)
    # Half the training labels random: the loss cannot reach 0, so the gradients stay large and a huge lr blows up.
    labels = read_labels(paths["train_labels"]).copy()
    rng = np.random.default_rng(1)
    noisy = rng.random(len(labels)) < 0.5
    labels[noisy] = rng.integers(0, 10, int(noisy.sum()))
    write_idx_labels(Path(paths["train_labels"]), labels)
    config = tiny_config(paths)
    config["optimizer"] = {"name": "sgd", "lr": 0.05}
    return write_config(folder / "tiny.yaml", config)


def test_schedule_is_exponential_from_min_to_max() -> None:
    lrs = lr_schedule(1e-5, 10.0, 61)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(10.0)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 10 ** (6 / 60))  # a constant ratio: equal steps on a log axis


def test_ema_is_bias_corrected() -> None:
    losses = np.random.default_rng(0).uniform(1.0, 3.0, 30)
    averaged = ema(losses)
    assert averaged[0] == pytest.approx(losses[0])  # not (1 - beta) * loss, as an uncorrected average would start
    weights = BETA ** np.arange(4)[::-1]
    assert averaged[3] == pytest.approx((weights * losses[:4]).sum() / weights.sum())
    np.testing.assert_allclose(ema(np.full(20, 2.5)), 2.5)


def test_forward_backward_smoothing_does_not_shift_a_step() -> None:
    """A one-way average shows a drop late (at a larger lr); the forward-backward curve crosses halfway at the drop."""
    losses = np.where(np.arange(200) < 100, 2.0, 1.0)
    one_way, both_ways = ema(losses), smooth(losses)
    halfway = 1.5
    assert int(np.argmax(one_way < halfway)) >= 106
    assert abs(int(np.argmax(both_ways < halfway)) - 100) <= 1


def test_suggestion_is_the_steepest_descent_before_the_minimum() -> None:
    lrs = lr_schedule(1e-6, 1.0, 300)
    log_lr = np.log10(lrs)
    curve = 2.0 - np.tanh(2.0 * (log_lr + 3.0)) + np.where(log_lr > -1.0, 50.0 * (log_lr + 1.0) ** 2, 0.0)  # falls fastest at 1e-3
    curve[5] = -5.0  # an early spike downwards must not win: the first steps are skipped
    suggestion, _ = suggest_lr(lrs, curve)
    assert suggestion == pytest.approx(1e-3, rel=0.05)


def test_no_suggestion_when_the_loss_only_rises() -> None:
    lrs = lr_schedule(1e-3, 1.0, 50)
    suggestion, note = suggest_lr(lrs, np.linspace(1.0, 9.0, 50))
    assert suggestion is None and "lowest at the very start" in note


def test_a_sweep_on_data_falls_then_stops_when_the_loss_explodes(config_file: Path) -> None:
    from cnn_cli.config.load import load_config

    result = lr_range_test(load_config(config_file), min_lr=1e-3, max_lr=1e3, steps=150)
    assert result.stopped_early, "sgd at lr 1e3 must blow up before the sweep ends"
    assert len(result.lrs) < 150
    np.testing.assert_allclose(result.lrs, lr_schedule(1e-3, 1e3, 150)[: len(result.lrs)])
    assert result.suggestion is not None and 1e-3 < result.suggestion < result.min_loss_lr
    finite = np.isfinite(result.smoothed)
    assert result.smoothed[finite].min() < 0.9 * result.smoothed[0]  # it did learn on the way (from ≈ ln 10, the untrained loss)


def test_cli_prints_the_suggestion_and_writes_the_plot(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "lr.png"
    args = ["lr-find", "--config", config_file, "--steps", "80", "--min-lr", "1e-4", "--max-lr", "1e3", "--out", out]
    outcome = invoke_cli(args, timeout=60)
    assert outcome.code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert lines[0].startswith("lr range test on tiny: ") and "suggested lr" in lines[2] and "the config uses 0.05" in lines[2]
    assert lines[-1] == f"plot: {out}"
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert image.shape == (600, 1000, 3)
    red = (np.abs(image - np.array([214, 39, 40])).sum(axis=2) < 40).sum()  # the suggestion's marker and line
    assert red > 100


def test_cli_json_holds_the_curve(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "lr.png"
    outcome = invoke_cli(["lr-find", "--config", config_file, "--steps", "40", "--max-lr", "0.1", "--out", out, "--json"], timeout=60)
    report = json.loads(outcome.stdout)
    assert report["steps"] == len(report["lr"]) == len(report["loss"]) == len(report["smoothed_loss"]) == 40
    assert report["config_lr"] == 0.05 and "bias-corrected" in report["smoothing"] and report["plot"] == str(out)
    assert report["min_lr_over_10"] == pytest.approx(report["min_smoothed_loss_lr"] / 10)
    assert not list(tmp_path.glob("runs")) and sorted(p.name for p in tmp_path.iterdir()) == ["lr.png"]  # nothing else written


def test_without_out_the_plot_goes_into_the_runs_folder(config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    outcome = invoke_cli(["lr-find", "--config", config_file, "--steps", "20", "--max-lr", "0.1"], timeout=60)
    assert outcome.code == 0, outcome.output
    plot = Path("runs") / "lr_find-tiny.png"
    assert outcome.stdout.splitlines()[-1] == f"plot: {plot}" and (project / plot).is_file()
    assert [p.name for p in project.iterdir()] == ["runs"], "nothing lands in the working folder"


def test_bad_range_is_one_line(config_file: Path) -> None:
    outcome = invoke_cli(["lr-find", "--config", config_file, "--min-lr", "1", "--max-lr", "0.1"])
    error_line(outcome, EXIT_BAD_INPUT, "--min-lr 1", "--max-lr 0.1")


def test_empty_training_split_is_refused_not_looped(tmp_path: Path) -> None:
    config = tiny_config(make_idx_dataset(tmp_path / "idx", n_train=10, n_test=10))
    config["data"]["val_size"] = 10
    with pytest.raises(Exception, match="empty"):
        lr_range_test(config_from_dict(config), steps=20)
