"""A correct solution of the avgpool2d exercise: the skeleton of `cnn exercise start avgpool2d`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def avgpool2d_forward(x, size=2, stride=2, pad=0):
    """out[n, c, i, j] = the mean of the size × size window starting at (i·stride, j·stride) of the zero-padded x."""
    n, c, h, width = x.shape
    out_h = (h + 2 * pad - size) // stride + 1
    out_w = (width + 2 * pad - size) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, c, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            window = x_pad[:, :, i * stride : i * stride + size, j * stride : j * stride + size]
            out[:, :, i, j] = window.sum(axis=(2, 3)) / (size * size)
    cache = (x.shape, size, stride, pad)
    return out, cache


def avgpool2d_backward(grad_out, cache):
    """Return dx: each input gets grad_out / size² from every window it is in."""
    x_shape, size, stride, pad = cache
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    n, c, h, width = x_shape
    dx_pad = np.zeros((n, c, h + 2 * pad, width + 2 * pad), dtype=grad_out.dtype)
    _, _, out_h, out_w = grad_out.shape
    for i in range(out_h):
        for j in range(out_w):
            share = grad_out[:, :, i, j] / (size * size)
            dx_pad[:, :, i * stride : i * stride + size, j * stride : j * stride + size] += share[:, :, None, None]
    dx = dx_pad[:, :, pad : pad + h, pad : pad + width]
    return dx
