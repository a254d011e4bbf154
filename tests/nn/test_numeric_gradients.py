"""Central-difference gradient checks of every layer and loss, in float64, over every mode.

Each layer is checked on L = Σ G · layer(x) with a random upstream gradient G:
the input gradient and every parameter gradient its hand-written backward
returns must match central differences (tests/gradcheck_utils.py). Max-pool
inputs are tie-free, ReLU inputs stay away from 0, so the finite-difference step
never crosses a kink. The last tests break a backward on purpose and show the
check fails.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import cnn_cli.nn.activations as activations_module
from cnn_cli.layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    Padding,
    ReLU,
    Sigmoid,
    Tanh,
)
from cnn_cli.model.network import Loss
from cnn_cli.nn.conv import _weight_matrix, conv2d_backward
from cnn_cli.nn.losses import binary_cross_entropy_with_logits, softmax_cross_entropy, sum_squared_error
from cnn_cli.nn.pool import avgpool2d_backward
from cnn_cli.nn.windows import tap_slice
from tests.support.gradcheck import (
    assert_gradient_close,
    away_from_zero,
    check_layer,
    numeric_gradient,
    relative_error,
    shuffled_linspace,
)

F64 = np.float64


def make_conv(rng, c_in, c_out, kernel, stride, padding, dilation, groups, bias) -> Conv2D:
    """A float64 Conv2D with random weights and (if any) a random, non-zero bias."""
    layer = Conv2D("conv", c_in, c_out, kernel, stride, padding, dilation, groups, bias, rng, F64)
    if bias:
        layer.params["bias"][...] = rng.standard_normal(c_out)
    return layer


# ---------------------------------------------------------------- convolution

CONV_GRID = list(itertools.product([1, 2, 3], [0, 1, 2], [1, 2], [1, 2, 4], [True, False]))


@pytest.mark.parametrize(("stride", "padding", "dilation", "groups", "bias"), CONV_GRID)
def test_conv2d_gradcheck_mode_grid(stride, padding, dilation, groups, bias):
    """Every combination of stride 1/2/3, padding 0/1/2, dilation 1/2, groups 1/2/4, bias on/off.

    Rectangular 3x2 kernel on a rectangular 7x6 input, 4 -> 8 channels, batch 2.
    """
    rng = np.random.default_rng([stride, padding, dilation, groups, int(bias)])
    layer = make_conv(rng, 4, 8, (3, 2), stride, padding, dilation, groups, bias)
    x = rng.standard_normal((2, 4, 7, 6))
    errors = check_layer(layer, x, rng)
    assert set(errors) == {"input", "weight"} | ({"bias"} if bias else set())


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "groups", "hw"),
    [
        ((2, 3), (1, 2), (2, 0), (2, 1), 1, (5, 9)),
        ((1, 3), (3, 1), (0, 2), (1, 2), 2, (8, 5)),
        ((3, 1), (2, 3), (1, 1), (1, 1), 4, (6, 7)),
        ((1, 1), (1, 1), (0, 0), (1, 1), 1, (3, 4)),  # the 1x1 conv that acts as a dense layer (notes 000's conv5)
        ((1, 1), (2, 2), (1, 0), (1, 1), 2, (5, 4)),
        ((1, 1), (1, 1), (0, 0), (2, 1), 4, (3, 5)),  # grouped pointwise: the weight gradient lands in place per group
        ((4, 2), (1, 1), (0, 1), (1, 3), 1, (4, 3)),  # kernel as tall as the input: a single output row
    ],
)
def test_conv2d_gradcheck_per_axis_modes(kernel, stride, padding, dilation, groups, hw):
    """Different stride, padding and dilation along H and W, and odd kernel shapes."""
    rng = np.random.default_rng(sum(kernel) * 100 + sum(stride) * 10 + groups)
    layer = make_conv(rng, 4, 4, kernel, stride, padding, dilation, groups, True)
    check_layer(layer, rng.standard_normal((2, 4, *hw)), rng)


def test_conv2d_gradcheck_first_layer_skips_input_grad():
    """need_input_grad=False (the model's first layer) still fills the parameter gradients correctly."""
    rng = np.random.default_rng(7)
    layer = make_conv(rng, 2, 3, 3, 1, 1, 1, 1, True)
    x = rng.standard_normal((2, 2, 5, 5))
    upstream = rng.standard_normal(layer.forward(x).shape)
    assert layer.backward(upstream, need_input_grad=False) is None
    skipped = {key: value.copy() for key, value in layer.grads.items()}
    layer.forward(x)
    layer.backward(upstream, need_input_grad=True)
    for key in skipped:
        np.testing.assert_array_equal(skipped[key], layer.grads[key])


# ---------------------------------------------------------------- pooling

POOL_GRID = list(itertools.product([(2, 2), (3, 2), (2, 3), (3, 3)], [1, 2, 3], [0, 1]))


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_GRID)
def test_maxpool2d_gradcheck(kernel, stride, padding):
    """Tie-free input (shuffled linspace): one clear winner per window, ±ε never changes it."""
    rng = np.random.default_rng([kernel[0], kernel[1], stride, padding])
    layer = MaxPool2D("pool", kernel, stride, padding)
    check_layer(layer, shuffled_linspace((2, 3, 7, 6), rng), rng)


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_GRID)
def test_avgpool2d_gradcheck(kernel, stride, padding):
    rng = np.random.default_rng([kernel[0], kernel[1], stride, padding, 1])
    layer = AvgPool2D("pool", kernel, stride, padding)
    check_layer(layer, rng.standard_normal((2, 3, 7, 6)), rng)


@pytest.mark.parametrize("pool_class", [MaxPool2D, AvgPool2D])
def test_pool_gradcheck_per_axis_padding_and_default_stride(pool_class):
    """Padding (1, 0), and stride left to default to the kernel size."""
    rng = np.random.default_rng(3)
    x = shuffled_linspace((2, 2, 5, 8), rng)
    check_layer(pool_class("pool", (3, 2), (1, 2), (1, 0)), x, rng)
    check_layer(pool_class("pool", (2, 3)), x, rng)


# ---------------------------------------------------------------- activations and reshaping


@pytest.mark.parametrize("layer", [ReLU("relu"), LeakyReLU("leaky", 0.01), LeakyReLU("leaky", 0.3)])
def test_piecewise_linear_activation_gradcheck(layer):
    """Inputs at least 0.1 away from the kink at 0, half of them negative."""
    rng = np.random.default_rng(11)
    check_layer(layer, away_from_zero((3, 2, 4, 5), rng), rng)


@pytest.mark.parametrize("layer", [Sigmoid("sigmoid"), Tanh("tanh")])
@pytest.mark.parametrize("shape", [(3, 2, 4, 5), (4, 6)])
def test_smooth_activation_gradcheck(layer, shape):
    rng = np.random.default_rng(12)
    check_layer(layer, 3 * rng.standard_normal(shape), rng)


def test_flatten_gradcheck():
    """(N, C, H, W) -> (N, C·H·W, 1, 1) and back (notes 003's reshape layer)."""
    rng = np.random.default_rng(13)
    layer = Flatten("flatten")
    x = rng.standard_normal((2, 3, 4, 5))
    assert layer.forward(x).shape == (2, 60, 1, 1)
    check_layer(layer, x, rng)


@pytest.mark.parametrize("padding", [(1, 1), (2, 0), (0, 3)])
def test_padding_gradcheck(padding):
    """Notes 000 §2.6: dL/dx is dL/dy on the interior."""
    rng = np.random.default_rng(sum(padding))
    check_layer(Padding("pad", padding), rng.standard_normal((2, 3, 4, 5)), rng)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("input_shape", [(7,), (3, 2, 2), (12, 1, 1)])
def test_dense_gradcheck(bias, input_shape):
    """Dense on a flat input, on a feature map, and on Flatten's (F, 1, 1) output."""
    rng = np.random.default_rng(len(input_shape) + int(bias))
    in_features = int(np.prod(input_shape))
    layer = Dense("fc", in_features, 5, bias, rng, F64)
    if bias:
        layer.params["bias"][...] = rng.standard_normal(5)
    check_layer(layer, rng.standard_normal((3, *input_shape)), rng)


class FixedUniforms:
    """Stands in for a Dropout layer's generator: returns the same uniforms on every call, so the mask is fixed."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def random(self, shape) -> np.ndarray:
        if tuple(shape) != self.values.shape:
            raise ValueError(f"asked for {shape}, holding {self.values.shape}")
        return self.values


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_gradcheck_with_fixed_mask(p):
    """In training, dL/dx = dL/dy · mask / (1 − p); the mask is frozen so the loss is a fixed function of x."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((3, 2, 4, 4))
    layer = Dropout("drop", p)
    layer.rng = FixedUniforms(rng.random(x.shape))
    layer.training = True
    out = layer.forward(x)
    dropped = out == 0
    assert 0 < dropped.mean() < 1
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - p))
    check_layer(layer, x, rng)


def test_dropout_eval_is_identity_and_gradcheck():
    rng = np.random.default_rng(15)
    layer = Dropout("drop", 0.5)
    x = rng.standard_normal((2, 6))
    np.testing.assert_array_equal(layer.forward(x), x)
    check_layer(layer, x, rng)


# ---------------------------------------------------------------- losses


def check_loss(loss_fn, logits: np.ndarray, targets: np.ndarray) -> float:
    """The loss's returned dLoss/dlogits against central differences of the returned loss."""
    _, grad = loss_fn(logits, targets)
    numeric = numeric_gradient(lambda: loss_fn(logits, targets)[0], logits)
    return assert_gradient_close(getattr(loss_fn, "__name__", "loss"), grad, numeric)


@pytest.mark.parametrize("n", [1, 4])
def test_softmax_cross_entropy_gradcheck(n):
    rng = np.random.default_rng(20 + n)
    check_loss(softmax_cross_entropy, 3 * rng.standard_normal((n, 10)), rng.integers(0, 10, n))


def test_softmax_cross_entropy_gradcheck_large_logits():
    """Logits in the hundreds: the max-shifted log-softmax keeps loss and gradient finite and right."""
    rng = np.random.default_rng(22)
    logits = 300 + 5 * rng.standard_normal((3, 4))
    check_loss(softmax_cross_entropy, logits, np.array([0, 3, 1]))


@pytest.mark.parametrize("shape", [(5, 1), (5,)])
def test_binary_cross_entropy_gradcheck(shape):
    rng = np.random.default_rng(23)
    check_loss(binary_cross_entropy_with_logits, 4 * rng.standard_normal(shape), rng.integers(0, 2, 5))


def test_binary_cross_entropy_gradcheck_soft_targets():
    rng = np.random.default_rng(24)
    check_loss(binary_cross_entropy_with_logits, 4 * rng.standard_normal((6, 1)), rng.random(6))


def test_sum_squared_error_gradcheck():
    rng = np.random.default_rng(25)
    targets = np.eye(4)[rng.integers(0, 4, 5)]
    check_loss(sum_squared_error, rng.standard_normal((5, 4)), targets)


@pytest.mark.parametrize(
    ("name", "output_shape"),
    [("softmax_cross_entropy", (10, 1, 1)), ("binary_cross_entropy", (1,)), ("sum_squared_error", (3, 1, 1))],
)
def test_model_loss_wrapper_gradcheck(name, output_shape):
    """Model.loss reshapes (N, K, 1, 1) logits and one-hot encodes labels for SSE; the gradient survives that."""
    rng = np.random.default_rng(26)
    loss = Loss(name, int(np.prod(output_shape)))
    logits = rng.standard_normal((4, *output_shape))
    labels = rng.integers(0, loss.num_classes, 4)
    _, grad = loss(logits, labels)
    assert grad.shape == logits.shape
    assert_gradient_close(name, grad, numeric_gradient(lambda: loss(logits, labels)[0], logits))


# ---------------------------------------------------------------- the check can fail


def test_relative_error_formula():
    assert relative_error(np.array([1.0, -2.0]), np.array([1.0, -2.0])) == 0.0
    assert relative_error(np.array([0.0]), np.array([0.0])) == 0.0  # max-pool losers: 0 against 0
    assert relative_error(np.array([1.0]), np.array([-1.0])) == 1.0  # a sign error is the worst case
    assert relative_error(np.array([2.0]), np.array([1.0])) == pytest.approx(1 / 3)


def test_failure_message_reports_relative_error_and_worst_entry():
    analytic = np.array([[1.0, 2.0], [3.0, 4.0]])
    numeric = analytic.copy()
    numeric[1, 0] = 3.5
    with pytest.raises(AssertionError, match=r"relative error 7\.692e-02 > 1e-06; worst entry \(1, 0\)"):
        assert_gradient_close("demo", analytic, numeric)


def _conv_backward_that_overwrites(grad_out, cache, need_input_grad=True):
    """conv2d_backward with the classic bug: col2im *assigns* each tap's gradient (=) instead of adding (+=).

    Where windows overlap (stride < kernel), only the last window's contribution survives.
    """
    _, grad_weight, grad_bias = conv2d_backward(grad_out, cache, need_input_grad=False)
    if cache.groups != 1:
        raise NotImplementedError("this broken copy handles groups=1 only")
    n, c_in, h, w = cache.input_shape
    _, _, k_h, k_w = cache.weight.shape
    _, c_out, out_h, out_w = grad_out.shape
    pad_h, pad_w = cache.padding
    grad_out_mat = grad_out.transpose(0, 2, 3, 1).reshape(-1, c_out)
    grad_cols = (grad_out_mat @ _weight_matrix(cache.weight)).reshape(n, out_h, out_w, k_h, k_w, c_in)
    grad_x_padded = np.zeros((n, h + 2 * pad_h, w + 2 * pad_w, c_in))
    for a in range(k_h):
        rows = tap_slice(a, cache.dilation[0], cache.stride[0], out_h)
        for b in range(k_w):
            cols = tap_slice(b, cache.dilation[1], cache.stride[1], out_w)
            grad_x_padded[:, rows, cols, :] = grad_cols[:, :, :, a, b, :]  # BUG: should be +=
    grad_x = grad_x_padded[:, pad_h : pad_h + h, pad_w : pad_w + w, :].transpose(0, 3, 1, 2)
    return grad_x, grad_weight, grad_bias


def _conv_backward_bias_of_first_sample(grad_out, cache, need_input_grad=True):
    """conv2d_backward whose bias gradient forgets to sum over the batch (notes 000 §2.4 sums every dL/dy)."""
    grad_x, grad_weight, _ = conv2d_backward(grad_out, cache, need_input_grad)
    return grad_x, grad_weight, grad_out[0].sum(axis=(1, 2))


def test_check_catches_conv_backward_that_forgets_to_add_overlaps(monkeypatch):
    rng = np.random.default_rng(30)
    layer = make_conv(rng, 2, 3, 3, 1, 1, 1, 1, True)
    x = rng.standard_normal((2, 2, 5, 5))
    check_layer(layer, x, np.random.default_rng(31))  # the real backward passes ...
    monkeypatch.setattr("cnn_cli.layers.conv.conv2d_backward", _conv_backward_that_overwrites)
    with pytest.raises(AssertionError, match=r"conv dL/dx: relative error"):
        check_layer(layer, x, np.random.default_rng(31))  # ... the broken one does not


def test_broken_overlap_bug_is_invisible_without_overlap(monkeypatch):
    """Why the grid needs stride < kernel: with stride = kernel no window overlaps and the bug hides."""
    monkeypatch.setattr("cnn_cli.layers.conv.conv2d_backward", _conv_backward_that_overwrites)
    rng = np.random.default_rng(32)
    layer = make_conv(rng, 2, 3, 2, 2, 0, 1, 1, True)
    check_layer(layer, rng.standard_normal((2, 2, 6, 6)), rng)


def test_check_catches_conv_bias_gradient_without_batch_sum(monkeypatch):
    rng = np.random.default_rng(33)
    layer = make_conv(rng, 2, 3, 3, 1, 1, 1, 1, True)
    monkeypatch.setattr("cnn_cli.layers.conv.conv2d_backward", _conv_backward_bias_of_first_sample)
    with pytest.raises(AssertionError, match=r"conv dL/dbias: relative error"):
        check_layer(layer, rng.standard_normal((3, 2, 5, 5)), rng)


def test_check_catches_maxpool_backward_that_spreads_over_the_window(monkeypatch):
    """A max-pool backward that shares the gradient like an average pool (not notes 000 §2.7's routing)."""
    monkeypatch.setattr(MaxPool2D, "_backward", staticmethod(avgpool2d_backward))
    rng = np.random.default_rng(34)
    with pytest.raises(AssertionError, match=r"pool dL/dx: relative error"):
        check_layer(MaxPool2D("pool", 2, 2), shuffled_linspace((2, 2, 4, 4), rng), rng)


def test_check_catches_relu_backward_without_mask(monkeypatch):
    monkeypatch.setattr(activations_module, "relu_backward", lambda grad_out, positive: grad_out)
    rng = np.random.default_rng(35)
    with pytest.raises(AssertionError, match=r"relu dL/dx: relative error"):
        check_layer(ReLU("relu"), away_from_zero((2, 3, 4), rng), rng)


def test_check_catches_loss_gradient_not_divided_by_batch():
    def cross_entropy_summed_gradient(logits, labels):
        loss, grad = softmax_cross_entropy(logits, labels)
        return loss, grad * logits.shape[0]  # BUG: the loss is a mean, its gradient must be too

    rng = np.random.default_rng(36)
    with pytest.raises(AssertionError, match="relative error"):
        check_loss(cross_entropy_summed_gradient, rng.standard_normal((3, 5)), rng.integers(0, 5, 3))
