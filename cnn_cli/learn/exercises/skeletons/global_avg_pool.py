"""Exercise global_avg_pool: the backward pass of global average pooling.

Written by `cnn exercise start global_avg_pool`. The forward pass is given; fill in
global_avg_pool_backward, then check your work with

    cnn exercise check global_avg_pool_exercise.py

The check runs five stages and stops at the first that fails: shapes; the 2x3 map
of `cnn explain global-avg-pool`; random tensors against cnn's own backward; edge
cases (a 1x1 map, one channel, a batch of 1, a map that is not square); central
differences of your own forward. Keep the names and signatures: the checker calls
them (`cnn docs global_avg_pool`).

Shapes:
    x         (N, C, H, W)
    out       (N, C): one mean per feature map
    grad_out  like out: ∂L/∂out
    dx        like x

The derivation (in full: `cnn docs global_avg_pool`):

    out[n, c] = (1/(H·W)) Σ_{i, j} x[n, c, i, j]

Every input of map (n, c) moves its mean by 1/(H·W) of its own change, so each gets

    ∂L/∂x[n, c, i, j] = ∂L/∂out[n, c] / (H·W)
"""

import numpy as np


def global_avg_pool_forward(x):
    """out[n, c] = the mean of x[n, c] over its H·W positions."""
    n, c, h, w = x.shape
    out = x.sum(axis=(2, 3)) / (h * w)
    cache = x.shape
    return out, cache


def global_avg_pool_backward(grad_out, cache):
    """Return dx, shaped like x: each input of map (n, c) gets its share of grad_out[n, c]."""
    n, c, h, w = cache
    dx = np.zeros(cache, dtype=grad_out.dtype)
    # TODO: fill in dx.
    raise NotImplementedError("global_avg_pool_backward: fill me in")
    return dx
