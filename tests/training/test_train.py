"""Training loop: run folder records, resume bit for bit, interruption, divergence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.errors import CnnError
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.runs.folders import METRIC_COLUMNS, read_metrics
from cnn_cli.training.train import train
from tests.support.synthetic import make_idx_dataset, tiny_config


@pytest.fixture(scope="module")
def idx_paths(tmp_path_factory) -> dict[str, str]:
    return make_idx_dataset(tmp_path_factory.mktemp("idx"))


def quiet(_line: str) -> None:
    pass


def run(config: dict, tmp_path: Path, name: str, **kwargs):
    return train(config_from_dict(config), run_dir=tmp_path / name, log=quiet, **kwargs)


def test_run_folder_holds_every_record(idx_paths, tmp_path):
    result = run(tiny_config(idx_paths), tmp_path, "run")
    assert result.status == "completed" and result.exit_code == 0
    root = result.run.root
    for name in ("config.yaml", "run.json", "metrics.csv", "summary.json", "checkpoints/last.npz", "checkpoints/best.npz"):
        assert (root / name).is_file(), name
    info = json.loads((root / "run.json").read_text())
    assert info["status"] == "completed" and info["seed"] == 0 and info["ended"]
    assert set(info["versions"]) == {"python", "numpy", "cnn"}
    rows = read_metrics(root / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert list(rows[0]) == list(METRIC_COLUMNS)
    # The step schedule halves the LR every epoch.
    assert rows[1]["lr"] == pytest.approx(rows[0]["lr"] / 2)
    summary = json.loads((root / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.9, summary  # the synthetic classes are easy
    best, _ = load_checkpoint(root / "checkpoints" / "best.npz")
    assert best.epoch == summary["best_epoch"]


def test_learns_above_chance(idx_paths, tmp_path):
    result = run(tiny_config(idx_paths, epochs=1), tmp_path, "one")
    rows = read_metrics(result.run.root / "metrics.csv")
    assert rows[0]["val_acc"] > 0.5


def _final_params(root: Path) -> dict[str, np.ndarray]:
    ckpt, _ = load_checkpoint(root / "checkpoints" / "last.npz")
    return ckpt.params


def _metrics_without_time(root: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in read_metrics(root / "metrics.csv")]


# 500 training images in batches of 32: 16 batches per epoch.
BATCHES_PER_EPOCH = 16


@pytest.mark.parametrize("stop_after", [5, BATCHES_PER_EPOCH, 2 * BATCHES_PER_EPOCH + 5])
def test_resume_is_bit_exact(idx_paths, tmp_path, stop_after):
    config = tiny_config(idx_paths, epochs=3)
    config["data"]["augment"] = {"translate": 1}
    full = run(config, tmp_path, "full")
    interrupted = run(config, tmp_path, "cut", stop_after_steps=stop_after)
    assert interrupted.status == "interrupted" and interrupted.exit_code == 130
    assert "cnn train --resume" in interrupted.message
    status = json.loads((interrupted.run.root / "run.json").read_text())["status"]
    assert status == "interrupted"
    resumed = train(None, resume=interrupted.run.root, log=quiet)
    assert resumed.status == "completed"
    a, b = _final_params(full.run.root), _final_params(interrupted.run.root)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert _metrics_without_time(full.run.root) == _metrics_without_time(interrupted.run.root)
    full_summary = json.loads((full.run.root / "summary.json").read_text())
    cut_summary = json.loads((interrupted.run.root / "summary.json").read_text())
    assert full_summary["test_accuracy"] == cut_summary["test_accuracy"]


def test_interrupted_metrics_complete_to_last_finished_epoch(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=3)
    cut = run(config, tmp_path, "cut", stop_after_steps=BATCHES_PER_EPOCH + 9)  # inside epoch 2
    rows = read_metrics(cut.run.root / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1]
    ckpt, _ = load_checkpoint(cut.run.root / "checkpoints" / "last.npz")
    assert (ckpt.epoch, ckpt.step, ckpt.batch_in_epoch) == (1, BATCHES_PER_EPOCH + 9, 9)


def test_diverging_run_stops_at_first_nonfinite_loss(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=3)
    config["optimizer"] = {"name": "sgd", "lr": 1e6}
    result = run(config, tmp_path, "boom")
    assert result.status == "failed" and result.exit_code == 1
    assert "diverged at step" in result.message
    assert "loss is nan" in result.message or "loss is inf" in result.message
    info = json.loads((result.run.root / "run.json").read_text())
    assert info["status"] == "failed"


def test_diverging_after_a_good_epoch_keeps_that_checkpoint(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=3)
    config["optimizer"] = {"name": "sgd", "lr": 0.05}
    config["schedule"] = {"name": "step", "step_size": 1, "gamma": 1e8}  # epoch 2 runs at lr 5e6
    result = run(config, tmp_path, "boom2")
    assert result.status == "failed", result
    assert "(epoch 2," in result.message
    ckpt, _ = load_checkpoint(result.run.root / "checkpoints" / "last.npz")  # valid and loadable
    assert ckpt.epoch == 1 and ckpt.batch_in_epoch == 0
    assert [r["epoch"] for r in read_metrics(result.run.root / "metrics.csv")] == [1]


def test_resume_refuses_edited_config(idx_paths, tmp_path):
    cut = run(tiny_config(idx_paths, epochs=2), tmp_path, "cut", stop_after_steps=3)
    before = _final_params(cut.run.root)
    cfg_path = cut.run.root / "config.yaml"
    cfg_path.write_text(cfg_path.read_text().replace("lr: 0.01", "lr: 0.5"))
    with pytest.raises(CnnError, match="differs"):
        train(None, resume=cut.run.root, log=quiet)
    after = _final_params(cut.run.root)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_existing_run_dir_is_refused(idx_paths, tmp_path):
    run(tiny_config(idx_paths, epochs=1), tmp_path, "taken")
    stamp = (tmp_path / "taken" / "metrics.csv").stat().st_mtime_ns
    with pytest.raises(CnnError, match="already holds a run"):
        run(tiny_config(idx_paths, epochs=1), tmp_path, "taken")
    assert (tmp_path / "taken" / "metrics.csv").stat().st_mtime_ns == stamp


def test_same_seed_same_result(idx_paths, tmp_path):
    a = run(tiny_config(idx_paths, epochs=1), tmp_path, "a")
    b = run(tiny_config(idx_paths, epochs=1), tmp_path, "b")
    pa, pb = _final_params(a.run.root), _final_params(b.run.root)
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name])


def test_early_stopping(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=6, early_stopping_patience=1)
    config["optimizer"]["lr"] = 1e-7  # nothing improves after the first epoch
    result = run(config, tmp_path, "patient")
    rows = read_metrics(result.run.root / "metrics.csv")
    assert len(rows) < 6
