"""A correct solution of the tanh exercise: the skeleton of `cnn exercise start tanh`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
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
    dx = grad_out * (1 - out * out)
    return dx
