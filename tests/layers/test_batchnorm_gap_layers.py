"""batchnorm2d, batchnorm1d and global_avg_pool in configs: names, shapes, errors, buffers, modes, summary."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli.config.build import model_config_from_dict
from cnn_cli.errors import ModelBuildError
from cnn_cli.model.network import build_model

BN_NET = {
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3},
        {"type": "batchnorm2d", "momentum": 0.3},
        {"type": "relu"},
        {"type": "global_avg_pool"},
        {"type": "dense", "out_features": 5},
        {"type": "batchnorm1d", "affine": False, "eps": 1e-3},
        {"type": "dense", "out_features": 4},
    ],
}


def test_names_shapes_params_and_buffers():
    model = build_model(BN_NET, dtype="float64")
    assert [layer.name for layer in model.layers] == ["conv1", "bn1", "relu1", "gap1", "fc1", "bn2", "fc2"]
    assert [layer.output_shape for layer in model.layers][1:5] == [(3, 6, 6), (3, 6, 6), (3,), (5,)]
    assert {"bn1.weight", "bn1.bias"} <= set(model.params) and not any(name.startswith("bn2.") for name in model.params)
    assert list(model.buffers) == ["bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"]
    assert model.layers[4].in_features == 3  # the dense layer after GAP takes C features


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": "batchnorm1d"}], r"model.layers\[0\] \(batchnorm1d\): needs \(F,\) features .*got shape \(1, 8, 8\)"),
        (
            [{"type": "flatten"}, {"type": "dense", "out_features": 3}, {"type": "batchnorm2d"}],
            r"layers\[2\] \(batchnorm2d\): needs \(C, H, W\)",
        ),
        ([{"type": "flatten"}, {"type": "dense", "out_features": 3}, {"type": "global_avg_pool"}], r"layers\[2\] \(global_avg_pool\)"),
        ([{"type": "batchnorm2d", "momentum": 1.5}], r"momentum: expected a number >= 0.0 and <= 1.0, got 1.5"),
        ([{"type": "batchnorm2d", "eps": 0}], r"eps: expected a number > 0.0, got 0"),
        ([{"type": "global_avg_pool", "kernel_size": 2}], r"kernel_size"),
    ],
)
def test_misplaced_or_wrong_options_are_one_line_errors(layers, message):
    with pytest.raises(ModelBuildError, match=message) as caught:
        model_config_from_dict({"input_shape": [1, 8, 8], "layers": layers})
    assert "\n" not in str(caught.value)


def test_training_uses_batch_statistics_and_evaluation_the_running_ones():
    model = build_model(BN_NET, dtype="float64")
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8)) * 3 + 2
    before = {name: value.copy() for name, value in model.buffers.items()}
    model.forward(x, training=False)
    assert all(np.array_equal(before[name], value) for name, value in model.buffers.items())  # evaluation changes nothing
    first = model.forward(x, training=True)
    moved = model.buffers
    assert not np.allclose(moved["bn1.running_mean"], before["bn1.running_mean"])
    # A training output of one sample depends on the rest of the batch; an evaluation output does not.
    assert not np.allclose(model.forward(x[:3], training=True), first[:3])
    assert np.allclose(model.forward(x[:3], training=False), model.forward(x, training=False)[:3])


def test_load_buffers_copies_in_place_and_checks_names():
    model = build_model(BN_NET)
    held = model.layers[1].buffers["running_var"]
    model.load_buffers({name: np.full_like(value, 2.0) for name, value in model.buffers.items()})
    assert held is model.layers[1].buffers["running_var"] and np.all(held == 2.0)
    with pytest.raises(ValueError, match="buffer names differ"):
        model.load_buffers({})


def test_summary_lists_the_new_layers():
    rows = build_model(BN_NET).summary()
    assert [(row.name, row.type_name, row.num_params) for row in rows][1:6] == [
        ("bn1", "batchnorm2d", 6),
        ("relu1", "relu", 0),
        ("gap1", "global_avg_pool", 0),
        ("fc1", "dense", 20),
        ("bn2", "batchnorm1d", 0),
    ]
