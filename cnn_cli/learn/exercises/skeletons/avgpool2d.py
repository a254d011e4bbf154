"""Exercise avgpool2d: the backward pass of an average-pooling layer.

Written by `cnn exercise start avgpool2d`. The forward pass is given; fill in
avgpool2d_backward, then check your work with

    cnn exercise check avgpool2d_exercise.py

The check runs five stages and stops at the first that fails: shapes; a 4x4
example to redo by hand; random tensors against cnn's own backward; edge cases
(overlapping windows, padding, a batch of 1, an odd size); central differences of
your own forward. Keep the names and signatures: the checker calls them.

Shapes:
    x         (N, C, H, W)
    out       (N, C, H_out, W_out),  H_out = (H + 2·pad − size) // stride + 1
    grad_out  like out: ∂L/∂out
    dx        like x

The derivation (in full: `cnn docs avgpool2d`). Each output is the mean of its
size × size window of the zero-padded input (the padding counts in the mean, as
PyTorch's default does):

    out[n, c, i, j] = (1 / size²) · Σ_{a, β} x_pad[n, c, i·stride + a, j·stride + β]

Every input of the window moves the output by 1/size² of its own change, so each
gets ∂L/∂out[n, c, i, j] / size². With stride < size the windows overlap and an
input collects a share from each window it is in: `+=`. Crop the padding off at
the end.
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
    # TODO
    raise NotImplementedError("avgpool2d_backward: fill me in")
    return dx
