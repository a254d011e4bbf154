"""Exercise tanh: the backward pass of a tanh layer.

Written by `cnn exercise start tanh`. The forward pass is given; fill in
tanh_backward, then check your work with

    cnn exercise check tanh_exercise.py

The check runs five stages and stops at the first that fails: shapes; an example
at x = 0, atanh(1/2), atanh(−1/2) (where tanh = 0, 1/2, −1/2) to redo by hand;
random tensors against cnn's own backward; edge cases (large |x|, x = 0, a batch
of 1); central differences of your own forward. Keep the names and signatures:
the checker calls them.

Shapes: any. x, out, grad_out and dx all have the same shape.

The derivation (in full: `cnn docs tanh`). tanh(x) = (e^x − e^(−x)) / (e^x + e^(−x)),
and its derivative is 1 − tanh²(x). The forward keeps out = tanh(x), so

    ∂L/∂x = ∂L/∂out · (1 − out²)
"""

import numpy as np


def tanh_forward(x):
    """out = tanh(x)."""
    out = np.tanh(x)
    cache = out
    return out, cache


def tanh_backward(grad_out, cache):
    """Return dx = grad_out · (1 − tanh²(x)), from the cached output."""
    out = cache
    dx = np.zeros_like(out)
    # TODO
    raise NotImplementedError("tanh_backward: fill me in")
    return dx
