"""``cnn export CKPT --onnx FILE``: the ONNX graph built from the NumPy weights, run in onnxruntime.

Every shipped config, with random weights *and* random biases (the default zero
biases would hide a missing bias input), on 1000 real MNIST test images: the
predicted classes must be identical and the logits agree to 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn_cli.config.load import builtin_configs, load_config
from cnn_cli.data.idx import read_images
from cnn_cli.model.network import Model, build_model
from cnn_cli.runs.checkpoint import Checkpoint, save_checkpoint
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cnn_cli.runs.export_onnx import model_to_onnx  # noqa: E402

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
LOGIT_TOLERANCE = 1e-4


def randomise_biases(model: Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        if name.endswith(".bias"):
            value[...] = rng.normal(0.0, 0.1, value.shape)


def run_onnx(proto, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(["logits", "probabilities"], {"input": x.astype(np.float32)})
    return logits, probabilities


@pytest.fixture(scope="module")
def real_test_images(mnist_data_dir: Path) -> np.ndarray:
    pixels = read_images(mnist_data_dir / "mnist" / "t10k-images-idx3-ubyte")[:1000]
    return ((pixels.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD)[:, None]


@pytest.mark.parametrize("config_name", builtin_configs())
def test_every_shipped_config_agrees_with_onnxruntime_on_real_digits(config_name: str, real_test_images: np.ndarray) -> None:
    model = build_model(load_config(config_name), seed=3)
    randomise_biases(model, seed=4)
    proto = model_to_onnx(model)  # runs onnx.checker.check_model(full_check=True)
    logits, probabilities = run_onnx(proto, real_test_images)
    reference = model.forward(real_test_images)
    assert logits.shape == reference.shape
    difference = float(np.abs(logits - reference).max())
    assert difference < LOGIT_TOLERANCE, f"{config_name}: max |logit difference| {difference:.2e}"
    np.testing.assert_array_equal(model.loss.predict(logits), model.loss.predict(reference))
    np.testing.assert_allclose(probabilities, model.loss.probabilities(reference), atol=1e-5)


EVERY_OPTION = {
    "input_shape": [2, 17, 15],
    "layers": [
        {"type": "padding", "padding": [1, 2]},
        {"type": "conv2d", "out_channels": 6, "kernel_size": [3, 2], "stride": [2, 1], "padding": [2, 1], "dilation": [1, 2], "groups": 2},
        {"type": "leaky_relu", "negative_slope": 0.2},
        {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False},
        {"type": "tanh"},
        {"type": "avgpool2d", "kernel_size": [3, 2], "stride": [1, 2], "padding": [1, 1]},
        {"type": "sigmoid"},
        {"type": "dropout", "p": 0.4},
        {"type": "flatten"},
        {"type": "conv2d", "out_channels": 7, "kernel_size": 1},
        {"type": "relu"},
        {"type": "dense", "out_features": 5, "bias": False},
        {"type": "dense", "out_features": 3},
    ],
}


def test_every_layer_option_agrees_on_signed_random_input() -> None:
    """Padding of convs and pools (max pads with -inf, average counts the zeros), dilation, groups, no bias."""
    model = build_model(EVERY_OPTION, seed=5)
    randomise_biases(model, seed=6)
    x = np.random.default_rng(7).normal(0.0, 2.0, (9, 2, 17, 15)).astype(np.float32)  # negatives: max-pool padding matters
    logits, _ = run_onnx(model_to_onnx(model), x)
    reference = model.forward(x)
    assert float(np.abs(logits - reference).max()) < LOGIT_TOLERANCE
    ops = {node.op_type for node in model_to_onnx(model).graph.node}
    assert {"Pad", "Conv", "LeakyRelu", "MaxPool", "Tanh", "AveragePool", "Sigmoid", "Identity", "Reshape", "Gemm", "Relu"} <= ops


BATCH_NORM_NET = {
    "layers": [
        {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1},
        {"type": "batchnorm2d", "eps": 1e-3},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "bias": False},
        {"type": "batchnorm2d", "affine": False},
        {"type": "relu"},
        {"type": "global_avg_pool"},
        {"type": "dense", "out_features": 12},
        {"type": "batchnorm1d"},
        {"type": "relu"},
        {"type": "dense", "out_features": 10},
    ],
}


def test_batch_norm_and_global_average_pooling_agree_on_real_digits(real_test_images: np.ndarray) -> None:
    """Evaluation mode: random γ, β and running statistics (the fresh 0 and 1 would hide a swapped mean and variance)."""
    model = build_model(BATCH_NORM_NET, seed=12)
    randomise_biases(model, seed=13)
    rng = np.random.default_rng(14)
    for name, value in model.params.items():
        if name.startswith("bn") and name.endswith(".weight"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
    for name, value in model.buffers.items():
        value[...] = rng.uniform(0.5, 2.0, value.shape) if name.endswith("var") else rng.normal(0.0, 0.5, value.shape)
    proto = model_to_onnx(model)
    assert {"BatchNormalization", "GlobalAveragePool"} <= {node.op_type for node in proto.graph.node}
    logits, _ = run_onnx(proto, real_test_images)
    reference = model.forward(real_test_images)  # evaluation mode: the running statistics
    assert real_test_images.shape[0] == 1000 and logits.shape == reference.shape == (1000, 10)
    assert float(np.abs(logits - reference).max()) < LOGIT_TOLERANCE
    np.testing.assert_array_equal(model.loss.predict(logits), model.loss.predict(reference))
    assert float(np.abs(model.forward(real_test_images, training=True) - reference).max()) > 1e-2  # the modes do differ


def test_average_pool_padding_convention_is_what_the_check_sees() -> None:
    """The check can fail: ONNX's other convention (padding not counted) gives different numbers here."""
    model = build_model({"input_shape": [1, 6, 6], "layers": [{"type": "avgpool2d", "kernel_size": 3, "stride": 3, "padding": 1}]})
    x = np.random.default_rng(8).uniform(1.0, 2.0, (2, 1, 6, 6)).astype(np.float32)
    proto = model_to_onnx(model)
    pool = next(node for node in proto.graph.node if node.op_type == "AveragePool")
    next(a for a in pool.attribute if a.name == "count_include_pad").i = 0
    logits, _ = run_onnx(proto, x)
    assert float(np.abs(logits - model.forward(x)).max()) > 0.1


def test_batch_axis_is_dynamic() -> None:
    model = build_model("smoke", seed=0)
    proto = model_to_onnx(model)
    for n in (1, 3):
        x = np.random.default_rng(n).normal(size=(n, 1, 28, 28)).astype(np.float32)
        assert run_onnx(proto, x)[0].shape == (n, 10)


def saved_checkpoint(folder: Path, config_name: str = "seed004") -> tuple[Path, Model]:
    config = load_config(config_name)
    model = build_model(config, seed=9)
    randomise_biases(model, seed=10)
    classes = config.data.classes or list(range(10))
    path = folder / "best.npz"
    save_checkpoint(path, Checkpoint(params=model.params, config=config.as_dict(), data={"mean": 0.13, "std": 0.31, "classes": classes}))
    return path, model


def test_cnn_export_writes_a_checked_file_with_its_preprocessing_in_the_metadata(tmp_path: Path) -> None:
    checkpoint, model = saved_checkpoint(tmp_path)
    out = tmp_path / "exported" / "seed004.onnx"
    outcome = invoke_cli(["export", checkpoint, "--onnx", out])
    assert outcome.code == 0, outcome.output
    assert outcome.stdout.startswith(f"wrote {out}: ") and "probabilities (N, 2)" in outcome.stdout
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["config_name"] == "seed004" and meta["classes"] == "[3, 8]" and meta["mean"] == "0.13" and meta["std"] == "0.31"
    x = np.random.default_rng(11).normal(size=(20, 1, 28, 28)).astype(np.float32)
    logits, probabilities = run_onnx(proto, x)
    assert float(np.abs(logits - model.forward(x)).max()) < LOGIT_TOLERANCE
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, nothing left over


def test_export_of_a_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    outcome = invoke_cli(["export", tmp_path / "none.npz", "--onnx", tmp_path / "m.onnx"])
    error_line(outcome, EXIT_BAD_INPUT, "none.npz", "not found")


def test_export_onto_a_folder_is_one_line(tmp_path: Path) -> None:
    checkpoint, _ = saved_checkpoint(tmp_path)
    outcome = invoke_cli(["export", checkpoint, "--onnx", tmp_path])
    error_line(outcome, EXIT_BAD_INPUT, str(tmp_path), "is a folder")
