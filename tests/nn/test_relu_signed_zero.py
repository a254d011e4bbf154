"""ReLU's backward blocks a gradient with +0.0, never −0.0 (issue 12)."""

from __future__ import annotations

import numpy as np

from cnn_cli.nn.activations import relu_backward, relu_forward


def test_blocked_negative_gradients_are_plus_zero():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6))
    grad_out = rng.standard_normal(x.shape)
    _, mask = relu_forward(x)
    grad_x = relu_backward(grad_out, mask)
    blocked = ~mask
    assert np.any(blocked & (grad_out < 0))  # the case that used to give −0.0
    assert not np.any(np.signbit(grad_x[blocked]))
    np.testing.assert_array_equal(grad_x, np.where(mask, grad_out, 0.0))
    assert grad_x.dtype == grad_out.dtype and grad_x.shape == x.shape


def test_channels_last_views_keep_their_values():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 5, 3)).transpose(0, 3, 1, 2)  # a conv output's layout
    grad_out = rng.standard_normal((2, 5, 5, 3)).transpose(0, 3, 1, 2)
    _, mask = relu_forward(x)
    np.testing.assert_array_equal(relu_backward(grad_out, mask), np.where(x > 0, grad_out, 0.0))
