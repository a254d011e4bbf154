"""Exercise maxpool2d: the backward pass of a max-pooling layer.

Written by `cnn exercise start maxpool2d`. The forward pass is given; fill in
maxpool2d_backward, then check your work with

    cnn exercise check maxpool2d_exercise.py

The check runs five stages and stops at the first that fails: shapes; notes 000
§2.7's 4x4 example (as `cnn explain maxpool` works it); random tensors against
cnn's own backward; edge cases (ties, overlapping windows, padding, a batch of 1,
an odd size); central differences of your own forward. Keep the names and
signatures: the checker calls them (`cnn docs maxpool2d`).

Shapes:
    x         (N, C, H, W)
    out       (N, C, H_out, W_out),  H_out = (H + 2·pad − size) // stride + 1
    grad_out  like out: ∂L/∂out
    dx        like x

The derivation (in full: `cnn docs maxpool2d`). Each output is a copy of one
input, the largest of its size × size window:

    out[n, c, i, j] = max_{a, β} x_pad[n, c, i·stride + a, j·stride + β]

So ∂out/∂x is 1 for that one input, the window's winner, and 0 for every other
input of the window: each ∂L/∂out[n, c, i, j] goes to the winner, the rest of the
window gets nothing. Three things to get right:

- Ties. When several inputs share the maximum, the forward still copied just one,
  so just one gets the gradient: cnn, like PyTorch and numpy's argmax, takes the
  first in reading order (row by row). Giving it to every tied input multiplies it.
- Overlap. With stride < size an input can win several windows: it collects from
  each, `+=`.
- Padding. The border is padded with −∞, so it never wins; crop it off at the end.
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
    # TODO
    raise NotImplementedError("maxpool2d_backward: fill me in")
    return dx
