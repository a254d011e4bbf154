"""Residual blocks through a whole run: checkpoints, --init-from, --freeze (a block or a layer in it) and gradients.csv.

A tiny net on synthetic digits with one residual block: conv1, then res1 = [conv1, relu1,
conv2] with a 1x1 projection (the block doubles the channels and halves the map), then fc1.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.errors import ConfigError
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.training.train import train
from tests.support.synthetic import make_idx_dataset, tiny_config

BLOCK_PARAMS = ["res1.conv1.weight", "res1.conv1.bias", "res1.conv2.weight", "res1.conv2.bias", "res1.proj.weight"]


def quiet(_line: str) -> None:
    pass


def residual_config(paths: dict[str, str], **train_options) -> dict:
    config = tiny_config(paths, epochs=1, **train_options)
    conv = {"type": "conv2d", "kernel_size": 3, "padding": 1}
    block = {
        "type": "residual",
        "projection": True,
        "layers": [{**conv, "out_channels": 8, "stride": 2}, {"type": "relu"}, {**conv, "out_channels": 8}],
    }
    config["model"]["layers"] = [{**conv, "out_channels": 4, "stride": 2}, {"type": "relu"}, block, {"type": "relu"}]
    config["model"]["layers"] += [{"type": "flatten"}, {"type": "dense", "out_features": 10}]
    return config


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[dict, Path]:
    config = residual_config(make_idx_dataset(tmp_path_factory.mktemp("res")), log_every=5)
    run = tmp_path_factory.mktemp("runs") / "source"
    assert train(config_from_dict(config), run_dir=run, log=quiet).status == "completed"
    return config, run


def test_the_checkpoint_holds_the_nested_names_and_loads_back_bit_identical(source) -> None:
    _, run = source
    checkpoint, model = load_checkpoint(run / "checkpoints" / "last.npz")
    assert list(checkpoint.params) == ["conv1.weight", "conv1.bias", *BLOCK_PARAMS, "fc1.weight", "fc1.bias"]
    for name, value in checkpoint.params.items():
        assert model.params[name].tobytes() == value.tobytes()
    block = model.layers[2]
    assert block.params["conv2.weight"] is block.inner[2].params["weight"]  # the loaded values sit in the inner layers
    assert any(key.startswith("res1.conv1.weight") for key in checkpoint.optimizer_state)


def test_gradients_csv_has_a_row_for_the_block_and_one_for_each_layer_inside_it(source) -> None:
    _, run = source
    with (run / "gradients.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    first_step = [row for row in rows if row["step"] == rows[0]["step"] and row["event"] == rows[0]["event"]]
    names = [row["layer"] for row in first_step]
    assert names == ["conv1", "relu1", "res1", "res1.conv1", "res1.relu1", "res1.conv2", "res1.proj", "relu2", "flatten1", "fc1"]
    by_name = {row["layer"]: row for row in first_step}
    assert by_name["res1"]["weight_grad_norm"] == "" and float(by_name["res1"]["input_grad_norm"]) > 0
    for name in ("res1.conv1", "res1.conv2", "res1.proj"):
        assert float(by_name[name]["weight_grad_norm"]) > 0 and by_name[name]["update_ratio"] != ""


@pytest.mark.parametrize(
    ("freeze", "frozen"),
    [(["res1"], BLOCK_PARAMS), (["res1.conv1"], BLOCK_PARAMS[:2])],
    ids=["the-block", "one-layer-in-it"],
)
def test_init_from_loads_the_block_and_freeze_keeps_what_it_names(source, tmp_path, freeze, frozen) -> None:
    source_config, source_run = source
    best, _ = load_checkpoint(source_run / "checkpoints" / "best.npz")
    config = copy.deepcopy(source_config)
    config["train"].update(seed=5, freeze=freeze, log_gradients=False)
    lines: list[str] = []
    run = tmp_path / "target"
    assert train(config_from_dict(config), run_dir=run, log=lines.append, init_from=source_run).status == "completed"
    assert f"loaded 9 parameter(s): conv1.weight, conv1.bias, {', '.join(BLOCK_PARAMS)}" in "\n".join(lines)
    last, _ = load_checkpoint(run / "checkpoints" / "last.npz")
    for name in BLOCK_PARAMS:
        unchanged = last.params[name].tobytes() == best.params[name].tobytes()
        assert unchanged == (name in frozen), f"{name}: frozen {name in frozen}, unchanged {unchanged}"


def test_freezing_a_layer_without_parameters_inside_a_block_names_the_ones_that_have_some(source, tmp_path) -> None:
    source_config, _ = source
    config = copy.deepcopy(source_config)
    config["train"]["freeze"] = ["res1.relu1"]
    with pytest.raises(
        ConfigError, match=r"'res1.relu1' is a relu layer, which has no parameters; layers with parameters: conv1, res1, res1.conv1"
    ):
        train(config_from_dict(config), run_dir=tmp_path / "run", log=quiet)


def test_train_impl_runs_the_learners_layers_inside_a_block_too(source, tmp_path) -> None:
    """--impl: res1.conv1, res1.relu1, res1.conv2 and the projection run the learner's functions; the check against
    cnn's own code (in float64) keeps every weight the same."""
    from tests.training.test_train_impl import MY_LAYERS, Log, check_record, impl_run

    source_config, _ = source
    config = copy.deepcopy(source_config)
    config["train"]["log_gradients"] = False
    log = Log()
    result = impl_run(config, tmp_path / "mine", MY_LAYERS, log, check_steps=5)
    assert result.status == "completed"
    assert any("conv1, res1.conv1, res1.conv2, res1.proj (conv2d); relu1, res1.relu1, relu2 (relu)" in line for line in log), log
    assert any("every weight within 1e-06 of cnn's after 5 steps" in line for line in log), log
    weights = check_record(result.run.root)["weights"]
    assert weights["steps"] == 5 and weights["first_divergence"] is None
    assert set(weights["max_difference"]) >= set(BLOCK_PARAMS) and max(weights["max_difference"].values()) < 1e-6, weights


def test_a_float64_copy_keeps_a_blocks_parameters_its_inner_layers_arrays(source) -> None:
    from cnn_cli.learn.learner_check import float64_copy

    _, run = source
    _, model = load_checkpoint(run / "checkpoints" / "last.npz")
    twin = float64_copy(model)
    block = twin.layers[2]
    assert all(value.dtype == np.float64 for value in twin.params.values())
    assert block.params["conv1.weight"] is block.inner[0].params["weight"] is twin.params["res1.conv1.weight"]
