"""State is checked before it is committed (issue 23, category 5), tried with a real ``cnn train``.

Adam's second moment v = β₂v + (1−β₂)g² overflows float32 when a gradient passes ~10²⁰, while
the loss can still be finite (3.4e30 here: sum of squared errors of a network whose lr is 10⁶).
The weights then stop moving (m / √inf = 0), so the loss alone never reports it, and every
checkpoint saved afterwards is one its own loader refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.errors import RuntimeFault
from cnn_cli.runs.checkpoint import Checkpoint, save_checkpoint
from tests.support.cli import EXIT_FAULT, error_line, run_cli_bounded, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config


def overflowing_config(folder: Path) -> Path:
    config = tiny_config(make_idx_dataset(folder / "idx", n_train=200, n_test=100), epochs=3)
    config["data"]["val_size"] = 50
    config["model"] = {
        "layers": [{"type": "flatten"}, {"type": "dense", "out_features": 16}, {"type": "relu"}, {"type": "dense", "out_features": 10}],
        "loss": "sum_squared_error",
    }
    config["optimizer"]["lr"] = 1e6
    config["schedule"] = {"name": "constant"}
    return write_config(folder / "overflow.yaml", config)


def test_optimizer_state_that_overflows_while_the_loss_is_finite_is_divergence(tmp_path: Path) -> None:
    run = tmp_path / "run"
    outcome = run_cli_bounded(["train", "--config", overflowing_config(tmp_path), "--run-dir", run], timeout=60)
    message = error_line(
        outcome, EXIT_FAULT, "training diverged at step 2 (epoch 1, batch 2)", "optimizer/fc1.weight.v is no longer finite"
    )
    assert "the loss was 3.398e+30" in message  # finite: only the state check can see it
    assert "RuntimeWarning" not in outcome.output
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["stopped"]["reason"] == "diverged"
    kept = run_cli_bounded(["eval", run / "checkpoints" / "last.npz"], timeout=30)  # the last good checkpoint loads
    assert kept.code == 0, kept.output
    assert not (run / "checkpoints" / "best.npz").exists()


def test_a_checkpoint_its_loader_would_refuse_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "last.npz"
    path.write_bytes(b"the previous checkpoint")
    state = {"fc1.weight.v": np.array([1.0, np.inf], np.float32)}
    with pytest.raises(RuntimeFault, match=r"not saved: optimizer/fc1.weight.v contains NaN or infinite values; the previous file is kept"):
        save_checkpoint(path, Checkpoint(params={"fc1.weight": np.zeros(2, np.float32)}, config={}, optimizer_state=state))
    assert path.read_bytes() == b"the previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]
