"""Convolution forward and its hand-written backward.

Notes 000 §2.1 (forward, one output pixel is a weighted sum of a window plus
the bias), §2.3 (dLoss/dweight = sum over output pixels of dLoss/dy times the
window that produced it), §2.4 (dLoss/dbias = sum of dLoss/dy), §2.5
(dLoss/dinput: each dLoss/dy is spread back over its window, weighted by the
kernel; notes 003 writes this as a full convolution with rot180(K)). Notes 003
"Convolutional layer": Y_i = B_i + sum_j X_j ⋆ K_ij (cross-correlation). All of it
is restated in ``cnn docs conv2d``.

Shapes: x (N, C_in, H, W); weight (C_out, C_in/groups, kH, kW); bias (C_out,);
output (N, C_out, H_out, W_out) with H_out from :func:`cnn_cli.nn.shapes.window_output_hw`.

The fast form is im2col: every window becomes a row of ``cols`` and the whole
layer is one matrix product per group. The slow, obvious loop version that
mirrors the seed formulas element by element lives in ``tests/reference.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn_cli.nn.shapes import IntPair, window_output_hw
from cnn_cli.nn.threads import for_each_slice
from cnn_cli.nn.windows import pad_channels_last, sliding_windows, tap_slice


@dataclass
class ConvCache:
    """What :func:`conv2d_backward` needs from the forward call, and nothing more."""

    cols: list[np.ndarray]  # per group: (N*H_out*W_out, kH*kW*C_in/groups), rows = windows
    weight: np.ndarray
    has_bias: bool
    input_shape: tuple[int, int, int, int]
    stride: IntPair
    padding: IntPair
    dilation: IntPair
    groups: int


def _weight_matrix(weight_group: np.ndarray) -> np.ndarray:
    """(C_out_g, C_in_g, kH, kW) -> (C_out_g, kH*kW*C_in_g), the column order of ``cols``."""
    return weight_group.transpose(0, 2, 3, 1).reshape(weight_group.shape[0], -1)


def _im2col(windows: np.ndarray) -> np.ndarray:
    """Copy the window view (N, H_out, W_out, kH, kW, C) into a contiguous array, batch-parallel.

    When the view is already contiguous (a 1x1 kernel, stride 1, no padding, over a
    channels-last input) it is the matrix itself and nothing is copied.
    """
    if windows.flags.c_contiguous:
        return windows
    cols = np.empty(windows.shape, dtype=windows.dtype)

    def copy(batch: slice) -> None:
        cols[batch] = windows[batch]

    for_each_slice(copy, windows.shape[0], cols.size)
    return cols


def _col2im(grad_x_padded: np.ndarray, grad_cols: np.ndarray, cache: ConvCache, in_slice: slice) -> None:
    """Add each tap's gradient (N, H_out, W_out, kH, kW, C_g) back onto the input pixels it read.

    Windows overlap, so this is ``+=``: one slice-add per kernel tap (k² of them), each
    moving a whole (N, H_out, W_out, C_g) block, split over the batch between threads.
    """
    _, out_h, out_w, k_h, k_w, _ = grad_cols.shape
    taps = [
        (a, b, tap_slice(a, cache.dilation[0], cache.stride[0], out_h), tap_slice(b, cache.dilation[1], cache.stride[1], out_w))
        for a in range(k_h)
        for b in range(k_w)
    ]

    def add(batch: slice) -> None:
        target = grad_x_padded[batch]
        source = grad_cols[batch]
        for a, b, rows, cols in taps:
            target[:, rows, cols, in_slice] += source[:, :, :, a, b, :]

    for_each_slice(add, grad_cols.shape[0], grad_cols.size)


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: IntPair = (1, 1),
    padding: IntPair = (0, 0),
    dilation: IntPair = (1, 1),
    groups: int = 1,
) -> tuple[np.ndarray, ConvCache]:
    """Cross-correlate ``x`` with ``weight`` and add ``bias`` (notes 000 §2.1, ``cnn docs conv2d``).

    y[n, o, i, j] = b[o] + sum_{c, a, b'} x_pad[n, g*C_in_g + c, i*sH + a*dH, j*sW + b'*dW] * w[o, c, a, b']
    where g = o // (C_out/groups).

    Args:
        x: (N, C_in, H, W).
        weight: (C_out, C_in/groups, kH, kW).
        bias: (C_out,) or None.
    Returns:
        (out, cache): out is (N, C_out, H_out, W_out) (a channels-last array seen
        through a transpose), cache is what the backward needs.
    """
    n, c_in, h, w = x.shape
    c_out, c_in_group, k_h, k_w = weight.shape
    out_h, out_w = window_output_hw((h, w), (k_h, k_w), stride, padding, dilation)
    if c_in != c_in_group * groups:
        raise ValueError(f"input has {c_in} channels, weight expects {c_in_group} x {groups} groups")

    x_nhwc = x.transpose(0, 2, 3, 1)
    if padding != (0, 0):
        x_nhwc = pad_channels_last(x_nhwc, padding[0], padding[1])
    windows = sliding_windows(x_nhwc, (k_h, k_w), stride, dilation, (out_h, out_w))

    rows = n * out_h * out_w
    c_out_group = c_out // groups
    out = np.empty((rows, c_out), dtype=np.result_type(x.dtype, weight.dtype))
    cols_per_group = []
    for g in range(groups):
        # im2col: one row per output pixel, holding the window it sees (kH, kW, C_in_g).
        cols = _im2col(windows[..., g * c_in_group : (g + 1) * c_in_group]).reshape(rows, -1)
        w_mat = _weight_matrix(weight[g * c_out_group : (g + 1) * c_out_group])
        if groups == 1:
            np.matmul(cols, w_mat.T, out=out)
        else:
            out[:, g * c_out_group : (g + 1) * c_out_group] = cols @ w_mat.T
        cols_per_group.append(cols)
    if bias is not None:

        def add_bias(part: slice) -> None:
            out[part] += bias

        for_each_slice(add_bias, rows, out.size)
    cache = ConvCache(
        cols=cols_per_group,
        weight=weight,
        has_bias=bias is not None,
        input_shape=(n, c_in, h, w),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    return out.reshape(n, out_h, out_w, c_out).transpose(0, 3, 1, 2), cache


def conv2d_backward(
    grad_out: np.ndarray, cache: ConvCache, need_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of the loss for the input, weight and bias of a convolution.

    With g = o // (C_out/groups) the group of output channel o, and c' = g*C_in_g + c
    the input channel that w[o, c] reads (``cnn docs conv2d``; the padding: ``cnn docs padding``):
    Notes 000 §2.3: dL/dw[o, c, a, b] = sum_{n,i,j} dL/dy[n, o, i, j] * x_pad[n, c', i*sH + a*dH, j*sW + b*dW]
      -> in matrix form grad_w = grad_out_matᵀ @ cols.
    Notes 000 §2.4: dL/db[o] = sum_{n,i,j} dL/dy[n, o, i, j].
    Notes 000 §2.5: dL/dx_pad[n, c', i*sH + a*dH, j*sW + b*dW] += sum_{o in group g} dL/dy[n, o, i, j] * w[o, c, a, b]
      -> grad_cols = grad_out_mat @ W, then col2im adds each tap's column back (+=,
      windows overlap); notes 000 §2.6: the padding's gradient is the identity on
      the interior, so cropping the border gives dL/dx.

    Args:
        grad_out: (N, C_out, H_out, W_out), dL/dy.
        cache: from :func:`conv2d_forward`.
        need_input_grad: False skips dL/dx (a first layer's input needs none).
    Returns:
        (grad_x (N, C_in, H, W) or None, grad_weight like weight, grad_bias (C_out,) or None).
    """
    weight = cache.weight
    n, c_in, h, w = cache.input_shape
    c_out, c_in_group, k_h, k_w = weight.shape
    _, _, out_h, out_w = grad_out.shape
    groups = cache.groups
    c_out_group = c_out // groups
    grad_out_mat = grad_out.transpose(0, 2, 3, 1).reshape(-1, c_out)

    grad_bias = grad_out_mat.sum(axis=0) if cache.has_bias else None
    grad_weight = np.empty_like(weight)
    # A 1x1 kernel with stride 1 and no padding (a fully connected layer on a flattened
    # map, or a channel mixer): every input pixel is in exactly one window, so the
    # window gradients are the input gradient and col2im has nothing to add up.
    pointwise = (k_h, k_w) == (1, 1) and cache.stride == (1, 1) and cache.padding == (0, 0) and groups == 1
    grad_x_padded = None
    if need_input_grad and not pointwise:
        pad_h, pad_w = cache.padding
        grad_x_padded = np.zeros((n, h + 2 * pad_h, w + 2 * pad_w, c_in), dtype=grad_out_mat.dtype)

    for g, cols in enumerate(cache.cols):
        out_slice = slice(g * c_out_group, (g + 1) * c_out_group)
        grad_out_group = grad_out_mat[:, out_slice]
        if k_h * k_w == 1:
            # grad_w = grad_out_matᵀ @ cols lands directly in the weight's (C_out_g, C_in_g) layout.
            np.matmul(grad_out_group.T, cols, out=grad_weight[out_slice].reshape(c_out_group, c_in_group))
        else:
            # grad_w = grad_out_matᵀ @ cols, computed as (colsᵀ @ grad_out_mat)ᵀ: with the long
            # N*H_out*W_out axis as the reduction, OpenBLAS is as fast or faster in this order,
            # and the small result is transposed into (C_out_g, C_in_g, kH, kW).
            grad_w_mat_t = cols.T @ grad_out_group  # (kH*kW*C_in_g, C_out_g)
            grad_weight[out_slice] = grad_w_mat_t.reshape(k_h, k_w, c_in_group, c_out_group).transpose(3, 2, 0, 1)
        if not need_input_grad:
            continue
        grad_cols = grad_out_group @ _weight_matrix(weight[out_slice])  # (N*H_out*W_out, kH*kW*C_in_g)
        if pointwise:
            return grad_cols.reshape(n, h, w, c_in).transpose(0, 3, 1, 2), grad_weight, grad_bias
        grad_cols = grad_cols.reshape(n, out_h, out_w, k_h, k_w, c_in_group)
        if grad_x_padded is None:  # pragma: no cover - allocated above whenever an input gradient is wanted
            raise RuntimeError("no input-gradient buffer")
        _col2im(grad_x_padded, grad_cols, cache, slice(g * c_in_group, (g + 1) * c_in_group))

    grad_x = None
    if grad_x_padded is not None:
        pad_h, pad_w = cache.padding
        grad_x = grad_x_padded[:, pad_h : pad_h + h, pad_w : pad_w + w, :].transpose(0, 3, 1, 2)
    return grad_x, grad_weight, grad_bias
