"""A model that does not fit its data, and a checkpoint whose random state was damaged: one line each, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config


def test_an_input_shape_that_does_not_fit_the_images_is_refused_before_the_run_folder(tmp_path: Path) -> None:
    config = tiny_config(make_idx_dataset(tmp_path / "data", n_train=200, n_test=50))
    config["model"]["input_shape"] = [3, 32, 32]
    outcome = invoke_cli(["train", "--config", write_config(tmp_path / "c.yaml", config), "--run-dir", tmp_path / "run"])
    error_line(outcome, EXIT_BAD_INPUT, "model.input_shape", "[3, 32, 32]", "[1, 28, 28]")
    assert not (tmp_path / "run").exists()


def test_a_damaged_random_state_in_a_checkpoint_is_one_line_and_the_run_keeps_its_status(tmp_path: Path) -> None:
    config = tiny_config(make_idx_dataset(tmp_path / "data", n_train=200, n_test=50), epochs=1)  # has a dropout layer
    run = tmp_path / "run"
    assert invoke_cli(["train", "--config", write_config(tmp_path / "c.yaml", config), "--run-dir", run, "-q"]).code == 0
    last = run / "checkpoints" / "last.npz"
    arrays = dict(np.load(last, allow_pickle=False))
    rng = json.loads(str(arrays["meta/rng"]))
    assert rng, "the tiny config's dropout layer has a generator state"
    for damaged in ("junk", {"bit_generator": "PCG64", "state": {"state": "oops", "inc": 1}, "has_uint32": 0, "uinteger": 0}):
        arrays["meta/rng"] = np.array(json.dumps({name: damaged for name in rng}))
        np.savez(last, **arrays)
        outcome = invoke_cli(["train", "--resume", run, "--set", "train.epochs=2"])
        error_line(outcome, EXIT_BAD_INPUT, str(last), "meta/rng", "not a random generator state")
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
