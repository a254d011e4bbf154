"""The fast im2col / strided versions in cnn_cli.nn equal the slow loop references (tests/reference.py).

Forward output and every gradient (input, weight, bias) are compared in float64
over the same mode grid as the gradient checks: stride, padding, dilation,
groups, bias, rectangular kernels and inputs, and pooling with padding.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnn_cli.nn.conv import conv2d_backward, conv2d_forward
from cnn_cli.nn.padding import pad2d_backward, pad2d_forward
from cnn_cli.nn.pool import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward
from cnn_cli.nn.shapes import conv_output_size
from tests.support import reference as ref


def assert_same(name: str, fast: np.ndarray, slow: np.ndarray) -> None:
    """Equal up to float64 summation order."""
    assert fast.shape == slow.shape, f"{name}: shape {fast.shape} != reference {slow.shape}"
    scale = max(float(np.max(np.abs(slow), initial=0.0)), 1.0)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-13 * scale, err_msg=name)


CONV_GRID = list(itertools.product([1, 2, 3], [0, 1, 2], [1, 2], [1, 2, 4], [True, False]))


@pytest.mark.parametrize(("stride", "padding", "dilation", "groups", "bias"), CONV_GRID)
def test_conv2d_fast_equals_loop_reference(stride, padding, dilation, groups, bias):
    rng = np.random.default_rng([stride, padding, dilation, groups, int(bias), 99])
    x = rng.standard_normal((2, 4, 7, 6))
    weight = rng.standard_normal((8, 4 // groups, 3, 2))
    b = rng.standard_normal(8) if bias else None
    geometry = dict(stride=(stride, stride), padding=(padding, padding), dilation=(dilation, dilation), groups=groups)

    out, cache = conv2d_forward(x, weight, b, **geometry)
    assert_same("forward", out, ref.conv2d_forward(x, weight, b, **geometry))

    grad_out = rng.standard_normal(out.shape)
    grad_x, grad_w, grad_b = conv2d_backward(grad_out, cache)
    ref_x, ref_w, ref_b = ref.conv2d_backward(x, weight, grad_out, bias, **geometry)
    assert_same("dL/dx", grad_x, ref_x)
    assert_same("dL/dw", grad_w, ref_w)
    if bias:
        assert_same("dL/db", grad_b, ref_b)
    else:
        assert grad_b is None


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "groups", "hw"),
    [
        ((2, 3), (1, 2), (2, 0), (2, 1), 1, (5, 9)),
        ((1, 3), (3, 1), (0, 2), (1, 2), 2, (8, 5)),
        ((3, 1), (2, 3), (1, 1), (1, 1), 4, (6, 7)),
        ((1, 1), (1, 1), (0, 0), (1, 1), 1, (3, 4)),
        ((1, 1), (1, 1), (0, 0), (1, 1), 2, (3, 4)),
        ((1, 1), (1, 2), (0, 0), (1, 1), 1, (3, 4)),
        ((4, 2), (1, 1), (0, 1), (1, 3), 1, (4, 3)),
    ],
)
def test_conv2d_fast_equals_loop_reference_per_axis(kernel, stride, padding, dilation, groups, hw):
    rng = np.random.default_rng(sum(kernel) + sum(hw))
    x = rng.standard_normal((3, 4, *hw))
    weight = rng.standard_normal((4, 4 // groups, *kernel))
    b = rng.standard_normal(4)
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out, cache = conv2d_forward(x, weight, b, **geometry)
    assert_same("forward", out, ref.conv2d_forward(x, weight, b, **geometry))
    grad_out = rng.standard_normal(out.shape)
    for name, fast, slow in zip(
        ("dL/dx", "dL/dw", "dL/db"),
        conv2d_backward(grad_out, cache),
        ref.conv2d_backward(x, weight, grad_out, True, **geometry),
        strict=True,
    ):
        assert_same(name, fast, slow)


def test_conv2d_output_size_matches_formula():
    """The single output-size helper gives H_out = (H + 2p − d(k−1) − 1)//s + 1, as the forward produces."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 1, 11, 9))
    for k, s, p, d in itertools.product([1, 2, 3], [1, 2, 3], [0, 1, 2], [1, 2]):
        expected = (11 + 2 * p - d * (k - 1) - 1) // s + 1
        assert conv_output_size(11, k, s, p, d) == expected == ref.output_size(11, k, s, p, d)
        out, _ = conv2d_forward(x, rng.standard_normal((1, 1, k, k)), None, (s, s), (p, p), (d, d))
        assert out.shape[2] == expected


def test_conv2d_keeps_float32():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    weight = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    out, cache = conv2d_forward(x, weight, bias, padding=(1, 1))
    assert out.dtype == np.float32
    grads = conv2d_backward(np.ones_like(out), cache)
    assert all(g.dtype == np.float32 for g in grads)
    slow = ref.conv2d_forward(x.astype(np.float64), weight.astype(np.float64), bias.astype(np.float64), padding=(1, 1))
    np.testing.assert_allclose(out, slow, rtol=1e-5, atol=1e-5)


# Pool padding is at most half the kernel (PyTorch's rule, enforced when a model is built).
POOL_GRID = [
    (kernel, stride, padding)
    for kernel, stride, padding in itertools.product([(2, 2), (3, 2), (2, 3), (3, 3)], [1, 2, 3], [(0, 0), (1, 1), (1, 0), (0, 1)])
    if padding[0] <= kernel[0] // 2 and padding[1] <= kernel[1] // 2
]


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_GRID)
def test_maxpool2d_fast_equals_loop_reference(kernel, stride, padding):
    rng = np.random.default_rng([kernel[0], kernel[1], stride, padding[0], padding[1]])
    x = rng.permutation(np.linspace(-1, 1, 2 * 3 * 7 * 6)).reshape(2, 3, 7, 6)  # tie-free
    out, cache = maxpool2d_forward(x, kernel, (stride, stride), padding)
    assert_same("forward", out, ref.maxpool2d_forward(x, kernel, (stride, stride), padding))
    grad_out = rng.standard_normal(out.shape)
    assert_same(
        "dL/dx",
        maxpool2d_backward(grad_out, cache),
        ref.maxpool2d_backward(x, grad_out, kernel, (stride, stride), padding),
    )


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_GRID)
def test_avgpool2d_fast_equals_loop_reference(kernel, stride, padding):
    rng = np.random.default_rng([kernel[0], kernel[1], stride, padding[0], padding[1], 1])
    x = rng.standard_normal((2, 3, 7, 6))
    out, cache = avgpool2d_forward(x, kernel, (stride, stride), padding)
    assert_same("forward", out, ref.avgpool2d_forward(x, kernel, (stride, stride), padding))
    grad_out = rng.standard_normal(out.shape)
    assert_same(
        "dL/dx",
        avgpool2d_backward(grad_out, cache),
        ref.avgpool2d_backward(x.shape, grad_out, kernel, (stride, stride), padding),
    )


def test_maxpool2d_ties_go_to_the_first_maximum_only():
    """With ties, the gradient goes to one input per window (the first in row-major order), not to every tie."""
    x = np.array([[[[1.0, 1.0, 0.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 0.0, 5.0, 5.0], [3.0, 3.0, 5.0, 5.0]]]])
    grad_out = np.array([[[[10.0, 20.0], [30.0, 40.0]]]])
    out, cache = maxpool2d_forward(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(out, [[[[1.0, 2.0], [3.0, 5.0]]]])
    grad_x = maxpool2d_backward(grad_out, cache)
    expected = np.array([[[[10.0, 0, 0, 20.0], [0, 0, 0, 0], [30.0, 0, 40.0, 0], [0, 0, 0, 0]]]])
    np.testing.assert_array_equal(grad_x, expected)
    np.testing.assert_array_equal(grad_x, ref.maxpool2d_backward(x, grad_out, (2, 2), (2, 2)))


def test_maxpool2d_overlapping_windows_add_at_a_shared_winner():
    """Stride 1 < kernel 2: the global maximum wins all four windows that contain it and collects all four."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 9.0
    x[0, 0] += np.arange(9).reshape(3, 3) * 1e-3  # break the other ties
    grad_out = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    _, cache = maxpool2d_forward(x, (2, 2), (1, 1))
    grad_x = maxpool2d_backward(grad_out, cache)
    assert grad_x[0, 0, 1, 1] == 10.0
    assert np.count_nonzero(grad_x) == 1
    np.testing.assert_array_equal(grad_x, ref.maxpool2d_backward(x, grad_out, (2, 2), (1, 1)))


@pytest.mark.parametrize("padding", [(0, 0), (1, 2), (3, 0)])
def test_pad2d_equals_loop_reference(padding):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4, 5))
    out = pad2d_forward(x, padding)
    np.testing.assert_array_equal(out, ref.zero_pad(x, padding))
    grad_out = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(pad2d_backward(grad_out, padding), ref.crop_padding(grad_out, padding))
