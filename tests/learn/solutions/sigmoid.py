"""A correct solution of the sigmoid exercise: the skeleton of `cnn exercise start sigmoid`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
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
    dx = grad_out * out * (1 - out)
    return dx
