"""A correct solution of the flatten exercise: the skeleton of `cnn exercise start flatten`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def flatten_forward(x):
    """out = x reshaped to (N, C·H·W, 1, 1), in (C, H, W) order."""
    out = x.reshape(x.shape[0], -1, 1, 1)
    cache = x.shape
    return out, cache


def flatten_backward(grad_out, cache):
    """Return dx: grad_out put back into the input's shape."""
    x_shape = cache
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    dx = grad_out.reshape(x_shape)
    return dx
