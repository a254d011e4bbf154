"""Building models from configs: shape inference, names, seeded initialisation, and configs that cannot work."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli.errors import CnnError, ModelBuildError
from cnn_cli.model.network import build_model, model_config_of, output_layer_index
from cnn_cli.nn.init import OUTPUT_GAIN
from tests.support import REPO_ROOT

MNIST_YAML = REPO_ROOT / "configs" / "mnist.yaml"

# Notes 000's network: feature maps 28 -> 28 -> 14 -> 12 -> 10, flattened to 64·10·10 = 6400.
MNIST_SHAPES = [
    ("conv1", "conv2d", (16, 28, 28)),
    ("relu1", "relu", (16, 28, 28)),
    ("conv2", "conv2d", (32, 14, 14)),
    ("relu2", "relu", (32, 14, 14)),
    ("conv3", "conv2d", (64, 12, 12)),
    ("relu3", "relu", (64, 12, 12)),
    ("conv4", "conv2d", (64, 10, 10)),
    ("relu4", "relu", (64, 10, 10)),
    ("flatten1", "flatten", (6400, 1, 1)),
    ("conv5", "conv2d", (128, 1, 1)),
    ("relu5", "relu", (128, 1, 1)),
    ("conv6", "conv2d", (10, 1, 1)),
]
MNIST_PARAMS = {
    "conv1.weight": (16, 1, 3, 3),
    "conv1.bias": (16,),
    "conv2.weight": (32, 16, 3, 3),
    "conv2.bias": (32,),
    "conv3.weight": (64, 32, 3, 3),
    "conv3.bias": (64,),
    "conv4.weight": (64, 64, 3, 3),
    "conv4.bias": (64,),
    "conv5.weight": (128, 6400, 1, 1),
    "conv5.bias": (128,),
    "conv6.weight": (10, 128, 1, 1),
    "conv6.bias": (10,),
}


@pytest.fixture(scope="module")
def mnist():
    return build_model("mnist")


# ---------------------------------------------------------------- shape inference and names


def test_mnist_shape_inference(mnist):
    assert mnist.input_shape == (1, 28, 28)
    assert [(s.name, s.type_name, s.output_shape) for s in mnist.summary()] == MNIST_SHAPES
    assert mnist.output_shape == (10, 1, 1)
    assert mnist.loss.name == "softmax_cross_entropy"
    assert mnist.loss.num_classes == 10


def test_mnist_parameter_names_shapes_and_count(mnist):
    assert {name: p.shape for name, p in mnist.params.items()} == MNIST_PARAMS
    assert list(mnist.params) == list(MNIST_PARAMS)  # model order: conv1.weight, conv1.bias, conv2.weight ...
    assert mnist.num_params() == 880_842
    assert sum(s.num_params for s in mnist.summary()) == 880_842


def test_mnist_forward_backward_fill_grads_under_the_same_names(mnist):
    rng = np.random.default_rng(0)
    logits = mnist.forward(rng.random((2, 1, 28, 28)).astype(np.float32), training=True)
    assert logits.shape == (2, 10, 1, 1)
    assert logits.dtype == np.float32
    _, grad_logits = mnist.loss(logits, np.array([3, 7]))
    mnist.backward(grad_logits)
    assert {name: g.shape for name, g in mnist.grads.items()} == MNIST_PARAMS


def test_model_params_are_the_layer_arrays(mnist):
    """The optimizer updates model.params in place; that must be the array the layer computes with."""
    conv1 = mnist.layers[0]
    assert mnist.params["conv1.weight"] is conv1.params["weight"]


def test_yaml_path_builtin_name_and_dict_build_the_same_model():
    import yaml

    by_name = build_model("mnist", seed=3)
    by_path = build_model(str(MNIST_YAML), seed=3)
    by_dict = build_model(yaml.safe_load(MNIST_YAML.read_text())["model"], seed=3)
    for name in by_name.params:
        np.testing.assert_array_equal(by_name.params[name], by_path.params[name])
        np.testing.assert_array_equal(by_name.params[name], by_dict.params[name])


def test_wrong_input_shape_is_rejected_at_forward(mnist):
    with pytest.raises(ValueError, match=r"expects input \(N, 1, 28, 28\)"):
        mnist.forward(np.zeros((2, 1, 27, 28), dtype=np.float32))


def test_shape_inference_on_a_mixed_config():
    """in_channels / in_features come from the previous layer, for every layer type."""
    model = build_model(
        {
            "input_shape": [3, 11, 9],
            "layers": [
                {"type": "padding", "padding": [1, 2]},  # 3x13x13
                {"type": "conv2d", "out_channels": 4, "kernel_size": [3, 2], "stride": 2, "groups": 1},  # 4x6x6
                {"type": "leaky_relu", "negative_slope": 0.1},
                {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "dilation": 2, "groups": 4, "padding": 2},
                {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},  # 8x3x3
                {"type": "avgpool2d", "kernel_size": 2, "stride": 1},  # 8x2x2
                {"type": "tanh"},
                {"type": "flatten"},  # 32x1x1
                {"type": "dropout", "p": 0.2},
                {"type": "dense", "out_features": 5},
                {"type": "sigmoid"},
                {"type": "dense", "out_features": 3, "bias": False},
            ],
        }
    )
    shapes = [layer.output_shape for layer in model.layers]
    assert shapes == [
        (3, 13, 13),
        (4, 6, 6),
        (4, 6, 6),
        (8, 6, 6),
        (8, 3, 3),
        (8, 2, 2),
        (8, 2, 2),
        (32, 1, 1),
        (32, 1, 1),
        (5,),
        (5,),
        (3,),
    ]
    assert model.params["conv2.weight"].shape == (8, 1, 3, 3)  # C_in / groups = 4 / 4
    assert model.params["fc1.weight"].shape == (5, 32)
    assert "fc2.bias" not in model.params
    out = model.forward(np.zeros((2, 3, 11, 9), dtype=np.float32))
    assert out.shape == (2, 3)


# ---------------------------------------------------------------- initialisation


def test_same_seed_gives_bit_identical_weights():
    first, second = build_model("mnist", seed=42), build_model("mnist", seed=42)
    for name in first.params:
        assert first.params[name].tobytes() == second.params[name].tobytes(), name


def test_different_seed_gives_different_weights():
    first, second = build_model("mnist", seed=1), build_model("mnist", seed=2)
    for name in first.params:
        if name.endswith(".weight"):
            assert not np.array_equal(first.params[name], second.params[name]), name


def test_float32_and_float64_hold_the_same_weights_up_to_rounding():
    single, double = build_model("mnist", seed=5), build_model("mnist", seed=5, dtype="float64")
    for name in single.params:
        assert single.params[name].dtype == np.float32
        assert double.params[name].dtype == np.float64
        np.testing.assert_array_equal(single.params[name], double.params[name].astype(np.float32))


def test_biases_start_at_zero(mnist):
    for name, value in mnist.params.items():
        if name.endswith(".bias"):
            assert not value.any(), name


@pytest.mark.parametrize(("name", "fan_in"), [("conv4.weight", 64 * 9), ("conv5.weight", 6400), ("conv2.weight", 144)])
def test_kaiming_normal_statistics(name, fan_in):
    """He init: N(0, 2 / fan_in), fan_in = C_in/groups · kH · kW."""
    weights = build_model("mnist", seed=0, dtype="float64").params[name].ravel()
    std = np.sqrt(2.0 / fan_in)
    assert abs(weights.mean()) < 4 * std / np.sqrt(weights.size)
    assert weights.std() == pytest.approx(std, rel=0.03)
    # a normal, not a uniform: about 31.7% of the draws lie beyond one standard deviation
    assert np.mean(np.abs(weights) > std) == pytest.approx(0.3173, abs=0.02)


def test_xavier_uniform_statistics():
    """Glorot init: U(−a, a), a = sqrt(6 / (fan_in + fan_out)), for conv and dense layers."""
    model = build_model(
        {
            "input_shape": [32, 8, 8],
            "init": "xavier",
            "layers": [
                {"type": "conv2d", "out_channels": 64, "kernel_size": 3},
                {"type": "flatten"},
                {"type": "dense", "out_features": 300},
                {"type": "dense", "out_features": 10},  # the output layer, drawn small (below)
            ],
        },
        dtype="float64",
    )
    for name, fan_in, fan_out in [("conv1.weight", 32 * 9, 64 * 9), ("fc1.weight", 64 * 36, 300)]:
        weights = model.params[name].ravel()
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(weights).max() <= limit
        assert np.abs(weights).max() > 0.99 * limit
        assert weights.std() == pytest.approx(limit / np.sqrt(3.0), rel=0.03)


def test_per_layer_init_overrides_the_model_default():
    model = build_model(
        {
            "input_shape": [16, 6, 6],
            "init": "kaiming",
            "layers": [
                {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "init": "xavier"},
                {"type": "conv2d", "out_channels": 16, "kernel_size": 3},
                {"type": "conv2d", "out_channels": 4, "kernel_size": 2, "init": "kaiming"},
            ],
        }
    )
    xavier_limit = np.sqrt(6.0 / (16 * 9 + 16 * 9))
    assert np.abs(model.params["conv1.weight"]).max() <= xavier_limit
    assert np.abs(model.params["conv2.weight"]).max() > xavier_limit  # a normal's tail goes past it
    # the output layer names its own init, so it is not drawn small
    assert model.params["conv3.weight"].std() > 5 * OUTPUT_GAIN / np.sqrt(16 * 4)


@pytest.mark.parametrize(("config", "output", "fan_in"), [("mnist", "conv6.weight", 128), ("lenet5", "fc3.weight", 84)])
def test_the_output_layer_is_drawn_small(config, output, fan_in):
    """The last layer with weights gets N(0, 0.01/fan_in) whatever model.init says (cnn docs initial-loss)."""
    model = build_model(config, seed=0, dtype="float64")
    weights = model.params[output].ravel()
    assert weights.std() == pytest.approx(OUTPUT_GAIN / np.sqrt(fan_in), rel=0.1)


def test_output_layer_index_is_the_last_layer_with_weights():
    specs = model_config_of(
        {
            "input_shape": [1, 8, 8],
            "loss": "sum_squared_error",
            "layers": [
                {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
                {"type": "flatten"},
                {"type": "dense", "out_features": 3},
                {"type": "sigmoid"},
            ],
        }
    ).layers
    assert output_layer_index(specs) == 2
    assert output_layer_index(specs[:2]) == 0
    assert output_layer_index(specs[1:2]) is None


# ---------------------------------------------------------------- configs that cannot work


def conv(**options):
    return {"type": "conv2d", **options}


BAD_CONFIGS = [
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(out_channels=2, kernel_size=9)]},
        ["model.layers[0] (conv2d)", "9x9", "8x8"],
        id="kernel-larger-than-input",
    ),
    pytest.param(
        {
            "input_shape": [1, 8, 8],
            "layers": [conv(out_channels=2, kernel_size=3, padding=1), conv(out_channels=2, kernel_size=3, dilation=5)],
        },
        ["model.layers[1] (conv2d)", "3x3", "dilation 5x5", "8x8"],
        id="dilated-kernel-larger-than-input",
    ),
    pytest.param(
        {
            "input_shape": [3, 6, 6],
            "layers": [{"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2}, conv(out_channels=2, kernel_size=[2, 6], padding=[0, 1])],
        },
        ["model.layers[2] (conv2d)", "2x6", "padded input 3x5"],
        id="kernel-larger-than-padded-input-after-pool",
    ),
    pytest.param(
        {"input_shape": [3, 8, 8], "layers": [conv(out_channels=4, kernel_size=3, groups=2)]},
        ["model.layers[0] (conv2d)", "groups=2", "in_channels=3"],
        id="in-channels-not-divisible-by-groups",
    ),
    pytest.param(
        {"input_shape": [4, 8, 8], "layers": [conv(out_channels=6, kernel_size=3, groups=4)]},
        ["model.layers[0] (conv2d)", "groups=4", "out_channels=6"],
        id="out-channels-not-divisible-by-groups",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "relu"}, {"type": "conv2", "out_channels": 2}]},
        ["model.layers[1]", "'conv2'", "did you mean 'conv2d'"],
        id="unknown-type-with-suggestion",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "maxpool", "kernel_size": 2}]},
        ["model.layers[0]", "'maxpool'", "did you mean 'maxpool2d'"],
        id="unknown-pool-type-with-suggestion",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(kernel_size=3)]},
        ["model.layers[0] (conv2d)", "missing", "out_channels"],
        id="missing-out-channels",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "flatten"}, {"type": "dense"}]},
        ["model.layers[1] (dense)", "missing", "out_features"],
        id="missing-out-features",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(out_channels=2, kernel_size=-1)]},
        ["model.layers[0] (conv2d)", "kernel_size", "-1"],
        id="negative-kernel",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(out_channels=-4, kernel_size=3)]},
        ["model.layers[0] (conv2d)", "out_channels", "-4"],
        id="negative-channels",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(out_channels=0, kernel_size=3)]},
        ["model.layers[0] (conv2d)", "out_channels", "got 0"],
        id="zero-channels",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(out_channels=2, kernel_size=3, padding=-1)]},
        ["model.layers[0] (conv2d)", "padding", "-1"],
        id="negative-padding",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(out_channels=2, kernel_size=3, stride=0)]},
        ["model.layers[0] (conv2d)", "stride", "got 0"],
        id="zero-stride",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(out_channels=2, kernel_size=[3, 3, 3])]},
        ["model.layers[0] (conv2d)", "kernel_size", "[3, 3, 3]"],
        id="kernel-with-three-sizes",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [conv(out_channels=2, kernal_size=3)]},
        ["model.layers[0] (conv2d)", "unknown option 'kernal_size'", "did you mean 'kernel_size'"],
        id="unknown-option",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "maxpool2d", "kernel_size": 2, "padding": 2}]},
        ["model.layers[0] (maxpool2d)", "padding 2x2", "half the kernel 2x2"],
        id="maxpool-padding-over-half-kernel",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "avgpool2d", "kernel_size": [3, 4], "padding": [1, 3]}]},
        ["model.layers[0] (avgpool2d)", "padding 1x3", "3x4"],
        id="avgpool-padding-over-half-kernel",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "maxpool2d", "kernel_size": 9}]},
        ["model.layers[0] (maxpool2d)", "9x9", "8x8"],
        id="pool-kernel-larger-than-input",
    ),
    pytest.param(
        {
            "input_shape": [1, 8, 8],
            "layers": [{"type": "flatten"}, {"type": "dense", "out_features": 4}, conv(out_channels=2, kernel_size=1)],
        },
        ["model.layers[2] (conv2d)", "(C, H, W)", "(4,)"],
        id="conv-after-dense",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "dense", "out_features": 4}, {"type": "maxpool2d", "kernel_size": 1}]},
        ["model.layers[1] (maxpool2d)", "(C, H, W)", "(4,)"],
        id="pool-after-dense",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "dropout", "p": 1.0}]},
        ["model.layers[0] (dropout)", "p", "1.0"],
        id="dropout-p-one",
    ),
    pytest.param(
        {"input_shape": [1, -8, 8], "layers": [{"type": "relu"}]},
        ["model.input_shape", "-8"],
        id="negative-input-size",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": []},
        ["model.layers"],
        id="no-layers",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "loss": "binary_cross_entropy", "layers": [{"type": "flatten"}, {"type": "dense", "out_features": 3}]},
        ["binary_cross_entropy", "one output", "(3,)"],
        id="bce-needs-one-output",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "relu", "name": "act"}, {"type": "relu", "name": "act"}]},
        ["model.layers[1] (relu)", "'act'", "twice"],
        id="duplicate-layer-name",
    ),
    pytest.param(
        {"input_shape": [1, 8, 8], "layers": [{"type": "relu", "name": "conv1.weight"}]},
        ["model.layers[0] (relu)", "no dots"],
        id="dotted-layer-name",
    ),
]


@pytest.mark.parametrize(("config", "expected"), BAD_CONFIGS)
def test_bad_config_is_rejected_at_build_time_naming_the_layer(config, expected):
    with pytest.raises(ModelBuildError) as caught:
        build_model(config)
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "\n" not in message  # one line


def test_model_build_error_is_a_user_input_error():
    """The CLI maps CnnError to exit code 2 (bad input), so a bad architecture is reported, not a crash."""
    assert issubclass(ModelBuildError, CnnError)
    assert ModelBuildError.exit_code == 2


def test_notebook_api_import_from_the_package():
    """cnn_cli/model/network.py documents ``from cnn_cli import build_model`` for notebook users; that import must work."""
    import cnn_cli

    assert cnn_cli.build_model is build_model


def test_evaluation_forward_without_caches_gives_the_same_logits():
    """forward(keep_cache=False), used by eval and predict, drops im2col matrices and ReLU masks
    but computes exactly what the training-mode forward computes."""
    model = build_model("mnist", seed=3)
    x = np.random.default_rng(3).standard_normal((5, 1, 28, 28)).astype(np.float32)
    kept = model.forward(x, keep_cache=True)
    dropped = model.forward(x, keep_cache=False)
    assert np.array_equal(kept, dropped)
    assert all(getattr(layer, "_cache", None) is None for layer in model.layers if layer.params or layer.type_name == "relu")
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward(np.ones_like(dropped))
