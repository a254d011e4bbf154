"""Slow, obvious loop versions of convolution and pooling, forward and backward.

Every function here walks the output one element at a time and writes the seed
formula for that element, so a reader can hold it next to the slide:

* notes 000 §2.1 (forward): y[n, o, i, j] = b[o] + Σ_{c, a, b} x_pad[n, c, i·sH + a·dH, j·sW + b·dW] · w[o, c, a, b]
* notes 000 §2.3 (dLoss/dweight): each output pixel adds dL/dy times the window that produced it
* notes 000 §2.4 (dLoss/dbias): the sum of dL/dy over every output pixel
* notes 000 §2.5 (dLoss/dinput): each dL/dy is spread back over its window, weighted by
  the kernel, and overlapping windows add (``+=``)
* notes 000 §2.6 (padding): the gradient of the padded input is cropped to the interior
* notes 000 §2.7 (max-pool): the whole dL/dy goes to the one input that won the window

With ``groups`` g, output channel o only sees input channels
``(o // (C_out/g)) · C_in/g … + C_in/g − 1`` (notes 000 names groups among its generalisations).

These are for tests only: tiny sizes, no vectorisation, no cleverness. The fast
im2col versions in ``cnn_cli.nn`` are tested against them (tests/nn/test_loop_reference.py)
and both are tested against PyTorch (tests/nn/test_torch_parity.py).

Shapes: x (N, C_in, H, W); weight (C_out, C_in/groups, kH, kW); bias (C_out,);
output (N, C_out, H_out, W_out) with H_out = (H + 2p − d(k−1) − 1) // s + 1.
"""

from __future__ import annotations

import numpy as np

IntPair = tuple[int, int]


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """H_out = (H + 2p − d(k−1) − 1) // s + 1, written out again so the reference owes nothing to the library."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def zero_pad(x: np.ndarray, padding: IntPair) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H + 2pH, W + 2pW), written element by element (notes 000 §2.6)."""
    n_batch, channels, height, width = x.shape
    pad_h, pad_w = padding
    padded = np.zeros((n_batch, channels, height + 2 * pad_h, width + 2 * pad_w), dtype=x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    padded[n, c, i + pad_h, j + pad_w] = x[n, c, i, j]
    return padded


def crop_padding(grad_padded: np.ndarray, padding: IntPair) -> np.ndarray:
    """Backward of :func:`zero_pad`: dL/dx[i, j] = dL/dx_pad[i + pH, j + pW] (notes 000 §2.6)."""
    n_batch, channels, padded_h, padded_w = grad_padded.shape
    pad_h, pad_w = padding
    height, width = padded_h - 2 * pad_h, padded_w - 2 * pad_w
    grad = np.zeros((n_batch, channels, height, width), dtype=grad_padded.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    grad[n, c, i, j] = grad_padded[n, c, i + pad_h, j + pad_w]
    return grad


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: IntPair = (1, 1),
    padding: IntPair = (0, 0),
    dilation: IntPair = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """Cross-correlation plus bias, one output element at a time (notes 000 §2.1, notes 003 Y_i = B_i + Σ_j X_j ⋆ K_ij).

    x (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW), bias (C_out,) or None
    -> (N, C_out, H_out, W_out).
    """
    n_batch, _, height, width = x.shape
    c_out, c_in_group, k_h, k_w = weight.shape
    c_out_group = c_out // groups
    out_h = output_size(height, k_h, stride[0], padding[0], dilation[0])
    out_w = output_size(width, k_w, stride[1], padding[1], dilation[1])
    x_pad = zero_pad(x, padding)
    y = np.zeros((n_batch, c_out, out_h, out_w), dtype=np.result_type(x, weight))
    for n in range(n_batch):
        for o in range(c_out):
            first_in = (o // c_out_group) * c_in_group
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0 if bias is None else bias[o]
                    for c in range(c_in_group):
                        for a in range(k_h):
                            for b in range(k_w):
                                row = i * stride[0] + a * dilation[0]
                                col = j * stride[1] + b * dilation[1]
                                total += x_pad[n, first_in + c, row, col] * weight[o, c, a, b]
                    y[n, o, i, j] = total
    return y


def conv2d_backward(
    x: np.ndarray,
    weight: np.ndarray,
    grad_out: np.ndarray,
    has_bias: bool,
    stride: IntPair = (1, 1),
    padding: IntPair = (0, 0),
    dilation: IntPair = (1, 1),
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dL/dx, dL/dw, dL/db of :func:`conv2d_forward`, one output element at a time.

    For every output element y[n, o, i, j] and every tap (c, a, b) of its window:
      notes 000 §2.3: dL/dw[o, c, a, b]  += dL/dy[n, o, i, j] · x_pad[n, c', row, col]
      notes 000 §2.5: dL/dx_pad[n, c', row, col] += dL/dy[n, o, i, j] · w[o, c, a, b]
    and notes 000 §2.4: dL/db[o] += dL/dy[n, o, i, j]; then §2.6 crops the padding.

    Args:
        x: (N, C_in, H, W), the forward input.
        weight: (C_out, C_in/groups, kH, kW).
        grad_out: (N, C_out, H_out, W_out), dL/dy.
        has_bias: whether the forward added a bias.
    Returns:
        (grad_x (N, C_in, H, W), grad_weight like weight, grad_bias (C_out,) or None).
    """
    n_batch, _, out_h, out_w = grad_out.shape
    c_out, c_in_group, k_h, k_w = weight.shape
    c_out_group = c_out // groups
    x_pad = zero_pad(x, padding)
    grad_x_pad = np.zeros_like(x_pad)
    grad_weight = np.zeros_like(weight)
    grad_bias = np.zeros(c_out, dtype=grad_out.dtype) if has_bias else None
    for n in range(n_batch):
        for o in range(c_out):
            first_in = (o // c_out_group) * c_in_group
            for i in range(out_h):
                for j in range(out_w):
                    upstream = grad_out[n, o, i, j]
                    if grad_bias is not None:
                        grad_bias[o] += upstream
                    for c in range(c_in_group):
                        for a in range(k_h):
                            for b in range(k_w):
                                row = i * stride[0] + a * dilation[0]
                                col = j * stride[1] + b * dilation[1]
                                grad_weight[o, c, a, b] += upstream * x_pad[n, first_in + c, row, col]
                                grad_x_pad[n, first_in + c, row, col] += upstream * weight[o, c, a, b]
    return crop_padding(grad_x_pad, padding), grad_weight, grad_bias


def maxpool2d_forward(x: np.ndarray, kernel: IntPair, stride: IntPair, padding: IntPair = (0, 0)) -> np.ndarray:
    """y[n, c, i, j] = max over the window of x padded with −∞. (N, C, H, W) -> (N, C, H_out, W_out)."""
    winners = maxpool2d_winners(x, kernel, stride, padding)
    n_batch, channels, out_h, out_w, _ = winners.shape
    pad_h, pad_w = padding
    y = np.zeros((n_batch, channels, out_h, out_w), dtype=x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    row, col = winners[n, c, i, j]
                    y[n, c, i, j] = x[n, c, row - pad_h, col - pad_w]
    return y


def maxpool2d_winners(x: np.ndarray, kernel: IntPair, stride: IntPair, padding: IntPair = (0, 0)) -> np.ndarray:
    """For every output, the (row, col) in the padded input of the first maximum of its window.

    The window is scanned in row-major order and only a strictly larger value
    replaces the current winner, so a tie goes to the first maximum (as PyTorch).
    Returns an int array (N, C, H_out, W_out, 2).
    """
    n_batch, channels, height, width = x.shape
    out_h = output_size(height, kernel[0], stride[0], padding[0])
    out_w = output_size(width, kernel[1], stride[1], padding[1])
    pad_h, pad_w = padding
    winners = np.zeros((n_batch, channels, out_h, out_w, 2), dtype=np.int64)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    best = -np.inf
                    best_at = (-1, -1)
                    for a in range(kernel[0]):
                        for b in range(kernel[1]):
                            row, col = i * stride[0] + a, j * stride[1] + b
                            inside = pad_h <= row < pad_h + height and pad_w <= col < pad_w + width
                            value = x[n, c, row - pad_h, col - pad_w] if inside else -np.inf
                            if value > best:
                                best, best_at = value, (row, col)
                    winners[n, c, i, j] = best_at
    return winners


def maxpool2d_backward(x: np.ndarray, grad_out: np.ndarray, kernel: IntPair, stride: IntPair, padding: IntPair = (0, 0)) -> np.ndarray:
    """Notes 000 §2.7: dL/dx[winner of window (i, j)] += dL/dy[i, j]; every other input of the window gets 0.

    ``+=`` because with stride < kernel one input can win several windows.
    x (N, C, H, W), grad_out (N, C, H_out, W_out) -> (N, C, H, W).
    """
    winners = maxpool2d_winners(x, kernel, stride, padding)
    n_batch, channels, out_h, out_w, _ = winners.shape
    pad_h, pad_w = padding
    grad_x = np.zeros_like(x)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    row, col = winners[n, c, i, j]
                    grad_x[n, c, row - pad_h, col - pad_w] += grad_out[n, c, i, j]
    return grad_x


def avgpool2d_forward(x: np.ndarray, kernel: IntPair, stride: IntPair, padding: IntPair = (0, 0)) -> np.ndarray:
    """y[n, c, i, j] = (1 / (kH·kW)) Σ over the zero-padded window (padding counted, as count_include_pad=True)."""
    n_batch, channels, height, width = x.shape
    out_h = output_size(height, kernel[0], stride[0], padding[0])
    out_w = output_size(width, kernel[1], stride[1], padding[1])
    x_pad = zero_pad(x, padding)
    y = np.zeros((n_batch, channels, out_h, out_w), dtype=x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0
                    for a in range(kernel[0]):
                        for b in range(kernel[1]):
                            total += x_pad[n, c, i * stride[0] + a, j * stride[1] + b]
                    y[n, c, i, j] = total / (kernel[0] * kernel[1])
    return y


def avgpool2d_backward(
    x_shape: tuple[int, int, int, int],
    grad_out: np.ndarray,
    kernel: IntPair,
    stride: IntPair,
    padding: IntPair = (0, 0),
) -> np.ndarray:
    """Each input of window (i, j) gets dL/dy[i, j] / (kH·kW); overlapping windows add; padding is cropped.

    grad_out (N, C, H_out, W_out) -> (N, C, H, W) with (H, W) from ``x_shape``.
    """
    n_batch, channels, height, width = x_shape
    _, _, out_h, out_w = grad_out.shape
    pad_h, pad_w = padding
    grad_x_pad = np.zeros((n_batch, channels, height + 2 * pad_h, width + 2 * pad_w), dtype=grad_out.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    share = grad_out[n, c, i, j] / (kernel[0] * kernel[1])
                    for a in range(kernel[0]):
                        for b in range(kernel[1]):
                            grad_x_pad[n, c, i * stride[0] + a, j * stride[1] + b] += share
    return crop_padding(grad_x_pad, padding)
