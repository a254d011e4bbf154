"""A correct solution of the relu exercise: the skeleton of `cnn exercise start relu`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def relu_forward(x):
    """out = max(0, x)."""
    out = np.maximum(x, 0)
    cache = x
    return out, cache


def relu_backward(grad_out, cache):
    """Return dx: grad_out where the input was positive, 0 elsewhere."""
    x = cache
    dx = np.zeros_like(x)
    dx = grad_out * (x > 0)
    return dx
