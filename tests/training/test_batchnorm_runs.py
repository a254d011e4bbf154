"""Batch norm in real runs: checkpoints keep the running statistics, a resume continues them exactly,
``--init-from`` copies them, and evaluation uses them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.errors import CheckpointError
from cnn_cli.model.network import build_model
from cnn_cli.runs.checkpoint import BUFFER_PREFIX, load_checkpoint
from cnn_cli.runs.evaluation import evaluate
from cnn_cli.training.epochs import check_batch_statistics
from cnn_cli.training.train import train
from cnn_cli.training.transfer import init_from_checkpoint
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

# 500 training images in batches of 32: 16 batches per epoch.
BATCHES_PER_EPOCH = 16


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def bn_config(tmp_path_factory) -> dict:
    """The tiny synthetic net with a batchnorm2d after each conv and a GAP + batchnorm1d head."""
    config = tiny_config(make_idx_dataset(tmp_path_factory.mktemp("bn-data")), epochs=2, log_gradients=False)
    config["model"]["layers"] = [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "batchnorm2d"},
        {"type": "relu"},
        {"type": "dropout", "p": 0.1},
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "batchnorm2d", "momentum": 0.3},
        {"type": "relu"},
        {"type": "global_avg_pool"},
        {"type": "dense", "out_features": 12},
        {"type": "batchnorm1d"},
        {"type": "relu"},
        {"type": "dense", "out_features": 10},
    ]
    return config


def run(config: dict, root: Path, stop_after_steps: int | None = None):
    return train(config_from_dict(config), run_dir=root, log=quiet, stop_after_steps=stop_after_steps)


def final(root: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    ckpt, _ = load_checkpoint(root / "checkpoints" / "last.npz")
    return ckpt.params, ckpt.buffers


@pytest.fixture(scope="module")
def straight(bn_config, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("straight") / "run"
    assert run(bn_config, root).status == "completed"
    return root


@pytest.mark.parametrize("stop_after", [BATCHES_PER_EPOCH, 5])
def test_resume_continues_params_and_running_statistics_exactly(bn_config, straight, tmp_path, stop_after):
    cut = run(bn_config, tmp_path / "cut", stop_after_steps=stop_after)
    assert cut.status == "interrupted"
    assert train(None, resume=cut.run.root, log=quiet).status == "completed"
    (params_a, buffers_a), (params_b, buffers_b) = final(straight), final(cut.run.root)
    assert set(buffers_a) == {f"{bn}.{stat}" for bn in ("bn1", "bn2", "bn3") for stat in ("running_mean", "running_var")}
    assert set(params_a) == set(params_b) and set(buffers_a) == set(buffers_b)
    for name in params_a:
        np.testing.assert_array_equal(params_a[name], params_b[name], err_msg=name)
    for name in buffers_a:
        np.testing.assert_array_equal(buffers_a[name], buffers_b[name], err_msg=name)
    assert not np.allclose(buffers_a["bn2.running_var"], 1.0)  # the statistics did move during training


def test_the_checkpoint_holds_the_statistics_evaluation_uses(straight):
    ckpt, model = load_checkpoint(straight / "checkpoints" / "last.npz")
    with zipfile.ZipFile(straight / "checkpoints" / "last.npz") as archive:
        assert f"{BUFFER_PREFIX}bn1.running_mean.npy" in archive.namelist()
    for name, value in model.buffers.items():
        np.testing.assert_array_equal(value, ckpt.buffers[name])
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    one_by_one = np.concatenate([model.forward(x[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(one_by_one, model.forward(x), rtol=1e-5, atol=1e-6)  # evaluation: no batch coupling


def test_a_checkpoint_missing_a_buffer_is_refused_naming_it(straight, tmp_path):
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(straight / "checkpoints" / "last.npz") as source, zipfile.ZipFile(bad, "w") as target:
        for item in source.infolist():
            if item.filename != f"{BUFFER_PREFIX}bn2.running_var.npy":
                target.writestr(item, source.read(item))
    with pytest.raises(CheckpointError, match=r"missing key 'buffer/bn2.running_var'"):
        load_checkpoint(bad)


def test_init_from_copies_the_running_statistics_of_matching_layers(bn_config, straight):
    config = dict(bn_config, model=dict(bn_config["model"], layers=[dict(layer) for layer in bn_config["model"]["layers"]]))
    config["model"]["layers"][8]["out_features"] = 6  # fc1 and bn3 change shape: not copied
    model = build_model(config_from_dict(config))
    report = init_from_checkpoint(model, straight)
    best, _ = load_checkpoint(straight / "checkpoints" / "best.npz")
    assert report.loaded_buffers == ["bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"]
    assert report.skipped["bn3.running_var"] == "shape (12,) in the checkpoint, (6,) here"
    assert any(line.startswith("  and 4 buffer(s): bn1.running_mean") for line in report.lines())
    for name in report.loaded_buffers:
        np.testing.assert_array_equal(model.buffers[name], best.buffers[name], err_msg=name)
    np.testing.assert_array_equal(model.buffers["bn3.running_var"], np.ones(6, dtype=np.float32))


def test_evaluation_paths_run_in_evaluation_mode(straight, tmp_path):
    """A batchnorm1d in training mode refuses a batch of 1, so a path that evaluated in training mode would fail here;
    in evaluation mode each image's result is independent of the batch around it."""
    _, model = load_checkpoint(straight / "checkpoints" / "best.npz")
    rng = np.random.default_rng(1)
    images, labels = rng.standard_normal((12, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 12)
    one_by_one, whole = evaluate(model, images, labels, batch_size=1), evaluate(model, images, labels, batch_size=12)
    assert one_by_one.confusion_matrix == whole.confusion_matrix and abs(one_by_one.loss - whole.loss) < 1e-5
    np.testing.assert_allclose(model.predict_proba(images[:1]), model.predict_proba(images)[:1], rtol=1e-5, atol=1e-6)
    image = tmp_path / "digit.png"
    Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(image)
    outcome = invoke_cli(["predict", image, "--checkpoint", straight / "checkpoints" / "best.npz"])
    assert outcome.code == 0, outcome.output
    summary = json.loads((straight / "summary.json").read_text())
    evaluated = invoke_cli(["eval", straight, "--json"])
    assert evaluated.code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] == summary["test_accuracy"]


def test_a_training_batch_of_one_image_for_batchnorm1d_is_one_line(bn_config, tmp_path):
    """500 training images in batches of 499 leave a last batch of 1: batchnorm1d could not normalise it."""
    config = dict(bn_config, train=dict(bn_config["train"], batch_size=499))
    outcome = invoke_cli(["train", "--config", write_config(tmp_path / "bn.yaml", config), "--run-dir", tmp_path / "run"])
    error_line(outcome, EXIT_BAD_INPUT, "model.layers[9] (batchnorm1d) needs more than one value per channel", "drop_last")
    assert not (tmp_path / "run").exists()  # refused before a run folder appears
    config["train"]["drop_last"] = True
    assert check_batch_statistics(config_from_dict(config), 500) is None


def test_a_batch_norm_inside_a_residual_block_is_checked_too(bn_config, tmp_path):
    """The same last batch of 1 image, with the batchnorm1d inside a residual block: refused by its nested path."""
    layers = bn_config["model"]["layers"]
    inner = [{"type": "dense", "out_features": 12}, {"type": "batchnorm1d"}]
    config = dict(
        bn_config,
        model=dict(bn_config["model"], layers=[*layers[:9], {"type": "residual", "layers": inner}, *layers[10:]]),
        train=dict(bn_config["train"], batch_size=499),
    )
    outcome = invoke_cli(["train", "--config", write_config(tmp_path / "bn.yaml", config), "--run-dir", tmp_path / "run"])
    error_line(outcome, EXIT_BAD_INPUT, "model.layers[9].layers[1] (batchnorm1d) needs more than one value per channel", "drop_last")
    assert not (tmp_path / "run").exists()
    config["train"]["drop_last"] = True
    assert check_batch_statistics(config_from_dict(config), 500) is None
