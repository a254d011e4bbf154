"""A correct solution of the conv2d exercise: the skeleton of `cnn exercise start conv2d`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0, dilation=1, groups=1):
    """out[n, o, i, j] = b[o] + Σ x_pad[n, g·C_in_g + c, i·stride + a·dilation, j·stride + β·dilation] · w[o, c, a, β]."""
    n, c_in, h, width = x.shape
    c_out, c_in_group, k_h, k_w = w.shape
    out_h = (h + 2 * pad - dilation * (k_h - 1) - 1) // stride + 1
    out_w = (width + 2 * pad - dilation * (k_w - 1) - 1) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    c_out_group = c_out // groups
    out = np.zeros((n, c_out, out_h, out_w), dtype=x.dtype)
    for o in range(c_out):
        g = o // c_out_group
        x_group = x_pad[:, g * c_in_group : (g + 1) * c_in_group]  # the input channels output channel o reads
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * stride, i * stride + dilation * (k_h - 1) + 1, dilation)
                cols = slice(j * stride, j * stride + dilation * (k_w - 1) + 1, dilation)
                window = x_group[:, :, rows, cols]  # (N, C_in_g, kH, kW)
                out[:, o, i, j] = np.sum(window * w[o], axis=(1, 2, 3)) + b[o]
    cache = (x, w, b, stride, pad, dilation, groups)
    return out, cache


def conv2d_backward(grad_out, cache):
    """Return (dx, dw, db) for grad_out = ∂L/∂out, shaped (N, C_out, H_out, W_out).

    Hint: walk the same loops as the forward. For each output (o, i, j), its window
    of x_pad times grad_out[:, o, i, j] adds to dw[o]; w[o] times grad_out[:, o, i, j]
    adds to that window of dx_pad. Then crop dx_pad to dx.
    """
    x, w, b, stride, pad, dilation, groups = cache
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    c_out, c_in_group, k_h, k_w = w.shape
    _, _, out_h, out_w = grad_out.shape
    c_out_group = c_out // groups
    for o in range(c_out):
        g = o // c_out_group
        channels = slice(g * c_in_group, (g + 1) * c_in_group)
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * stride, i * stride + dilation * (k_h - 1) + 1, dilation)
                cols = slice(j * stride, j * stride + dilation * (k_w - 1) + 1, dilation)
                upstream = grad_out[:, o, i, j]  # (N,)
                dw[o] += np.tensordot(upstream, x_pad[:, channels, rows, cols], axes=(0, 0))
                dx_pad[:, channels, rows, cols] += upstream[:, None, None, None] * w[o]
    db = grad_out.sum(axis=(0, 2, 3))
    dx = dx_pad[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx, dw, db
