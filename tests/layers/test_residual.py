"""The residual block: out = F(x) + S(x), and its backward, the sum of the two paths' gradients.

Checked like every layer: central differences in float64 with a random upstream gradient
(tests/support/gradcheck.py), and PyTorch autograd (the block written as torch ops) on
random shapes, with and without the 1x1 projection. A block whose backward forgets the
skip's gradient is shown to fail the same check.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn_cli.config.build import model_config_from_dict
from cnn_cli.errors import ModelBuildError
from cnn_cli.layers import BuildContext, Residual
from cnn_cli.learn.bugzoo.patches import patched
from cnn_cli.nn import residual as nn_residual
from tests.support.gradcheck import check_layer

MAX_REL_ERROR = 1e-6
ACTIVATIONS = {"tanh": torch.tanh, "leaky_relu": lambda t: F.leaky_relu(t, 0.01), "sigmoid": torch.sigmoid}


def block(options: dict[str, Any], input_shape: tuple[int, ...], seed: int = 0) -> Residual:
    """A float64 residual block from its config options, validated and named as the loader does it."""
    model = model_config_from_dict({"input_shape": list(input_shape), "layers": [{"type": "residual", **options}]})
    ctx = BuildContext(np.random.default_rng(seed), np.dtype("float64"), "kaiming")
    return Residual.build(model.layers[0], input_shape, ctx)


def random_block(rng: np.random.Generator, projection: bool) -> tuple[dict[str, Any], tuple[int, int, int]]:
    """conv -> activation -> conv; with a projection the second conv changes the channels and (maybe) the stride."""
    channels, height, width = int(rng.integers(1, 4)), int(rng.integers(3, 8)), int(rng.integers(3, 8))
    middle = int(rng.integers(1, 4))
    out_channels = int(rng.integers(1, 5)) if projection else channels
    stride = int(rng.integers(1, 3)) if projection else 1
    kernel = int(rng.choice([1, 3]))
    layers = [
        {"type": "conv2d", "out_channels": middle, "kernel_size": kernel, "padding": kernel // 2},
        {"type": str(rng.choice(list(ACTIVATIONS)))},
        {"type": "conv2d", "out_channels": out_channels, "kernel_size": 3, "padding": 1, "stride": stride},
    ]
    return {"layers": layers, "projection": projection}, (channels, height, width)


def torch_block(layer: Residual, x: torch.Tensor) -> torch.Tensor:
    """The same block written with torch ops, reading our weights (as leaf tensors in ``layer.torch_params``)."""
    out = x
    for inner in layer.inner:
        if inner.type_name == "conv2d":
            weight, bias = layer.torch_params[f"{inner.name}.weight"], layer.torch_params[f"{inner.name}.bias"]
            out = F.conv2d(out, weight, bias, stride=inner.stride, padding=inner.padding)
        else:
            out = ACTIVATIONS[inner.type_name](out)
    skip = x
    if layer.projection is not None:
        skip = F.conv2d(x, layer.torch_params[f"{layer.projection.name}.weight"], stride=layer.projection.stride)
    return out + skip


@pytest.mark.parametrize("projection", [False, True], ids=["identity", "projection"])
@pytest.mark.parametrize("index", range(12))
def test_the_block_matches_torch_autograd(index: int, projection: bool) -> None:
    rng = np.random.default_rng([7, index, projection])
    options, shape = random_block(rng, projection)
    layer = block(options, shape, seed=index)
    x = rng.standard_normal((int(rng.integers(1, 4)), *shape))
    out = layer.forward(x)
    upstream = rng.standard_normal(out.shape)
    grad_x = layer.backward(upstream)
    params = {f"{child.name}.{key}": value for child in layer.children() for key, value in child.params.items()}
    layer.torch_params = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}  # type: ignore[attr-defined]
    x_torch = torch.tensor(x, requires_grad=True)
    out_torch = torch_block(layer, x_torch)
    (out_torch * torch.tensor(upstream)).sum().backward()
    pairs = {"output": (out, out_torch), "input": (grad_x, x_torch.grad)}
    local = {f"{layer.name}.{key}": key for key in layer.grads}
    pairs.update({name: (layer.grads[local[name]], tensor.grad) for name, tensor in layer.torch_params.items()})  # type: ignore[attr-defined]
    for name, (ours, theirs) in pairs.items():
        expected = theirs.detach().numpy()
        error = np.max(np.abs(ours - expected)) / max(np.max(np.abs(expected)), 1e-300)
        assert error <= MAX_REL_ERROR, f"{options}: {name} rel err {error:.2e}"


@pytest.mark.parametrize("projection", [False, True], ids=["identity", "projection"])
@pytest.mark.parametrize("index", range(4))
def test_the_block_passes_a_numeric_gradient_check(index: int, projection: bool) -> None:
    rng = np.random.default_rng([11, index, projection])
    options, shape = random_block(rng, projection)
    errors = check_layer(block(options, shape, seed=index), rng.standard_normal((2, *shape)), rng)
    assert set(errors) == {"input", *block(options, shape).params}


def forgets_the_skip(grad_through_layers: np.ndarray, grad_along_skip: np.ndarray) -> np.ndarray:
    return grad_through_layers  # the bug: x fed two paths, but only one gradient comes back


@pytest.mark.parametrize("projection", [False, True], ids=["identity", "projection"])
def test_a_block_that_forgets_the_skips_gradient_fails_the_check(projection: bool) -> None:
    rng = np.random.default_rng([13, projection])
    options, shape = random_block(rng, projection)
    layer = block(options, shape)
    with patched(nn_residual, "fork_backward", forgets_the_skip), pytest.raises(AssertionError, match="dL/dx: relative error"):
        check_layer(layer, rng.standard_normal((2, *shape)), rng)


def test_the_input_gradient_is_the_sum_of_the_two_paths() -> None:
    """With the inner layers' output multiplied by 0 (weights zeroed), dL/dx is dL/dout exactly: the skip's share."""
    options = {"layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1}, {"type": "tanh"}]}
    layer = block(options, (2, 4, 4))
    for value in layer.params.values():
        value[...] = 0.0
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 4, 4))
    np.testing.assert_array_equal(layer.forward(x), x)
    upstream = rng.standard_normal((2, 2, 4, 4))
    np.testing.assert_array_equal(layer.backward(upstream), upstream)


def test_params_grads_and_buffers_are_the_inner_layers_own_arrays() -> None:
    conv = {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1}
    layer = block({"layers": [conv], "projection": True}, (2, 7, 7))
    conv, projection = layer.inner[0], layer.projection
    assert projection is not None
    assert (conv.name, projection.name) == ("res1.conv1", "res1.proj")
    assert layer.params["conv1.weight"] is conv.params["weight"] and layer.params["proj.weight"] is projection.params["weight"]
    assert "proj.bias" not in layer.params and projection.stride == (2, 2)
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 7))
    layer.backward(np.ones_like(layer.forward(x)))
    assert layer.grads["conv1.weight"] is conv.grads["weight"] and layer.grads["proj.weight"] is projection.grads["weight"]
    assert layer.buffers == {}


def test_an_inner_layers_buffers_are_the_blocks_under_its_local_name() -> None:
    """The batch-norm contract: Layer.buffers (running statistics) of an inner layer appear in the block's buffers,
    the same arrays, from the moment the block is built (a checkpoint loads them in place)."""
    from cnn_cli.layers import Conv2D

    conv = Conv2D("res1.conv1", 2, 2, 3, padding=1, dtype=np.float64)
    conv.buffers["running_mean"] = np.zeros(2)
    layer = Residual("res1", [conv])
    assert layer.buffers["conv1.running_mean"] is conv.buffers["running_mean"]
    conv.buffers["running_mean"] = np.ones(2)  # a layer that replaces its array: the block reads it again after a forward
    conv.input_shape = conv.output_shape = (2, 4, 4)
    layer.forward(np.zeros((1, 2, 4, 4)))
    assert layer.buffers["conv1.running_mean"] is conv.buffers["running_mean"]


def test_shapes_that_differ_without_a_projection_are_refused_with_the_remedy() -> None:
    with pytest.raises(ModelBuildError, match=r"model.layers\[0\] \(residual\): the inner layers give \(4, 6, 6\).*projection: true"):
        block({"layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}]}, (2, 6, 6))


def test_an_inner_layers_bad_option_names_its_nested_key_path() -> None:
    options = {"layers": [{"type": "relu"}, {"type": "conv2d", "out_channels": 2, "kernel_size": -1}]}
    with pytest.raises(ModelBuildError) as caught:
        block(options, (2, 6, 6))
    assert caught.value.key_path == "model.layers[0].layers[1].kernel_size"
    assert str(caught.value).startswith("model.layers[0].layers[1] (conv2d): kernel_size: expected a positive int")


def test_a_projection_whose_stride_cannot_meet_the_inner_map_is_refused() -> None:
    unpadded = {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2}
    with pytest.raises(ModelBuildError, match="stride 2x2 takes the input's 7x7 map to 4x4, not to the inner layers' 3x3; pad"):
        block({"layers": [unpadded], "projection": True}, (2, 7, 7))


def test_inner_names_are_unique_within_the_block_and_proj_is_reserved_there() -> None:
    conv = {"type": "conv2d", "out_channels": 2, "kernel_size": 1}
    with pytest.raises(ModelBuildError, match=r"model.layers\[0\].layers\[1\] \(conv2d\): layer name 'a' is used twice"):
        block({"layers": [{**conv, "name": "a"}, {**conv, "name": "a"}]}, (2, 6, 6))
    with pytest.raises(ModelBuildError, match="'proj' is the block's projection"):
        block({"layers": [{**conv, "name": "proj"}], "projection": True}, (2, 6, 6))


def test_summary_lists_a_blocks_inner_layers_under_it_and_depth_1_hides_them() -> None:
    from cnn_cli.config.memory import estimate_memory
    from cnn_cli.model.network import build_model

    config = {
        "input_shape": [2, 8, 8],
        "layers": [
            {
                "type": "residual",
                "projection": True,
                "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1}],
            },
            {"type": "flatten"},
            {"type": "dense", "out_features": 3},
        ],
    }
    model = build_model(config)
    rows = model.summary()
    assert [(row.name, row.depth) for row in rows] == [("res1", 0), ("res1.conv1", 1), ("res1.proj", 1), ("flatten1", 0), ("fc1", 0)]
    assert rows[0].num_params == rows[1].num_params + rows[2].num_params == 4 * 2 * 9 + 4 + 4 * 2
    assert [row.name for row in model.summary(depth=1)] == ["res1", "flatten1", "fc1"]
    spec = model_config_from_dict(config).layers[0]
    assert spec.num_params((2, 8, 8)) == rows[0].num_params
    assert spec.workspace((2, 8, 8)) == 2 * 4 * 4 * 4 + 4 * 4 * 9 * 2 + 4 * 4 * 2  # inner + projection outputs, their im2col
    assert estimate_memory(model_config_from_dict(config), 1, "float32").param_bytes == 4 * 4 * model.num_params()
