"""gradients.csv (GradientLogger): every value equals what model.grads and Model.backward_trace give at that step."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.model.network import build_model
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.runs.gradients import GRADIENT_COLUMNS
from cnn_cli.training.state import Callback
from cnn_cli.training.train import train
from tests.support.synthetic import make_idx_dataset, tiny_config

HEADER = "epoch,step,event,layer,type,weight_grad_norm,bias_grad_norm,input_grad_norm,update_ratio,dead_fraction"
LOG_EVERY = 5


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    """No dropout (so a fresh model can replay a step exactly), a max-pool and two ReLUs: 600 images, 16 steps an epoch."""
    base = tiny_config(make_idx_dataset(tmp_path_factory.mktemp("grads")), epochs=2, log_every=LOG_EVERY)
    base["model"]["layers"] = [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "out_features": 10},
    ]
    base["optimizer"] = {"name": "adam", "lr": 0.01, "weight_decay": 1e-3}  # decay: the logged gradient is the loss's own
    return base


class Replay(Callback):
    """Keeps the weights before each step and the batch of each step, to recompute every logged value independently."""

    def __init__(self) -> None:
        self.before: dict[str, np.ndarray] = {}
        self.steps: dict[int, dict] = {}

    def on_fit_start(self, state) -> None:
        self.before = {k: v.copy() for k, v in state.model.params.items()}

    def on_step_end(self, state) -> None:
        after = {k: v.copy() for k, v in state.model.params.items()}
        self.steps[state.step] = {
            "before": self.before,
            "after": after,
            "x": state.inputs.copy(),
            "y": state.labels.copy(),
            "epoch": state.epoch + 1,
            "last_of_epoch": state.batch_in_epoch == state.steps_per_epoch,
        }
        self.before = after


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def expected_rows(config: dict, record: dict) -> list[dict]:
    """The step replayed on a fresh model with the weights it started from: model.grads and backward_trace."""
    model = build_model(config_from_dict(config), seed=0)
    model.load_params(record["before"])
    logits = model.forward(record["x"], training=True)
    _, grad_logits = model.loss(logits, record["y"])
    trace = model.backward_trace(grad_logits)
    grads = model.grads
    rows = []
    for entry in trace:
        name = entry.layer.name
        weight, bias = grads.get(f"{name}.weight"), grads.get(f"{name}.bias")
        row = {
            "layer": name,
            "weight": None if weight is None else np.linalg.norm(weight.astype(np.float64)),
            "bias": None if bias is None else np.linalg.norm(bias.astype(np.float64)),
            "input": np.linalg.norm(entry.grad_input.astype(np.float64)),
            "update": None,
            "dead": None,
        }
        if weight is not None:
            w0, w1 = record["before"][f"{name}.weight"].astype(np.float64), record["after"][f"{name}.weight"].astype(np.float64)
            row["update"] = np.linalg.norm(w1 - w0) / np.linalg.norm(w0)
        if entry.layer.type_name == "relu":
            per_unit = entry.grad_input.reshape(len(entry.grad_input), -1)
            dead_units = sum(1 for unit in range(per_unit.shape[1]) if not per_unit[:, unit].any())
            row["dead"] = dead_units / per_unit.shape[1]
        rows.append(row)
    return rows


def close(cell: str, value: float | None) -> bool:
    if value is None:
        return cell == ""
    return cell != "" and math.isclose(float(cell), float(value), rel_tol=1e-9, abs_tol=1e-30)


@pytest.fixture(scope="module")
def logged(config: dict, tmp_path_factory):
    replay = Replay()
    result = train(config_from_dict(config), run_dir=tmp_path_factory.mktemp("logged") / "run", log=quiet, callbacks=[replay])
    assert result.status == "completed"
    return result, replay


def test_the_file_has_the_agreed_header_and_moments(logged) -> None:
    result, replay = logged
    path = result.run.gradients
    assert path.read_text().splitlines()[0] == HEADER == ",".join(GRADIENT_COLUMNS)
    rows = read_rows(path)
    moments = sorted({(int(r["step"]), r["event"]) for r in rows})
    steps_per_epoch = 16
    every = [(s, "step") for s in range(LOG_EVERY, 2 * steps_per_epoch + 1, LOG_EVERY)]
    expected = sorted(every + [(steps_per_epoch, "epoch"), (2 * steps_per_epoch, "epoch")])
    assert moments == expected
    layer_names = [layer.name for layer in build_model(config_from_dict(load_checkpoint(result.run.last)[0].config), seed=0).layers]
    for step, event in moments:
        group = [r for r in rows if int(r["step"]) == step and r["event"] == event]
        assert [r["layer"] for r in group] == layer_names, "one row per layer, input side first"
        assert {r["epoch"] for r in group} == {str(replay.steps[step]["epoch"])}


def test_every_value_equals_the_replayed_step(config: dict, logged) -> None:
    result, replay = logged
    rows = read_rows(result.run.gradients)
    checked = 0
    for step in sorted({int(r["step"]) for r in rows}):
        want = expected_rows(config, replay.steps[step])
        got = [r for r in rows if int(r["step"]) == step and r["event"] == ("step" if step % LOG_EVERY == 0 else "epoch")]
        for row, expected in zip(got, want, strict=True):
            assert row["layer"] == expected["layer"]
            for column, key in (
                ("weight_grad_norm", "weight"),
                ("bias_grad_norm", "bias"),
                ("input_grad_norm", "input"),
                ("update_ratio", "update"),
                ("dead_fraction", "dead"),
            ):
                assert close(row[column], expected[key]), (step, row["layer"], column, row[column], expected[key])
                checked += row[column] != ""
    assert checked > 50
    dead = [float(r["dead_fraction"]) for r in rows if r["type"] == "relu"]
    assert any(0 < d < 1 for d in dead) or any(d == 0 for d in dead)


def test_logging_does_not_change_training(config: dict, logged, tmp_path: Path) -> None:
    result, _ = logged
    off = json.loads(json.dumps(config))
    off["train"]["log_gradients"] = False
    plain = train(config_from_dict(off), run_dir=tmp_path / "plain", log=quiet)
    assert not plain.run.gradients.exists()
    first, _ = load_checkpoint(result.run.last)
    second, _ = load_checkpoint(plain.run.last)
    for name in first.params:
        assert np.array_equal(first.params[name], second.params[name]), name
    for name in first.optimizer_state:
        assert np.array_equal(first.optimizer_state[name], second.optimizer_state[name]), name


def test_an_interrupted_and_resumed_run_logs_the_same_rows(config: dict, logged, tmp_path: Path) -> None:
    result, _ = logged
    stopped = train(config_from_dict(config), run_dir=tmp_path / "run", log=quiet, stop_after_steps=LOG_EVERY + 2)
    assert stopped.status == "interrupted"
    resumed = train(None, resume=stopped.run.root, log=quiet)
    assert resumed.status == "completed"
    assert read_rows(resumed.run.gradients) == read_rows(result.run.gradients)
