"""cnn train --init-from CKPT [--freeze LAYERS]: matching parameters are loaded, frozen ones never change."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.training.state import Callback
from cnn_cli.training.train import train
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config


def quiet(_line: str) -> None:
    pass


class FirstWeights(Callback):
    """The parameters a run starts its first step from."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}

    def on_fit_start(self, state) -> None:
        self.params = {name: value.copy() for name, value in state.model.params.items()}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[dict, Path]:
    """A trained tiny run: conv1 (4 channels), conv2 (8), fc1."""
    config = tiny_config(make_idx_dataset(tmp_path_factory.mktemp("init")), epochs=1, log_gradients=False)
    run = tmp_path_factory.mktemp("runs") / "source"
    assert train(config_from_dict(config), run_dir=run, log=quiet).status == "completed"
    return config, run


def target_config(source_config: dict) -> dict:
    """Same conv1, a wider conv2 (so conv2 and fc1 no longer fit), SGD with momentum and weight decay, seed 3."""
    config = copy.deepcopy(source_config)
    config["model"]["layers"][3]["out_channels"] = 6
    config["optimizer"] = {"name": "momentum", "lr": 0.05, "weight_decay": 0.01}
    config["train"].update(seed=3, epochs=2)
    return config


def test_matching_parameters_are_loaded_and_a_frozen_layer_stays_bit_identical(source, tmp_path):
    source_config, source_run = source
    best, _ = load_checkpoint(source_run / "checkpoints" / "best.npz")
    config = target_config(source_config)
    config["train"]["freeze"] = ["conv1"]
    lines: list[str] = []
    first = FirstWeights()
    run = tmp_path / "target"
    result = train(config_from_dict(config), run_dir=run, log=lines.append, init_from=source_run, callbacks=[first])
    assert result.status == "completed"

    for name in ("conv1.weight", "conv1.bias"):
        assert np.array_equal(first.params[name], best.params[name])
    assert not np.array_equal(first.params["conv2.bias"][:4], best.params["conv2.bias"][:4])  # skipped: fresh init
    last, _ = load_checkpoint(run / "checkpoints" / "last.npz")
    for name in ("conv1.weight", "conv1.bias"):
        assert last.params[name].tobytes() == best.params[name].tobytes(), f"{name} changed although frozen"
        assert not any(key.startswith(name) for key in last.optimizer_state), "a frozen parameter has optimizer state"
    for name in ("conv2.weight", "fc1.weight"):
        assert not np.array_equal(last.params[name], first.params[name]), f"{name} did not train"
        assert f"{name}.velocity" in last.optimizer_state

    text = "\n".join(lines)
    assert "loaded 3 parameter(s): conv1.weight, conv1.bias, fc1.bias" in text  # fc1.bias (10,) still fits
    assert "skipped conv2.weight: shape (8, 4, 3, 3) in the checkpoint, (6, 4, 3, 3) here" in text
    assert "skipped fc1.weight: shape" in text
    assert "frozen (not trained): conv1" in text
    record = json.loads((run / "run.json").read_text())
    assert record["init_from"]["checkpoint"] == str(source_run / "checkpoints" / "best.npz")
    assert record["init_from"]["loaded"] == ["conv1.weight", "conv1.bias", "fc1.bias"]
    assert record["init_from"]["frozen"] == ["conv1"]
    assert set(record["init_from"]["skipped"]) == {"conv2.weight", "conv2.bias", "fc1.weight"}


def test_a_frozen_run_resumes_and_its_frozen_layer_still_does_not_move(source, tmp_path):
    source_config, source_run = source
    best, _ = load_checkpoint(source_run / "checkpoints" / "best.npz")
    config = target_config(source_config)
    config["train"]["freeze"] = ["conv1"]
    run = tmp_path / "target"
    stopped = train(config_from_dict(config), run_dir=run, log=quiet, init_from=source_run, stop_after_steps=20)
    assert stopped.status == "interrupted"
    assert train(None, resume=run, log=quiet).status == "completed"
    last, _ = load_checkpoint(run / "checkpoints" / "last.npz")
    assert last.params["conv1.weight"].tobytes() == best.params["conv1.weight"].tobytes()
    assert last.step == 32


def test_without_freeze_loaded_layers_train(source, tmp_path):
    source_config, source_run = source
    best, _ = load_checkpoint(source_run / "checkpoints" / "best.npz")
    run = tmp_path / "target"
    assert train(config_from_dict(target_config(source_config)), run_dir=run, log=quiet, init_from=source_run).status == "completed"
    last, _ = load_checkpoint(run / "checkpoints" / "last.npz")
    assert not np.array_equal(last.params["conv1.weight"], best.params["conv1.weight"])


def test_cli_init_from_a_checkpoint_file_with_freeze(source, tmp_path, monkeypatch):
    source_config, source_run = source
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "target.yaml", target_config(source_config))
    checkpoint = source_run / "checkpoints" / "last.npz"
    outcome = invoke_cli(
        ["train", "--config", path, "--init-from", checkpoint, "--freeze", "conv1", "--run-dir", tmp_path / "run", "-q"], timeout=60
    )
    assert outcome.code == 0, outcome.output
    assert f"init from {checkpoint}: loaded 3 parameter(s)" in outcome.stdout
    assert "  freeze: [conv1]\n" in (tmp_path / "run" / "config.yaml").read_text()  # a resume keeps freezing it


@pytest.mark.parametrize(
    ("freeze", "fragments"),
    [
        ("conv1,convX", ("train.freeze", "'convX' is not a layer of this model", "conv1, conv2, fc1")),
        ("relu1", ("'relu1' is a relu layer, which has no parameters",)),
    ],
)
def test_bad_freeze_names_are_one_line_exit_2_before_anything_is_created(source, tmp_path, monkeypatch, freeze, fragments):
    source_config, source_run = source
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "target.yaml", target_config(source_config))
    outcome = invoke_cli(["train", "--config", path, "--init-from", source_run, "--freeze", freeze])
    error_line(outcome, EXIT_BAD_INPUT, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.yaml"]


def test_init_from_a_missing_checkpoint_or_with_resume_is_refused(source, tmp_path, monkeypatch):
    source_config, source_run = source
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "target.yaml", target_config(source_config))
    error_line(invoke_cli(["train", "--config", path, "--init-from", tmp_path / "nope.npz"]), EXIT_BAD_INPUT, "nope.npz")
    error_line(invoke_cli(["train", "--resume", source_run, "--init-from", source_run]), EXIT_BAD_INPUT, "--init-from starts a new run")


def test_a_checkpoint_from_before_the_new_train_keys_still_resumes(source, tmp_path):
    """Checkpoints written before train.freeze, train.tensorboard and train.overfit_batches existed lack them."""
    from cnn_cli.runs.checkpoint import save_checkpoint

    source_config, _ = source
    run = tmp_path / "old"
    assert train(config_from_dict(source_config), run_dir=run, log=quiet, stop_after_steps=5).status == "interrupted"
    ckpt, _ = load_checkpoint(run / "checkpoints" / "last.npz")
    for key in ("freeze", "tensorboard", "overfit_batches"):
        del ckpt.config["train"][key]
    save_checkpoint(run / "checkpoints" / "last.npz", ckpt)
    assert train(None, resume=run, log=quiet).status == "completed"


def test_binary_01_from_mnist_loads_only_what_fits(tmp_path):
    """The shipped configs: binary-01's conv1 has 5 kernels, mnist's 16, so nothing fits and each mismatch is named."""
    from cnn_cli.config.load import load_config
    from cnn_cli.model.network import build_model
    from cnn_cli.runs.checkpoint import Checkpoint, save_checkpoint
    from cnn_cli.training.transfer import init_from_checkpoint

    mnist = load_config("mnist")
    source = tmp_path / "mnist.npz"
    save_checkpoint(
        source,
        Checkpoint(
            params=build_model(mnist, seed=1).params,
            config=mnist.as_dict(),
            data={"mean": 0.1307, "std": 0.3081, "classes": list(range(10))},
        ),
    )
    binary = build_model(load_config("binary-01"), seed=0)
    fresh = {name: value.copy() for name, value in binary.params.items()}
    report = init_from_checkpoint(binary, source, ["conv1"])
    assert report.loaded == []
    assert report.skipped["conv1.weight"] == "shape (16, 1, 3, 3) in the checkpoint, (5, 1, 3, 3) here"
    assert report.skipped["fc1.weight"] == "not in the checkpoint"
    assert report.skipped["conv6.weight"] == "in the checkpoint only (no such parameter here)"
    assert all(np.array_equal(fresh[name], value) for name, value in binary.params.items())
    assert any("conv1 is frozen but nothing of it was loaded" in line for line in report.lines())
