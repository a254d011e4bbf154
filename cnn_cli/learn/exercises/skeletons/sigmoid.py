"""Exercise sigmoid: the backward pass of a sigmoid layer.

Written by `cnn exercise start sigmoid`. The forward pass is given; fill in
sigmoid_backward, then check your work with

    cnn exercise check sigmoid_exercise.py

The check runs five stages and stops at the first that fails: shapes; an example
at x = 0, ln 3, −ln 3 (where σ = 1/2, 3/4, 1/4) to redo by hand; random tensors
against cnn's own backward; edge cases (large |x|, x = 0, a batch of 1); central
differences of your own forward. Keep the names and signatures: the checker calls them.

Shapes: any. x, out, grad_out and dx all have the same shape.

The derivation (in full: `cnn docs sigmoid`; notes 001, 003 and 004 use it).
σ(x) = 1 / (1 + e^(−x)), and differentiating,

    σ'(x) = e^(−x) / (1 + e^(−x))² = σ(x) · (1 − σ(x))

The forward keeps out = σ(x) in the cache, so the slope costs one multiply:
y(1 − y) with y = out. Do not squash y again. The chain rule then multiplies
by what came from above:

    ∂L/∂x = ∂L/∂out · out · (1 − out)
"""

import numpy as np


def sigmoid_forward(x):
    """out = σ(x) = 1 / (1 + e^(−x)), computed without overflow: e^(−|x|) never exceeds 1."""
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    cache = out
    return out, cache


def sigmoid_backward(grad_out, cache):
    """Return dx = grad_out · σ'(x), with σ'(x) from the cached output."""
    out = cache
    dx = np.zeros_like(out)
    # TODO
    raise NotImplementedError("sigmoid_backward: fill me in")
    return dx
