"""Exercise dense: the backward pass of a fully connected layer.

Written by `cnn exercise start dense`. The forward pass is given; fill in
dense_backward, then check your work with

    cnn exercise check dense_exercise.py

The check runs five stages and stops at the first that fails: shapes; notes 004's
output layer with one image (as `cnn explain seed004-net` works it); random
tensors against cnn's own backward; edge cases (an input straight from a flatten,
a square weight, one output, a batch of 1); central differences of your own
forward. Keep the names and signatures: the checker calls them (`cnn docs dense`).

Shapes (PyTorch's nn.Linear layout, as in cnn):
    x         (N, F_in), or (N, ...) that flattens to it, e.g. (N, F_in, 1, 1) from a flatten
    w         (F_out, F_in)
    b         (F_out,)
    out       (N, F_out)
    grad_out  like out: ∂L/∂out
    dx, dw, db: like x (its own shape), w, b

The derivation (in full: `cnn docs dense`). One row per sample:

    out[n, o] = b[o] + Σ_i x[n, i] · w[o, i]        out = x wᵀ + b

    ∂L/∂w[o, i] = Σ_n ∂L/∂out[n, o] · x[n, i]       dw = grad_outᵀ x     (F_out, N) @ (N, F_in)
    ∂L/∂b[o]    = Σ_n ∂L/∂out[n, o]                 db = grad_out summed over the batch
    ∂L/∂x[n, i] = Σ_o ∂L/∂out[n, o] · w[o, i]       dx = grad_out w      (N, F_out) @ (F_out, F_in)

Notes 004 writes the first as ∂L/∂W2 = (A2 − Y)Fᵀ, with one column per image;
here samples are rows, so its (A2 − Y) is grad_outᵀ and its Fᵀ is x. Check each
product's shape against the one it must have: a transposed dw has the shape
(F_in, F_out) (`cnn docs dense`).
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
    # TODO: fill in dx, dw and db.
    raise NotImplementedError("dense_backward: fill me in")
    return dx, dw, db
