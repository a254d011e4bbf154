"""Exercise dropout: the backward pass of (inverted) dropout.

Written by `cnn exercise start dropout`. The forward pass is given; fill in
dropout_backward, then check your work with

    cnn exercise check dropout_exercise.py

The check runs five stages and stops at the first that fails: shapes; a
four-value example to redo by hand; random tensors against cnn's own backward;
edge cases (p = 0, everything dropped, a batch of 1); central differences of your
own forward. Keep the names and signatures: the checker calls them.

Shapes: any. x, keep, out, grad_out and dx all have the same shape.
    keep  booleans, True where the unit survives. The caller draws it (in training,
          keep = rng.random(x.shape) >= p), so that a check and your backward see
          the same mask.
    p     the probability of dropping a unit, 0 <= p < 1

The derivation (in full: `cnn docs dropout`). Inverted dropout zeroes the
dropped units and scales the kept ones up by 1/(1 − p), so that the expected
output is x and nothing changes at test time:

    out = x · keep / (1 − p)

For a fixed mask this is just a multiplication by a constant per entry, so

    ∂L/∂x = ∂L/∂out · keep / (1 − p)

with the same mask as the forward. p is the chance of dropping: the kept units
are scaled by 1/(1 − p), not by 1/p (the two agree only at p = 0.5).
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
    # TODO
    raise NotImplementedError("dropout_backward: fill me in")
    return dx
