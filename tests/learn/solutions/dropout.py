"""A correct solution of the dropout exercise: the skeleton of `cnn exercise start dropout`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def dropout_forward(x, keep, p):
    """out = x · keep / (1 − p): dropped units give 0, kept ones are scaled up."""
    out = x * keep / (1 - p)
    cache = (keep, p)
    return out, cache


def dropout_backward(grad_out, cache):
    """Return dx: grad_out through the same mask and the same scale."""
    keep, p = cache
    dx = np.zeros_like(grad_out)
    dx = grad_out * keep / (1 - p)
    return dx
