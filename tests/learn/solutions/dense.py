"""A correct solution of the dense exercise: the skeleton of `cnn exercise start dense`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def dense_forward(x, w, b):
    """out = x_flat wᵀ + b, with x_flat = x reshaped to (N, F_in)."""
    x_flat = x.reshape(x.shape[0], -1)
    out = x_flat @ w.T + b
    cache = (x.shape, x_flat, w)
    return out, cache


def dense_backward(grad_out, cache):
    """Return (dx, dw, db) for grad_out = ∂L/∂out, shaped (N, F_out); dx has x's own shape."""
    x_shape, x_flat, w = cache
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    dw = np.zeros_like(w)
    db = np.zeros(w.shape[0], dtype=grad_out.dtype)
    dw = grad_out.T @ x_flat
    db = grad_out.sum(axis=0)
    dx = (grad_out @ w).reshape(x_shape)
    return dx, dw, db
