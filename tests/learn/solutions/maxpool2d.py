"""A correct solution of the maxpool2d exercise: the skeleton of `cnn exercise start maxpool2d`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def maxpool2d_forward(x, size=2, stride=2, pad=0):
    """out[n, c, i, j] = the largest input of the size × size window starting at (i·stride, j·stride) of x_pad."""
    n, c, h, width = x.shape
    out_h = (h + 2 * pad - size) // stride + 1
    out_w = (width + 2 * pad - size) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    out = np.zeros((n, c, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            window = x_pad[:, :, i * stride : i * stride + size, j * stride : j * stride + size]
            out[:, :, i, j] = window.max(axis=(2, 3))
    cache = (x, size, stride, pad)
    return out, cache


def maxpool2d_backward(grad_out, cache):
    """Return dx: each grad_out[n, c, i, j] goes to the one input that won its window (the first, on a tie)."""
    x, size, stride, pad = cache
    dx = np.zeros_like(x)
    dx_pad = np.pad(dx, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    n, c, out_h, out_w = grad_out.shape
    for i in range(out_h):
        for j in range(out_w):
            window = x_pad[:, :, i * stride : i * stride + size, j * stride : j * stride + size].reshape(n, c, -1)
            winner = window.argmax(axis=2)  # the first maximum in reading order
            a, b = np.divmod(winner, size)
            for sample in range(n):
                for channel in range(c):
                    row, col = i * stride + a[sample, channel], j * stride + b[sample, channel]
                    dx_pad[sample, channel, row, col] += grad_out[sample, channel, i, j]
    dx = dx_pad[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx
