"""A correct solution of the leaky_relu exercise: the skeleton of `cnn exercise start leaky_relu`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def leaky_relu_forward(x, slope=0.01):
    """out = x where x > 0, slope · x elsewhere."""
    out = np.where(x > 0, x, slope * x)
    cache = (x, slope)
    return out, cache


def leaky_relu_backward(grad_out, cache):
    """Return dx: grad_out where the input was positive, slope · grad_out elsewhere."""
    x, slope = cache
    dx = np.zeros_like(x)
    dx = np.where(x > 0, grad_out, slope * grad_out)
    return dx
